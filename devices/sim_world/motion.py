"""Smooth analytic trajectory pieces and the rotation maths of the wrist.

A motion segment moves a 7-channel pose ``[x, y, z, yaw, pitch, roll, closure]`` from ``start`` to
``end`` along a minimum-jerk profile, plus a "human" deviation that is a bump (zero value, slope
and curvature at both ends) carrying a slow wobble. Both ends therefore join the neighbouring
segments with continuous position, velocity and acceleration, which keeps the simulated IMU
free of steps. Position, velocity and acceleration are analytic (no finite differences).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Channel order of a pose vector.
X, Y, Z, YAW, PITCH, ROLL, CLOSURE = range(7)
CHANNELS = 7


@dataclass(slots=True)
class Segment:
    """One phase of a cycle; times are seconds from the start of the cycle."""

    phase: str
    t0: float
    duration: float
    #: Rows: start, delta (end - start), bump, wobble sine part, wobble cosine part; (5, 7).
    basis: np.ndarray
    omega: float  # wobble angular frequency per unit of normalised segment time

    @classmethod
    def make(cls, phase: str, t0: float, duration: float, start, end, bump=None,
             wobble=None, omega: float = 0.0, wobble_phase=None) -> "Segment":
        start = np.asarray(start, dtype=np.float64)
        zeros = np.zeros(CHANNELS)
        bump = zeros if bump is None else np.asarray(bump, dtype=np.float64)
        wobble = zeros if wobble is None else np.asarray(wobble, dtype=np.float64)
        phi = zeros if wobble_phase is None else np.asarray(wobble_phase, dtype=np.float64)
        # sin(w s + phi) = sin(w s) cos(phi) + cos(w s) sin(phi): folding phi into two rows lets
        # one small matrix product evaluate every channel at once.
        basis = np.stack([start, np.asarray(end, dtype=np.float64) - start, bump,
                          wobble * np.cos(phi), wobble * np.sin(phi)])
        return cls(phase, float(t0), float(duration), basis, float(omega))

    def evaluate(self, tau: float) -> np.ndarray:
        """Rows position, velocity (per s), acceleration (per s^2) at cycle time ``tau``; (3, 7)."""
        T = self.duration
        s = (tau - self.t0) / T
        s = 0.0 if s < 0.0 else (1.0 if s > 1.0 else s)
        q = s * (1.0 - s)
        r = 1.0 - 2.0 * s
        m = s * s * s * (10.0 - 15.0 * s + 6.0 * s * s)
        m1 = 30.0 * q * q
        m2 = 60.0 * q * r
        b = 64.0 * q * q * q
        b1 = 192.0 * q * q * r
        b2 = 384.0 * q * (r * r - q)
        w = self.omega
        sn = math.sin(w * s)
        cs = math.cos(w * s)
        inv_t = 1.0 / T
        inv_t2 = inv_t * inv_t
        coeff = np.array((
            (1.0, m, b, b * sn, b * cs),
            (0.0, m1 * inv_t, b1 * inv_t, (b1 * sn + b * w * cs) * inv_t,
             (b1 * cs - b * w * sn) * inv_t),
            (0.0, m2 * inv_t2, b2 * inv_t2,
             (b2 * sn + 2.0 * b1 * w * cs - b * w * w * sn) * inv_t2,
             (b2 * cs - 2.0 * b1 * w * sn - b * w * w * cs) * inv_t2),
        ))
        return coeff @ self.basis


# The wrist frame: z is the approach axis (out of the palm, between the fingers), y is the axis
# along which the fingers open. With yaw = pitch = roll = 0 the hand points straight down at the
# table, i.e. R = Rz(yaw) Ry(pitch) Rx(roll) R0 with R0 = diag(1, -1, -1) (180 deg about x).


def euler_matrix(yaw: float, pitch: float, roll: float) -> list[list[float]]:
    """Rz(yaw) Ry(pitch) Rx(roll) as nested lists (row-major)."""
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    return [[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr]]


def euler_quat(yaw: float, pitch: float, roll: float) -> tuple[float, float, float, float]:
    """Quaternion (w, x, y, z) of Rz(yaw) Ry(pitch) Rx(roll)."""
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    return (cy * cp * cr + sy * sp * sr, cy * cp * sr - sy * sp * cr,
            cy * sp * cr + sy * cp * sr, sy * cp * cr - cy * sp * sr)


def wrist_quat(yaw: float, pitch: float, roll: float) -> tuple[float, float, float, float]:
    """Quaternion (w, x, y, z) of the wrist: ``euler_quat(...) * (0, 1, 0, 0)`` (R0)."""
    w, x, y, z = euler_quat(yaw, pitch, roll)
    return (-x, w, z, -y)


def quat_matrix(q) -> np.ndarray:
    """Rotation matrix (3, 3) of a unit quaternion (w, x, y, z)."""
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def wrist_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rotation wrist frame -> table frame, (3, 3)."""
    m = euler_matrix(yaw, pitch, roll)
    return np.array([[r[0], -r[1], -r[2]] for r in m])


def body_rates(yaw: float, pitch: float, roll: float, dyaw: float, dpitch: float,
               droll: float) -> tuple[float, float, float]:
    """Angular velocity in the wrist frame (rad/s) from Z-Y-X Euler angles and their rates."""
    cp, sp = math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    p = droll - dyaw * sp
    q = dpitch * cr + dyaw * cp * sr
    r = -dpitch * sr + dyaw * cp * cr
    return (p, -q, -r)  # R0 flips the y and z axes


def to_wrist_frame(m: list[list[float]], v: tuple[float, float, float]) -> tuple[float, float, float]:
    """Express table-frame vector ``v`` in the wrist frame, given ``m = euler_matrix(...)``."""
    a = m[0][0] * v[0] + m[1][0] * v[1] + m[2][0] * v[2]
    b = m[0][1] * v[0] + m[1][1] * v[1] + m[2][1] * v[2]
    c = m[0][2] * v[0] + m[1][2] * v[1] + m[2][2] * v[2]
    return (a, -b, -c)
