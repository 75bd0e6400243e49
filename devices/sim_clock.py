"""Simulated device timing shared by the simulated drivers: clock model, tick grid and faults.

Clock model (integer nanoseconds, exact)::

    t_device_ns = offset_ns + round((t_true_ns - epoch_ns) * (1 + drift_ppm * 1e-6))
    t_true_ns   = epoch_ns + round((t_device_ns - offset_ns) / (1 + drift_ppm * 1e-6))

where ``t_true_ns`` is the true capture time on the host clock (``time.time_ns``), the clock every
``t_host_ns`` uses. The factor is held as the ratio ``(10**12 + round(drift_ppm * 10**6)) / 10**12``
so the arithmetic stays exact for timestamps near 2**62; the round trip
``true_time_ns(device_ns(t))`` is within 1 ns of ``t``.

Host timestamp = true capture time + transport latency, the latency drawn per sample uniformly in
``[latency_min_ms, latency_max_ms]`` from ``(seed, tick)``; samples arrive in order, so a host
timestamp is never earlier than the previous one plus 1 ns.

Samples lie on a grid anchored at the world epoch: tick ``i`` is at ``epoch_ns + i * period``, so
every device with the same rate samples the world at the same instants. ``Reading.seq`` is the
device frame counter ``i - i0`` (``i0`` = first tick after the first ``connect``): samples lost to
``drop_fraction``, a stall or a disconnect still use up their numbers, which the bus shows as gaps.

Fault times (``stall_at_s``, ``disconnect_at_s``) count from the first ``connect()``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction
from typing import NamedTuple

from collector.wire.options import ConfigError

from collector.wire.device import DeviceDisconnected, DeviceError
from devices.sim_world.rng import unit

_DRIFT_DEN = 10 ** 12


@dataclass
class SimTimingOptions:
    """Clock, latency, fault and pacing options common to the simulated drivers."""

    #: World time 0 on the host clock; devices sharing seed and epoch see the same world.
    epoch_ns: int = 0
    clock_offset_ns: int = 0
    clock_drift_ppm: float = 0.0
    latency_min_ms: float = 0.2
    latency_max_ms: float = 2.0
    #: Share of samples the device loses (seeded); their frame numbers still count.
    drop_fraction: float = 0.0
    #: No samples from ``stall_at_s`` after the first connect, for ``stall_s`` seconds.
    stall_at_s: float | None = None
    stall_s: float = 0.0
    #: ``read`` raises DeviceDisconnected at ``disconnect_at_s``; ``connect`` fails for
    #: ``disconnect_s`` seconds.
    disconnect_at_s: float | None = None
    disconnect_s: float = 0.0
    #: False: no sleeping, simulated time advances one period per sample (tests, benchmarks).
    realtime: bool = True
    #: Deliver samples in batches at most this often (0: each as soon as it is due), as a USB
    #: device does: a 1 kHz glove then wakes its reader 250 times a second instead of 1000.
    batch_interval_ms: float = 0.0

    def validate(self) -> None:
        if abs(self.clock_drift_ppm) > 1000:
            raise ConfigError(f"clock_drift_ppm must be within +-1000, got {self.clock_drift_ppm}")
        if not 0 <= self.latency_min_ms <= self.latency_max_ms:
            raise ConfigError("latency must satisfy 0 <= latency_min_ms <= latency_max_ms, got "
                              f"{self.latency_min_ms} and {self.latency_max_ms}")
        if not 0 <= self.drop_fraction < 1:
            raise ConfigError(f"drop_fraction must be in [0, 1), got {self.drop_fraction}")
        for name in ("stall", "disconnect"):
            at, length = getattr(self, f"{name}_at_s"), getattr(self, f"{name}_s")
            if at is not None and at < 0:
                raise ConfigError(f"{name}_at_s must be >= 0, got {at}")
            if length < 0:
                raise ConfigError(f"{name}_s must be >= 0, got {length}")


def _div_round(a: int, b: int) -> int:
    """``round(a / b)`` for integers, b > 0, halves rounded up, exact at any size."""
    return (2 * a + b) // (2 * b)


class DeviceClock:
    """The linear device clock model of this module's docstring."""

    def __init__(self, epoch_ns: int = 0, offset_ns: int = 0, drift_ppm: float = 0.0) -> None:
        self.epoch_ns = int(epoch_ns)
        self.offset_ns = int(offset_ns)
        self.drift_ppm = float(drift_ppm)
        self._num = _DRIFT_DEN + round(self.drift_ppm * 10 ** 6)

    def device_ns(self, true_ns: int) -> int:
        """Device timestamp of true (host-clock) time ``true_ns``."""
        return self.offset_ns + _div_round((true_ns - self.epoch_ns) * self._num, _DRIFT_DEN)

    def true_time_ns(self, device_ns: int) -> int:
        """Inverse of :meth:`device_ns` (within 1 ns): ground truth for recorded timestamps."""
        return self.epoch_ns + _div_round((device_ns - self.offset_ns) * _DRIFT_DEN, self._num)

    @classmethod
    def from_meta(cls, meta: dict) -> "DeviceClock":
        """The clock described by a stream's ``meta["clock"]`` (as written by :meth:`meta`)."""
        return cls(meta["epoch_ns"], meta["offset_ns"], meta["drift_ppm"])

    def meta(self) -> dict:
        """The parameters as stream metadata, enough to invert recorded timestamps."""
        return {"model": "linear", "epoch_ns": self.epoch_ns, "offset_ns": self.offset_ns,
                "drift_ppm": self.drift_ppm,
                "formula": "t_device_ns = offset_ns + round((t_true_ns - epoch_ns) * "
                           "(1 + drift_ppm * 1e-6))"}


class Tick(NamedTuple):
    """One sample instant: ``frame`` is the device counter (Reading.seq), ``index`` the grid tick."""

    frame: int
    index: int
    true_ns: int
    device_ns: int
    host_ns: int


class SimTicker:
    """Paces one simulated device: tick grid, clock, latency, drops, stall and disconnect.

    Usage: :meth:`connect`; then per sample :meth:`peek` (the next tick that will be delivered),
    :meth:`wait` (until its host time), :meth:`advance`. :meth:`due` does all three and also
    returns every further tick already due, for devices that must never skip a sample.
    """

    def __init__(self, rate_hz: float, options: SimTimingOptions, seed: int, tag: int) -> None:
        period = Fraction(10 ** 9) / Fraction(rate_hz).limit_denominator(10 ** 6)
        self._num, self._den = period.numerator, period.denominator  # period_ns = num / den
        self.period_ns = float(period)
        self.options = options
        self.clock = DeviceClock(options.epoch_ns, options.clock_offset_ns, options.clock_drift_ppm)
        self._seed, self._tag = int(seed), int(tag)
        self._lat_min_ns = round(options.latency_min_ms * 1e6)
        self._lat_span_ns = round(options.latency_max_ms * 1e6) - self._lat_min_ns
        self._t0_ns: int | None = None
        self._base_index: int | None = None
        self._next_index = 0
        self._last_host_ns = -1
        self._peeked: Tick | None = None
        self._sim_now_ns = 0
        self._last_delivery_ns = 0
        self.connected = False

    # -- time -----------------------------------------------------------------------------------

    def now_ns(self) -> int:
        """Host time now: the wall clock, or the simulated clock when not realtime."""
        return time.time_ns() if self.options.realtime else self._sim_now_ns

    def tick_ns(self, index: int) -> int:
        """True time of grid tick ``index``."""
        return self.options.epoch_ns + (index * self._num) // self._den

    def _first_index_from(self, t_ns: int) -> int:
        # Smallest i with tick_ns(i) >= t_ns.
        i = -((-(t_ns - self.options.epoch_ns) * self._den) // self._num)
        while self.tick_ns(i - 1) >= t_ns:
            i -= 1
        while self.tick_ns(i) < t_ns:
            i += 1
        return i

    def _window(self, at_s: float | None, length_s: float) -> tuple[int, int] | None:
        if at_s is None or length_s <= 0 or self._t0_ns is None:
            return None
        start = self._t0_ns + round(at_s * 1e9)
        return start, start + round(length_s * 1e9)

    # -- lifecycle ------------------------------------------------------------------------------

    def connect(self) -> None:
        """Start (or resume) ticking; raise DeviceError inside a simulated disconnect."""
        if self._t0_ns is None:
            self._sim_now_ns = time.time_ns()
            self._t0_ns = self._sim_now_ns
        now = self.now_ns()
        window = self._window(self.options.disconnect_at_s, self.options.disconnect_s)
        if window and window[0] <= now < window[1]:
            if not self.options.realtime:
                self._sim_now_ns = window[1]  # as if the caller had waited for the device
            raise DeviceError(f"simulated device unplugged; back in {(window[1] - now) / 1e9:.3f} s")
        start = self._first_index_from(now)
        if self._base_index is None:
            self._base_index = start
        self._next_index = max(self._next_index, start)
        self._peeked = None
        self.connected = True

    def close(self) -> None:
        self.connected = False
        self._peeked = None

    # -- ticks ----------------------------------------------------------------------------------

    def _dropped(self, index: int) -> bool:
        fraction = self.options.drop_fraction
        return fraction > 0 and unit(self._seed, self._tag, index) < fraction

    def peek(self) -> Tick:
        """The next tick that will be delivered (dropped and stalled ticks skipped)."""
        if self._peeked is not None:
            return self._peeked
        if not self.connected or self._base_index is None:
            raise DeviceDisconnected("simulated device is not connected")
        index = self._next_index
        stall = self._window(self.options.stall_at_s, self.options.stall_s)
        while True:
            true_ns = self.tick_ns(index)
            if stall and stall[0] <= true_ns < stall[1]:
                index = self._first_index_from(stall[1])
            elif self._dropped(index):
                index += 1
            else:
                break
        latency = self._lat_min_ns + round(self._lat_span_ns * unit(self._seed, self._tag + 1, index))
        host_ns = max(true_ns + latency, self._last_host_ns + 1)
        self._peeked = Tick(index - self._base_index, index, true_ns, self.clock.device_ns(true_ns),
                            host_ns)
        return self._peeked

    def advance(self, tick: Tick) -> None:
        """Mark ``tick`` delivered."""
        self._next_index = tick.index + 1
        self._last_host_ns = tick.host_ns
        self._peeked = None

    def wait(self, tick: Tick, timeout_s: float) -> bool:
        """Wait until ``tick`` is due (its host time); False after ``timeout_s`` without it.

        Raises DeviceDisconnected when a simulated disconnect starts first.
        """
        window = self._window(self.options.disconnect_at_s, self.options.disconnect_s)
        gone = window is not None and window[0] <= tick.true_ns < window[1]
        deadline = min(tick.host_ns, window[0]) if gone else tick.host_ns
        if self.options.realtime:
            if not sleep_until(deadline, time.time_ns() + round(timeout_s * 1e9)):
                return False
        else:
            self._sim_now_ns = max(self._sim_now_ns, deadline)
        if gone:
            self.close()
            raise DeviceDisconnected(f"simulated disconnect for {self.options.disconnect_s} s")
        return True

    def due(self, timeout_s: float, limit: int = 1000) -> list[Tick]:
        """Wait for the next tick, then take it and every later one already due (realtime)."""
        if self.options.realtime and self.options.batch_interval_ms > 0 and self._last_delivery_ns:
            not_before = self._last_delivery_ns + round(self.options.batch_interval_ms * 1e6)
            if not sleep_until(not_before, time.time_ns() + round(timeout_s * 1e9)):
                return []
        tick = self.peek()
        if not self.wait(tick, timeout_s):
            return []
        self._last_delivery_ns = time.time_ns()
        self.advance(tick)
        ticks = [tick]
        if self.options.realtime:
            now = time.time_ns()
            while len(ticks) < limit:
                tick = self.peek()
                window = self._window(self.options.disconnect_at_s, self.options.disconnect_s)
                if tick.host_ns > now or (window and tick.true_ns >= window[0]):
                    break  # not due yet, or wait() must raise the disconnect on the next call
                self.advance(tick)
                ticks.append(tick)
        return ticks


def sleep_until(deadline_ns: int, limit_ns: int) -> bool:
    """Sleep until host time ``deadline_ns``; give up at ``limit_ns`` (then return False).

    Sleeps the whole way: the OS oversleeps by ~0.1 ms, which only delays a sample's delivery
    past its simulated host time, while yielding (``sleep(0)``) through the last 0.3 ms of every
    wait cost the 1 kHz glove ~0.1 of a core (a quarter of its CPU).
    """
    while True:
        now = time.time_ns()
        if now >= deadline_ns:
            return True
        if now >= limit_ns:
            return False
        remaining = (min(deadline_ns, limit_ns) - now) / 1e9
        time.sleep(remaining)
