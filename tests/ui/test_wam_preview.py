"""The predicted-futures panel and the hand-trajectory overlay."""

import time

import numpy as np

from collector.wam.preview import Prediction, PreviewState, WamPreview
from ui.wam_preview import STRIP_HORIZONS, QtWamPreview, draw_hand_trajectory


class FixedModel:
    """Stands in for WamPreview: the view only calls state()."""

    def __init__(self, state):
        self.current = state

    def state(self):
        return self.current


def prediction(k=16):
    frames = np.zeros((k, 64, 64, 3), np.uint8)
    for i in range(k):
        frames[i, :, :, 0] = 10 * i  # each future frame a different red
    return Prediction(frames, np.zeros((k, 8), np.float32), 0.125 * np.arange(1, k + 1),
                      np.zeros((k, 2), np.float32), 42, time.time_ns(), time.time_ns(), 20.0)


def test_panel_shows_the_strip_age_and_surprise(qtbot):
    state = PreviewState(True, health="ok", prediction=prediction(), age_s=0.18, surprise=0.031,
                         surprise_baseline=0.05, trace_t=np.array([1.0, 2.0]),
                         trace_score=np.array([0.02, 0.031]), trace_baseline=np.array([0.04, 0.05]))
    view = QtWamPreview(FixedModel(state))
    qtbot.addWidget(view)
    view.show()
    assert view.strip.isVisible() and not view.unavailable_label.isVisible()
    assert [c.text() for c in view.tile_captions] == [f"+{h:g} s" for h in STRIP_HORIZONS]
    # The +1 s tile shows the frame predicted for +1 s (step 8: red 70).
    image = view.tiles[2].pixmap().toImage()
    assert image.pixelColor(10, 10).red() == 70
    assert "180 ms old" in view.age_label.text()
    assert "surprise 3.1" in view.surprise_label.text()


def test_panel_says_why_the_preview_is_unavailable(qtbot):
    model = WamPreview(None, unavailable_reason="wam exited with code 2: checkpoint.pt: no such file")
    view = QtWamPreview(model)
    qtbot.addWidget(view)
    view.show()
    assert not view.strip.isVisible()
    assert view.unavailable_label.text() == ("Preview unavailable: wam exited with code 2: "
                                             "checkpoint.pt: no such file")
    model.close()


def test_slow_predictions_are_flagged(qtbot):
    state = PreviewState(True, "prediction is 1.6 s old", "slow", prediction(), 1.6)
    view = QtWamPreview(FixedModel(state))
    qtbot.addWidget(view)
    assert "1600 ms old" in view.age_label.text() and "(slow)" in view.age_label.text()


def test_trajectory_is_drawn_where_the_hand_will_be_and_nan_points_are_skipped():
    image = np.zeros((120, 160, 3), np.uint8)
    uv = np.array([[20, 20], [80, 60], [np.nan, np.nan], [140, 100]], np.float32)
    out = draw_hand_trajectory(image, uv)
    assert out.shape == image.shape and image.max() == 0  # the input is left alone
    for u, v in ((20, 20), (80, 60), (140, 100)):
        assert out[v, u].sum() > 0
    assert out[100, 20].sum() == 0  # far from the path
    assert np.array_equal(draw_hand_trajectory(image, np.full((3, 2), np.nan)), image)


def test_panel_shows_the_skill_and_greys_a_preview_no_better_than_the_still_frame(qtbot):
    from collector.wam.skill import Skill

    good = PreviewState(True, health="ok", prediction=prediction(), age_s=0.1, skill=Skill(1.4, 200))
    model = FixedModel(good)
    view = QtWamPreview(model)
    qtbot.addWidget(view)
    view.show()
    assert "+1.4 dB over the still frame (last 60 s)" in view.skill_label.text()
    assert not view.skill_warning.isVisible()
    assert view.tiles[2].pixmap().toImage().pixelColor(10, 10).red() == 70  # in colour

    model.current = PreviewState(True, health="ok", prediction=prediction(), age_s=0.1,
                                 skill=Skill(-2.3, 200))
    view.refresh()
    assert "-2.3 dB over the still frame" in view.skill_label.text()
    assert view.skill_warning.isVisible()
    assert view.skill_warning.text().startswith("Not better than the still frame (-2.3 dB over the last 60 s)")
    colour = view.tiles[2].pixmap().toImage().pixelColor(10, 10)
    assert colour.red() == colour.green() == colour.blue()  # greyed, not shown as a forecast

    model.current = PreviewState(True, health="ok", prediction=prediction(), age_s=0.1,
                                 skill=Skill(float("nan"), 5))
    view.refresh()
    assert "measuring (5 of" in view.skill_label.text() and not view.skill_warning.isVisible()
