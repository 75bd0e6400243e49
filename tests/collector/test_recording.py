"""End to end: simulated nodes and the recorder as real processes over real sockets, real files."""

import os
import signal
import time

import h5py
import numpy as np
import pytest

from collector.config import sim_config
from collector.episode_reader import open_episode, recover_episode, validate_episode
from collector.session import Session, SessionError

SECONDS = 5.0


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """One >= 5 s episode from one simulated camera and a 200 Hz glove."""
    out = tmp_path_factory.mktemp("rec")
    config = sim_config(seed=7, cameras=1, glove_rate_hz=200.0)
    config.recording.output = out
    config.session.task = "pick-cube"
    with Session(config) as session:
        time.sleep(0.5)  # let rates settle so the health check below is meaningful
        started = session.start_episode(operator="tester")
        time.sleep(SECONDS)
        health = {s.name: s for s in session.health()}
        stopped = session.stop_episode()
        session.tag_episode("success", notes="clean run")
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


def test_health_reports_rates_near_nominal(recorded):
    _, _, health = recorded
    assert health["glove/hand"].level == "ok", health["glove/hand"].problem
    assert abs(health["cam0/color"].rate_hz - 30) < 4


def test_sync_index_pairs_each_frame_with_the_glove_sample_nearest_in_host_time(recorded):
    _, stopped, _ = recorded
    with open_episode(stopped["path"]) as ep:
        sync = ep.sync
        master_t = ep.timestamps("cam0/color")["t_host_ns"]
        glove_t = ep.timestamps("glove/hand")["t_host_ns"]
        index = sync["streams"]["glove/hand"]["index"]
        assert len(index) == len(master_t)
        valid = index >= 0
        assert valid.mean() > 0.95
        brute = np.abs(glove_t[None, :] - master_t[valid][:, None]).argmin(axis=1)
        assert np.array_equal(index[valid], brute)
        skew = sync["streams"]["glove/hand"]["skew_ns"][valid]
        assert np.abs(skew).max() <= 2.5e6 + 2e6  # half a 200 Hz period plus jitter


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
