"""The review dashboard's success-rate card says it counts only labelled episodes."""

from tests.collector.test_success_rate import summaries


def test_the_review_dashboard_card_says_it(qtbot):
    from ui.review.dashboard import QtDashboard

    board = QtDashboard()
    qtbot.addWidget(board)
    board.show_summaries(summaries())
    assert board.cards["success"].text() == "100%"
    assert board.captions["success"].text() == "success rate of labelled episodes (3 of 10 labelled)"
