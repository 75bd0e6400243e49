"""End to end: simulated nodes and the recorder as real processes over real sockets, real files."""

import json
import os
import signal
import threading
import time

import h5py
import numpy as np
import pytest

from collector.config import sim_config
from collector.storage.reader import open_episode, recover_episode, validate_episode
from collector.recording.recorder import thread_cpu_seconds
from collector.recording.session import Session, SessionError
from collector.storage.sync import sync_time_ns
from devices.sim_clock import DeviceClock

SECONDS = 5.0


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """One >= 5 s episode from one simulated camera and a 200 Hz glove."""
    out = tmp_path_factory.mktemp("rec")
    config = sim_config(seed=7, cameras=1, glove_rate_hz=200.0)
    # Device clocks far from the host's and drifting apart: sync must work on host time.
    config.nodes[0].options.update(clock_offset_ns=5_000_000_000, clock_drift_ppm=80.0)
    config.nodes[1].options.update(clock_offset_ns=-3_000_000_000, clock_drift_ppm=-50.0)
    config.recording.output = out
    config.session.task = "pick-cube"
    with Session(config) as session:
        time.sleep(0.5)  # let rates settle so the health check below is meaningful
        started = session.start_episode(operator="tester")
        time.sleep(SECONDS)
        health = {s.name: s for s in session.health()}
        thread_cpu_s = session.status()["thread_cpu_s"]
        stopped = session.stop_episode()
        stopped["thread_cpu_s"] = thread_cpu_s
        session.tag_episode("success", notes="clean run")
        stopped.update(session.wait_closed(stopped["uuid"]))
    return started, stopped, health


def test_episode_validates_and_holds_every_published_sample(recorded):
    started, stopped, _ = recorded
    path = stopped["path"]
    assert path == started["path"] and os.path.exists(path)
    assert validate_episode(path) == []
    with open_episode(path) as ep:
        assert set(ep.streams) == {"cam0/color", "cam0/depth", "glove/hand"}
        for stream, rate in (("cam0/color", 30), ("cam0/depth", 30), ("glove/hand", 200)):
            seq = ep.timestamps(stream)["seq"]
            # Contiguous device/node sequence numbers: nothing published in the window is missing.
            assert np.all(np.diff(seq.astype(np.int64)) == 1), stream
            assert ep.count(stream) >= rate * SECONDS * 0.9, (stream, ep.count(stream))
        assert not [e for e in ep.events() if e["kind"] in ("gap", "overflow", "rejected")]
        assert ep.attrs["outcome"] == "success" and ep.attrs["notes"] == "clean run"
        assert ep.attrs["operator"] == "tester" and ep.attrs["task"] == "pick-cube"
        assert ep.attrs["status"] == "complete"
        frame = ep.frames("cam0/color", "rgb", [0])
        assert frame.shape == (1, 480, 640, 3) and frame.dtype == np.uint8


def test_status_reports_the_cpu_time_of_the_receiver_and_the_writer(recorded):
    _, stopped, _ = recorded
    cpu = stopped["thread_cpu_s"]
    # Both threads did work for 5 s of camera frames and glove samples.
    assert cpu["receiver"] > 0 and cpu["writer"] > 0, cpu


def test_thread_cpu_seconds_is_the_thread_s_own_cpu_time_and_none_once_it_ended():
    spun, release = threading.Event(), threading.Event()

    def spin():
        while time.thread_time() < 0.05:
            pass
        spun.set()
        release.wait()

    thread = threading.Thread(target=spin)
    thread.start()
    assert spun.wait(60)
    assert thread_cpu_seconds(thread) >= 0.05  # read from another thread
    assert thread_cpu_seconds(threading.current_thread()) < time.process_time() + 1e-3
    release.set()
    thread.join()
    assert thread_cpu_seconds(thread) is None


def test_health_reports_rates_near_nominal(recorded):
    _, _, health = recorded
    assert health["glove/hand"].level == "ok", health["glove/hand"].problem
    assert abs(health["cam0/color"].rate_hz - 30) < 4


def test_sync_index_pairs_each_frame_with_the_nearest_glove_sample_on_the_fitted_clock(recorded):
    _, stopped, _ = recorded
    with open_episode(stopped["path"]) as ep:
        sync = ep.sync
        times = {}
        for stream in ("cam0/color", "glove/hand"):
            fit = json.loads(ep.h5[f"streams/{stream}"].attrs["clock_fit"])
            # The device clocks were set to drift by +80 and -50 ppm against the host.
            assert fit is not None and fit["residual_p99_ns"] < 2e6
            ts = ep.timestamps(stream)
            times[stream] = sync_time_ns(ts["t_device_ns"], ts["t_host_ns"], fit)
        glove_fit = json.loads(ep.h5["streams/glove/hand"].attrs["clock_fit"])
        assert abs(glove_fit["drift_ppm"] + 50) < 40  # 5 s of 1 ms host jitter bounds the estimate
        index = sync["streams"]["glove/hand"]["index"]
    master_t, glove_t = times["cam0/color"], times["glove/hand"]
    assert np.array_equal(sync["t_ns"], master_t)
    assert (index >= 0).all()
    brute = np.abs(glove_t[None, :] - master_t[:, None]).argmin(axis=1)
    assert np.array_equal(index, brute)
    skew = sync["streams"]["glove/hand"]["skew_ns"]
    # At most half a 200 Hz period wherever a glove sample lies on each side of the frame; at the
    # episode's edges the other neighbour was captured outside the episode's window.
    between = (master_t > glove_t[0]) & (master_t < glove_t[-1])
    assert between.sum() >= len(master_t) - 2
    assert np.abs(skew[between]).max() <= 2.5e6 + 1e5


def test_sync_index_matches_the_simulators_ground_truth_clock(recorded):
    """Map each sample's device timestamp back to its true capture time through the simulator's
    clock model; each frame's synchronized glove sample is the one truly nearest in time."""
    _, stopped, _ = recorded
    with open_episode(stopped["path"]) as ep:
        true = {}
        for stream in ("cam0/color", "glove/hand"):
            clock = DeviceClock.from_meta(ep.streams[stream].meta["clock"])
            true[stream] = np.array([clock.true_time_ns(int(t))
                                     for t in ep.timestamps(stream)["t_device_ns"]])
        index = ep.sync["streams"]["glove/hand"]["index"]
    frames, glove = true["cam0/color"], true["glove/hand"]
    truly_nearest = np.abs(glove[None, :] - frames[:, None]).argmin(axis=1)
    valid = index >= 0
    assert valid.all()
    # Camera frames and glove samples lie on one world grid: at 30 fps against 200 Hz every
    # third frame coincides with a glove sample exactly, the others fall 1.67 ms from one.
    true_skew = np.abs(glove[index] - frames)
    assert true_skew.max() <= 2.5e6 + 2e6  # half a glove period plus the latency jitter
    assert (index == truly_nearest).mean() >= 0.99


def test_discard_moves_the_episode_to_trash_and_start_refuses_twice(tmp_path):
    config = sim_config(seed=1)
    config.recording.output = tmp_path
    with Session(config) as session:
        first = session.start_episode()
        with pytest.raises(SessionError, match="already recording"):
            session.start_episode()
        time.sleep(0.5)
        session.discard_episode()
        assert not os.path.exists(first["path"])
        assert (tmp_path / ".trash" / os.path.basename(first["path"])).exists()
        assert session.episodes_recorded == 0


def test_sigkill_of_the_recorder_keeps_everything_up_to_the_last_flush(tmp_path):
    config = sim_config(seed=2)
    config.recording.output = tmp_path
    config.recording.flush_interval_s = 0.5
    session = Session(config)
    session.open()
    try:
        started = session.start_episode()
        time.sleep(3.0)
        os.kill(session.supervisor.recorder.process.pid, signal.SIGKILL)
        session.supervisor.recorder.process.wait()
        killed_at = time.time_ns()
    finally:
        session.supervisor.stop()
    path = started["path"]
    with pytest.raises(OSError):
        h5py.File(path, "r").close()  # an interrupted SWMR file needs swmr=True or recovery
    with open_episode(path) as ep:
        assert ep.interrupted
        count = ep.count("cam0/color")
        last = ep.timestamps("cam0/color")["t_host_ns"][-1]
        # All but the last flush interval (plus the writer's batch) survived.
        assert count >= 30 * 1.5
        assert killed_at - last < 1.5e9
    recovered = recover_episode(path)
    with h5py.File(recovered, "r") as f:
        assert f.attrs["status"] == "recovered"
        assert f["streams/cam0/color/rgb"].shape[0] == count
    assert validate_episode(recovered) == []
