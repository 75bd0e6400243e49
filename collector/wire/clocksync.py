"""Clock offset and drift between this host and a node on another host, NTP-style.

    estimator = ClockEstimator()
    with Pinger(node_endpoints("tcp://glovepi:5550").ctl) as pinger:
        estimator.add(*pinger.best_of(8))   # (t0, t_remote, t3) of the fastest exchange
    t_local = estimator.to_local(sample.t_host_ns)

Each exchange is a ``ping`` on the node's control socket: the app notes ``t0`` (send) and ``t3``
(reply) on its clock, the node answers its own ``t_host_ns``. If both legs take equally long,
``offset = t_remote - (t0 + t3) / 2`` with an error of at most ``(t3 - t0) / 2``; of a burst only
the fastest exchange is kept, as NTP does. Offsets over a sliding window are fitted with a line
in local time: its intercept is the offset, its slope the drift. The residual (RMS of the fit) is
what a recorded timestamp is still uncertain by; the recorder stores every estimate in the episode
as a ``clock`` event (see docs/reliability.md).

Arithmetic is bounded: timestamps outside int64 are refused with ``ValueError``, the fit runs in
float64 on centred values, and a remote clock whose fitted rate is outside 0.5x..2x the local one
is not believed: the estimate says so in ``fault`` and maps with the offset alone (no drift, so
no division by a rate near zero).
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import asdict, dataclass

import numpy as np
import zmq

from collector.wire import security

#: Exchanges the fit uses (one per burst; bursts come every second: about 2 minutes).
WINDOW = 120
#: A remote clock running outside [MIN_RATE, MAX_RATE] x the local one is reported, not fitted.
MIN_RATE, MAX_RATE = 0.5, 2.0
_INT64 = 2 ** 63


@dataclass
class ClockEstimate:
    """Remote minus local clock: ``offset_ns`` at local time ``ref_ns``, changing by
    ``drift_ppm`` (1e-6 per unit of local time)."""

    offset_ns: float
    drift_ppm: float
    ref_ns: int
    residual_ns: float
    rtt_ns: int
    exchanges: int
    #: Why the drift is not used ("remote clock runs at 0.30x local time"), or "".
    fault: str = ""

    def to_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


class ClockEstimator:
    """Fits remote-minus-local offset against local time from NTP-style exchanges."""

    def __init__(self, window: int = WINDOW) -> None:
        self._points: deque[tuple[int, int, int]] = deque(maxlen=window)  # (local mid, offset, rtt)
        self.estimate: ClockEstimate | None = None

    def add(self, t0_ns: int, t_remote_ns: int, t3_ns: int) -> ClockEstimate:
        """One exchange: sent at local ``t0``, answered with ``t_remote``, received at local ``t3``."""
        for name, value in (("t0", t0_ns), ("t_remote", t_remote_ns), ("t3", t3_ns)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                    or not -_INT64 <= int(value) < _INT64:
                raise ValueError(f"clock exchange: {name} must be an int64 timestamp in ns, "
                                 f"got {str(value)[:40]}")
        t0_ns, t_remote_ns, t3_ns = int(t0_ns), int(t_remote_ns), int(t3_ns)
        if t3_ns < t0_ns:
            raise ValueError(f"reply before request: t0 {t0_ns} > t3 {t3_ns}")
        if not -_INT64 <= t_remote_ns - (t0_ns + t3_ns) // 2 < _INT64:
            raise ValueError("clock exchange: the remote clock is more than 292 years off")
        mid = (t0_ns + t3_ns) // 2
        self._points.append((mid, t_remote_ns - mid, t3_ns - t0_ns))
        self.estimate = self._fit()
        return self.estimate

    def _fit(self) -> ClockEstimate:
        # Offsets may span the whole int64 range: centre them as Python integers first.
        mids, offsets, rtts = (np.array(c, dtype=object) for c in zip(*self._points))
        ref = int(mids[-1])
        x = (mids - ref).astype(np.float64)
        y = (offsets - offsets[-1]).astype(np.float64)  # centred: float64 keeps ns precision
        rtts = rtts.astype(np.float64)
        # Weight fast exchanges more: their offsets are bounded more tightly.
        w = 1.0 / np.maximum(rtts, 1e3)
        if len(x) >= 3 and np.ptp(x) > 0.5e9:
            slope, intercept = np.polyfit(x, y, 1, w=w)
        else:
            slope, intercept = 0.0, float(np.average(y, weights=w))
        residual = float(np.sqrt(np.mean((y - (intercept + slope * x)) ** 2))) if len(x) > 2 else \
            float(rtts.min()) / 2
        fault = ""
        if not MIN_RATE <= 1.0 + slope <= MAX_RATE:
            fault = (f"remote clock runs at {1.0 + slope:.2f}x local time (plausible: "
                     f"{MIN_RATE:g}x to {MAX_RATE:g}x); mapped by its offset alone")
            intercept, slope = float(y[-1]), 0.0
        return ClockEstimate(offset_ns=float(int(offsets[-1])) + intercept, drift_ppm=slope * 1e6,
                             ref_ns=ref, residual_ns=residual, rtt_ns=int(rtts[-1]),
                             exchanges=len(x), fault=fault)

    def offset_at(self, t_local_ns: int) -> float:
        e = self.estimate
        return 0.0 if e is None else e.offset_ns + e.drift_ppm * 1e-6 * (t_local_ns - e.ref_ns)

    def to_local(self, t_remote_ns: int) -> int:
        """A timestamp of the remote clock on the local clock (unchanged before any exchange)."""
        e = self.estimate
        if e is None:
            return int(t_remote_ns)
        b = e.drift_ppm * 1e-6
        # t_remote = t_local + offset_ns + b (t_local - ref)  =>  solve for t_local
        # (b is within [-0.5, 1]: an absurd rate is fitted as no drift, see _fit).
        local = round(e.ref_ns + (int(t_remote_ns) - e.ref_ns - e.offset_ns) / (1.0 + b))
        return max(-_INT64, min(_INT64 - 1, local))


class Pinger:
    """A persistent REQ socket to a node's control endpoint (a fresh connection per exchange
    would put the connect and CURVE handshake into one leg and bias the offset)."""

    def __init__(self, ctl_endpoint: str, context: zmq.Context | None = None) -> None:
        self.endpoint = ctl_endpoint
        self.context = context or zmq.Context.instance()
        self._sock: zmq.Socket | None = None

    def _socket(self) -> zmq.Socket:
        if self._sock is None:
            self._sock = self.context.socket(zmq.REQ)
            self._sock.setsockopt(zmq.LINGER, 0)
            security.connect(self._sock, self.endpoint)
        return self._sock

    def exchange(self, timeout_s: float = 0.5) -> tuple[int, int, int] | None:
        """One ping: ``(t0, t_remote, t3)``, or None if the node did not answer in time."""
        sock = self._socket()
        t0 = time.time_ns()
        sock.send(b'{"cmd": "ping"}')
        if not sock.poll(int(timeout_s * 1000)):
            self.close()  # a REQ socket waiting for a lost reply cannot send again
            return None
        reply = sock.recv()
        t3 = time.time_ns()
        return t0, int(json.loads(reply)["t_host_ns"]), t3

    def best_of(self, n: int = 8, timeout_s: float = 0.5) -> tuple[int, int, int] | None:
        """The fastest of ``n`` exchanges, or None if none was answered."""
        results = [r for r in (self.exchange(timeout_s) for _ in range(n)) if r is not None]
        return min(results, key=lambda r: r[2] - r[0]) if results else None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> "Pinger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
