"""Plausibility of a device clock against the host's: its rate and its jumps.

Every device clock estimator (the glove's :class:`devices.glove.clock.OnlineClockMap`, the
RealSense :class:`devices.realsense.clock.HostClockEstimate`) feeds each (device time, host
receive time) pair through a :class:`ClockCheck`. Real crystals are within ~100 ppm of the host;
a clock that runs at 0.3x or 3x real time, or jumps by seconds, is broken firmware or a wrong
unit, and fitting a line through it gives nonsense (and, before this check, an int32 overflow
that killed the glove's reader thread). The check says so in words, once per fault, and the
estimator falls back to host receive times until the clock is sane again.

All arithmetic is on Python integers (unbounded) and float64 ratios: nothing wraps.
"""

from __future__ import annotations

#: A device clock running outside [MIN_RATE, MAX_RATE] x real time is reported as broken.
MIN_RATE, MAX_RATE = 0.5, 2.0
#: Host seconds over which the rate is measured; a fault needs two windows in a row (so that
#: one host stall, whose backlog arrives late and then all at once, cannot fake one).
RATE_WINDOW_NS = 2_000_000_000
#: Device time moving this much further than host time between two samples is a jump.
JUMP_NS = 1_000_000_000


class ClockCheck:
    """Watches one device clock; :meth:`update` returns a notice when its verdict changes.

    Args:
        label: what the messages call the clock, e.g. ``"glove clock"``.
    """

    def __init__(self, label: str) -> None:
        self.label = label
        #: The current fault in words (``"glove clock runs at 0.30x real time"``), or None.
        self.fault: str | None = None
        #: Rate of the last complete window (device seconds per host second).
        self.rate: float | None = None
        self.reset()

    def reset(self) -> None:
        """Forget the past (device restarted or reconnected); the fault stays until disproved."""
        self._anchor: tuple[int, int] | None = None
        self._prev: tuple[int, int] | None = None
        self._bad_windows = 0
        self._good_windows = 0

    def update(self, device_ns: int, host_ns: int) -> tuple[str, str] | None:
        """Add one pair; ``("error", message)`` when a fault starts or the clock jumps,
        ``("clock_recovered", message)`` when a faulty clock is sane again, else None.

        A jump is reported but not held as a fault: the caller restarts its estimate.
        """
        device_ns, host_ns = int(device_ns), int(host_ns)
        notice = None
        if self._prev is not None:
            step_dev = device_ns - self._prev[0]
            step_host = host_ns - self._prev[1]
            if step_dev - step_host > JUMP_NS or step_dev < -JUMP_NS:
                self._anchor = None
                self._bad_windows = self._good_windows = 0
                notice = ("jump", f"{self.label} jumped by {step_dev / 1e9:+.3f} s in "
                                  f"{step_host / 1e9:.3f} s of real time")
        self._prev = (device_ns, host_ns)
        if self._anchor is None:
            self._anchor = (device_ns, host_ns)
            return notice
        span_host = host_ns - self._anchor[1]
        if span_host < RATE_WINDOW_NS:
            return notice
        rate = (device_ns - self._anchor[0]) / span_host
        self._anchor = (device_ns, host_ns)
        self.rate = rate
        if MIN_RATE <= rate <= MAX_RATE:
            self._good_windows += 1
            self._bad_windows = 0
            if self.fault is not None and self._good_windows >= 2:
                self.fault = None
                return ("clock_recovered", f"{self.label} runs at {rate:.2f}x real time again")
        else:
            self._bad_windows += 1
            self._good_windows = 0
            if self.fault is None and self._bad_windows >= 2:
                self.fault = (f"{self.label} runs at {rate:.2f}x real time (plausible: "
                              f"{MIN_RATE:g}x to {MAX_RATE:g}x); using host receive times")
                return ("error", self.fault)
        return notice


class CheckedDeviceClock:
    """What every device-clock estimator says about its clock: ``check`` (a :class:`ClockCheck`)
    and the notices it queued for the node to publish (``_notices``)."""

    check: ClockCheck
    _notices: list[tuple[str, str]]

    @property
    def fault(self) -> str | None:
        """Why the device clock is not used right now (None: it is)."""
        return self.check.fault

    def notices(self) -> list[tuple[str, str]]:
        """``(kind, message)`` since the last call: ``error`` (absurd rate, jump) or
        ``clock_recovered``."""
        out, self._notices = self._notices, []
        return out
