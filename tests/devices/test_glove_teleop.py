"""Serial glove -> teleop node -> recorder, as real processes; the camera following the commands."""

from __future__ import annotations

import time

import numpy as np
import pytest

from collector.wire.bus import NodePublisher
from collector.config import AppConfig, NodeConfig
from collector.wire.options import ConfigError
from collector.storage.reader import open_episode, validate_episode
from collector.wire.protocol import Describe, Sample
from collector.recording.session import Session
from devices.teleop.logic import ESTOP
from devices.sim_camera.follow import wrist_euler_of
from devices.sim_camera.node import SimCamera
from devices.sim_world.motion import wrist_quat
from devices.teleop.estop import EstopSender
from devices.teleop.node import TeleopNode
from tests.waiting import wait_for


def teleop_config(tmp_path, epoch_ns: int) -> AppConfig:
    glove_ep, teleop_ep = f"ipc://{tmp_path}/glove", f"ipc://{tmp_path}/teleop"
    common = {"seed": 5, "epoch_ns": epoch_ns}
    return AppConfig(nodes=[
        NodeConfig("cam0", "sim_camera", options={**common, "width": 160, "height": 120,
                                                  "fps": 15.0, "follow_commands": teleop_ep}),
        NodeConfig("glove", "glove_sim_tty", endpoint=glove_ep,
                   options={**common, "rate_hz": 500.0, "unplug_at_s": 2.5, "unplug_s": 0.5}),
        NodeConfig("teleop", "teleop", endpoint=teleop_ep,
                   options={"glove_endpoint": glove_ep, "mapping": "absolute", "rate_hz": 50.0,
                            "estop_endpoints": [f"ipc://{tmp_path}/estop"]}),
    ])


def test_recording_with_serial_glove_and_teleop(tmp_path):
    # World time 2.5 s at the start: the scripted operator holds the deadman from ~1 s to ~7 s.
    config = teleop_config(tmp_path, time.time_ns() - 1_000_000_000)
    config.recording.output = tmp_path / "rec"
    estop = EstopSender(f"ipc://{tmp_path}/estop")
    try:
        with Session(config) as session:
            wait_for(lambda: all(session.status()["streams"].get(s, {}).get("received")
                                 for s in ("glove/hand", "cam0/color", "teleop/command")))
            session.start_episode()
            time.sleep(3.0)
            t_estop = time.time_ns()
            estop.send("estop", "test", seconds=0.3)
            time.sleep(0.7)
            path = session.wait_closed(session.stop_episode()["uuid"])["path"]
    finally:
        estop.close()
    assert validate_episode(path) == []
    with open_episode(path) as ep:
        assert {"glove/hand", "teleop/command", "teleop/state"} <= set(ep.streams)
        assert ep.streams["teleop/command"].kind == "command"
        commands = ep.timestamps("teleop/command")["t_host_ns"]
        assert len(commands) > 20
        # Nothing commanded after the e-stop (one step's grace), and the state says so.
        assert commands.max() < t_estop + 100_000_000
        state_t = ep.timestamps("teleop/state")["t_host_ns"]
        modes = ep.frames("teleop/state", "mode")
        assert set(modes[state_t > t_estop + 100_000_000]) == {ESTOP}
        # The command is the hand's pose (absolute mapping), limited by the speed clamps.
        pos = ep.frames("teleop/command", "ee_pos")
        seqs = ep.frames("teleop/command", "glove_seq")
        glove_seq = ep.timestamps("glove/hand")["seq"].astype(np.int64)
        glove_pos = ep.frames("glove/hand", "wrist_pos")
        lookup = {s: i for i, s in enumerate(glove_seq)}
        matched = [(p, glove_pos[lookup[s]]) for p, s in zip(pos, seqs) if s in lookup]
        assert len(matched) > 10
        errors = [np.linalg.norm(a - b) for a, b in matched]
        assert np.median(errors) < 0.01
        # The unplugged glove is marked: events and a seq gap, then it came back.
        kinds = [(e["kind"], e["stream"]) for e in ep.events()]
        assert any(k == "disconnected" for k, _ in kinds), kinds
        assert np.diff(glove_seq).max() > 100
        assert ep.h5["streams/glove/hand"].attrs["meta.glove"]
        # Each camera frame is paired with the nearest command (-1 where none flowed).
        index = ep.sync["streams"]["teleop/command"]["index"]
        assert len(index) == ep.count("cam0/color") and (index >= 0).sum() > 5


def test_camera_draws_the_gripper_where_the_commands_put_it(tmp_path):
    endpoint = f"ipc://{tmp_path}/teleop"
    publisher = NodePublisher(endpoint, Describe(node="teleop", streams=[]))
    camera = SimCamera("cam", {"seed": 2, "width": 160, "height": 120, "realtime": False,
                               "follow_commands": endpoint})

    def world_render(reading, follow: bool):
        state = camera.world.state_at_ns(camera.ticker.clock.true_time_ns(reading.t_device_ns))
        if follow:
            state = camera.follower.apply(state)
        return camera._renderer.render(state, reading.seq)[0]

    try:
        camera.connect()
        first = camera.read(1.0)[0]
        # Before any command the gripper is at the scripted hand.
        assert np.array_equal(first.fields["rgb"], world_render(first, follow=False))
        quat = np.array(wrist_quat(0.4, 0.0, 0.0), np.float32)
        command = Sample("teleop", "teleop/command", 0, 0, time.time_ns(),
                         {"ee_pos": np.array([0.3, 0.2, 0.25], np.float32), "ee_quat": quat,
                          "gripper": np.array([0.02], np.float32)})
        deadline = time.monotonic() + 5
        while camera.follower.command() is None and time.monotonic() < deadline:
            publisher.send(command)
            time.sleep(0.05)
        frame = camera.read(1.0)[0]
        assert np.array_equal(frame.fields["rgb"], world_render(frame, follow=True))
        assert not np.array_equal(frame.fields["rgb"], world_render(frame, follow=False))
        state = camera.follower.apply(camera.world.state_at(0.0))
        assert np.allclose(state.wrist_pos, [0.3, 0.2, 0.25], atol=1e-6)
        assert state.grip == pytest.approx(0.02) and np.allclose(state.wrist_quat, quat)
        assert np.allclose(state.wrist_euler, wrist_euler_of(quat), atol=1e-5)
    finally:
        camera.close()
        publisher.close()


def test_teleop_node_config_errors_are_exact():
    with pytest.raises(ConfigError, match="teleop.options: glove_endpoint must name"):
        TeleopNode("teleop", {})
    with pytest.raises(ConfigError, match="endpoint 'glove' must start with ipc:// or tcp://"):
        TeleopNode("teleop", {"glove_endpoint": "glove"})
    with pytest.raises(ConfigError, match="follow_commands: endpoint 'x' must start with"):
        SimCamera("cam", {"follow_commands": "x"})
