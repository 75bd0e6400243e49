"""What the GUI shows of the WAM node, without Qt: the newest prediction, its age, the surprise
trace, and whether the node is alive.

:class:`WamPreview` reads the inference node's ``live`` endpoint on a background thread (never
the GUI thread) and keeps only the newest prediction; a view polls :meth:`WamPreview.state` on a
timer. It is the preview provider of the WAM service (``[[services]] preview =
"collector.wam.preview:WamPreview"``): the GUI loads it by that name and shows it in
:attr:`WamPreview.qt_view`. When there is nothing to show, :attr:`PreviewState.reason` says why in words.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import zmq

from collector.wam.skill import MIN_SCORED, ForecastVerdict, Skill
from collector.wire.bus import LatestSubscriber, node_endpoints, request
from collector.wire.protocol import Sample

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
    #: The node's rolling skill over the still frame (``None``: no prediction scored yet).
    skill: Skill | None = None
    #: Seconds from the source frame's capture to the prediction's arrival here: camera to the
    #: node (maybe on another host), inference, and back.
    round_trip_s: float | None = None
    #: What the running model was trained on and its held-out skill (the node's ``trained_on``).
    trained_on: str = ""


    @property
    def not_a_forecast(self) -> bool:
        """True when the preview has lately been no better than the still frame: the view says
        so and shows the predicted frames greyed, not as a forecast."""
        return self.skill is not None and self.skill.better_than_still is False


class WamPreview(LatestSubscriber):
    """Follows one WAM inference node: a preview provider, loaded by the GUI from the service's
    ``preview`` entry (``[[services]]``). ``endpoint`` is the node's base endpoint, or ``None``
    with ``unavailable_reason`` when no node runs (the supervisor's ``service_errors``).

    The newest prediction and the surprise trace are read by the bus's
    :class:`~collector.wire.bus.LatestSubscriber` thread; :meth:`state` is what a view polls.
    """

    #: The Qt view the GUI shows this provider in (loaded by name, so this module needs no Qt).
    qt_view = "ui.wam_preview:QtWamPreview"

    def __init__(self, endpoint: str | None, *, name: str = "wam", options: dict | None = None,
                 unavailable_reason: str = "no WAM node is running", rate_hz: float | None = None,
                 context: zmq.Context | None = None) -> None:
        self.endpoint = endpoint
        self.name = name
        self.options = dict(options or {})
        self.unavailable_reason = unavailable_reason
        self.rate_hz = float(rate_hz or self.options.get("rate_hz", 8.0))
        #: The color stream the predictions are of (from the node; the options' until it says).
        self.camera: str | None = self.options.get("camera") or None
        self._last_message = 0.0       # monotonic time of the last message from the node
        self._prediction_received_ns = 0  # when the newest prediction arrived (this host's clock)
        self._trained_on = ""
        self._node_state, self._node_message = "", ""
        self._trace: deque[tuple[float, float, float]] = deque()
        self._skill_db = float("nan")  # the newest surprise sample's (NaN: not known yet)
        # Follows every published skill, so the verdict has the node's hysteresis.
        self._verdict = ForecastVerdict()
        self._started = time.monotonic()
        super().__init__([node_endpoints(endpoint).live] if endpoint else [], context=context)
        if endpoint:
            # Status events sent before we connected are gone: ask once for the current state.
            threading.Thread(target=self._ask_status, name="wam-preview-status", daemon=True).start()

    def _ask_status(self) -> None:
        try:
            reply = request(node_endpoints(self.endpoint).ctl, "status", timeout_s=1.0,
                            context=self._context)
        except (TimeoutError, ValueError):
            return
        with self._lock:
            self._note_status(reply)

    def _note_status(self, detail: dict) -> None:
        self._node_state = str(detail.get("state", "") or "")
        self._node_message = str(detail.get("message", "") or "")
        self.camera = detail.get("camera") or self.camera
        self._trained_on = str(detail.get("trained_on") or self._trained_on)
        self._last_message = time.monotonic()

    def _on_sample(self, sample: Sample) -> None:
        # On the reader thread, under the lock.
        self._last_message = time.monotonic()
        if sample.stream.endswith("/prediction"):
            self._prediction_received_ns = time.time_ns()
            super()._on_sample(sample)
        elif sample.stream.endswith("/surprise"):
            f = sample.fields
            self._trace.append((sample.t_host_ns / 1e9, float(f["score"]), float(f["baseline"])))
            # Nodes older than the live skill send no skill_db.
            self._skill_db = float(f["skill_db"]) if "skill_db" in f else float("nan")
            self._verdict.update(self._skill_db)
            while self._trace and self._trace[-1][0] - self._trace[0][0] > TRACE_S:
                self._trace.popleft()

    def _take_status_events(self) -> None:
        for event in self.take_events():
            if event.kind == "status":
                with self._lock:
                    self._note_status(event.detail)
            else:
                with self._lock:
                    self._last_message = time.monotonic()

    def state(self) -> PreviewState:
        """What to show now; cheap, safe from any thread."""
        if not self.endpoint:
            return PreviewState(False, self.unavailable_reason)
        self._take_status_events()
        now_mono, now_ns = time.monotonic(), time.time_ns()
        with self._lock:
            newest = next((s for name, s in self._latest.items() if name.endswith("/prediction")), None)
            last, trace = self._last_message, list(self._trace)
            node_state, node_message = self._node_state, self._node_message
            received_ns, trained_on = self._prediction_received_ns, self._trained_on
            skill_db, verdict = self._skill_db, self._verdict.better
        prediction = Prediction.from_sample(newest) if newest is not None else None
        t, scores, baselines = (np.array(column, np.float64) for column in zip(*trace)) if trace \
            else (np.empty(0), np.empty(0), np.empty(0))
        common = dict(trace_t=t, trace_score=scores, trace_baseline=baselines, node_state=node_state,
                      surprise=float(scores[-1]) if trace else None,
                      surprise_baseline=trace[-1][2] if trace else None, trained_on=trained_on,
                      round_trip_s=(received_ns - newest.fields["source_t_host_ns"].item()) / 1e9
                      if newest is not None else None,
                      skill=_skill(skill_db, len(trace), verdict) if trace else None)
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

    def trajectory(self, stream: str) -> np.ndarray | None:
        """The predicted hand path over the color ``stream`` (``"cam0/color"``, or a node name),
        (K, 2) pixels of its image; ``None`` when there is none to draw on it (the predictions
        are of another camera, or there is no prediction)."""
        camera = self.camera
        if not camera or stream not in (camera, camera.split("/", 1)[0]):
            return None
        state = self.state()
        return state.prediction.hand_uv if state.available and state.prediction is not None else None


def _skill(skill_db: float, scored: int, verdict: bool | None) -> Skill:
    """The node's published skill: known once the node says a number (it pools more scores than
    this preview may have seen, having run longer); ``verdict`` from the skill's history."""
    if np.isfinite(skill_db):
        return Skill(skill_db, max(scored, MIN_SCORED), verdict=verdict)
    return Skill(float("nan"), min(scored, MIN_SCORED - 1))
