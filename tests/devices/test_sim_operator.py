"""The scripted operator (devices/sim_world/operator.py): a pure function of time whose hand
moves without jumps, holds still when idle (the IMU reads gravity only), closes into a fist with
nothing in it, presses the record button when the script says, and says where all of it is."""

from __future__ import annotations

import time

import numpy as np

from devices.sim_world.operator import FIST_RAMP_S, OperatorStep, ScriptedOperator
from devices.sim_world.world import GRAVITY, RECORD_PRESS_S, World

STEPS = [("idle", 1.0), ("work", 3.0), ("press",), ("fist", 1.0), ("idle", 1.0), ("work", 2.0),
         ("idle", 1.0)]


def operator() -> ScriptedOperator:
    return ScriptedOperator(World(seed=2), [OperatorStep(*step) for step in STEPS])


def test_the_hand_moves_without_jumps_and_the_script_is_a_pure_function_of_time():
    script = operator()
    times = np.arange(0.0, 20.0, 0.004)
    positions = np.array([script.state_at(t).wrist_pos for t in times])
    # 4 ms apart, never more than the ~1.5 m/s a reach peaks at: no teleport between steps.
    assert np.abs(np.diff(positions, axis=0)).max() < 0.006
    again = operator()
    for t in (24.0, 3.3, 0.5, 12.7):  # in any order: nothing depends on what was asked before
        assert np.array_equal(again.state_at(t).wrist_pos, script.state_at(t).wrist_pos)


def test_idle_holds_still_and_work_moves():
    script = operator()
    (start, end), *_ = script.work_spans(30)
    assert start == 1.0 and end >= start + 3.0
    for t in (0.2, 0.9):
        idle = script.state_at(t)
        assert not idle.wrist_vel.any() and not idle.imu_gyro.any()
        assert abs(np.linalg.norm(idle.imu_accel) - GRAVITY) < 1e-9
        assert idle.buttons[1] == 0  # the deadman is off while idle
    speeds = [np.linalg.norm(script.state_at(t).wrist_vel) for t in np.arange(start, end, 0.05)]
    assert max(speeds) > 0.2 and script.state_at(start + 0.5).buttons[1] == 1


def test_a_fist_closes_fully_with_nothing_held_and_a_press_lasts_its_moment():
    script = operator()
    (closed, opening), *_ = script.fist_spans(30)
    (press, *_) = script.presses(30)
    assert closed == press + FIST_RAMP_S  # the press comes as the fist begins
    for t in np.linspace(closed, opening, 5):
        fist = script.state_at(t)
        assert fist.grip == 0.0 and not fist.pressure.any()
    assert script.state_at(closed - FIST_RAMP_S - 0.01).grip > 0.03  # open before it
    assert script.state_at(opening + FIST_RAMP_S + 0.01).grip > 0.03  # and after
    assert script.state_at(press + 0.001).buttons[0] == 1
    assert script.state_at(press + RECORD_PRESS_S + 0.001).buttons[0] == 0
    assert script.state_at(press - 0.001).buttons[0] == 0


def test_a_camera_and_a_glove_of_one_script_act_the_same_hand():
    from devices.sim_camera.node import SimCamera
    from devices.sim_glove.node import SimGlove

    script = [{"do": "idle", "s": 1.0}, {"do": "work", "s": 2.0}, {"do": "fist", "s": 0.5}]
    for epoch in (1_800_000_000 * 10**9, 0):  # an epoch given, or none (anchored alike)
        glove = SimGlove("glove", {"script": script, "epoch_ns": epoch})
        camera = SimCamera("cam0", {"script": script, "epoch_ns": epoch, "width": 64, "height": 48})
        base = epoch or time.time_ns()
        for t_ns in range(base, base + 6 * 10**9, 500_000_000):
            assert np.array_equal(glove.state_at_ns(t_ns).wrist_pos, camera.state_at_ns(t_ns).wrist_pos)
            assert glove.state_at_ns(t_ns).grip == camera.state_at_ns(t_ns).grip


def test_before_the_script_begins_the_hand_holds_its_first_pose():
    script = ScriptedOperator(World(seed=2), [OperatorStep("idle", 1.0), OperatorStep("work", 1.0)])
    assert np.array_equal(script.state_at(-3600.0).wrist_pos, script.state_at(0.5).wrist_pos)
