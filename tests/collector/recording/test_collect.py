"""The Qt-free collect model: guards, the reset countdown and settings that the CLI reads back."""


import h5py
import pytest

from collector.recording.collect import CollectModel
from collector.config import load_config, sim_config
from collector.recording.session import SessionError
from tests.waiting import wait_for, wait_for_samples


def tiny_config(out):
    config = sim_config(seed=5, cameras=1, glove_rate_hz=100.0)
    config.nodes[0].options.update(width=96, height=72)
    config.recording.output = out
    config.recording.min_free_gb = 0.0
    config.session.sounds = False
    return config


def test_guards_countdown_and_settings(tmp_path):
    config = tiny_config(tmp_path / "rec")
    config.session.reset_countdown_s = 1.0
    config.session.auto_start_after_reset = True
    config.session.goal_episodes = 2
    model = CollectModel(config)
    events = []
    model.subscribe(lambda name, data: events.append((name, data)))
    model.open()
    try:
        # Refused below the free-space threshold, with a message that says what to change.
        config.recording.min_free_gb = 1e9
        with pytest.raises(SessionError, match=r"recording\.min_free_gb"):
            model.start_episode().result(30)
        assert ("error", "start") in {(n, d.get("action")) for n, d in events}
        assert model.state == "idle"
        config.recording.min_free_gb = 0.0

        model.set_session_info(task="stack", operator="ben", station="s2")
        model.set_notes("first try")
        model.start_episode().result(30)
        wait_for_samples(model.session.status, ("cam0/color",), count=5)  # something to record
        first = model.stop_episode().result(60)
        assert model.state == "reset"
        # The countdown ends and the next episode starts by itself (goal 2 not reached yet).
        wait_for(lambda: model.state == "recording", timeout_s=10)
        wait_for_samples(model.session.status, ("cam0/color",), count=5)  # something to record
        model.stop_episode().result(60)
        wait_for(lambda: model.state == "idle", timeout_s=10)  # goal reached: no auto start
        assert model.episodes_recorded == 2
        assert [d["kind"] for n, d in events if n == "cue"] == ["start", "stop", "start", "stop"]
        with h5py.File(first["path"]) as f:
            assert (f.attrs["task"], f.attrs["operator"], f.attrs["station"]) == ("stack", "ben", "s2")
            assert f.attrs["notes"] == "first try"

        # Settings that do not touch devices apply at once and are saved for the CLI.
        saved = tmp_path / "station.toml"
        new = load_config_copy(model.config)
        new.session.reset_countdown_s = 0.0
        model.apply_config(new, save_to=saved).result(60)
        assert load_config(saved).session.reset_countdown_s == 0.0
        assert load_config(saved).session.task == "stack"
        assert model.session.supervisor is not None and model.opened
    finally:
        model.close()


def load_config_copy(config):
    import copy

    return copy.deepcopy(config)


def test_stop_returns_at_once_and_the_closed_episode_says_what_is_missing(tmp_path):
    config = tiny_config(tmp_path / "rec")
    config.session.reset_countdown_s = 0.0
    model = CollectModel(config)
    events = []
    model.subscribe(lambda name, data: events.append((name, data)))
    model.open()
    try:
        model.start_episode().result(30)
        wait_for_samples(model.session.status, ("cam0/color",), count=5)  # something to record
        stopped = model.stop_episode().result(60)
        # Tagging works while the episode still drains: the recorder applies it at close.
        model.mark("success").result(30)
        wait_for(lambda: model.last_episode["closed"], timeout_s=30)
        (closed,) = [d for n, d in events if n == "episode_closed"]
        assert closed["uuid"] == stopped["uuid"] and closed["status"] == "complete"
        assert closed["problems"] == [] and closed["path"] == stopped["path"]
        assert not [d for n, d in events if n in ("warning", "error")]
        with h5py.File(stopped["path"]) as f:
            assert f.attrs["status"] == "complete" and f.attrs["outcome"] == "success"

        # What the recorder reports for an incomplete and for a failed episode reaches the
        # operator in words (these results are hard to provoke on demand with live devices).
        real_status = model.session.status
        results = {}
        model.session.status = lambda: {**real_status(), "finished": results}
        for outcome in ("incomplete", "failed"):
            model.start_episode().result(30)
            wait_for_samples(model.session.status, ("cam0/color",), count=5)  # something to record
            reply = model.stop_episode().result(60)
            results[reply["uuid"]] = {
                "ok": True, "uuid": reply["uuid"], "path": reply["path"],
                "status": "failed" if outcome == "failed" else "complete",
                "problems": ["cam0/color: last 5.5 s missing"]}
            if outcome == "failed":
                results[reply["uuid"]]["error"] = "the receiver thread died"
            wait_for(lambda: model.last_episode["closed"], timeout_s=30)
        name = lambda p: p.rsplit("/", 1)[-1]  # noqa: E731
        closed = [d for n, d in events if n == "episode_closed"][1:]
        assert [d["status"] for d in closed] == ["complete", "failed"]
        assert closed[0]["problems"] == ["cam0/color: last 5.5 s missing"]
        assert closed[1]["problems"] == ["the recording failed: the receiver thread died",
                                         "cam0/color: last 5.5 s missing"]
        warnings = [d["message"] for n, d in events if n == "warning"]
        errors = [d["message"] for n, d in events if n == "error"]
        assert warnings == [f"{name(closed[0]['path'])} is incomplete: cam0/color: last 5.5 s missing"]
        assert errors == [f"{name(closed[1]['path'])}: the recording failed: the receiver thread died; "
                          "cam0/color: last 5.5 s missing"]
    finally:
        model.close()
