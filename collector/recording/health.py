"""Stream health: what receivers count per stream, and how a display judges it.

The recorder keeps a :class:`StreamHealth` per stream (it sees every sample); the session turns
its status into :class:`StreamStatus` objects with a level (ok / warn / bad) and a reason, which
the CLI's status line and the GUI's health strip show.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from collector.wire.bus import StreamCounters

#: Window over which per-stream rates are measured.
RATE_WINDOW_S = 2.0


@dataclass
class StreamHealth(StreamCounters):
    """The seq counters a :class:`~collector.wire.bus.SeqTracker` keeps, plus receive timing."""

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


#: Levels in increasing order of trouble.
LEVELS = ("ok", "warn", "bad")
#: Node states (from node events and process checks) and the level each one means.
STATE_LEVELS = {"connected": "ok", "running": "ok", "stalled": "warn", "restarted": "warn",
                "starting": "warn", "disconnected": "bad", "error": "bad", "exited": "bad"}
DISPLAY_LATENCY_WARN_MS = 100.0
DISPLAY_LATENCY_BAD_MS = 500.0
SKEW_BAD_MS = 250.0
#: A loss of samples keeps a stream amber for this long.
LOSS_RECENT_S = 10.0


def worst(levels) -> str:
    return max(levels, key=LEVELS.index, default="ok")


@dataclass
class StreamView:
    """One stream as the health strip shows it: recorder counters plus display-side timing."""

    status: StreamStatus
    kind: str = ""
    display_latency_ms: float | None = None
    #: Capture-time distance to the master camera's nearest frame (None for the master itself).
    skew_ms: float | None = None
    #: Samples were lost within the last LOSS_RECENT_S (older losses are counted, not flagged).
    recent_loss: bool = False

    @property
    def name(self) -> str:
        return self.status.name

    @property
    def period_ms(self) -> float:
        return 1000.0 / self.status.nominal_hz if self.status.nominal_hz else 0.0

    def problems(self) -> list[tuple[str, str]]:
        """``(level, text)`` for everything wrong with this stream, worst first."""
        s, found = self.status, []
        if s.age_s is None or s.age_s > 1.0:
            found.append(("bad", s.problem))
        elif s.nominal_hz and s.rate_hz < 0.9 * s.nominal_hz:
            level = "bad" if s.rate_hz < 0.5 * s.nominal_hz else "warn"
            found.append((level, f"{s.rate_hz:.1f} Hz, expected {s.nominal_hz:g} Hz"))
        if self.recent_loss:
            found.append(("warn", f"{s.missing} samples lost in {s.gaps} gaps, the last "
                          f"within {LOSS_RECENT_S:g} s"))
        if self.display_latency_ms is not None and self.display_latency_ms > DISPLAY_LATENCY_WARN_MS:
            level = "bad" if self.display_latency_ms > DISPLAY_LATENCY_BAD_MS else "warn"
            found.append((level, f"display {self.display_latency_ms:.0f} ms behind capture"))
        if self.skew_ms is not None:
            # Free-running devices are up to half a frame apart; more means a clock or a queue.
            allowed = 0.5 * self.period_ms + 25.0
            if self.skew_ms > allowed:
                level = "bad" if self.skew_ms > SKEW_BAD_MS else "warn"
                found.append((level, f"{self.skew_ms:.0f} ms from the master camera "
                              f"(allowed {allowed:.0f} ms)"))
        return sorted(found, key=lambda p: -LEVELS.index(p[0]))

    @property
    def level(self) -> str:
        return worst(level for level, _ in self.problems())


@dataclass
class DeviceHealth:
    """A device node's health: its connection state and its streams."""

    node: str
    state: str
    streams: list[StreamView] = field(default_factory=list)

    def problems(self) -> list[tuple[str, str]]:
        found = []
        state_level = STATE_LEVELS.get(self.state.split()[0], "warn")
        if state_level != "ok":
            found.append((state_level, f"{self.node} {self.state}"))
        for stream in self.streams:
            found += [(level, f"{stream.name}: {text}") for level, text in stream.problems()]
        return sorted(found, key=lambda p: -LEVELS.index(p[0]))

    @property
    def level(self) -> str:
        return worst(level for level, _ in self.problems())

    @property
    def summary(self) -> str:
        """One line: what is wrong, or that all is well."""
        problems = self.problems()
        return "; ".join(text for _, text in problems) if problems else f"{self.node}: all streams healthy"


class HealthBoard:
    """Turns the recorder's status and the live feed into one :class:`DeviceHealth` per node.

    The recorder counts what it received (rates, gaps, data age); the live feed adds what the
    display sees (capture-to-screen latency, skew to the master camera). A loss of samples flags
    its stream for :data:`LOSS_RECENT_S`, then stays counted but no longer amber.
    """

    def __init__(self, specs: dict, nodes: list[str], *, master_stream: str = "",
                 ignore_nodes: list[str] = ()) -> None:
        self.specs = specs
        self.nodes = list(nodes)
        self.master_stream = master_stream
        self.ignore = set(ignore_nodes)
        self._losses: dict[str, tuple[int, float]] = {}  # stream -> (missing seen, when it grew)

    def assess(self, status: dict, live=None) -> list[DeviceHealth]:
        """Health of every node from a recorder ``status`` reply (with the supervisor's
        ``processes``) and, when given, a :class:`~collector.recording.live.LiveFeed`."""
        node_states, processes = status.get("nodes", {}), status.get("processes", {})
        master = (status.get("episode") or {}).get("master") or self._master()
        latest = live.latest() if live is not None else {}
        now = time.time_ns()
        devices: dict[str, DeviceHealth] = {}
        for node in self.nodes:
            if node in self.ignore:
                continue
            process = processes.get(node, "running")
            state = node_states.get(node, "starting") if process == "running" else process
            devices[node] = DeviceHealth(node, state)
        for name, s in status.get("streams", {}).items():
            node = name.split("/", 1)[0]
            if node in self.ignore:
                continue
            if node not in devices:
                devices[node] = DeviceHealth(node, node_states.get(node, "connected"))
            sample = latest.get(name)
            skew = None
            if live is not None and master and name != master and self._comparable(name, master):
                skew = live.skew_ms(name, master)
            devices[node].streams.append(StreamView(
                StreamStatus(name=name, rate_hz=s["rate_hz"], nominal_hz=s["nominal_hz"],
                             received=s["received"], gaps=s["gaps"], missing=s["missing"],
                             latency_ms=s["latency_ms"], age_s=s["age_s"]),
                kind=self.specs[name].kind if name in self.specs else "",
                display_latency_ms=(now - sample.t_host_ns) / 1e6 if sample else None,
                recent_loss=self._lost_recently(name, s["missing"]), skew_ms=skew))
        return list(devices.values())

    def _lost_recently(self, stream: str, missing: int) -> bool:
        seen, since = self._losses.get(stream, (0, 0.0))
        if missing > seen:
            self._losses[stream] = (missing, time.monotonic())
            return True
        return bool(since) and time.monotonic() - since < LOSS_RECENT_S

    def _master(self) -> str | None:
        if self.master_stream:
            return self.master_stream
        colors = sorted(n for n, s in self.specs.items() if s.kind == "color")
        return colors[0] if colors else None

    def _comparable(self, stream: str, master: str) -> bool:
        """Skew means something for streams sampled at least as often as the master camera."""
        spec, ref = self.specs.get(stream), self.specs.get(master)
        return bool(spec and ref and spec.rate_hz >= 0.9 * ref.rate_hz)
