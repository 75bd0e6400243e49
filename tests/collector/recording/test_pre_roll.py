"""Pre-roll: every stream is held in memory while not recording, and an episode begins
``recording.pre_roll_s`` before its trigger (never before the previous episode's stop, nor past
what is still held), so a late press loses nothing; the memory is bounded and in the status."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from collector.config import RecordingConfig
from collector.recording.recorder import Recorder
from collector.storage.ledger import read_ledger
from collector.storage.reader import open_episode, validate_episode
from collector.wire.node import Node
from collector.wire.options import ConfigError, from_mapping
from collector.wire.protocol import now_ns
from devices.template.node import TemplateCamera
from tests.waiting import wait_for


@pytest.fixture
def rig(tmp_path):
    """``start(camera options, recording options) -> recorder`` with a running camera node."""
    running = []

    def start(camera: dict, **recording) -> Recorder:
        camera_device = TemplateCamera("cam0", camera)
        endpoint = f"ipc://{tmp_path}/cam0"
        node = Node(camera_device, endpoint)
        recorder = Recorder({"cam0": endpoint},
                            RecordingConfig(output=tmp_path / "rec", min_free_gb=0.0, **recording))
        thread = threading.Thread(target=node.run, daemon=True)
        thread.start()
        running.append((node, recorder, thread))
        return recorder

    yield start
    for node, recorder, thread in running:
        recorder.close()
        node.stop()
        thread.join(5)
        node.close()


def held_s(recorder: Recorder, at_least: float) -> float:
    return wait_for(lambda: recorder.status()["pre_roll"]["held_s"] >= at_least
                    and recorder.status()["pre_roll"]["held_s"])


def test_an_episode_begins_with_the_pre_roll_and_the_next_one_after_its_stop(rig):
    recorder = rig({"fps": 30}, pre_roll_s=1.5)
    held_s(recorder, 2.0)  # more held than the pre-roll: it is the pre-roll that bounds the start
    trigger = now_ns()
    started = recorder.start({"task": "late-press"}, t_ns=trigger)
    assert started["ok"] and started["trigger_ns"] == trigger
    assert started["start_ns"] == trigger - 1_500_000_000
    episode = recorder.status()["episode"]
    assert episode["trigger_ns"] == trigger and episode["elapsed_s"] >= 1.5  # pre-roll included
    wait_for(lambda: recorder.status()["streams"]["cam0/color"]["last_t_host_ns"] > trigger + 5e8)
    stop = now_ns()
    first = recorder.stop(t_ns=stop)
    # The next press comes at once: its pre-roll reaches back only to the previous stop.
    second = recorder.start({"task": "late-press"})
    # (Or just after a frame captured after the stop instant but routed before the stop.)
    assert second["ok"] and stop <= second["start_ns"] < stop + 1e9 / 30 * 2
    wait_for(lambda: recorder.status()["streams"]["cam0/color"]["last_t_host_ns"] > stop + 5e8)
    second_path = recorder.stop()["path"]
    assert validate_episode(first["path"]) == [] and validate_episode(second_path) == []
    with open_episode(first["path"]) as ep:
        ts = ep.timestamps("cam0/color")
        assert ep.attrs["trigger_ns"] == trigger and ep.attrs["pre_roll_s"] == pytest.approx(1.5)
        ledger = read_ledger(ep.h5.attrs)
    host = ts["t_host_ns"].astype(np.int64)
    before = host[host < trigger]
    # The pre-roll holds the frames of the 1.5 s before the trigger, from its first period on.
    assert 1.5 * 30 - 3 <= len(before) <= 1.5 * 30 + 1
    assert host[0] - started["start_ns"] < 1e9 / 30 * 3
    assert np.all(np.diff(ts["seq"].astype(np.int64)) == 1)
    books = ledger["streams"]["cam0/color"]
    assert books["balanced"] and books["published"] == books["written"] == len(host)
    with open_episode(second_path) as ep:
        seq2 = ep.timestamps("cam0/color")["seq"]
    assert int(seq2[0]) == int(ts["seq"][-1]) + 1  # nothing lost between them, nothing twice


def test_the_pre_roll_is_bounded_in_memory_and_shown(rig):
    # 320x240 RGB at 30 fps is 6.9 MB/s: 16 MiB hold ~2.4 s of the 5 s asked for.
    recorder = rig({"fps": 30, "width": 320, "height": 240}, pre_roll_s=5.0, pre_roll_max_mb=16)
    wait_for(lambda: recorder.status()["pre_roll"]["samples"] >= 60)
    status = recorder.status()["pre_roll"]
    assert status["configured_s"] == 5.0 and status["limit_mb"] == 16
    assert status["held_mb"] <= 16 and status["held_s"] < 3.0
    trigger = now_ns()
    started = recorder.start({"task": "bounded"}, t_ns=trigger)
    # It begins with what is still held, not 5 s back: its head is whole.
    assert trigger - 3.5e9 < started["start_ns"] < trigger - 1.0e9
    wait_for(lambda: recorder.status()["streams"]["cam0/color"]["last_t_host_ns"] > trigger + 3e8)
    path = recorder.stop()["path"]
    assert validate_episode(path) == []


def test_no_pre_roll_starts_at_the_trigger_and_bad_values_are_refused(rig):
    recorder = rig({"fps": 30}, pre_roll_s=0.0)
    held_s(recorder, 0.5)
    trigger = now_ns()
    assert recorder.start({}, t_ns=trigger)["start_ns"] == trigger
    recorder.stop()
    with pytest.raises(ConfigError, match="pre_roll_s must be in"):
        from_mapping(RecordingConfig, {"pre_roll_s": -1.0}, "recording")
    with pytest.raises(ConfigError, match="pre_roll_max_mb must be in"):
        from_mapping(RecordingConfig, {"pre_roll_max_mb": 1.0}, "recording")


def test_a_press_just_after_start_up_reaches_back_only_to_what_was_received(rig):
    recorder = rig({"fps": 30}, pre_roll_s=3.0)
    first = wait_for(lambda: recorder._first_seen_ns.get("cam0/color"))
    started = recorder.start({"task": "early"})
    # Not 3 s back (nothing was received then), and not on the first frame itself.
    assert started["start_ns"] == first + 1
    wait_for(lambda: recorder.status()["streams"]["cam0/color"]["last_t_host_ns"] > started["trigger_ns"] + 3e8)
    path = recorder.stop()["path"]
    assert validate_episode(path) == []


def test_a_start_after_a_stop_in_the_past_loses_no_sample_to_the_stopped_episode(rig):
    """An activity's end is known only later (recording.hands_free): the stop instant lies in the
    past, and the samples captured since went to that episode, which cuts them at its close.
    The next episode (started at once, at an instant before that) begins after them."""
    recorder = rig({"fps": 30}, pre_roll_s=1.0)
    held_s(recorder, 1.0)
    recorder.start({"task": "cut"})
    wait_for(lambda: recorder.status()["streams"]["cam0/color"]["received"] > 60)
    now = now_ns()
    first = recorder.stop(t_ns=now - 600_000_000, wait=False)  # ended 0.6 s ago
    second = recorder.start({"task": "cut"}, t_ns=now - 300_000_000, exact=True)
    assert second["ok"] and second["start_ns"] > now - 300_000_000
    wait_for(lambda: recorder.status()["streams"]["cam0/color"]["last_t_host_ns"] > now + 5e8)
    second_path = recorder.stop()["path"]
    first_path = recorder.wait_closed(first["uuid"])["path"]
    for path in (first_path, second_path):
        assert validate_episode(path) == []
        with open_episode(path) as ep:
            books = read_ledger(ep.h5.attrs)["streams"]["cam0/color"]
        assert books["written"] == books["published"] and not any(books["missing"].values())


def test_the_held_span_is_from_the_earliest_capture_to_the_latest():
    from collections import deque

    from collector.recording.receiving import EpisodeReceiver
    from collector.wire.protocol import Sample

    def sample(t_s: float) -> Sample:
        return Sample(node="glove", stream="glove/hand", seq=0, t_device_ns=0,
                      t_host_ns=int(t_s * 1e9), fields={})

    receiver = EpisodeReceiver()
    receiver.recording = RecordingConfig(pre_roll_s=3.0)
    # A lagging glove's samples arrive after the camera's newer frames.
    receiver._unrouted = deque((sample(t), 0) for t in (10.0, 12.5, 7.5, 8.0))
    receiver._unrouted_bytes = 0
    assert receiver.pre_roll_status()["held_s"] == 5.0


def test_a_video_pre_roll_is_encoded_as_it_arrives_and_every_frame_decodes(rig):
    """Colour is encoded while it is held, keyframes on a 0.5 s capture-time grid; a pre-roll
    begins on a grid instant (up to a GOP more than asked), so the episode takes every packet
    from the continuous encoder. The next episode, started at once, begins between keyframes,
    encodes its frames up to the first grid keyframe itself and still decodes frame by frame."""
    recorder = rig({"fps": 30, "width": 64, "height": 48}, pre_roll_s=1.0, color_encoding="h264",
                   video_gop_s=0.5)
    held_s(recorder, 1.6)  # room for the pre-roll and the GOP it may begin earlier
    first = recorder.start({"task": "video"})
    wait_for(lambda: recorder.status()["streams"]["cam0/color"]["last_t_host_ns"]
             > first["trigger_ns"] + 6e8)
    recorder.stop(wait=False)
    second = recorder.start({"task": "video"})
    wait_for(lambda: recorder.status()["streams"]["cam0/color"]["last_t_host_ns"]
             > second["trigger_ns"] + 6e8)
    second_path = recorder.stop()["path"]
    assert recorder.status()["continuous_encoding"]["fields"] == ["cam0/color/rgb"]
    assert first["start_ns"] % 500_000_000 == 0
    assert 1.0 <= (first["trigger_ns"] - first["start_ns"]) / 1e9 < 1.5
    assert second["start_ns"] % 500_000_000  # back to back: at the first one's stop
    for path, aligned in ((first["path"], True), (second_path, False)):
        assert validate_episode(path) == []
        with open_episode(path) as ep:
            host = ep.timestamps("cam0/color")["t_host_ns"].astype(np.int64)
            keys = np.flatnonzero(ep.h5["streams/cam0/color/rgb.key"][:])
            frames = ep.frames("cam0/color", "rgb")  # every frame decodes, in order
        assert len(frames) == len(host) >= 15 and keys[0] == 0  # the second: 0.6 s at least
        slot = host // 500_000_000
        on_grid = np.flatnonzero(np.diff(slot)) + 1  # the first frame of each 0.5 s slot
        # Own encoding (if any) ends at the first grid keyframe; from there continuous packets.
        assert keys[1] == on_grid[0] and set(on_grid) <= set(keys)
        if aligned:  # every packet continuous: keyframes on the grid only
            assert keys.tolist() == [0, *on_grid.tolist()]
