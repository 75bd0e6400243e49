"""Live skill: each prediction and the still frame scored on the same frames, pooled over 60 s,
published by the node, shown by the preview (and greyed when not better than the still frame)."""

import math

import numpy as np
import pytest

from collector.cli import main
from collector.wam.node import InferenceNode
from collector.wam.preview import PreviewState, WamPreview
from collector.wam.skill import MIN_SCORED, RollingSkill, Skill, skill_db
from collector.wire.bus import default_endpoint, new_runtime_dir
from tests.collector.wam.live_inputs import StandInStation, ToyPredictor
from tests.waiting import wait_for


def test_skill_pools_squared_errors_over_the_window():
    skill = RollingSkill(window_s=60)
    for i in range(MIN_SCORED - 1):
        current = skill.add(i * 10**8, 0.05, 0.10)
    assert not current.known and math.isnan(current.db) and current.better_than_still is None
    assert current.describe() == f"skill: measuring ({MIN_SCORED - 1} of {MIN_SCORED} predictions scored)"
    current = skill.add(MIN_SCORED * 10**8, 0.05, 0.10)
    # Half the RMSE of the still frame: a quarter of its squared error, +6.0 dB.
    assert current.db == pytest.approx(10 * math.log10(4)) and current.better_than_still
    assert current.describe() == "+6.0 dB over the still frame (last 60 s)"
    # A minute later the early, good predictions have left the window; bad ones remain.
    for i in range(MIN_SCORED):
        current = skill.add(70 * 10**9 + i * 10**8, 0.20, 0.10)
    assert current.count == MIN_SCORED
    assert current.db == pytest.approx(-10 * math.log10(4)) and current.better_than_still is False
    assert skill_db([0.05, 0.20], [0.10, 0.10]) == pytest.approx(10 * math.log10(0.01 / 0.02125))


def test_bad_scores_are_counted_and_never_pooled():
    skill = RollingSkill()
    for bad in ((math.nan, 0.1), (0.1, math.inf), (-0.1, 0.1)):
        skill.add(0, *bad)
    assert skill.rejected == 3 and skill.current().count == 0
    with pytest.raises(ValueError, match="window_s must be > 0"):
        RollingSkill(window_s=0)


def test_equal_to_the_still_frame_is_not_better():
    assert Skill(0.0, MIN_SCORED).better_than_still is False
    assert Skill(0.04, MIN_SCORED).better_than_still is False
    state = PreviewState(True, skill=Skill(-1.2, 100))
    assert state.not_a_forecast
    assert not PreviewState(True, skill=Skill(math.nan, 3)).not_a_forecast  # still measuring
    assert not PreviewState(True).not_a_forecast


def test_the_node_publishes_its_skill_and_the_preview_says_it_is_no_forecast(capsys):
    """A predictor that brightens every pixel is worse than the still frame: the node scores
    both on the same frames, publishes the rolling skill in its recorded surprise stream, and
    the preview reads it and calls the predictions no forecast."""
    runtime = new_runtime_dir()
    base = default_endpoint(runtime, "station")
    station = StandInStation(base)
    predictor = ToyPredictor(shift=40)
    node = InferenceNode("wam", default_endpoint(runtime, "wam"), {"station": base}, predictor, rate_hz=8.0)
    preview = WamPreview(default_endpoint(runtime, "wam"))
    try:
        surprise = next(s for s in node.describe.streams if s["name"] == "wam/surprise")
        assert "skill_db" in [f["name"] for f in surprise["fields"]]  # declared, so recorded
        state = wait_for(lambda: node.step() is not None and (s := preview.state()).skill is not None
                         and s.skill.known and s.available and s)
        assert state.skill.db < -1 and state.not_a_forecast
        assert node.skill.current().db == pytest.approx(state.skill.db, abs=1.0)
        assert node.status()["skill"].endswith("dB over the still frame (last 60 s)")
        assert np.isfinite(state.skill.db)
        # The CLI says it too.
        assert main(["wam", "status", "--node", default_endpoint(runtime, "wam")]) == 0
        assert "live skill: -" in capsys.readouterr().out
    finally:
        preview.close()
        node.close()
        station.close()
