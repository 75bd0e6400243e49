"""The scripted tabletop world: a seeded operator moving cubes, as a pure function of time.

Time is cut into cycles of :data:`CYCLE_S` seconds. In each cycle the operator rests, reaches to
one cube, closes the grip, lifts it, carries it to a new place, lowers it, opens and retreats.
Cycles are grouped in *rounds* of one cycle per cube: round ``r`` moves every cube once, in a
seeded order, from layout ``r`` to layout ``r + 1``. A layout is a pure function of
``(seed, r)`` that puts the cubes on a 4 x 3 grid of slots of one checkerboard colour (even rounds
one colour, odd rounds the other), so a target slot is never occupied by a cube that has not
moved yet. Hence the table at the start of any cycle ``k`` is known without replaying history:
cubes already moved this round sit at layout ``r + 1``, the others at layout ``r``. A cube moves
only while it is held (from the start of the lift to the end of the lowering) and rigidly with
the wrist, so it lands exactly where the next layout says.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, replace

import numpy as np

from devices.sim_world import motion
from devices.sim_world.motion import Segment
from devices.sim_world.rng import KeyedRandom
from devices.sim_world.taps import TapScript

CYCLE_S = 8.5
SCENES = ("cubes", "taps")
GRAVITY = 9.80665
#: Table top: z = 0, x in [-TABLE_HALF_X, TABLE_HALF_X], y likewise (table frame, metres).
TABLE_HALF_X = 0.6
TABLE_HALF_Y = 0.4
MAX_APERTURE = 0.08
#: Gripper geometry (wrist frame, z = approach axis): fingers hang FINGER_LENGTH below the
#: wrist origin; a held cube's centre is GRASP_DEPTH below it.
FINGER_LENGTH = 0.07
FINGER_THICKNESS = 0.012
FINGER_WIDTH = 0.024
GRASP_DEPTH = 0.055
#: How far the hand closes past contact (a firm grip); sets the fingertip pressure.
SQUEEZE = 0.01
PRE_GRASP_HEIGHT = 0.10
CARRY_HEIGHT = 0.13
SLOT_X = (-0.27, -0.09, 0.09, 0.27)
SLOT_Y = (-0.13, 0.02, 0.17)
SLOT_JITTER = 0.015
RECORD_PRESS_S = 0.2

JOINT_NAMES = (
    "thumb_cmc", "thumb_mcp", "thumb_ip", "index_mcp", "index_pip", "index_dip",
    "middle_mcp", "middle_pip", "middle_dip", "ring_mcp", "ring_pip", "ring_dip",
    "pinky_mcp", "pinky_pip", "pinky_dip",
    "thumb_cmc_abd", "index_abd", "middle_abd", "ring_abd", "pinky_abd",
)
FINGER_NAMES = ("thumb", "index", "middle", "ring", "pinky")
_JOINT_REST = np.array([0.25, 0.15, 0.10, 0.15, 0.20, 0.10, 0.18, 0.22, 0.12, 0.25, 0.30, 0.15,
                        0.30, 0.30, 0.15, 0.60, 0.12, 0.02, -0.08, -0.18])
#: Added flexion per unit of closure (0 = fully open, 1 = fingertips touching).
_JOINT_SPAN = np.array([0.6, 0.7, 0.8, 1.3, 1.5, 0.9, 1.35, 1.55, 0.95, 1.2, 1.4, 0.9,
                        1.1, 1.3, 0.8, -0.3, -0.1, -0.02, 0.06, 0.12])
#: Fingertip force (N) at the full SQUEEZE; thumb, index and middle do the pinching.
_PRESSURE_GAIN = np.array([5.0, 4.0, 3.0, 1.2, 0.6])

PHASES = ("rest", "reach", "descend", "close", "lift", "carry", "lower", "open", "retreat", "idle")
_DURATIONS = {"rest": (0.3, 0.7), "reach": (1.1, 1.6), "descend": (0.5, 0.7),
              "close": (0.35, 0.5), "lift": (0.45, 0.65), "carry": (1.2, 1.8),
              "lower": (0.5, 0.7), "open": (0.3, 0.45), "retreat": (0.9, 1.3)}

# Keys that separate the independent random streams.
_LAYOUT, _ORDER, _CYCLE, _HOME, _NOISE = 1, 2, 3, 4, 5


@dataclass(frozen=True)
class Cube:
    """A static object description: colour is RGB 0..255, ``size`` the edge length in metres."""

    name: str
    color: tuple[int, int, int]
    size: float


CUBES = (Cube("red_cube", (205, 45, 40), 0.05), Cube("green_cube", (45, 170, 70), 0.045),
         Cube("blue_cube", (40, 85, 215), 0.055))


@dataclass(slots=True)
class WorldState:
    """Everything observable at one instant; arrays are float64 unless noted.

    Frames: positions in the table frame (origin at the table-top centre, z up, metres). The
    wrist frame has z along the approach axis (pointing down at rest) and y along the finger
    opening; ``imu_*`` are expressed in the wrist frame.
    """

    t_s: float
    cycle: int
    phase: str
    wrist_pos: np.ndarray        # (3,) m
    wrist_quat: np.ndarray       # (4,) w, x, y, z; wrist frame -> table frame
    wrist_euler: tuple[float, float, float]  # yaw, pitch, roll (rad) of Rz Ry Rx before R0
    wrist_vel: np.ndarray        # (3,) m/s, table frame
    grip: float                  # finger aperture, m, 0..MAX_APERTURE
    finger_joints: np.ndarray    # (20,) rad, JOINT_NAMES order
    pressure: np.ndarray         # (5,) N, FINGER_NAMES order
    buttons: np.ndarray          # (2,) uint8: record, deadman
    imu_gyro: np.ndarray         # (3,) rad/s
    imu_accel: np.ndarray        # (3,) m/s^2, specific force (reads +g upwards at rest)
    object_pos: np.ndarray       # (n_objects, 3) m, cube centres
    object_quat: np.ndarray      # (n_objects, 4) w, x, y, z
    held: int                    # index of the cube in the grip (fingers pressing it), or -1

    def wrist_rotation(self) -> np.ndarray:
        """Rotation matrix wrist frame -> table frame, (3, 3)."""
        return motion.wrist_matrix(*self.wrist_euler)


@dataclass(slots=True)
class _CyclePlan:
    segments: list[Segment]
    starts: list[float]
    moving: int
    size: float
    start_pos: np.ndarray
    start_quat: np.ndarray
    end_pos: np.ndarray
    end_quat: np.ndarray
    t_reach: float
    t_retreat_end: float


def _yaw_quat_rows(yaws) -> np.ndarray:
    return np.array([motion.euler_quat(y, 0.0, 0.0) for y in yaws])


class World:
    """The seeded scripted world. ``state_at(t_s)`` is a pure function of ``(seed, t_s)``.

    ``epoch_ns`` only anchors world time to host time: ``t_s = (host_time_ns - epoch_ns) / 1e9``.
    Processes that share ``seed`` and ``epoch_ns`` see the same world at the same host time.
    """

    def __init__(self, seed: int = 0, epoch_ns: int = 0, num_objects: int = 3,
                 scene: str = "cubes") -> None:
        if not 1 <= num_objects <= len(CUBES):
            raise ValueError(f"num_objects must be 1..{len(CUBES)}, got {num_objects}")
        if scene not in SCENES:
            raise ValueError(f"scene must be one of {', '.join(SCENES)}, got {scene!r}")
        #: "cubes": the pick-and-place script; "taps": the latency calibration scene
        #: (devices/sim_world/taps.py), the hand tapping the table beside the cubes at rest.
        self.scene = scene
        self.taps = TapScript(seed) if scene == "taps" else None
        self.seed = int(seed)
        self.epoch_ns = int(epoch_ns)
        self.objects = CUBES[:num_objects]
        self._plans: dict[int, _CyclePlan] = {}
        rng = KeyedRandom(self.seed, _NOISE)
        n = len(JOINT_NAMES)
        # Tremor-like joint noise: two slow sines per joint with seeded frequency and phase.
        self._joint_freq = np.array([[rng.uniform(0.3, 1.7) * 2 * math.pi for _ in range(2)]
                                     for _ in range(n)])
        self._joint_phase = np.array([[rng.uniform(0, 2 * math.pi) for _ in range(2)]
                                      for _ in range(n)])
        self._joint_amp = np.array([[rng.uniform(0.01, 0.03) for _ in range(2)] for _ in range(n)])
        self._press_freq = np.array([rng.uniform(0.5, 2.0) * 2 * math.pi for _ in range(5)])
        self._press_phase = np.array([rng.uniform(0, 2 * math.pi) for _ in range(5)])

    # -- time -----------------------------------------------------------------------------------

    def time_s(self, host_time_ns: int) -> float:
        """World time of a host timestamp."""
        return (host_time_ns - self.epoch_ns) / 1e9

    def state_at_ns(self, host_time_ns: int) -> WorldState:
        return self.state_at(self.time_s(host_time_ns))

    # -- the script -----------------------------------------------------------------------------

    def layout(self, round_index: int) -> tuple[np.ndarray, np.ndarray]:
        """Resting cube positions (n, 3) and yaws (n,) at the start of round ``round_index``."""
        rng = KeyedRandom(self.seed, _LAYOUT, round_index)
        parity = round_index % 2
        slots = [(ix, iy) for ix in range(len(SLOT_X)) for iy in range(len(SLOT_Y))
                 if (ix + iy) % 2 == parity]
        order = rng.permutation(len(slots))
        pos = np.empty((len(self.objects), 3))
        yaw = np.empty(len(self.objects))
        for j, cube in enumerate(self.objects):
            ix, iy = slots[order[j]]
            pos[j] = (SLOT_X[ix] + rng.signed(SLOT_JITTER), SLOT_Y[iy] + rng.signed(SLOT_JITTER),
                      cube.size / 2)
            # Cubes look the same every 90 deg, so a yaw in [-45, 45) deg says it all and the
            # hand never needs to twist further than that to grasp or place one.
            yaw[j] = rng.uniform(-math.pi / 4, math.pi / 4)
        return pos, yaw

    def round_order(self, round_index: int) -> list[int]:
        """The order in which round ``round_index`` moves the cubes."""
        return KeyedRandom(self.seed, _ORDER, round_index).permutation(len(self.objects))

    def _home(self, k: int) -> list[float]:
        rng = KeyedRandom(self.seed, _HOME, k)
        return [rng.uniform(-0.08, 0.08), rng.uniform(-0.12, -0.04), rng.uniform(0.26, 0.32),
                rng.signed(0.3), rng.signed(0.08), rng.signed(0.08), rng.uniform(0.055, 0.075)]

    def _plan(self, k: int) -> _CyclePlan:
        plan = self._plans.get(k)
        if plan is None:
            if len(self._plans) > 8:
                self._plans.pop(next(iter(self._plans)))
            plan = self._plans[k] = self._make_plan(k)
        return plan

    def _make_plan(self, k: int) -> _CyclePlan:
        n = len(self.objects)
        r, i = divmod(k, n)
        order = self.round_order(r)
        moving = order[i]
        pos_a, yaw_a = self.layout(r)
        pos_b, yaw_b = self.layout(r + 1)
        done = set(order[:i])
        start_pos = np.array([pos_b[j] if j in done else pos_a[j] for j in range(n)])
        start_yaw = [yaw_b[j] if j in done else yaw_a[j] for j in range(n)]
        end_pos, end_yaw = start_pos.copy(), list(start_yaw)
        end_pos[moving], end_yaw[moving] = pos_b[moving], yaw_b[moving]

        rng = KeyedRandom(self.seed, _CYCLE, k)
        size = self.objects[moving].size
        closed = size - SQUEEZE
        home, home_next = self._home(k), self._home(k + 1)
        src, dst = start_pos[moving], end_pos[moving]
        grasp_z = size / 2 + GRASP_DEPTH
        grasp = [src[0], src[1], grasp_z, start_yaw[moving], 0.0, 0.0, MAX_APERTURE]
        pre = grasp[:2] + [grasp_z + PRE_GRASP_HEIGHT] + grasp[3:]
        closed_at_src = grasp[:6] + [closed]
        lifted = grasp[:2] + [grasp_z + CARRY_HEIGHT] + grasp[3:6] + [closed]
        place = [dst[0], dst[1], grasp_z, end_yaw[moving], 0.0, 0.0, closed]
        above_dst = place[:2] + [grasp_z + CARRY_HEIGHT] + place[3:]
        opened = place[:6] + [MAX_APERTURE]

        def free_motion(scale: float, lift: float) -> dict:
            # A curved, slightly wobbly path: this is what makes the operator look human.
            bump = [rng.signed(0.04 * scale), rng.signed(0.04 * scale),
                    lift + rng.signed(0.01 * scale), rng.signed(0.15 * scale),
                    rng.signed(0.08 * scale), rng.signed(0.08 * scale), 0.0]
            wobble = [rng.uniform(0.002, 0.006) * scale, rng.uniform(0.002, 0.006) * scale,
                      rng.uniform(0.001, 0.004) * scale, rng.uniform(0.01, 0.04) * scale,
                      rng.uniform(0.01, 0.03) * scale, rng.uniform(0.01, 0.03) * scale, 0.0]
            phase = [rng.uniform(0, 2 * math.pi) for _ in range(7)]
            return {"bump": bump, "wobble": wobble, "wobble_phase": phase}

        def settle() -> dict:
            return {"bump": [rng.signed(0.003), rng.signed(0.003), 0, rng.signed(0.02), 0, 0, 0]}

        def hover() -> dict:
            extra = free_motion(0.25, 0.0)
            extra["bump"][6] = rng.signed(0.004)  # fidgeting fingers
            return extra

        legs = [("rest", home, home, hover()),
                ("reach", home, pre, free_motion(1.0, rng.uniform(0.02, 0.06))),
                ("descend", pre, grasp, settle()),
                ("close", grasp, closed_at_src, {}),
                ("lift", closed_at_src, lifted, settle()),
                ("carry", lifted, above_dst, free_motion(1.0, rng.uniform(0.01, 0.05))),
                ("lower", above_dst, place, settle()),
                ("open", place, opened, {}),
                ("retreat", opened, home_next, free_motion(1.0, rng.uniform(0.0, 0.04)))]
        durations = [rng.uniform(*_DURATIONS[name]) for name, *_ in legs]
        segments, t = [], 0.0
        for (name, a, b, extra), duration in zip(legs, durations):
            omega = 2 * math.pi * rng.uniform(1.0, 2.5) * duration
            segments.append(Segment.make(name, t, duration, a, b, omega=omega, **extra))
            t += duration
        segments.append(Segment.make("idle", t, CYCLE_S - t, home_next, home_next,
                                     omega=2 * math.pi * 1.3 * (CYCLE_S - t), **hover()))
        return _CyclePlan(
            segments=segments, starts=[s.t0 for s in segments], moving=moving, size=size,
            start_pos=start_pos, start_quat=_yaw_quat_rows(start_yaw), end_pos=end_pos,
            end_quat=_yaw_quat_rows(end_yaw), t_reach=segments[1].t0,
            t_retreat_end=segments[8].t0 + segments[8].duration)

    # -- evaluation -----------------------------------------------------------------------------

    def state_at(self, t_s: float) -> WorldState:
        """The world at ``t_s`` seconds after the epoch (any real number; O(1), ~30 us)."""
        if self.taps is not None:
            rest = replace(self._script_state(0.0), t_s=t_s, cycle=0)
            return self.taps.apply(rest, FINGER_LENGTH, GRAVITY)
        return self._script_state(t_s)

    def _script_state(self, t_s: float) -> WorldState:
        k = math.floor(t_s / CYCLE_S)
        tau = t_s - k * CYCLE_S
        plan = self._plan(k)
        index = bisect_right(plan.starts, tau) - 1
        seg = plan.segments[index if index >= 0 else 0]
        phase = seg.phase
        (x, y, z, yaw, pitch, roll, closure), vel, acc = seg.evaluate(tau).tolist()

        m = motion.euler_matrix(yaw, pitch, roll)
        gyro = motion.body_rates(yaw, pitch, roll, vel[3], vel[4], vel[5])
        accel = motion.to_wrist_frame(m, (acc[0], acc[1], acc[2] + GRAVITY))

        # The cube between the fingers stops them: the aperture cannot go below its width, and
        # closing further (the squeeze) becomes fingertip force instead.
        between = phase in ("close", "lift", "carry", "lower", "open")
        size = plan.size
        aperture = max(closure, size) if between else closure
        squeeze = (size - closure) / SQUEEZE if between and closure < size else 0.0

        flex = (MAX_APERTURE - aperture) / MAX_APERTURE
        noise = (self._joint_amp * np.sin(self._joint_freq * t_s + self._joint_phase)).sum(axis=1)
        joints = _JOINT_REST + _JOINT_SPAN * flex + noise
        if squeeze > 0.0:
            pressure = _PRESSURE_GAIN * (squeeze * (1.0 + 0.08 * np.sin(
                self._press_freq * t_s + self._press_phase)))
        else:
            pressure = np.zeros(5)

        deadman = plan.t_reach <= tau < plan.t_retreat_end
        record = (plan.t_reach <= tau < plan.t_reach + RECORD_PRESS_S
                  or plan.t_retreat_end - RECORD_PRESS_S <= tau < plan.t_retreat_end)

        if squeeze > 0.0 and phase in ("lift", "carry", "lower"):
            obj_pos = plan.start_pos.copy()
            obj_quat = plan.start_quat.copy()
            # Rigidly attached: the cube centre sits GRASP_DEPTH along the approach axis.
            obj_pos[plan.moving] = (x - GRASP_DEPTH * m[0][2], y - GRASP_DEPTH * m[1][2],
                                    z - GRASP_DEPTH * m[2][2])
            obj_quat[plan.moving] = motion.euler_quat(yaw, pitch, roll)
        elif index < 7:  # not yet put down
            obj_pos, obj_quat = plan.start_pos.copy(), plan.start_quat.copy()
        else:
            obj_pos, obj_quat = plan.end_pos.copy(), plan.end_quat.copy()

        return WorldState(
            t_s=t_s, cycle=k, phase=phase, wrist_pos=np.array((x, y, z)),
            wrist_quat=np.array(motion.wrist_quat(yaw, pitch, roll)),
            wrist_euler=(yaw, pitch, roll), wrist_vel=np.array(vel[:3]), grip=aperture,
            finger_joints=joints, pressure=pressure,
            buttons=np.array((record, deadman), dtype=np.uint8),
            imu_gyro=np.array(gyro), imu_accel=np.array(accel), object_pos=obj_pos,
            object_quat=obj_quat, held=plan.moving if squeeze > 0.0 else -1)
