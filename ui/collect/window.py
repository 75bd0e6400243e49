"""The collect window: live cameras, glove plots, health strip, session panel, record controls and
the services' previews (``ui.collect.previews``: the WAM's predicted futures when it runs).

A thin view over :class:`collector.recording.collect.CollectModel`: every button and hotkey calls a model
method (which returns at once), model events arrive through :class:`ui.bridge.ModelEvents` on the
GUI thread, and a timer at display rate draws the newest frames and plot data.
"""

from __future__ import annotations

import html
import logging

from PySide6 import QtCore, QtGui, QtWidgets

from ui import theme
from ui.bridge import ModelEvents
from ui.sounds import Cues
from ui.collect.camera_grid import QtCameraGrid
from ui.collect.controls import QtRecordControls
from ui.collect.glove_plots import QtGlovePlots, QtHandView
from ui.collect.health_strip import QtHealthStrip
from ui.collect.previews import ServicePreview, open_previews
from ui.collect.session_panel import QtSessionPanel

log = logging.getLogger("ui.collect")

#: Timer rate: twice a camera's 30 fps, so that no frame waits a whole period to be drawn (a
#: 30 Hz timer beating against a 30 fps camera skips and repeats frames).
DISPLAY_FPS = 60
#: What the window asks for on a large screen; a smaller one gets its available area.
PREFERRED_SIZE = (1500, 940)
#: Fits a 1280x720 screen with a title bar and a task bar.
MINIMUM_SIZE = (1024, 600)
#: Below this height the previews and plots go compact, so that the cameras keep the space.
COMPACT_HEIGHT = 880
BANNER_S = 8.0
STATE_LABELS = {"idle": ("READY", theme.LEVEL_COLORS["ok"]), "starting": ("STARTING", theme.TEXT_DIM),
                "recording": ("● REC", theme.RECORD_RED), "stopping": ("SAVING", theme.TEXT_DIM),
                "reset": ("RESET", theme.LEVEL_COLORS["warn"]),
                "calibrating": ("CALIBRATING", theme.LEVEL_COLORS["warn"])}


class QtCollectWindow(QtWidgets.QMainWindow):
    """The operator's main window over ``model`` (opened by the window unless already open)."""

    def __init__(self, model, *, open_model: bool = True, parent=None) -> None:
        super().__init__(parent)
        self.model = model
        self.setWindowTitle("collector — collect")
        self.setMinimumSize(*MINIMUM_SIZE)
        self.cues = Cues(enabled=model.config.session.sounds)
        self.events = ModelEvents(model, self)
        self.events.event.connect(self._on_event)
        self._build()
        self._shortcuts()
        self.fit_to_screen(self.screen().availableGeometry())
        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.PreciseTimer)
        self.timer.timeout.connect(self._redraw)
        self.timer.start(int(1000 / DISPLAY_FPS))
        self._banner_timer = QtCore.QTimer(self, singleShot=True)
        self._banner_timer.timeout.connect(lambda: self.banner.setVisible(False))
        self._closed = False
        self._tick = 0
        if model.opened:
            self._on_opened()
        elif open_model:
            model.open_async()

    # ---- layout ------------------------------------------------------------------------------
    def fit_to_screen(self, available: QtCore.QRect) -> None:
        """Open at :data:`PREFERRED_SIZE`, or at most ``available`` (a screen's free area,
        less the window frame), centred on it."""
        frame = self.frameGeometry().size() - self.geometry().size() if self.isVisible() else \
            QtCore.QSize(0, 0)
        width = max(min(PREFERRED_SIZE[0], available.width() - frame.width()), self.minimumWidth())
        height = max(min(PREFERRED_SIZE[1], available.height() - frame.height()), self.minimumHeight())
        self.resize(width, height)
        self.move(available.x() + (available.width() - width - frame.width()) // 2,
                  available.y() + (available.height() - height - frame.height()) // 2)
        self._fit_layout()

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self._fit_layout()

    def _fit_layout(self) -> None:
        """Short windows: the previews and plots shrink first, the cameras keep the space."""
        compact = self.height() < COMPACT_HEIGHT
        for preview in getattr(self, "previews", []):
            set_compact = getattr(preview.view, "set_compact", None)
            if set_compact is not None:
                set_compact(compact)
        self.plots.plot.setMinimumHeight(90 if compact else 150)
        self.left_column.setStretchFactor(self.cameras, 4 if compact else 3)

    def _build(self) -> None:
        central = QtWidgets.QWidget()
        root = QtWidgets.QVBoxLayout(central)
        root.setContentsMargins(10, 8, 10, 6)
        root.setSpacing(8)

        top = QtWidgets.QHBoxLayout()
        self.prompt = QtWidgets.QLabel()
        self.prompt.setObjectName("prompt")
        self.prompt.setWordWrap(True)
        self.state_pill = QtWidgets.QLabel()
        self.state_pill.setAlignment(QtCore.Qt.AlignCenter)
        self.state_pill.setMinimumWidth(130)
        self.settings_button = QtWidgets.QPushButton("⚙ Settings")
        self.settings_button.clicked.connect(self.open_settings)
        self.calibrate_button = QtWidgets.QPushButton("Calibrate latency")
        self.calibrate_button.setToolTip("Measure each device's capture latency: the cameras film "
                                         "a time code, the gloved hand taps the table")
        self.calibrate_button.clicked.connect(self.open_calibration)
        self.calibration_wizard = None
        top.addWidget(self.prompt, 1)
        top.addWidget(self.state_pill)
        top.addWidget(self.calibrate_button)
        top.addWidget(self.settings_button)
        root.addLayout(top)

        self.banner = QtWidgets.QLabel()
        self.banner.setObjectName("banner")
        self.banner.setWordWrap(True)
        self.banner.setVisible(False)
        root.addWidget(self.banner)

        body = QtWidgets.QHBoxLayout()
        left = QtWidgets.QVBoxLayout()
        self.cameras = QtCameraGrid(self.model)
        left.addWidget(self.cameras, 3)
        # The services' previews (the WAM's predicted futures), once the model is open.
        self.preview_slot = QtWidgets.QVBoxLayout()
        self.previews: list[ServicePreview] = []
        left.addLayout(self.preview_slot)
        lower = QtWidgets.QHBoxLayout()
        self.plots = QtGlovePlots(self.model)
        self.hand = QtHandView(self.model)
        self.hand.setMinimumWidth(260)
        lower.addWidget(self.plots, 3)
        lower.addWidget(self.hand, 1)
        left.addLayout(lower, 2)
        self.left_column = left
        body.addLayout(left, 1)
        right = QtWidgets.QVBoxLayout()
        right.setContentsMargins(0, 0, 0, 0)
        self.controls = QtRecordControls(self.model)
        self.session_panel = QtSessionPanel(self.model)
        right.addWidget(self.controls)
        right.addWidget(self.session_panel, 1)
        side = QtWidgets.QWidget()
        side.setLayout(right)
        # On a short screen the session form scrolls; the Record button and counter stay on top.
        self.side = QtWidgets.QScrollArea()
        self.side.setWidget(side)
        self.side.setWidgetResizable(True)
        self.side.setFrameShape(QtWidgets.QFrame.NoFrame)
        self.side.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarAlwaysOff)
        self.side.setFixedWidth(340 + self.side.verticalScrollBar().sizeHint().width())
        body.addWidget(self.side)
        root.addLayout(body, 1)

        self.health_strip = QtHealthStrip()
        root.addWidget(self.health_strip)
        # Collect and Review side by side: a lab manager can check episodes at the station.
        self.tabs = QtWidgets.QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(central, "Collect")
        self.tabs.addTab(QtWidgets.QWidget(), "Review")
        self.tabs.currentChanged.connect(self._on_tab)
        self.review = None
        self.setCentralWidget(self.tabs)
        self.statusBar().showMessage("Starting devices…  Space record/stop · Backspace discard · "
                                     "S success · F failure · Esc skip reset · Ctrl+, settings")
        self._show_prompt()
        self._on_state("starting-devices")

    def _shortcuts(self) -> None:
        bindings = {
            QtCore.Qt.Key_Space: self.model.toggle_recording,
            QtCore.Qt.Key_Backspace: self.model.discard_episode,
            QtCore.Qt.Key_S: lambda: self._mark("success"),
            QtCore.Qt.Key_F: lambda: self._mark("failure"),
            QtCore.Qt.Key_Escape: self.model.skip_reset,
        }
        self._shortcut_objects = []
        for key, action in bindings.items():
            shortcut = QtGui.QShortcut(QtGui.QKeySequence(key), self)
            shortcut.activated.connect(lambda action=action: self._if_ready(action))
            self._shortcut_objects.append(shortcut)
        settings = QtGui.QShortcut(QtGui.QKeySequence("Ctrl+,"), self)
        settings.activated.connect(self.open_settings)
        self._shortcut_objects.append(settings)

    def open_calibration(self) -> None:
        """The latency calibration wizard over the running session's devices (non-modal: the
        live view goes on; the procedure runs on the wizard model's own thread)."""
        from collector.calibration.cli import calibrate_in_session
        from collector.calibration.wizard import LatencyCalibrationWizard
        from ui.calibration_wizard import QtLatencyCalibrationWizard

        if not self.model.opened:
            self.statusBar().showMessage("The devices are still starting: calibrate once they run")
            return
        if self.calibration_wizard is None:
            # The session as it is when the operator presses Start (a settings change replaces it).
            self.calibration_wizard = QtLatencyCalibrationWizard(LatencyCalibrationWizard(
                lambda seconds, progress: calibrate_in_session(self.model.session, seconds, progress)),
                self)
            self.calibration_wizard.resize(self.size() * 0.9)
            # While it films (an episode of its own) the window says so and records nothing.
            self._wizard_events = ModelEvents(self.calibration_wizard.model, self)
            self._wizard_events.event.connect(self._on_wizard_event)
        self.calibration_wizard.show()
        self.calibration_wizard.raise_()

    def _if_ready(self, action) -> None:
        if self._calibrating():
            self.statusBar().showMessage("The latency calibration is filming: record once it is done", 5000)
        elif self.model.opened:
            action()

    def _on_wizard_event(self, name: str, _data: object) -> None:
        if name == "state":
            self._on_state(self.model.state)

    def _calibrating(self) -> bool:
        """The calibration wizard is filming or analysing (through this window's session)."""
        from collector.calibration.wizard import ANALYSING, FILMING

        wizard = self.calibration_wizard
        return wizard is not None and wizard.model.state in (FILMING, ANALYSING)

    def _on_tab(self, index: int) -> None:
        collecting = index == 0
        # The review tab has keys of its own (S, F, Space...): collect keys act on the collect tab only.
        for shortcut in self._shortcut_objects:
            shortcut.setEnabled(collecting)
        if collecting:
            return
        folder = str(self.model.config.recording.output)
        if self.review is None:
            from ui.review.window import QtReviewWidget

            self.review = QtReviewWidget(folder)
            self.review.message.connect(lambda text: self.statusBar().showMessage(text, 5000))
            self.tabs.blockSignals(True)
            self.tabs.removeTab(1)
            self.tabs.insertTab(1, self.review, "Review")
            self.tabs.setCurrentIndex(1)
            self.tabs.blockSignals(False)
        else:
            self.review.open_folder(folder)  # episodes recorded since are listed too

    def _mark(self, outcome: str) -> None:
        if self.model.last_episode is not None and self.model.state != "recording":
            self.model.mark(outcome)

    # ---- model events ------------------------------------------------------------------------
    def _on_event(self, name: str, data: dict) -> None:
        if name == "opened":
            self._on_opened()
        elif name == "state":
            self._on_state(data["state"])
        elif name == "health":
            self.health_strip.update_health(data.get("devices", []))
            if data.get("error"):
                self.show_banner(data["error"], "bad")
        elif name in ("episode_stopped", "episode_tagged", "episode_discarded", "episode_closed"):
            self.session_panel.show_last(self.model.last_episode)
            self._on_state(self.model.state)
            if name == "episode_stopped":
                self.show_banner("Episode stopped. Mark it: S success, F failure "
                                 "(or leave it unknown); Backspace discards it.", "ok")
            elif name == "episode_discarded":
                self.show_banner("Episode discarded (moved to the trash folder). "
                                 "Space records it again.", "warn")
        elif name == "episode_started" and data.get("trigger", "manual") != "manual":
            how = "a held fist" if data["trigger"] == "gesture" else "your activity"
            self.show_banner(f"Recording: started by {how} (hands-free). It stops the same way; "
                             "Space stops it too.", "ok")
        elif name == "cue":
            self.cues.play(data["kind"])
        elif name == "warning":
            self.show_banner(data["message"], "warn")
        elif name == "error":
            self.cues.play("error")
            self.show_banner(data["message"], "bad")
        elif name == "device_event" and data["kind"] in ("disconnected", "stalled", "error"):
            detail = data.get("detail") or {}
            reason = detail.get("message") or (f"{detail['seconds']} s without data"
                                               if "seconds" in detail else "")
            gap = " The recording continues; the gap is marked in the episode." \
                if self.model.state == "recording" else ""
            what = "stalled" if data["kind"] == "stalled" else "disconnected" \
                if data["kind"] == "disconnected" else "unavailable"
            self.show_banner(f"{data['node']} {what}{': ' + reason if reason else ''}.{gap}", "bad")
        elif name == "device_event" and data["kind"] in ("connected", "resumed"):
            if self.banner.isVisible() and data["node"] in self.banner.text():
                self.show_banner(f"{data['node']} {data['kind']}.", "ok")
        elif name == "session_info":
            self._show_prompt()

    def _on_opened(self) -> None:
        self._close_previews()
        self.previews = open_previews(self.model)
        for preview in self.previews:
            self.preview_slot.addWidget(preview.view)
        # What a camera pane may draw over its image (a provider's ``trajectory(stream)``).
        self.cameras.previews = [p.provider for p in self.previews if p.provider is not None]
        self.cameras.build()
        self.plots.build()
        self.hand.build()
        self._fit_layout()
        self._on_state(self.model.state)
        free = self.model.config.recording.hands_free
        hands_free = {"gesture": f" · hold a fist {free.gesture.hold_s:g} s: record/stop",
                      "always_on": " · always on: episodes cut from activity"}.get(free.mode, "")
        self.statusBar().showMessage("Space record/stop · Backspace discard & re-record · S success · "
                                     "F failure · Esc skip reset · Ctrl+, settings" + hands_free)

    def _close_previews(self) -> None:
        for preview in self.previews:
            preview.close()
            preview.view.setParent(None)
        self.previews = []

    def _on_state(self, state: str) -> None:
        if state == "idle" and self._calibrating():
            state = "calibrating"
        label, color = STATE_LABELS.get(state, ("STARTING DEVICES", theme.TEXT_DIM))
        self.state_pill.setText(label)
        self.state_pill.setStyleSheet(f"border: 2px solid {color}; color: {color}; border-radius: 6px;"
                                      "padding: 6px 10px; font-weight: 700; font-size: 15px;")
        self.controls.set_state(state)
        self.session_panel.set_editable(state not in ("recording", "starting", "stopping"))

    def _show_prompt(self) -> None:
        info = self.model.config.session
        text = info.prompt or f"Task: {info.task}"
        self.prompt.setText(html.escape(text))

    def show_banner(self, text: str, level: str) -> None:
        color = theme.LEVEL_COLORS[level]
        self.banner.setStyleSheet(f"background: {color}22; border: 1px solid {color}; color: {theme.TEXT};")
        self.banner.setText(text)
        self.banner.setVisible(True)
        self._banner_timer.start(int(BANNER_S * 1000 * (2 if level == "bad" else 1)))

    # ---- drawing -----------------------------------------------------------------------------
    def _redraw(self) -> None:
        # Cameras whenever a new frame is there; plots at 15 Hz and text at 5 Hz, which look
        # the same to an operator and leave the CPU to the cameras.
        self._tick += 1
        try:
            self.cameras.refresh()
            if self._tick % 4 == 0:
                self.plots.refresh()
            if self._tick % 6 == 0:
                self.hand.refresh()
            if self._tick % 12 == 0:
                self.session_panel.refresh()
                self.controls.refresh()
        except Exception:
            log.exception("redraw failed")

    # ---- settings and closing ------------------------------------------------------------------
    def open_settings(self) -> None:
        from ui.settings_dialog import QtSettingsDialog

        dialog = QtSettingsDialog(self.model, self)
        dialog.exec()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        if not self._closed:
            self._closed = True
            self.timer.stop()
            if self.model.state == "recording":
                self.statusBar().showMessage("Finishing the episode…")
                QtWidgets.QApplication.processEvents()
            self.events.detach()
            self._close_previews()
            if self.review is not None:
                self.review.close()
            if self.calibration_wizard is not None:
                self.calibration_wizard.close()
            self.model.close()
            self.cues.close()
        super().closeEvent(event)
