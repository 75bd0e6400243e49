"""Live skill: each prediction and the still frame scored on the same frames, pooled over 60 s,
published by the node, shown by the preview (and greyed when not better than the still frame)."""

import math

import numpy as np
import pytest

from collector.cli import main
from collector.wam.node import InferenceNode
from collector.wam.preview import PreviewState, WamPreview
from collector.wam.skill import FORECAST_OFF_DB, FORECAST_ON_DB, MIN_SCORED, ForecastVerdict, RollingSkill, Skill, skill_db
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
    assert Skill(FORECAST_ON_DB, MIN_SCORED).better_than_still is True
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


def test_the_verdict_has_hysteresis_around_zero_db():
    """On at +0.3 dB, off below 0 dB, unchanged between; unknown (a new model) forgets it."""
    verdict = ForecastVerdict()
    said = [verdict.update(db) for db in (0.2, 0.29, 0.3, 0.1, 0.0, -0.01, 0.25, 0.31, math.nan, 0.1)]
    assert said == [False, False, True, True, True, False, False, True, None, False]
    assert (FORECAST_OFF_DB, FORECAST_ON_DB) == (0.0, 0.3)


def test_a_skill_hovering_around_zero_does_not_make_the_window_flicker():
    """After a good start, scores alternate every 3 s between a little better and a little worse
    than the still frame: the pooled skill wobbles between about -0.06 and +0.17 dB. A bare
    threshold at 0 dB would flip the verdict at every wobble; the rolling skill's holds."""
    skill = RollingSkill(window_s=3.0)
    t = 0
    for _ in range(50):  # a clearly good start: +1.9 dB
        t += 10**8
        current = skill.add(t, 0.08, 0.10)
    assert current.better_than_still is True
    verdicts, dbs = [], []
    for i in range(400):
        t += 10**8
        current = skill.add(t, 0.1 * (0.98 if (i // 30) % 2 else 1.008), 0.10)
        verdicts.append(current.better_than_still)
        dbs.append(current.db)
    hovering = dbs[50:]
    bare = [db >= FORECAST_OFF_DB for db in hovering]
    flips = lambda values: sum(a != b for a, b in zip(values, values[1:]))  # noqa: E731
    assert min(hovering) < FORECAST_OFF_DB < max(hovering) < FORECAST_ON_DB and flips(bare) >= 10
    assert flips(verdicts) == 1 and verdicts[-1] is False  # turned off once, stayed off


def test_after_a_swap_the_skill_restarts_and_old_predictions_are_not_credited():
    """The node swaps its predictor (one reference, as swap_checkpoint does) while predictions of
    the old one wait for their second: those are scored but never pooled into the new model's
    skill. The old brightens every pixel (far worse than the still frame); the new predicts the
    still frame exactly (0 dB), so one old score credited would pull the new skill below 0."""
    runtime = new_runtime_dir()
    base = default_endpoint(runtime, "station")
    station = StandInStation(base)
    node = InferenceNode("wam", default_endpoint(runtime, "wam"), {"station": base},
                         ToyPredictor(shift=40), rate_hz=8.0)
    try:
        wait_for(lambda: node.step() is not None and node.skill.current().known)
        assert node.skill.current().db < -1
        wait_for(lambda: node.step() and len(node._pending) >= 4)  # old predictions in flight
        node.predictor = ToyPredictor(shift=0)
        scored_before_swap = node._surprise_seq
        new_skill = wait_for(lambda: node.step() is not None and (s := node.skill.current()).known and s)
        # Every prediction scored since was published; the old model's were not pooled.
        assert node._surprise_seq - scored_before_swap > new_skill.count
        assert new_skill.db == pytest.approx(0.0, abs=1e-6) and new_skill.better_than_still is False
    finally:
        node.close()
        station.close()


def test_the_preview_follows_the_published_skill_with_the_same_hysteresis():
    """The window's model reads the node's skill_db sample by sample: once a forecast, a skill
    that dips to +0.1 dB keeps it one; below 0 dB it greys, and +0.2 dB does not ungrey it."""
    from collector.wire.protocol import Sample

    preview = WamPreview(default_endpoint(new_runtime_dir(), "wam"))
    try:
        def publish(seq: int, db: float) -> bool | None:
            sample = Sample("wam", "wam/surprise", seq, seq, 10**18 + seq * 10**8, {
                "score": np.float32(0.1), "baseline": np.float32(0.1), "skill_db": np.float32(db)})
            with preview._lock:  # as the reader thread calls it
                preview._on_sample(sample)
            return preview.state().skill.better_than_still

        said = [publish(i, db) for i, db in enumerate((math.nan, 0.5, 0.1, 0.25, -0.05, 0.2, 0.29, 0.35))]
        assert said == [None, True, True, True, False, False, False, True]
    finally:
        preview.close()
