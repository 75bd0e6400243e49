"""Hands-free episodes (collector.recording.triggers) on the scripted operator's glove stream:
activity cuts land within 0.2 s of the scripted work stretches, short bursts and idle stretches
are not recorded, a held fist starts and stops, and bad options say what is wrong."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from collector.recording.triggers import (ACTIVITY, GESTURE, ActivityDetector, GestureDetector,
                                          HandsFreeConfig)
from collector.wire.options import ConfigError, from_mapping
from devices.sim_world.operator import OperatorStep, ScriptedOperator
from devices.sim_world.world import World

RATE_HZ = 100.0
#: Where the scripted operator's time starts on the capture clock.
EPOCH_NS = 1_800_000_000 * 10**9
TOLERANCE_S = 0.2


def operator(*steps: tuple) -> ScriptedOperator:
    return ScriptedOperator(World(seed=3), [OperatorStep(*step) for step in steps])


def run(detector, script: ScriptedOperator, seconds: float) -> list:
    """Feed ``seconds`` of the glove stream; the cuts, with script-time instants."""
    cuts, recording = [], False
    for i in range(int(seconds * RATE_HZ)):
        t_s = i / RATE_HZ
        state = script.state_at(t_s)
        fields = {"wrist_pos": state.wrist_pos, "grip": [state.grip], "pressure": state.pressure}
        cut = detector.feed(EPOCH_NS + round(t_s * 1e9), fields, recording)
        if cut is not None:
            recording = cut.action == "start"
            cuts.append((cut.action, (cut.t_ns - EPOCH_NS) / 1e9, cut.trigger))
    return cuts


def test_activity_cuts_land_on_the_work_stretches_and_drop_bursts_and_idle():
    script = operator(("idle", 3.0), ("work", 4.0), ("idle", 1.5), ("work", 2.0), ("idle", 5.0),
                      ("fist", 0.3), ("idle", 4.0), ("press",), ("work", 3.0), ("idle", 4.0))
    config = HandsFreeConfig(mode="always_on")
    (a0, _), (_, b1), (a2, b2), *_ = script.work_spans(60)
    assert b2 < 40
    seconds = b2 + config.activity.idle_s + 0.5
    cuts = run(ActivityDetector(config), script, seconds)
    # The pause of 1.5 s is inside an episode (idle_s = 3 s); the fist's twitch (0.85 s with its
    # ramps) is shorter than min_episode_s; the idle stretches are not recorded.
    assert [(action, trigger) for action, _, trigger in cuts] == [
        ("start", ACTIVITY), ("stop", ACTIVITY), ("start", ACTIVITY), ("stop", ACTIVITY)]
    for (_, cut, _), boundary in zip(cuts, (a0, b1, a2, b2)):
        assert cut == pytest.approx(boundary, abs=TOLERANCE_S)


def test_activity_pad_widens_each_cut():
    script = operator(("idle", 2.0), ("work", 2.0), ("idle", 4.0))
    config = from_mapping(HandsFreeConfig, {"mode": "always_on", "activity": {"pad_s": 0.5}})
    (a, b), *_ = script.work_spans(60)
    (_, start, _), (_, stop, _) = run(ActivityDetector(config), script, b + 4.0)
    assert start == pytest.approx(a - 0.5, abs=TOLERANCE_S)
    assert stop == pytest.approx(b + 0.5, abs=TOLERANCE_S)


def test_a_held_fist_starts_and_another_stops_where_it_began():
    script = operator(("idle", 2.0), ("fist", 0.5), ("idle", 1.0), ("fist", 1.3), ("work", 3.0),
                      ("fist", 1.3), ("idle", 2.0))
    config = HandsFreeConfig(mode="gesture")
    short, first, second, *_ = script.fist_spans(60)
    cuts = run(GestureDetector(config), script, second[1] + 1.0)
    # The 0.5 s fist is too short (hold_s = 1 s); a start comes once the fist was held hold_s,
    # a stop cuts where the fist closed (the gesture is not part of the episode).
    assert [(a, trigger) for a, _, trigger in cuts] == [("start", GESTURE), ("stop", GESTURE)]
    (_, start, _), (_, stop, _) = cuts
    assert start == pytest.approx(first[0] + config.gesture.hold_s, abs=TOLERANCE_S)
    assert second[0] - TOLERANCE_S <= stop <= second[0]


def test_a_fist_held_on_counts_once():
    script = operator(("idle", 1.0), ("fist", 4.0), ("idle", 1.0))
    cuts = run(GestureDetector(HandsFreeConfig(mode="gesture")), script, 7.0)
    assert [action for action, *_ in cuts] == ["start"]


def test_a_grasp_is_not_a_fist():
    # Holding a cube closes the hand to the cube's width with the fingertips pressing.
    script = operator(("idle", 1.0), ("work", 8.0), ("idle", 1.0))
    assert run(GestureDetector(HandsFreeConfig(mode="gesture")), script, 12.0) == []


@pytest.mark.parametrize("options, message", [
    ({"mode": "sometimes"}, "is not one of"),
    ({"gesture": {"hold_s": 0.05}}, "hold_s must be in"),
    ({"gesture": {"grip_below_m": 0.05}}, "below release_above_m"),
    ({"activity": {"idle_s": 0}}, "idle_s must be > 0"),
    ({"activity": {"min_episode_s": 5.0}}, "min_episode_s \\+ pad_s must be <="),
    ({"activity": {"motion_mps": 1.0}}, "unknown option 'motion_mps'"),
])
def test_bad_options_say_what_is_wrong(options, message):
    with pytest.raises(ConfigError, match=message):
        from_mapping(HandsFreeConfig, options, "recording.hands_free")


def test_the_stream_is_the_first_with_the_fields_or_the_one_named():
    streams = {"cam0/color": ["rgb"], "glove/hand": ["wrist_pos", "grip", "pressure"]}
    assert HandsFreeConfig(mode="always_on").pick_stream(streams) == "glove/hand"
    with pytest.raises(ConfigError, match="'cam0/color' has no field grip"):
        HandsFreeConfig(mode="gesture", stream="cam0/color").pick_stream(streams)
    with pytest.raises(ConfigError, match="needs a glove stream with fields grip, wrist_pos"):
        HandsFreeConfig(mode="always_on").pick_stream({"cam0/color": ["rgb"]})


def test_script_steps_are_checked():
    with pytest.raises(ConfigError, match="idle step needs s"):
        operator(("idle", 0.0))
    with pytest.raises(ConfigError, match="at least one work, idle or fist step"):
        operator(("press",))


def test_a_sample_the_detector_cannot_read_is_counted_not_a_failure():
    from collector.config import RecordingConfig
    from collector.recording.triggers_recorder import HandsFreeTriggers
    from collector.wire.protocol import Sample
    from collector.wire.streams import FieldSpec, StreamSpec

    class Receiver(HandsFreeTriggers):  # the recorder's state the trigger methods use
        recording = RecordingConfig(hands_free=HandsFreeConfig(mode="always_on"))
        specs = {"glove/hand": StreamSpec("glove/hand", "state", 100.0, [
            FieldSpec("wrist_pos", "float32", (3,)), FieldSpec("grip", "float32", (1,))])}
        _current = None

    receiver = Receiver()
    receiver._init_hands_free()
    sample = Sample(node="glove", stream="glove/hand", seq=0, t_device_ns=0, t_host_ns=EPOCH_NS,
                    fields={"wrist_pos": [0.0, 0.0, 0.0]})  # no grip
    receiver._feed_triggers(sample)
    assert receiver.hands_free_status() == {"mode": "always_on", "stream": "glove/hand",
                                            "enabled": True, "started": 0, "stopped": 0, "refused": 0,
                                            "unreadable": 1}


class RecorderStandIn:
    """The recorder's state and actions the trigger methods use, with the starts and stops
    they ask for recorded (and ``refuse`` set: refused)."""

    def __init__(self, mode: str) -> None:
        from collector.config import RecordingConfig
        from collector.recording.triggers_recorder import HandsFreeTriggers
        from collector.wire.streams import FieldSpec, StreamSpec

        class Receiver(HandsFreeTriggers):
            def start(inner, meta, t_ns, trigger, exact):
                self.calls.append(("start", t_ns, trigger))
                if self.refuse:
                    return {"ok": False, "error": self.refuse}
                inner._current = SimpleNamespace(uuid=f"e{len(self.calls)}")
                inner._trigger_of[inner._current.uuid] = trigger
                return {"ok": True, "uuid": inner._current.uuid}

            def stop(inner, t_ns, wait, trigger):
                self.calls.append(("stop", t_ns, trigger))
                inner._current = None
                return {"ok": True}

        self.calls: list = []
        self.refuse = ""
        self.receiver = Receiver()
        self.receiver.recording = RecordingConfig(hands_free=HandsFreeConfig(mode=mode))
        self.receiver.specs = {"glove/hand": StreamSpec("glove/hand", "state", 100.0, [
            FieldSpec("wrist_pos", "float32", (3,)), FieldSpec("grip", "float32", (1,)),
            FieldSpec("pressure", "float32", (5,))])}
        self.receiver._current = None
        self.receiver._init_hands_free()

    def play(self, script: ScriptedOperator, start_s: float, end_s: float) -> None:
        from collector.wire.protocol import Sample

        for i in range(int(start_s * RATE_HZ), int(end_s * RATE_HZ)):
            state = script.state_at(i / RATE_HZ)
            self.receiver._feed_triggers(Sample(
                node="glove", stream="glove/hand", seq=i, t_device_ns=0,
                t_host_ns=EPOCH_NS + round(i / RATE_HZ * 1e9),
                fields={"wrist_pos": state.wrist_pos, "grip": [state.grip], "pressure": state.pressure}))


def test_activity_waits_while_an_episode_of_the_operator_runs():
    script = operator(("idle", 2.0), ("work", 8.0), ("idle", 5.0))
    (start, end), *_ = script.work_spans(60)
    rig = RecorderStandIn("always_on")
    rig.receiver._current = SimpleNamespace(uuid="manual")  # Space started one before the work
    rig.play(script, 0.0, start + 3.0)
    assert rig.calls == [] and rig.receiver.hands_free_status()["refused"] == 0
    rig.receiver._current = None  # Space stopped it mid-work: what follows is new activity
    rig.play(script, start + 3.0, end + 4.0)
    (action, t_ns, trigger), (stop, *_) = rig.calls
    assert (action, trigger, stop) == ("start", ACTIVITY, "stop")
    assert (t_ns - EPOCH_NS) / 1e9 >= start + 3.0 - 0.05  # (rates look back smooth_s)


def test_a_refused_start_is_retried_after_new_activity_and_counted():
    script = operator(("idle", 2.0), ("work", 8.0), ("idle", 5.0))
    (start, end), *_ = script.work_spans(60)
    rig = RecorderStandIn("always_on")
    rig.refuse = "free disk space is below recording.min_free_gb"
    rig.play(script, 0.0, end)
    refused = rig.receiver.hands_free_status()["refused"]
    # Retried after each min_episode_s (1 s) of activity, not on every sample.
    assert 2 <= refused <= (end - start) / 1.0 + 1 and len(rig.calls) == refused


def test_a_closing_session_turns_hands_free_off_first():
    script = operator(("idle", 1.0), ("fist", 1.5), ("idle", 1.0))
    rig = RecorderStandIn("gesture")
    rig.receiver.hands_free_enabled = False  # the session's {"cmd": "hands_free", "enabled": false}
    rig.play(script, 0.0, 5.0)
    assert rig.calls == []
    rig.receiver.hands_free_enabled = True
    rig.play(script, 0.0, 5.0)
    assert [action for action, *_ in rig.calls] == ["start"]
