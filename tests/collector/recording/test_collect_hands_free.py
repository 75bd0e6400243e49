"""The collect model follows the episodes the glove starts and stops by itself
(``recording.hands_free``): shown as recording, then stopped and counted, taggable by button,
never reported as an error; a manual episode the glove stops is followed the same way."""

from __future__ import annotations

from collector.config import sim_config
from collector.recording.collect import CollectModel


class SessionStandIn:
    """What the collect model asks of its session here (no processes: the status is given)."""

    def __init__(self, config) -> None:
        self.config = config
        self.episodes_recorded = 0
        self.tags: list[str] = []

    def note_stopped_by_recorder(self, episode) -> None:
        self.episodes_recorded += 1

    def tag_episode(self, outcome=None, **_):
        self.tags.append(outcome)
        return {"ok": True}


def status(episode=None, last=None, last_end_trigger=None) -> dict:
    return {"recording": episode is not None, "episode": episode,
            "last_uuid": last, "last_path": f"/rec/{last}.h5" if last else None,
            "last_trigger": "activity" if last else None, "last_end_trigger": last_end_trigger}


def model_with_events():
    config = sim_config()
    config.session.reset_countdown_s = 0.0
    model = CollectModel(config, session=SessionStandIn(config))
    events: list[tuple[str, dict]] = []
    model.subscribe(lambda name, data: events.append((name, data)))
    return model, events


def test_an_activity_episode_is_shown_counted_and_taggable():
    model, events = model_with_events()
    model._follow_hands_free(status({"uuid": "a1", "path": "/rec/a1.h5", "trigger": "activity"}))
    assert model.state == "recording" and model.episode["trigger"] == "activity"
    model._follow_hands_free(status(last="a1", last_end_trigger="activity"))
    assert model.state == "idle" and model.episodes_recorded == 1
    assert model.last_episode["uuid"] == "a1" and model.last_episode["path"] == "/rec/a1.h5"
    names = [name for name, _ in events]
    assert names.count("episode_started") == 1 and names.count("episode_stopped") == 1
    assert "error" not in names
    model.mark("success").result(10)
    assert model.session.tags == ["success"]


def test_a_manual_episode_stopped_by_a_gesture_is_no_error():
    model, events = model_with_events()
    model.episode, model.episode_started_at, model.state = {"uuid": "m1"}, 1.0, "recording"
    model._follow_hands_free(status(last="m1", last_end_trigger="gesture"))
    assert model.state == "idle" and model.last_episode["uuid"] == "m1"
    assert [name for name, _ in events if name in ("episode_stopped", "error")] == ["episode_stopped"]


def test_a_manual_episode_is_left_to_the_operator():
    model, events = model_with_events()
    model._follow_hands_free(status({"uuid": "m2", "trigger": "manual"}))
    assert model.state == "idle" and events == []
