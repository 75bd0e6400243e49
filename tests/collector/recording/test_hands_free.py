"""Hands-free episodes in the recorder, in-process, on the scripted operator's glove (a real
node, in real time) and a camera: an always-on recorder cuts an episode on the work stretch,
starting in the past at its onset with the camera frames held since; a held fist starts an
episode (with its pre-roll) and another stops it where it closed."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from collector.config import RecordingConfig
from collector.recording.recorder import Recorder
from collector.recording.triggers import HandsFreeConfig
from collector.storage.ledger import read_ledger
from collector.storage.reader import open_episode
from collector.wire.node import Node
from collector.wire.options import from_mapping
from collector.wire.protocol import now_ns
from devices.sim_glove.node import SimGlove
from devices.sim_world.operator import ScriptedOperator
from devices.sim_world.world import World
from devices.template.node import TemplateCamera
from tests.waiting import wait_for

TOLERANCE_S = 0.2
FPS = 30.0


@pytest.fixture
def rig(tmp_path):
    """``start(script, hands_free options, **recording) -> (recorder, operator, epoch_ns)``:
    ``operator`` is the glove's scripted operator (its ground truth), acted from ``epoch_ns``."""
    running = []

    def start(script: list[dict], hands_free: dict, **recording):
        epoch = now_ns() + 2_000_000_000  # the script begins once everything listens
        glove = SimGlove("glove", {"rate_hz": 100.0, "epoch_ns": epoch, "script": script})
        devices = [glove, TemplateCamera("cam0", {"fps": FPS})]
        nodes = {d.name: Node(d, f"ipc://{tmp_path}/{d.name}") for d in devices}
        threads = [threading.Thread(target=n.run, daemon=True) for n in nodes.values()]
        for thread in threads:
            thread.start()
        recorder = Recorder({name: f"ipc://{tmp_path}/{name}" for name in nodes},
                            RecordingConfig(output=tmp_path / "rec", min_free_gb=0.0,
                                            hands_free=from_mapping(HandsFreeConfig, hands_free),
                                            **recording))
        running.append((recorder, nodes, threads))
        # The script idles 2 s from the epoch, set 2 s ahead: the recorder listens by then.
        assert recorder._listening_ns < epoch + 1_500_000_000, "the recorder started too late"
        return recorder, ScriptedOperator(World(0), glove.config.script), epoch

    yield start
    for recorder, nodes, threads in running:
        recorder.close()
        for node in nodes.values():
            node.stop()
        for thread in threads:
            thread.join(5)
        for node in nodes.values():
            node.close()


def closed_episode(recorder: Recorder) -> dict:
    """The one episode, once closed: every sample each node published in its window is in it
    (its ledger balances, nothing missing), each stream's ``seq`` without a gap."""
    finished = wait_for(lambda: recorder.status()["finished"], timeout_s=60)
    (result,) = finished.values()
    # validate_episode would also flag a stream whose device paused at the episode's edge: an
    # in-process camera thread under load can (its frames then come bunched, none lost).
    with open_episode(result["path"]) as episode:
        ledger = read_ledger(episode.h5.attrs)
        for stream in episode.streams:
            assert np.all(np.diff(episode.timestamps(stream)["seq"].astype(np.int64)) == 1)
    for stream, books in ledger["streams"].items():
        assert books["balanced"] and not any(books["missing"].values()), (stream, books)
        assert books["written"] == books["published"] > 0, (stream, books)
    return result


def test_always_on_cuts_the_work_stretch_from_its_onset(rig):
    recorder, operator, epoch = rig([{"do": "idle", "s": 2.0}, {"do": "work", "s": 1.0},
                                  {"do": "idle", "s": 30.0}],
                                 {"mode": "always_on", "activity": {"idle_s": 1.0, "min_episode_s": 0.8}},
                                 pre_roll_s=1.0)
    (work_start, work_end), *_ = operator.work_spans(30)
    result = closed_episode(recorder)
    assert recorder.status()["hands_free"] == {"mode": "always_on", "stream": "glove/hand",
                                              "enabled": True, "started": 1, "stopped": 1, "refused": 0,
                                              "unreadable": 0}
    with open_episode(result["path"]) as episode:
        attrs = dict(episode.attrs)
        frames = episode.timestamps("cam0/color")["t_host_ns"].astype(np.int64)
    assert (attrs["trigger"], attrs["end_trigger"]) == ("activity", "activity")
    assert (attrs["start_time_ns"] - epoch) / 1e9 == pytest.approx(work_start, abs=TOLERANCE_S)
    assert (attrs["end_time_ns"] - epoch) / 1e9 == pytest.approx(work_end, abs=TOLERANCE_S)
    assert attrs["pre_roll_s"] == 0  # an activity cut starts at the onset itself
    # The cut was decided min_episode_s after the onset: the frames captured before were held
    # and are in the episode (the ledger balances from its start).
    decided = attrs["start_time_ns"] + 0.8e9
    assert np.count_nonzero(frames < decided) >= 0.8 * FPS / 2
    # Space starts one of the operator's own: the status still says what started the last.
    assert recorder.start({"task": "by hand"})["trigger"] == "manual"
    assert recorder.status()["last_trigger"] == "activity"


def test_a_held_fist_starts_with_the_pre_roll_and_another_stops_where_it_closed(rig):
    recorder, operator, epoch = rig([{"do": "idle", "s": 2.0}, {"do": "fist", "s": 0.7},
                                  {"do": "work", "s": 1.0}, {"do": "fist", "s": 0.7},
                                  {"do": "idle", "s": 30.0}],
                                 {"mode": "gesture", "gesture": {"hold_s": 0.5}}, pre_roll_s=1.0)
    (first, _), (second, _), *_ = operator.fist_spans(30)
    result = closed_episode(recorder)
    with open_episode(result["path"]) as episode:
        attrs = dict(episode.attrs)
        frames = episode.timestamps("cam0/color")["t_host_ns"].astype(np.int64)
    assert (attrs["trigger"], attrs["end_trigger"]) == ("gesture", "gesture")
    assert (attrs["trigger_ns"] - epoch) / 1e9 == pytest.approx(first + 0.5, abs=TOLERANCE_S)
    assert attrs["start_time_ns"] == attrs["trigger_ns"] - 1_000_000_000  # the pre-roll
    assert np.count_nonzero(frames < attrs["trigger_ns"]) >= FPS / 2
    end = (attrs["end_time_ns"] - epoch) / 1e9
    assert second - TOLERANCE_S - 0.25 <= end <= second  # where the fist began to close
