"""The supervisor keeps the session alive through a node crash and the episode says so."""

import os
import signal
import time

import pytest

from collector.config import AppConfig, NodeConfig, sim_config
from collector.episode_reader import open_episode
from collector.session import Session
from collector.supervisor import StartupError, Supervisor


def test_a_crashed_node_is_restarted_and_the_episode_marks_it(tmp_path):
    config = sim_config(seed=4)
    config.recording.output = tmp_path
    with Session(config) as session:
        session.start_episode()
        time.sleep(1.5)
        glove = session.supervisor.nodes["glove"]
        os.kill(glove.process.pid, signal.SIGKILL)
        glove.process.wait()
        assert session.status()["processes"]["glove"] == "restarted"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if session.status()["streams"]["glove/hand"]["restarts"]:
                break
        time.sleep(0.5)
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
        time.sleep(1.5)
        result = session.stop_episode()
    with open_episode(result["path"]) as ep:
        assert ep.count("glove/hand") >= 500
        assert ep.h5["streams/glove/hand"].attrs["gaps"] == 0
