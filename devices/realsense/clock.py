"""Device time to host time, online, for frames that do not come with host-mapped timestamps.

A RealSense camera stamps each frame with its own clock. With ``global_time`` enabled (the
default on D400 cameras with metadata support) librealsense maps that clock to the host for us;
otherwise (no metadata, recordings played back, other cameras) :class:`HostClockEstimate` does it
from the frames' arrival times: arrival = capture + transport delay, delay >= 0 and sometimes
near its minimum, so the mapped clock is fitted through the lower envelope of
``arrival - slope * device`` (offset) with the slope fitted over the window (drift).

A device clock running outside 0.5x..2x real time, or jumping by seconds, is reported in words
by a :class:`devices.clock_check.ClockCheck` (:meth:`HostClockEstimate.notices`) and mapped on
arrival times until it is sane again. Inputs are taken as Python integers, fits run in float64
on differences from a reference pair: nothing wraps.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from devices.clock_check import CheckedDeviceClock, ClockCheck

#: The device clock may run this much faster or slower than the host's (crystals: ~10-100 ppm).
MAX_DRIFT_PPM = 1000.0
#: Device time going backwards, or arrival this far off the estimate, restarts the estimate.
RESET_JUMP_NS = 1_000_000_000


class HostClockEstimate(CheckedDeviceClock):
    """Maps one device clock to host time from (device time, arrival time) pairs.

    Args:
        window: how many recent frames the estimate uses (300 = 10 s at 30 fps).
        min_span_ns: the slope stays 1 until the window spans this much device time.
    """

    def __init__(self, window: int = 300, min_span_ns: int = 2_000_000_000,
                 label: str = "camera clock") -> None:
        self.window = window
        self.min_span_ns = min_span_ns
        self.check = ClockCheck(label)
        self._notices: list[tuple[str, str]] = []
        self._last_host = None
        self.reset()

    def reset(self) -> None:
        """Forget the past (after a reconnect: the device clock may have restarted)."""
        self._restart()
        self.check.reset()

    def _restart(self) -> None:
        """Start the estimate again (after a jump of the device clock)."""
        self._pairs: deque[tuple[int, int]] = deque(maxlen=self.window)
        self._ref: tuple[int, int] | None = None  # (device, arrival) origin: keeps floats small
        self.slope = 1.0
        self.offset_ns = 0.0
        self._last_device = None

    @property
    def drift_ppm(self) -> float:
        """How much faster the device clock runs than the host's, in ppm."""
        return (1.0 / self.slope - 1.0) * 1e6

    def update(self, device_ns: int, arrival_ns: int) -> int:
        """Add one frame; returns its estimated capture time on the host clock (ns)."""
        device_ns, arrival_ns = int(device_ns), int(arrival_ns)
        notice = self.check.update(device_ns, arrival_ns)
        if notice is not None:
            kind, message = notice
            if kind in ("jump", "clock_recovered"):
                self._restart()
            self._notices.append(("error" if kind == "jump" else kind, message))
        if self.check.fault is not None:
            host = arrival_ns if self._last_host is None else max(arrival_ns, self._last_host + 1)
            self._last_device, self._last_host = device_ns, host
            return host
        if self._last_device is not None and (
                device_ns <= self._last_device
                or abs(arrival_ns - self._predict(device_ns)) > RESET_JUMP_NS):
            self._restart()
        if self._ref is None:
            self._ref = (device_ns, arrival_ns)
        self._pairs.append((device_ns - self._ref[0], arrival_ns - self._ref[1]))
        pairs = np.array(self._pairs, dtype=np.float64)
        device, arrival = pairs[:, 0], pairs[:, 1]
        if device[-1] - device[0] >= self.min_span_ns:
            slope = np.polyfit(device, arrival, 1)[0]
            limit = MAX_DRIFT_PPM * 1e-6
            self.slope = float(np.clip(slope, 1 - limit, 1 + limit))
        self.offset_ns = float(np.min(arrival - self.slope * device))
        host = min(int(round(self._predict(device_ns))), arrival_ns)
        if self._last_host is not None:
            host = max(host, self._last_host + 1)
        self._last_device, self._last_host = device_ns, host
        return host

    def _predict(self, device_ns: int) -> float:
        assert self._ref is not None
        return self._ref[1] + self.offset_ns + self.slope * (device_ns - self._ref[0])

    def meta(self) -> dict:
        """The current estimate, as plain data."""
        return {"method": "online lower-envelope fit of arrival times",
                "window": self.window, "slope": self.slope, "drift_ppm": self.drift_ppm,
                "offset_ns": self.offset_ns, "samples": len(self._pairs), "fault": self.fault}
