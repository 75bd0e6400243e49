"""The predicted-futures panel on a station: what the running model was trained on, and the
prediction's round trip (a remote node's included)."""

from collector.wam.preview import PreviewState
from tests.ui.test_wam_preview import FixedModel, prediction
from ui.wam_preview import QtWamPreview

TRAINED = "trained on 14 episodes of pick-cube, +1.4 dB over still frame at +1 s"


def test_panel_shows_what_the_model_was_trained_on_and_the_round_trip(qtbot):
    state = PreviewState(True, health="ok", prediction=prediction(), age_s=0.31, round_trip_s=0.094,
                         trained_on=TRAINED)
    view = QtWamPreview(FixedModel(state))
    qtbot.addWidget(view)
    view.resize(480, 300)
    view.show()
    assert view.age_label.text().endswith("310 ms old, round trip 94 ms")
    assert view.trained_label.text() == TRAINED and view.trained_label.toolTip() == TRAINED
    # The line never widens the panel: it needs no more room than one without it.
    untrained = QtWamPreview(FixedModel(PreviewState(True, health="ok", prediction=prediction(),
                                                     age_s=0.31, round_trip_s=0.094)))
    qtbot.addWidget(untrained)
    assert view.minimumSizeHint().width() == untrained.minimumSizeHint().width()
