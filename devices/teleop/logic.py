"""Glove teleoperation: glove state in, end-effector pose and gripper commands out, with safety.

Pure logic (no bus, no serial, no clock of its own): feed glove samples with :meth:`Teleop.update`,
call :meth:`Teleop.step` at the command rate with the current time. ``devices/teleop`` runs it as
a node that publishes the commands on the bus (format: ``docs/wire-protocol.md``, "Teleoperation
commands").

Retargeting (positions in metres in the table frame, quaternions ``w, x, y, z``):

* ``mapping = "relative"`` (default, a clutch): when the deadman is pressed, the hand pose and the
  robot's current target are taken as anchors; then
  ``p_cmd = p_robot0 + scale * (p_hand - p_hand0)`` and
  ``q_cmd = (q_hand * q_hand0^-1) * q_robot0`` (the hand's rotation since the press, applied in
  the table frame). Releasing and pressing again re-centres the hand without moving the robot.
* ``mapping = "absolute"``: ``p_cmd = robot_origin + scale * (p_hand - hand_origin)``,
  ``q_cmd = q_hand``: the robot's gripper goes where the hand is (the simulator uses this, so the
  simulated camera's gripper follows the operator).
* Gripper: ``gripper = clip(grip / glove_grip_max, 0, 1) * gripper_max`` (opening in metres).

Safety, in this order, every step:

1. E-stop latched (:meth:`Teleop.estop`): no commands until :meth:`Teleop.reset_estop`, which
   is refused while the deadman is held.
2. Deadman released (or never seen): no commands; the next press re-anchors.
3. Newest glove sample older than ``stale_after_s`` (90 ms): *hold*: the last target again. With
   steps at 100 Hz a lost or stalled glove stops the commanded motion within 100 ms.
4. Otherwise the retargeted pose, clamped to the workspace box, then rate-limited from the last
   target: at most ``max_speed`` m/s, ``max_angular_speed`` rad/s, ``max_gripper_speed`` m/s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

IDLE, ACTIVE, HOLD, ESTOP = 0, 1, 2, 3
MODE_NAMES = ("idle", "active", "hold", "estop")


@dataclass
class TeleopConfig:
    """Retargeting, rate and safety limits (see the module docstring)."""

    rate_hz: float = 100.0
    mapping: Literal["relative", "absolute"] = "relative"
    scale: float = 1.0
    #: ``absolute`` mapping: the hand point that maps to ``robot_origin``.
    hand_origin: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    robot_origin: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    #: ``relative`` mapping: the robot's target before the first press (None: the hand's pose).
    home_pos: list[float] | None = None
    home_quat: list[float] | None = None
    #: 90 ms + one 10 ms step: hold within 100 ms of the last glove sample (docs/reliability.md).
    stale_after_s: float = 0.09
    max_speed: float = 0.5
    max_angular_speed: float = 3.0
    max_gripper_speed: float = 0.25
    workspace_min: list[float] = field(default_factory=lambda: [-0.6, -0.4, 0.0])
    workspace_max: list[float] = field(default_factory=lambda: [0.6, 0.4, 0.6])
    gripper_max: float = 0.08
    glove_grip_max: float = 0.08

    def validate(self) -> None:
        if self.rate_hz <= 0:
            raise ValueError(f"rate_hz must be > 0, got {self.rate_hz}")
        if self.scale <= 0:
            raise ValueError(f"scale must be > 0, got {self.scale}")
        for name in ("hand_origin", "robot_origin", "workspace_min", "workspace_max", "home_pos"):
            value = getattr(self, name)
            if value is not None and len(value) != 3:
                raise ValueError(f"{name} must have 3 values (x, y, z), got {len(value)}")
        if self.home_quat is not None and len(self.home_quat) != 4:
            raise ValueError(f"home_quat must have 4 values (w, x, y, z), got {len(self.home_quat)}")
        if not all(lo < hi for lo, hi in zip(self.workspace_min, self.workspace_max)):
            raise ValueError("workspace_min must be below workspace_max on every axis")
        for name in ("stale_after_s", "max_speed", "max_angular_speed", "max_gripper_speed",
                     "gripper_max", "glove_grip_max"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")


@dataclass
class GloveInput:
    """What teleop needs from one glove sample; ``t_ns`` is its capture time (host clock)."""

    t_ns: int
    wrist_pos: np.ndarray
    wrist_quat: np.ndarray  # w, x, y, z
    grip: float
    deadman: bool
    seq: int = -1

    @classmethod
    def from_fields(cls, fields: dict, t_ns: int, seq: int = -1,
                    deadman_index: int = 1) -> "GloveInput":
        """From a glove stream's fields (``wrist_pos``, ``wrist_quat``, ``grip``, ``buttons``)."""
        return cls(int(t_ns), np.asarray(fields["wrist_pos"], np.float64).reshape(3),
                   np.asarray(fields["wrist_quat"], np.float64).reshape(4),
                   float(np.asarray(fields["grip"]).reshape(-1)[0]),
                   bool(np.asarray(fields["buttons"]).reshape(-1)[deadman_index]), int(seq))


@dataclass
class Command:
    """One command to the robot: end-effector pose target and gripper opening."""

    ee_pos: np.ndarray
    ee_quat: np.ndarray  # w, x, y, z
    gripper: float
    glove_seq: int
    glove_t_ns: int
    #: Which limits acted on this step: workspace, speed, angular speed, gripper speed.
    clamped: np.ndarray = field(default_factory=lambda: np.zeros(4, np.uint8))


@dataclass
class StepResult:
    mode: int
    command: Command | None
    glove_age_s: float | None
    reason: str = ""


def _rot(q_wxyz) -> Rotation:
    return Rotation.from_quat(np.asarray(q_wxyz, np.float64), scalar_first=True)


def _wxyz(rotation: Rotation) -> np.ndarray:
    return rotation.as_quat(canonical=True, scalar_first=True)


class Teleop:
    """The teleoperation state machine; see the module docstring."""

    def __init__(self, config: TeleopConfig | None = None) -> None:
        self.config = config or TeleopConfig()
        self.config.validate()
        self.latest: GloveInput | None = None
        self.estopped = False
        self.estop_reason = ""
        self.engaged = False
        self.target: Command | None = None
        self._hand0: tuple[np.ndarray, Rotation] | None = None
        self._robot0: tuple[np.ndarray, Rotation] | None = None

    # -- inputs -----------------------------------------------------------------------------------

    def update(self, glove: GloveInput) -> None:
        """The newest glove sample (older ones than the current are ignored)."""
        if self.latest is None or glove.t_ns >= self.latest.t_ns:
            self.latest = glove

    def estop(self, reason: str = "e-stop") -> None:
        """Latch the e-stop: no command until :meth:`reset_estop`."""
        self.estopped, self.estop_reason = True, reason
        self.engaged = False

    def reset_estop(self) -> bool:
        """Clear the e-stop; refused (False) while the deadman is held."""
        if self.latest is not None and self.latest.deadman:
            return False
        self.estopped, self.estop_reason = False, ""
        return True

    # -- the step ---------------------------------------------------------------------------------

    def step(self, now_ns: int) -> StepResult:
        """The command for this instant, or none; call at ``rate_hz``."""
        c = self.config
        glove = self.latest
        age = None if glove is None else (now_ns - glove.t_ns) / 1e9
        if self.estopped:
            return StepResult(ESTOP, None, age, self.estop_reason)
        if glove is None or not glove.deadman:
            self.engaged = False
            return StepResult(IDLE, None, age, "deadman released")
        if age > c.stale_after_s:
            if not self.engaged or self.target is None:
                return StepResult(IDLE, None, age, "no fresh glove data")
            return StepResult(HOLD, self._hold(), age, f"glove data {age * 1e3:.0f} ms old")
        hand_pos, hand_rot = glove.wrist_pos, _rot(glove.wrist_quat)
        if not self.engaged:
            self.engaged = True
            self._hand0 = (hand_pos.copy(), hand_rot)
            if self.target is not None:
                self._robot0 = (self.target.ee_pos.astype(np.float64), _rot(self.target.ee_quat))
            else:
                pos = np.asarray(c.home_pos, np.float64) if c.home_pos is not None else hand_pos
                rot = _rot(c.home_quat) if c.home_quat is not None else hand_rot
                self._robot0 = (pos.copy(), rot)
        if c.mapping == "absolute":
            pos = np.asarray(c.robot_origin) + c.scale * (hand_pos - np.asarray(c.hand_origin))
            rot = hand_rot
        else:
            (h_pos, h_rot), (r_pos, r_rot) = self._hand0, self._robot0
            pos = r_pos + c.scale * (hand_pos - h_pos)
            rot = (hand_rot * h_rot.inv()) * r_rot
        grip = float(np.clip(glove.grip / c.glove_grip_max, 0.0, 1.0)) * c.gripper_max
        command = self._limit(pos, rot, grip, glove)
        self.target = command
        return StepResult(ACTIVE, command, age)

    def _hold(self) -> Command:
        held = self.target
        return Command(held.ee_pos.copy(), held.ee_quat.copy(), held.gripper, held.glove_seq,
                       held.glove_t_ns)

    def _limit(self, pos: np.ndarray, rot: Rotation, grip: float, glove: GloveInput) -> Command:
        c = self.config
        dt = 1.0 / c.rate_hz
        clamped = np.zeros(4, np.uint8)
        lo, hi = np.asarray(c.workspace_min), np.asarray(c.workspace_max)
        boxed = np.clip(pos, lo, hi)
        clamped[0] = not np.array_equal(boxed, pos)
        pos = boxed
        if self.target is None:
            # The very first target: nothing to rate-limit from (the robot is wherever it is;
            # a relative mapping starts exactly at its anchor).
            return Command(pos, _wxyz(rot), grip, glove.seq, glove.t_ns, clamped)
        last_pos = self.target.ee_pos.astype(np.float64)
        step = pos - last_pos
        dist, max_dist = float(np.linalg.norm(step)), c.max_speed * dt
        if dist > max_dist:
            pos = last_pos + step * (max_dist / dist)
            clamped[1] = 1
        last_rot = _rot(self.target.ee_quat)
        angle, max_angle = (rot * last_rot.inv()).magnitude(), c.max_angular_speed * dt
        if angle > max_angle:
            rot = Slerp([0.0, 1.0], Rotation.concatenate([last_rot, rot]))(max_angle / angle)
            clamped[2] = 1
        max_grip = c.max_gripper_speed * dt
        if abs(grip - self.target.gripper) > max_grip:
            grip = self.target.gripper + float(np.sign(grip - self.target.gripper)) * max_grip
            clamped[3] = 1
        return Command(pos, _wxyz(rot), grip, glove.seq, glove.t_ns, clamped)
