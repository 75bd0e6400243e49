"""The latency calibration wizard's model (Qt-free): what the window's wizard shows and does.

Steps: ``ready`` (what to do) -> ``filming`` (the time code on screen, a countdown, a cue to tap)
-> ``analysing`` -> ``done`` (each stream's latency ± uncertainty, saved for the station) or
``failed`` (what to do about it). The view paints :meth:`LatencyCalibrationWizard.timecode` at
every display refresh: the code shows the host clock at the moment it is drawn, which is what the
cameras film (:mod:`collector.calibration.latency`). The procedure itself is a callable, by
default :func:`collector.calibration.cli.calibrate` (a calibration recording of the station's
devices, analysed and saved), so tests and other front ends can drive the same steps.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

import cv2
import numpy as np

from collector.calibration.procedure import DEFAULT_SECONDS, report_lines

log = logging.getLogger("collector.calibration.wizard")

Listener = Callable[[str, dict[str, Any]], None]
#: ``procedure(seconds, progress) -> (calibration, saved path)``.
Procedure = Callable[[float, Callable[[str], None]], tuple[dict[str, Any], Any]]

READY, FILMING, ANALYSING, DONE, FAILED = "ready", "filming", "analysing", "done", "failed"
#: The operator is cued to tap this often (a tap a second or so: ~14 in 20 s).
TAP_EVERY_S = 1.4
#: Modules of the drawn code's quiet zone.
QUIET_MODULES = 2


class LatencyCalibrationWizard:
    """The wizard's state; events ``state``, ``progress`` and ``result`` go to subscribers
    (from a background thread: a Qt view re-emits them with ``ui.bridge.ModelEvents``)."""

    def __init__(self, procedure: Procedure, seconds: float = DEFAULT_SECONDS,
                 clock_ns: Callable[[], int] = time.time_ns) -> None:
        self.procedure = procedure
        self.seconds = float(seconds)
        self.clock_ns = clock_ns
        self.state = READY
        self.progress: list[str] = []
        self.result_lines: list[str] = []
        self.error = ""
        self.saved_to = ""
        self._started_ns = 0
        self._listeners: list[Listener] = []
        self._encoder = cv2.QRCodeEncoder.create()
        self._thread: threading.Thread | None = None

    # ---- observers ---------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event, data)`` on every event; returns the unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _emit(self, event: str, **data: Any) -> None:
        for listener in list(self._listeners):
            try:
                listener(event, data)
            except Exception:
                log.exception("wizard listener failed on %s", event)

    def _set_state(self, state: str) -> None:
        self.state = state
        self._emit("state", state=state)

    # ---- what the view shows -----------------------------------------------------------------
    def timecode(self, now_ns: int | None = None) -> tuple[int, np.ndarray]:
        """The host time to show now and its QR code (uint8, 0 black / 255 white, one pixel per
        module, quiet zone included): the view scales it up without smoothing."""
        value = int(self.clock_ns() if now_ns is None else now_ns)
        code = self._encoder.encode(str(value))
        return value, np.pad(code, QUIET_MODULES, constant_values=255)

    def seconds_left(self) -> float:
        """Filming time left (0 outside filming)."""
        if self.state != FILMING:
            return 0.0
        return max(0.0, self.seconds - (self.clock_ns() - self._started_ns) / 1e9)

    def tap_cue(self) -> bool:
        """Whether to cue a tap now (the first ~0.25 s of every :data:`TAP_EVERY_S`)."""
        if self.state != FILMING:
            return False
        return ((self.clock_ns() - self._started_ns) / 1e9) % TAP_EVERY_S < 0.25

    def instructions(self) -> str:
        """One paragraph for the current step."""
        return {
            READY: "Point every camera at this screen (the code must be readable, at arm's length "
                   "is fine) and keep your gloved hand in view of the first camera, resting on "
                   f"the table. Then press Start: for {self.seconds:.0f} s, tap the table firmly "
                   "each time the cue flashes.",
            FILMING: "Tap the table firmly when the cue flashes; keep the code in view.",
            ANALYSING: "Reading the time codes and the taps...",
            DONE: "Calibrated. These latencies are applied to every episode recorded from now on.",
            FAILED: "The calibration did not succeed: " + self.error,
        }[self.state]

    # ---- actions -----------------------------------------------------------------------------
    def start(self) -> None:
        """Run the procedure on a background thread (never on the caller's: a GUI stays live)."""
        if self.state in (FILMING, ANALYSING):
            return
        self.progress, self.result_lines, self.error, self.saved_to = [], [], "", ""
        self._started_ns = self.clock_ns()
        self._set_state(FILMING)
        self._thread = threading.Thread(target=self._run, name="latency-calibration", daemon=True)
        self._thread.start()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for a started procedure to end; True if it has."""
        if self._thread is not None:
            self._thread.join(timeout_s)
            return not self._thread.is_alive()
        return True

    def _on_progress(self, text: str) -> None:
        if self.state == FILMING and text.startswith(("decoding", "finding")):
            self._set_state(ANALYSING)
        self.progress.append(text)
        self._emit("progress", text=text)

    def _run(self) -> None:
        try:
            calibration, saved = self.procedure(self.seconds, self._on_progress)
        except Exception as exc:  # the message is the operator's: shown, not raised
            self.error = str(exc) or type(exc).__name__
            self._set_state(FAILED)
            return
        self.result_lines = report_lines(calibration)
        self.saved_to = str(saved)
        self._emit("result", lines=self.result_lines, saved=self.saved_to)
        self._set_state(DONE)
