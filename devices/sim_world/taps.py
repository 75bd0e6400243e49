"""The calibration scene: the operator taps the table, a shared physical event for every device.

Time is cut into taps of seeded length (:data:`TAP_SPACING_S`). In each, the hand rests on the
table, rises :data:`TAP_HEIGHT` (a smooth half cosine), hovers a seeded moment (so impacts fall
at every phase of a camera's frame grid), then comes down at a constant :data:`TAP_SPEED` and
hits the table at :meth:`TapScript.impact_s`. The glove feels the impact: fingertip force ramps
up linearly over :data:`PRESSURE_RAMP_S` and the IMU rings; the camera sees the fingers stop.
The impact instants are the simulator's ground truth for ``collector calibrate latency``.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from devices.sim_world.rng import KeyedRandom

_TAPS = 9  # key separating the tap script's random numbers from the cube script's
TAP_SPACING_S = (1.2, 1.6)
TAP_HEIGHT = 0.08          # m, how far the fingertips rise
RISE_S = 0.35
HOVER_S = (0.05, 0.2)
TAP_SPEED = 0.5            # m/s, constant on the way down
PRESSURE_RAMP_S = 0.010    # fingertip force rises linearly for this long after the impact
IMPACT_FORCE = 6.0         # N at the end of the ramp (thumb .. pinky scaled below)
REST_FORCE = 1.0           # N while the hand rests on the table
IMPACT_ACCEL = 60.0        # m/s^2, the ring-down's first peak
RING_HZ, RING_TAU_S = 120.0, 0.012
#: Where the fingertips touch the table (table frame, m).
TAP_XY = (0.12, 0.02)
_FORCE_SHARE = np.array([1.0, 0.9, 0.8, 0.4, 0.2])


class TapScript:
    """Seeded taps as a pure function of world time (the times are cached per tap index)."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self._starts = [0.0]

    def _start(self, k: int) -> float:
        while len(self._starts) <= k:
            rng = KeyedRandom(self.seed, _TAPS, len(self._starts))
            self._starts.append(self._starts[-1] + rng.uniform(*TAP_SPACING_S))
        return self._starts[k]

    def _hover(self, k: int) -> float:
        return KeyedRandom(self.seed, _TAPS, k, 1).uniform(*HOVER_S)

    def _index(self, t_s: float) -> int:
        k = max(0, int(t_s / TAP_SPACING_S[1]))
        while k > 0 and self._start(k) > t_s:
            k -= 1
        while self._start(k + 1) <= t_s:
            k += 1
        return k

    def impact_s(self, k: int) -> float:
        """World time of tap ``k``'s impact."""
        return self._start(k) + RISE_S + self._hover(k) + TAP_HEIGHT / TAP_SPEED

    def impacts_between(self, t0_s: float, t1_s: float) -> list[float]:
        """Impact times in ``[t0_s, t1_s)``."""
        k = self._index(max(t0_s, 0.0))
        out = []
        while self.impact_s(k) < t1_s:
            if self.impact_s(k) >= t0_s:
                out.append(self.impact_s(k))
            k += 1
        return out

    def height(self, t_s: float) -> tuple[float, float, float]:
        """Fingertip height above the table, its velocity and acceleration at ``t_s``."""
        if t_s < 0:
            return 0.0, 0.0, 0.0
        k = self._index(t_s)
        tau = t_s - self._start(k)
        hover_end = RISE_S + self._hover(k)
        if tau < RISE_S:
            w = math.pi / RISE_S
            return (TAP_HEIGHT * (1 - math.cos(w * tau)) / 2, TAP_HEIGHT * w * math.sin(w * tau) / 2,
                    TAP_HEIGHT * w * w * math.cos(w * tau) / 2)
        if tau < hover_end:
            return TAP_HEIGHT, 0.0, 0.0
        z = TAP_HEIGHT - TAP_SPEED * (tau - hover_end)
        return (z, -TAP_SPEED, 0.0) if z > 0 else (0.0, 0.0, 0.0)

    def since_impact(self, t_s: float) -> float | None:
        """Seconds since this tap's impact, or None while the hand is off the table."""
        k = self._index(t_s)
        dt = t_s - self.impact_s(k)
        return dt if dt >= 0 else None

    def apply(self, state, finger_length: float, gravity: float):
        """``state`` (the hand's resting pose) with the tap at ``state.t_s`` applied."""
        z, vz, az = self.height(state.t_s)
        since = self.since_impact(state.t_s)
        if since is not None:
            ramp = min(since / PRESSURE_RAMP_S, 1.0)
            force = ramp * (REST_FORCE + (IMPACT_FORCE - REST_FORCE) * math.exp(
                -max(since - PRESSURE_RAMP_S, 0.0) / 0.05))
            pressure = force * _FORCE_SHARE
            az += IMPACT_ACCEL * math.exp(-since / RING_TAU_S) * math.cos(2 * math.pi * RING_HZ * since)
        else:
            pressure = np.zeros(5)
        accel = state.wrist_rotation().T @ np.array([0.0, 0.0, az + gravity])
        pos = np.array([TAP_XY[0], TAP_XY[1], finger_length + z])
        return replace(state, phase="tap", wrist_pos=pos, wrist_vel=np.array([0.0, 0.0, vz]),
                       pressure=pressure, imu_gyro=np.zeros(3), imu_accel=accel, held=-1,
                       buttons=np.zeros(2, np.uint8))
