"""Teleop retargeting and its safety rules (pure logic, no bus)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from devices.teleop.logic import ACTIVE, ESTOP, HOLD, IDLE, GloveInput, Teleop, TeleopConfig

MS = 1_000_000
DOWN = np.array([0.0, 1.0, 0.0, 0.0])  # w x y z: the hand pointing at the table


def hand(t_ms: float, pos=(0.0, 0.0, 0.2), quat=DOWN, grip=0.04, deadman=True, seq=0):
    return GloveInput(round(t_ms * MS), np.array(pos, float), np.array(quat, float), grip,
                      deadman, seq)


def run(teleop: Teleop, t_ms: float, **kw):
    teleop.update(hand(t_ms, **kw))
    return teleop.step(round(t_ms * MS) + MS)


def test_commands_flow_only_while_the_deadman_is_held():
    t = Teleop()
    assert t.step(0).mode == IDLE  # nothing seen yet
    r = run(t, 0, deadman=False)
    assert r.mode == IDLE and r.command is None and r.reason == "deadman released"
    r = run(t, 10)
    assert r.mode == ACTIVE and np.allclose(r.command.ee_pos, [0, 0, 0.2])
    r = run(t, 20, deadman=False)
    assert r.mode == IDLE and r.command is None


def test_stale_glove_data_holds_the_last_target():
    t = Teleop(TeleopConfig(rate_hz=100))
    run(t, 0)
    last = run(t, 10, pos=(0.0, 0.0, 0.201)).command
    ok = t.step(round(100 * MS))           # 90 ms after the last sample: still fresh
    assert ok.mode == ACTIVE
    held = t.step(round(111 * MS))         # 101 ms: stale
    assert held.mode == HOLD and held.reason == "glove data 101 ms old"
    assert np.array_equal(held.command.ee_pos, t.target.ee_pos)
    assert np.allclose(held.command.ee_pos, last.ee_pos, atol=1e-9)
    # Fresh data resumes control from the held target.
    assert run(t, 200, pos=(0.0, 0.0, 0.202)).mode == ACTIVE


def test_deadman_held_but_never_fresh_sends_nothing():
    t = Teleop()
    t.update(hand(0))
    assert t.step(500 * MS).mode == IDLE and t.step(500 * MS).command is None


def test_speed_and_workspace_clamps():
    c = TeleopConfig(rate_hz=100, max_speed=0.5, mapping="absolute",
                     workspace_min=[-0.5, -0.5, 0.05], workspace_max=[0.5, 0.5, 0.5])
    t = Teleop(c)
    run(t, 0, pos=(0.0, 0.0, 0.2))
    r = run(t, 10, pos=(0.3, 0.0, 0.2))    # a 30 cm jump in 10 ms
    assert np.allclose(r.command.ee_pos, [0.005, 0.0, 0.2]) and r.command.clamped[1] == 1
    r = run(t, 20, pos=(0.0, 0.0, -0.3))   # below the table: clamped to z = 0.05 (then speed)
    assert r.command.clamped[0] == 1 and r.command.ee_pos[2] >= 0.05 - 1e-12
    positions = [run(t, 30 + 10 * i, pos=(0.0, 0.0, -0.3)).command.ee_pos for i in range(100)]
    assert np.allclose(positions[-1], [0.0, 0.0, 0.05])
    steps = np.linalg.norm(np.diff(positions, axis=0), axis=1)
    assert steps.max() <= 0.005 + 1e-12


def test_angular_speed_and_gripper_clamps():
    c = TeleopConfig(rate_hz=100, max_angular_speed=1.0, max_gripper_speed=0.1,
                     mapping="absolute")
    t = Teleop(c)
    run(t, 0, grip=0.08)
    turned = (Rotation.from_euler("z", 90, degrees=True)
              * Rotation.from_quat(DOWN, scalar_first=True)).as_quat(scalar_first=True)
    r = run(t, 10, quat=turned, grip=0.0)
    step_angle = (Rotation.from_quat(r.command.ee_quat, scalar_first=True)
                  * Rotation.from_quat(DOWN, scalar_first=True).inv()).magnitude()
    assert step_angle == pytest.approx(0.01, rel=1e-6) and r.command.clamped[2] == 1
    assert r.command.gripper == pytest.approx(0.08 - 0.001) and r.command.clamped[3] == 1


def test_gripper_scaling():
    t = Teleop(TeleopConfig(gripper_max=0.1, glove_grip_max=0.05, max_gripper_speed=100))
    assert run(t, 0, grip=0.025).command.gripper == pytest.approx(0.05)
    assert run(t, 10, grip=0.2).command.gripper == pytest.approx(0.1)  # clipped at fully open


def test_estop_latches_until_reset_with_the_deadman_released():
    t = Teleop()
    run(t, 0)
    t.estop("button")
    r = run(t, 10)
    assert r.mode == ESTOP and r.command is None and r.reason == "button"
    assert not t.reset_estop()                     # deadman still held: refused
    assert run(t, 20).mode == ESTOP
    run(t, 30, deadman=False)
    assert t.reset_estop()
    assert run(t, 40, deadman=False).mode == IDLE
    assert run(t, 50).mode == ACTIVE               # a new press is needed


def test_relative_mapping_is_a_clutch():
    t = Teleop(TeleopConfig(home_pos=[0.1, 0.1, 0.3], scale=2.0, max_speed=100))
    r = run(t, 0, pos=(0.0, 0.0, 0.2))
    assert np.allclose(r.command.ee_pos, [0.1, 0.1, 0.3])    # starts at home, no jump
    r = run(t, 10, pos=(0.01, 0.0, 0.2))
    assert np.allclose(r.command.ee_pos, [0.12, 0.1, 0.3])   # scaled by 2
    run(t, 20, pos=(0.01, 0.0, 0.2), deadman=False)
    r = run(t, 30, pos=(-0.2, 0.0, 0.2))                      # hand moved while released
    assert np.allclose(r.command.ee_pos, [0.12, 0.1, 0.3])   # robot did not
    r = run(t, 40, pos=(-0.19, 0.0, 0.2))
    assert np.allclose(r.command.ee_pos, [0.14, 0.1, 0.3])


def test_absolute_mapping_follows_the_hand():
    c = TeleopConfig(mapping="absolute", hand_origin=[0, 0, 0.1], robot_origin=[0.2, 0, 0.3],
                     max_speed=100, max_angular_speed=100)
    t = Teleop(c)
    quat = Rotation.from_euler("x", 170, degrees=True).as_quat(scalar_first=True)
    r = run(t, 0, pos=(0.1, 0.05, 0.2), quat=quat)
    assert np.allclose(r.command.ee_pos, [0.3, 0.05, 0.4])
    assert abs(abs(np.dot(r.command.ee_quat, quat)) - 1) < 1e-9


@pytest.mark.parametrize("options, message", [
    ({"rate_hz": 0}, "rate_hz must be > 0, got 0"),
    ({"workspace_min": [0, 0]}, "workspace_min must have 3 values"),
    ({"workspace_min": [0, 0, 1], "workspace_max": [1, 1, 0.5]}, "workspace_min must be below"),
    ({"max_speed": -1}, "max_speed must be > 0, got -1"),
])
def test_config_errors_are_exact(options, message):
    with pytest.raises(ValueError, match=message):
        Teleop(TeleopConfig(**options))
