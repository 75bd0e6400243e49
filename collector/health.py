"""Stream health: what receivers count per stream, and how a display judges it.

The recorder keeps a :class:`StreamHealth` per stream (it sees every sample); the session turns
its status into :class:`StreamStatus` objects with a level (ok / warn / bad) and a reason, which
the CLI's status line and the GUI's health strip show.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .bus import StreamCounters

#: Window over which per-stream rates are measured.
RATE_WINDOW_S = 2.0


@dataclass
class StreamHealth(StreamCounters):
    """The seq counters a :class:`~collector.bus.SeqTracker` keeps, plus receive timing."""

    last_t_recv_ns: int = 0
    latency_ms: float = 0.0
    recent: deque = field(default_factory=lambda: deque(maxlen=4096))

    def rate_hz(self, now_ns: int) -> float:
        horizon = now_ns - int(RATE_WINDOW_S * 1e9)
        while self.recent and self.recent[0] < horizon:
            self.recent.popleft()
        if len(self.recent) < 2:
            return 0.0
        span_s = (now_ns - self.recent[0]) / 1e9
        if span_s >= 0.9 * RATE_WINDOW_S:
            return len(self.recent) / RATE_WINDOW_S
        # A stream that began 0.5 s ago is measured over its own span, not at a quarter rate.
        return (len(self.recent) - 1) / max(span_s, 1e-3)


@dataclass
class StreamStatus:
    """Health of one stream, as shown in a status line or the GUI's health strip."""

    name: str
    rate_hz: float
    nominal_hz: float | None
    received: int
    gaps: int
    missing: int
    latency_ms: float
    age_s: float | None

    @property
    def level(self) -> str:
        """``ok``, ``warn`` or ``bad``, with :attr:`problem` saying why."""
        return "ok" if not self.problem else ("bad" if self._bad else "warn")

    @property
    def _bad(self) -> bool:
        return self.age_s is None or self.age_s > 1.0

    @property
    def problem(self) -> str:
        if self.age_s is None:
            return "no data received"
        if self.age_s > 1.0:
            return f"no data for {self.age_s:.1f} s"
        if self.nominal_hz and self.rate_hz < 0.9 * self.nominal_hz:
            return f"{self.rate_hz:.1f} Hz, expected {self.nominal_hz:g} Hz"
        if self.missing:
            return f"{self.missing} samples lost in {self.gaps} gaps"
        return ""


def percentiles(values) -> dict[str, float] | None:
    if not values:
        return None
    p50, p99, top = np.percentile(np.fromiter(values, float), [50, 99, 100])
    return {"p50": round(float(p50), 2), "p99": round(float(p99), 2), "max": round(float(top), 2)}
