"""A scripted operator: the world's pick-and-place motion cut into stretches of work, idle
stretches, held gestures and button presses, as a wearer of a glove would do them.

The script is a list of :class:`OperatorStep` played in order and then over again:

* ``work`` for ``s`` seconds: the world's script moves on (the hand reaches, grasps, carries...).
  A stretch begins where the hand starts moving (a hover in the world's script is skipped) and
  ends at the end of the motion in progress, where the hand is at rest again and holds nothing
  (a cube in the hand is put down first), so the pose, its
  velocity and acceleration stay continuous and the IMU sees no step;
* ``idle`` for ``s`` seconds: the hand holds still where the last work left it;
* ``fist`` held ``s`` seconds: the hand, still, closes fully over :data:`FIST_RAMP_S`, stays
  closed, and opens again (the hands-free gesture of :mod:`collector.recording.triggers`);
* ``press``: the record button is pressed for :data:`~devices.sim_world.world.RECORD_PRESS_S`
  while the next step goes on (a late press during work, say).

Everything is a pure function of time (``state_at``), and the ground truth is there for tests:
:meth:`ScriptedOperator.work_spans`, :meth:`fist_spans` and :meth:`presses` in script seconds
(``(host_ns - epoch_ns) / 1e9``, as for the world).
"""

from __future__ import annotations

import bisect
import math
import time
import typing
from dataclasses import dataclass, replace

import numpy as np

from collector.wire.options import ConfigError
from devices.sim_world.world import CYCLE_S, GRAVITY, MAX_APERTURE, RECORD_PRESS_S, World, WorldState
# The world's hand model: flexion added per unit of closure.
from devices.sim_world.world import _JOINT_SPAN

#: Seconds the hand takes to close into a fist, and to open again.
FIST_RAMP_S = 0.25
_QUIET_PHASES = ("rest", "idle")
#: Phases that end with a cube in the hand: a work stretch goes on past them.
_HOLDING_PHASES = ("close", "lift", "carry", "lower")


@dataclass
class OperatorStep:
    """One step of the script (``do``: ``work``, ``idle``, ``fist`` or ``press``; ``s``: seconds)."""

    do: typing.Literal["work", "idle", "fist", "press"]
    s: float = 0.0

    def validate(self) -> None:
        if self.do == "press":
            if self.s:
                raise ConfigError("a press step takes no time: leave s out")
        elif not 0 < self.s <= 3600:
            raise ConfigError(f"{self.do} step needs s in (0, 3600] seconds, got {self.s}")


@dataclass(frozen=True)
class _Piece:
    kind: str       # work, idle, fist
    t0: float       # script seconds
    t1: float
    world_t0: float  # world time at t0 (work: runs on; idle and fist: held)


def _smooth_step(s: float) -> float:
    s = min(1.0, max(0.0, s))
    return s * s * s * (10.0 - 15.0 * s + 6.0 * s * s)


class ScriptedOperator:
    """The world of ``world`` acted by ``steps``; see the module docstring."""

    def __init__(self, world: World, steps: list[OperatorStep]) -> None:
        if not any(step.do != "press" for step in steps):
            raise ConfigError("an operator script needs at least one work, idle or fist step")
        for step in steps:
            step.validate()
        self.world = world
        self.steps = list(steps)
        self._pieces: list[_Piece] = []
        self._starts: list[float] = []
        self._presses: list[float] = []
        self._t = 0.0
        self._world_t = self._next_motion(0.0)

    # ---- the timeline, built as far as asked -------------------------------------------------
    def _segment_at(self, world_t: float) -> tuple[str, float, float]:
        """``(phase, start, end)`` in world time of the world's segment holding ``world_t``."""
        k = math.floor(world_t / CYCLE_S)
        plan = self.world._plan(k)
        i = max(0, bisect.bisect_right(plan.starts, world_t - k * CYCLE_S) - 1)
        seg = plan.segments[i]
        return seg.phase, k * CYCLE_S + seg.t0, k * CYCLE_S + seg.t0 + seg.duration

    def _next_motion(self, world_t: float) -> float:
        """The first instant at or after ``world_t`` where the hand starts a real motion."""
        for _ in range(8):
            phase, start, end = self._segment_at(world_t)
            if phase not in _QUIET_PHASES:
                return world_t if world_t > start + 1e-9 else start
            world_t = end
        return world_t

    def _extend(self, until_s: float) -> None:
        while self._t <= until_s:
            for step in self.steps:
                if step.do == "press":
                    self._presses.append(self._t)
                    continue
                t0 = self._t
                if step.do == "work":
                    world_t0 = self._next_motion(self._world_t)
                    phase, _, end = self._segment_at(world_t0)
                    world_t1 = world_t0 + step.s
                    # Finish the motion in progress, put down what the hand holds, and end
                    # on a motion (a hover on the way is part of the work).
                    while end < world_t1 - 1e-9 or phase in _HOLDING_PHASES + _QUIET_PHASES:
                        phase, _, end = self._segment_at(end + 1e-9)
                    self._pieces.append(_Piece("work", t0, t0 + end - world_t0, world_t0))
                    self._world_t = end
                else:
                    length = step.s + (2 * FIST_RAMP_S if step.do == "fist" else 0.0)
                    self._pieces.append(_Piece(step.do, t0, t0 + length, self._world_t))
                self._t = self._pieces[-1].t1
                self._starts.append(t0)

    def _piece(self, t_s: float) -> _Piece:
        self._extend(max(t_s, 0.0))  # before the script begins: its first step
        return self._pieces[max(0, bisect.bisect_right(self._starts, t_s) - 1)]

    # ---- ground truth ------------------------------------------------------------------------
    def work_spans(self, until_s: float) -> list[tuple[float, float]]:
        """``(start, end)`` of each work stretch that begins before ``until_s`` (script seconds)."""
        self._extend(until_s)
        return [(p.t0, p.t1) for p in self._pieces if p.kind == "work" and p.t0 < until_s]

    def fist_spans(self, until_s: float) -> list[tuple[float, float]]:
        """``(closed, opening)``: when each fist is fully closed and when it starts to open."""
        self._extend(until_s)
        return [(p.t0 + FIST_RAMP_S, p.t1 - FIST_RAMP_S) for p in self._pieces
                if p.kind == "fist" and p.t0 < until_s]

    def presses(self, until_s: float) -> list[float]:
        """When the record button goes down."""
        self._extend(until_s)
        return [t for t in self._presses if t < until_s]

    # ---- the state ---------------------------------------------------------------------------
    def state_at(self, t_s: float) -> WorldState:
        """What the glove (and a camera) observe at script time ``t_s``."""
        piece = self._piece(t_s)
        record = any(p <= t_s < p + RECORD_PRESS_S for p in self._presses[-64:])
        if piece.kind == "work":
            state = self.world.state_at(piece.world_t0 + (t_s - piece.t0))
            return replace(state, t_s=t_s, buttons=np.array((record, 1), np.uint8))
        state = self.world.state_at(piece.world_t0)
        rotation = state.wrist_rotation()
        still = replace(state, t_s=t_s, wrist_vel=np.zeros(3), imu_gyro=np.zeros(3),
                        imu_accel=rotation.T @ np.array((0.0, 0.0, GRAVITY)),
                        buttons=np.array((record, 0), np.uint8))
        if piece.kind == "fist":
            closing = _smooth_step((t_s - piece.t0) / FIST_RAMP_S)
            opening = _smooth_step((piece.t1 - t_s) / FIST_RAMP_S)
            aperture = still.grip * (1.0 - min(closing, opening))
            still.finger_joints = still.finger_joints + _JOINT_SPAN * (still.grip - aperture) / MAX_APERTURE
            still.grip = aperture
        return still


#: A script plays from the world's epoch when that is less than this long ago; otherwise (no
#: epoch: 1970) from the last mark of the clock's :data:`ANCHOR_S` grid, so that the nodes of
#: one rig, started a moment apart in separate processes, act it in step.
MAX_FROM_EPOCH_S = 86400.0
ANCHOR_S = 600


def check_script(steps: list[OperatorStep], scene: str) -> None:
    """Raise ``ConfigError`` saying what is wrong with a ``script`` option."""
    if steps and scene != "cubes":
        raise ConfigError("script drives the cubes scene's operator; leave scene out")
    if steps:
        ScriptedOperator(World(0), steps)


def state_source(world: World, steps: list[OperatorStep]) -> typing.Callable[[int], WorldState]:
    """``state(host_ns)``: the world as the scripted operator of ``steps`` acts it, or (no
    steps) as the world's own operator does. The script plays from the world's epoch, or from
    the last :data:`ANCHOR_S` mark when the epoch is older than :data:`MAX_FROM_EPOCH_S`."""
    if not steps:
        return world.state_at_ns
    script = ScriptedOperator(world, steps)
    now_s = world.time_s(time.time_ns())
    origin_s = 0.0 if now_s < MAX_FROM_EPOCH_S else float(now_s // ANCHOR_S * ANCHOR_S)
    return lambda host_ns: script.state_at(world.time_s(host_ns) - origin_s)
