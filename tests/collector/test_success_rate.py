"""The success rate says it counts only labelled episodes, and how many those are."""

from collector.review.cli import format_stats
from collector.review.dashboard import build_dashboard
from collector.review.summary import EpisodeSummary


def summaries():
    outcomes = ["success"] * 3 + ["unknown"] * 7
    return [EpisodeSummary(path=f"e{i}.h5", task="pick", operator="ana", start_time="2026-11-29T10:00:00",
                           duration_s=10.0, outcome=o) for i, o in enumerate(outcomes)]


def test_the_rate_names_the_labelled_share():
    t = build_dashboard(summaries()).total
    assert t.success_rate == 1.0 and t.labelled == 3
    assert t.success_caption == "success rate of labelled episodes (3 of 10 labelled)"


def test_ls_stats_says_it(capsys):
    text = format_stats(build_dashboard(summaries()))
    assert "success rate of labelled episodes 100% (3 of 10 labelled)" in text

