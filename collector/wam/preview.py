"""What the GUI shows of the WAM node, without Qt: the newest prediction, its age, the surprise
trace, and whether the node is alive.

:class:`WamPreview` reads the inference node's ``live`` endpoint on a background thread (never
the GUI thread) and keeps only the newest prediction; a view polls :meth:`WamPreview.state` on a
timer. When there is nothing to show, :attr:`PreviewState.reason` says why in words.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import zmq

from collector.wire.bus import LIVE_HWM, Subscriber, node_endpoints, request
from collector.wire.protocol import Event, Sample

#: A prediction older than this many node periods (at least 1 s) makes the preview "slow".
SLOW_PERIODS = 4
#: Nothing from the node for this long: it is considered gone.
DEAD_AFTER_S = 3.0
#: Seconds of surprise scores kept for the trace.
TRACE_S = 60.0


@dataclass
class Prediction:
    """One prediction as the node published it (arrays are read-only views of the message)."""

    frames: np.ndarray        # (K, S, S, 3) uint8
    actions: np.ndarray       # (K, A) float32, raw units
    horizons_s: np.ndarray    # (K,)
    hand_uv: np.ndarray       # (K, 2) pixels of the source camera image, NaN where unknown
    source_seq: int
    source_t_host_ns: int
    t_host_ns: int
    inference_ms: float

    @classmethod
    def from_sample(cls, sample: Sample) -> "Prediction":
        f = sample.fields
        return cls(f["frames"], f["actions"], f["horizons_s"], f["hand_uv"],
                   int(f["source_seq"]), int(f["source_t_host_ns"]), sample.t_host_ns,
                   float(f["inference_ms"]))

    def frames_at(self, horizons_s) -> list[tuple[float, np.ndarray]]:
        """``(horizon, frame)`` nearest each wanted horizon (each step at most once)."""
        picked = []
        for h in horizons_s:
            k = int(np.argmin(np.abs(self.horizons_s - h)))
            if not picked or picked[-1][0] != float(self.horizons_s[k]):
                picked.append((float(self.horizons_s[k]), self.frames[k]))
        return picked


@dataclass
class PreviewState:
    """A snapshot for the view: ``available`` false means show ``reason`` instead."""

    available: bool
    reason: str = ""
    #: ``ok``, ``slow`` (predictions late), ``unavailable``.
    health: str = "unavailable"
    prediction: Prediction | None = None
    #: Seconds between the source frame's capture and now.
    age_s: float | None = None
    surprise: float | None = None
    surprise_baseline: float | None = None
    #: (N,) times (s, host clock) and scores of the recent surprise trace.
    trace_t: np.ndarray = field(default_factory=lambda: np.empty(0))
    trace_score: np.ndarray = field(default_factory=lambda: np.empty(0))
    #: The same for "nothing moves" (the source frame compared with what came).
    trace_baseline: np.ndarray = field(default_factory=lambda: np.empty(0))
    node_state: str = ""


class WamPreview:
    """Follows one WAM inference node. ``endpoint`` is its base endpoint, or ``None`` with
    ``unavailable_reason`` when no node runs (e.g. ``Supervisor.wam_error``)."""

    def __init__(self, endpoint: str | None, *, unavailable_reason: str = "no WAM node is running",
                 rate_hz: float = 8.0, context: zmq.Context | None = None) -> None:
        self.endpoint = endpoint
        self.unavailable_reason = unavailable_reason
        self.rate_hz = rate_hz
        self._context = context or zmq.Context.instance()
        self._lock = threading.Lock()
        self._prediction: Prediction | None = None
        self._last_message = 0.0       # monotonic time of the last message from the node
        self._node_state, self._node_message = "", ""
        self._trace: deque[tuple[float, float, float]] = deque()
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = None
        if endpoint:
            self._thread = threading.Thread(target=self._run, name="wam-preview", daemon=True)
            self._thread.start()

    @classmethod
    def for_supervisor(cls, supervisor, **kwargs) -> "WamPreview":
        """Follow the node a started :class:`~collector.recording.supervisor.Supervisor` runs (a restarted
        node keeps its endpoint, so the preview reconnects by itself), or say why there is none."""
        return cls(supervisor.wam_endpoint, rate_hz=supervisor.config.wam.rate_hz,
                   unavailable_reason=supervisor.wam_error or "no WAM node is running", **kwargs)

    def _run(self) -> None:
        sub = Subscriber([node_endpoints(self.endpoint).live], hwm=LIVE_HWM, context=self._context)
        try:
            # Status events sent before we connected are gone: ask once for the current state.
            reply = request(node_endpoints(self.endpoint).ctl, "status", timeout_s=1.0, context=self._context)
            with self._lock:
                self._node_state, self._node_message = reply.get("state", ""), reply.get("message", "")
                self._last_message = time.monotonic()
        except (TimeoutError, ValueError):
            pass
        try:
            while not self._stop.is_set():
                message = sub.receive(100)
                if message is None:
                    continue
                now = time.monotonic()
                with self._lock:
                    self._last_message = now
                    if isinstance(message, Sample) and message.stream.endswith("/prediction"):
                        self._prediction = Prediction.from_sample(message)
                    elif isinstance(message, Sample) and message.stream.endswith("/surprise"):
                        f = message.fields
                        self._trace.append((message.t_host_ns / 1e9, float(f["score"]), float(f["baseline"])))
                        while self._trace and self._trace[-1][0] - self._trace[0][0] > TRACE_S:
                            self._trace.popleft()
                    elif isinstance(message, Event) and message.kind == "status":
                        self._node_state = str(message.detail.get("state", ""))
                        self._node_message = str(message.detail.get("message", ""))
        finally:
            sub.close()

    def state(self) -> PreviewState:
        """What to show now; cheap, safe from any thread."""
        if not self.endpoint:
            return PreviewState(False, self.unavailable_reason)
        now_mono, now_ns = time.monotonic(), time.time_ns()
        with self._lock:
            prediction, last, trace = self._prediction, self._last_message, list(self._trace)
            node_state, node_message = self._node_state, self._node_message
        t, scores, baselines = (np.array(column, np.float64) for column in zip(*trace)) if trace \
            else (np.empty(0), np.empty(0), np.empty(0))
        common = dict(trace_t=t, trace_score=scores, trace_baseline=baselines, node_state=node_state,
                      surprise=float(scores[-1]) if trace else None,
                      surprise_baseline=trace[-1][2] if trace else None)
        silent_s = now_mono - (last or self._started)
        if silent_s > DEAD_AFTER_S:
            what = "not responding" if last else "not started yet"
            return PreviewState(False, f"inference node {what} ({silent_s:.0f} s without a message)",
                                **common)
        if prediction is None:
            reason = {"warming_up": "warming up", "waiting": "waiting",
                      "error": "inference failed"}.get(node_state, "waiting for the first prediction")
            return PreviewState(False, f"{reason}: {node_message}" if node_message else reason, **common)
        age_s = (now_ns - prediction.source_t_host_ns) / 1e9
        if node_state in ("waiting", "error") and node_message:
            return PreviewState(False, node_message, prediction=prediction, age_s=age_s, **common)
        slow = age_s > max(1.0, SLOW_PERIODS / self.rate_hz)
        return PreviewState(True, f"prediction is {age_s:.1f} s old" if slow else "",
                            "slow" if slow else "ok", prediction, age_s, **common)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
