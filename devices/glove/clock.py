"""Online mapping of the glove's microsecond clock to host time, with offset and drift.

A sample's host receive time is its capture time plus a transport delay that is never
negative and often large (USB polling, the OS, our reader thread). The *smallest* delays are
nearly constant, so the lower envelope of ``t_rx - t_device`` is the clock offset plus the
fixed minimum delay. We keep the minimum of ``t_rx - t_device`` per :data:`BIN_S` bin over the
last :data:`WINDOW_S` seconds and fit a line through those minima (least squares, without bins a
starved reader lifted far above it: :data:`OUTLIER_NS`): its slope is
the drift, its value the offset. Mapped times then have the device's even spacing instead of
the transport's jitter, and stay within a few hundred microseconds of the true capture time
plus the minimum delay (subtract a known delay with the driver's ``transport_latency_us``).

A glove clock that runs far from real time (below 0.5x or above 2x) or jumps is reported by a
:class:`devices.clock_check.ClockCheck` (drained from :meth:`OnlineClockMap.notices`); while its
rate is absurd, mapped times are the host receive times, so samples keep flowing. Arithmetic is
on Python integers and float64; the estimate in force is exported saturated to its field's range.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from devices.clock_check import CheckedDeviceClock, ClockCheck

BIN_S = 0.25
WINDOW_S = 20.0
#: Bins needed before the drift is estimated (before that: offset only).
MIN_BINS_FOR_DRIFT = 8


#: A bin whose minimum delay lies this far above the fitted line is left out of the fit: the
#: host starved the reader for the whole bin (a busy machine), so no sample in it shows the
#: true minimum delay.
OUTLIER_NS = 2_000_000


def _envelope_line(x: np.ndarray, low: np.ndarray) -> tuple[float, float]:
    """``(slope, intercept)`` of a least-squares line through the bins' minimum delays, refitted
    without bins far above it: one starved bin in the first seconds otherwise tilted the drift
    by ~900 ppm and mapped times by ~10 ms (tests/devices/test_glove_wire.py)."""
    keep = np.ones(x.size, bool)
    slope, intercept = np.polyfit(x, low, 1)
    for _ in range(3):
        residual = low - (intercept + slope * x)
        # Against the median bin: least squares has already been pulled up by the outliers.
        fits = residual <= np.median(residual[keep]) + OUTLIER_NS
        if fits.sum() < MIN_BINS_FOR_DRIFT // 2 or np.array_equal(fits, keep):
            break
        keep = fits
        slope, intercept = np.polyfit(x[keep], low[keep], 1)
    return float(slope), float(intercept)


class OnlineClockMap(CheckedDeviceClock):
    """Maps device ns to host ns; feed every sample with :meth:`map`."""

    def __init__(self, latency_ns: int = 0) -> None:
        self.latency_ns = int(latency_ns)
        self._last_out = -(2 ** 62)  # host time only moves forward, even across resets
        self.check = ClockCheck("glove clock")
        self._notices: list[tuple[str, str]] = []
        self.reset()

    def reset(self) -> None:
        """Forget everything (after a reconnect: the glove may have rebooted)."""
        self._bins: deque[tuple[int, int]] = deque()  # (device_ns of bin start, min(rx - dev))
        self._bin_start: int | None = None
        self._bin_min = 0
        self._ref_dev = 0
        self.offset_ns = 0        # host = device + offset_ns + drift * (device - ref)
        self.drift = 0.0          # host seconds per device second - 1
        self._fitted = False
        if hasattr(self, "check"):
            self.check.reset()

    @property
    def drift_ppm(self) -> float:
        return self.drift * 1e6

    def map(self, device_ns: int, rx_ns: int) -> int:
        """Host time of the sample taken at ``device_ns`` and received at ``rx_ns``."""
        device_ns, rx_ns = int(device_ns), int(rx_ns)
        notice = self.check.update(device_ns, rx_ns)
        if notice is not None:
            kind, message = notice
            if kind == "jump":  # the old fit no longer holds: start again from here
                kind = "error"
                self.reset()
                self.check.update(device_ns, rx_ns)
            elif kind == "clock_recovered":
                self.reset()
                self.check.update(device_ns, rx_ns)
            self._notices.append((kind, message))
        if self.check.fault is not None:
            # Host-time fallback: the receive time, never before the previous sample.
            self.offset_ns, self.drift = rx_ns - device_ns, 0.0
            out = max(rx_ns - self.latency_ns, self._last_out)
            self._last_out = out
            return out
        diff = rx_ns - device_ns
        if self._bin_start is None:
            self._bin_start, self._bin_min, self._ref_dev = device_ns, diff, device_ns
            self.offset_ns = diff
        elif device_ns - self._bin_start >= BIN_S * 1e9:
            self._close_bin()
            self._bin_start, self._bin_min = device_ns, diff
        else:
            self._bin_min = min(self._bin_min, diff)
        if not self._fitted and diff < self.offset_ns:
            self.offset_ns = diff  # until the first fit: the running minimum
        mapped = device_ns + self.offset_ns + round(self.drift * (device_ns - self._ref_dev))
        # Never later than the bytes arrived (a sample cannot be captured after it was read), and
        # never earlier than the previous sample: a refit may move the offset down a little.
        out = max(min(mapped, rx_ns) - self.latency_ns, self._last_out)
        self._last_out = out
        return out

    def _close_bin(self) -> None:
        self._bins.append((self._bin_start, self._bin_min))
        while self._bins and self._bin_start - self._bins[0][0] > WINDOW_S * 1e9:
            self._bins.popleft()
        if len(self._bins) < 2:
            return
        dev = np.array([b[0] for b in self._bins], dtype=np.float64)
        low = np.array([b[1] for b in self._bins], dtype=np.float64)
        ref = self._bins[-1][0]
        x = (dev - ref) / 1e9
        if len(self._bins) >= MIN_BINS_FOR_DRIFT:
            slope, intercept = _envelope_line(x, low)
            # Least squares runs through the middle of the minima; lower it onto the lowest
            # one so that it is an envelope and mapped times rarely hit the read-time cap.
            intercept += float(np.min(low - (intercept + slope * x)))
        else:
            slope, intercept = 0.0, float(low.min())
        self._ref_dev = ref
        self.offset_ns = int(round(intercept))
        self.drift = float(slope) / 1e9
        self._fitted = True

    def drift_ppb_int32(self) -> int:
        """The drift in ppb as the ``clock_drift_ppb`` field stores it: saturated to int32
        (an absurd clock is reported by :attr:`fault`, never wrapped or raised on)."""
        ppb = self.drift * 1e9
        if ppb != ppb:  # NaN
            return 0
        return int(max(-(2 ** 31), min(2 ** 31 - 1, round(max(-1e18, min(1e18, ppb))))))

    def meta(self) -> dict:
        """Current estimate, as stored with the stream."""
        return {"offset_ns": self.offset_ns, "drift_ppm": self.drift_ppm,
                "ref_device_ns": self._ref_dev, "fault": self.fault}
