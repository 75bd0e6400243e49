"""The supervisor keeps the session alive through a node crash and the episode says so."""

import os
import signal
import time

import pytest

from collector.config import AppConfig, NodeConfig, sim_config
from collector.wire.options import ConfigError, from_mapping
from collector.storage.reader import open_episode
from collector.recording.session import Session
from collector.recording.supervisor import StartupError, Supervisor
from tests.waiting import wait_for, wait_for_samples


def test_a_crashed_node_is_restarted_and_the_episode_marks_it(tmp_path):
    config = sim_config(seed=4)
    config.recording.output = tmp_path
    with Session(config) as session:
        session.start_episode()
        wait_for_samples(session.status, ("glove/hand",), count=100)
        glove = session.supervisor.nodes["glove"]
        os.kill(glove.process.pid, signal.SIGKILL)
        glove.process.wait()
        assert session.status()["processes"]["glove"] == "restarted"
        wait_for(lambda: session.status()["streams"]["glove/hand"]["restarts"], timeout_s=20)
        wait_for_samples(session.status, ("glove/hand",), count=50)  # the restarted glove records
        result = session.stop_episode()
    with open_episode(result["path"]) as ep:
        kinds = [(e["kind"], e["stream"]) for e in ep.events()]
        assert ("restart", "glove/hand") in kinds
        # The camera never stopped recording while the glove was down.
        t = ep.timestamps("cam0/color")["t_host_ns"]
        assert (t[1:] - t[:-1]).max() < 0.2e9


def test_a_node_that_cannot_start_is_reported_with_its_log(tmp_path):
    config = AppConfig(nodes=[NodeConfig(name="cam0", driver="sim_camera", options={"fsp": 30})])
    with pytest.raises(StartupError, match="fsp"):
        with Supervisor(config):
            pass


def _free_port_triple() -> int:
    import socket

    for base in range(42000, 43000, 3):
        try:
            socks = []
            for port in range(base, base + 3):
                s = socket.socket()
                s.bind(("127.0.0.1", port))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free ports")


def test_a_node_on_tcp_records_like_one_on_ipc(tmp_path):
    config = sim_config(seed=5, glove_rate_hz=500.0)
    config.nodes[1].endpoint = f"tcp://127.0.0.1:{_free_port_triple()}"
    config.recording.output = tmp_path
    with Session(config) as session:
        session.start_episode()
        wait_for_samples(session.status, ("glove/hand",), count=600)
        result = session.stop_episode()
    with open_episode(result["path"]) as ep:
        assert ep.count("glove/hand") >= 500
        assert ep.h5["streams/glove/hand"].attrs["gaps"] == 0


def test_a_live_node_that_publishes_nothing_is_restarted_and_the_episode_shows_it(tmp_path):
    """Liveness watchdog (issue 13): SIGSTOP leaves the glove process alive but silent."""
    config = sim_config(seed=6)
    config.recording.output = tmp_path
    glove_config = next(n for n in config.nodes if n.name == "glove")
    glove_config.liveness_timeout_s = 2.0
    with Session(config) as session:
        session.start_episode()
        glove = session.supervisor.nodes["glove"]
        wait_for(lambda: (session.status()["streams"]["glove/hand"]["received"] or 0) > 100)
        old_pid = glove.process.pid
        stopped_at = time.monotonic()
        t_stop_ns = time.time_ns()
        os.kill(old_pid, signal.SIGSTOP)
        try:
            wait_for(lambda: session.status() and glove.restarts == 1, 20,
                     message="the silent glove node was not restarted")
        finally:
            try:
                os.kill(old_pid, signal.SIGKILL)  # if the watchdog did not, for a clean exit
            except ProcessLookupError:
                pass
        restarted_after = time.monotonic() - stopped_at
        assert glove.process.pid != old_pid and glove.alive
        reason = session.supervisor.restart_reasons["glove"]
        assert reason.startswith("published no sample for") and "liveness_timeout_s = 2" in reason
        # Samples flow again from the new process; the camera never stopped.
        wait_for(lambda: session.status()["streams"]["glove/hand"]["restarts"] >= 1, 30,
                 message="no samples from the restarted glove node")
        assert session.supervisor.nodes["cam0"].restarts == 0
        result = session.stop_episode()
    assert 2.0 <= restarted_after < 2.0 + 6.0
    with open_episode(result["path"]) as ep:
        events = list(ep.events())
        kinds = [(e["kind"], e["stream"]) for e in events]
        assert ("restart", "glove/hand") in kinds
        (restarted,) = [e for e in events if e["kind"] == "restarted"]
        assert restarted["t_ns"] > t_stop_ns and restarted["detail"]["node"] == "glove"
        assert restarted["detail"]["message"] == f"restarted by the supervisor: {reason}"


def test_liveness_timeout_is_validated():
    with pytest.raises(ConfigError, match=r"liveness_timeout_s must be 0 \(off\) or 1\.\.3600 s"):
        NodeConfig(name="cam0", driver="sim_camera", liveness_timeout_s=0.2).validate()
    with pytest.raises(ConfigError, match="nodes\\[0\\].liveness_timeout_s: expected float"):
        from_mapping(AppConfig, {"nodes": [{"name": "cam0", "driver": "sim_camera",
                                            "liveness_timeout_s": "5"}]})
    NodeConfig(name="cam0", driver="sim_camera", liveness_timeout_s=0).validate()


def test_a_node_s_publish_table_reaches_its_node_and_is_checked_when_the_config_loads(tmp_path):
    config = from_mapping(AppConfig, {"nodes": [
        {"name": "glove", "driver": "sim_glove", "publish": {"batch_window_ms": 2}},
        {"name": "cam0", "driver": "sim_camera"}]})
    supervisor = Supervisor(config, runtime_dir=str(tmp_path))
    glove, cam = (supervisor._node_child(node) for node in config.nodes)
    assert glove.argv[glove.argv.index("--node-options") + 1] == '{"batch_window_ms": 2}'
    assert "--node-options" not in cam.argv  # the node runtime's defaults
    with pytest.raises(ConfigError, match=r"nodes\[0\]: publish: unknown option 'batch_ms'"):
        from_mapping(AppConfig, {"nodes": [{"name": "glove", "driver": "sim_glove",
                                            "publish": {"batch_ms": 2}}]})
    with pytest.raises(ConfigError, match="batch_window_ms must be 0"):
        from_mapping(AppConfig, {"nodes": [{"name": "glove", "driver": "sim_glove",
                                            "publish": {"batch_window_ms": 500}}]})


def test_a_paused_recorder_does_not_make_the_watchdog_restart_live_nodes(tmp_path):
    """After a SIGSTOP of the recorder, its first status shows every stream stale (it has not
    read its backlog yet): the watchdog must not take that for silent nodes."""
    config = sim_config(seed=7)
    config.recording.output = tmp_path
    for node in config.nodes:
        node.liveness_timeout_s = 1.0
    with Session(config) as session:
        wait_for(lambda: (session.status()["streams"]["glove/hand"]["received"] or 0) > 50)
        recorder = session.supervisor.recorder.process
        os.kill(recorder.pid, signal.SIGSTOP)
        try:
            time.sleep(2.5)  # the fault: a recorder paused for longer than the timeout
        finally:
            os.kill(recorder.pid, signal.SIGCONT)
        resumed = time.monotonic()
        wait_for(lambda: session.status() and time.monotonic() - resumed > 2.0, 30)
        assert {n: c.restarts for n, c in session.supervisor.nodes.items()} == \
            {n.name: 0 for n in config.nodes}
        # One stale reply (what a recorder answers a request that waited out its pause, before
        # it has read its backlog) is not enough: a fresh one at the next check clears it.
        stale = session._request("status")
        for s in stale["streams"].values():
            s["age_s"] = 5.0
        assert session.supervisor.check(stale)["glove"] == "running"
        wait_for(lambda: session.supervisor.check() and time.monotonic() - resumed > 3.0, 30)
        assert session.supervisor.nodes["glove"].restarts == 0
