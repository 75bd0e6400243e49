"""The latency calibration wizard: a thin Qt view over
:class:`collector.calibration.wizard.LatencyCalibrationWizard`.

    python -m ui.calibration_wizard                          the simulated station
    python -m ui.calibration_wizard --config station.toml    the devices of a config

It fills most of the screen with the host clock as a QR code, redrawn at every display refresh,
cues the taps, and shows each stream's latency when done (the same procedure as
``collector calibrate latency``).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from collector.calibration.wizard import ANALYSING, DONE, FAILED, FILMING, LatencyCalibrationWizard
from ui.bridge import ModelEvents

#: Redraw interval of the code (ms): at least once per refresh of a 60-144 Hz display.
REDRAW_MS = 5


class QtLatencyCalibrationWizard(QtWidgets.QDialog):
    """Shows the wizard model's current step; keeps no state of its own."""

    def __init__(self, model: LatencyCalibrationWizard, parent=None) -> None:
        super().__init__(parent)
        self.model = model
        self.setWindowTitle("Latency calibration")
        self.instructions = QtWidgets.QLabel(wordWrap=True)
        self.instructions.setStyleSheet("font-size: 15px;")
        self.code = QtWidgets.QLabel(alignment=QtCore.Qt.AlignmentFlag.AlignCenter)
        self.code.setStyleSheet("background: white;")
        self.code.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding,
                                QtWidgets.QSizePolicy.Policy.Expanding)
        self.cue = QtWidgets.QLabel("TAP", alignment=QtCore.Qt.AlignmentFlag.AlignCenter)
        self.cue.setMinimumWidth(160)
        self.countdown = QtWidgets.QLabel(alignment=QtCore.Qt.AlignmentFlag.AlignCenter)
        self.countdown.setStyleSheet("font-size: 28px;")
        self.log = QtWidgets.QPlainTextEdit(readOnly=True)
        self.log.setMaximumHeight(130)
        self.start_button = QtWidgets.QPushButton("Start")
        self.close_button = QtWidgets.QPushButton("Close")
        side = QtWidgets.QVBoxLayout()
        side.addWidget(self.cue, 1)
        side.addWidget(self.countdown)
        centre = QtWidgets.QHBoxLayout()
        centre.addWidget(self.code, 4)
        centre.addLayout(side, 1)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.close_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.instructions)
        layout.addLayout(centre, 1)
        layout.addWidget(self.log)
        layout.addLayout(buttons)
        self.start_button.clicked.connect(model.start)
        self.close_button.clicked.connect(self.close)
        self._events = ModelEvents(model, self)
        self._events.event.connect(self._on_event)
        self._timer = QtCore.QTimer(self, interval=REDRAW_MS)
        self._timer.timeout.connect(self._redraw)
        self._timer.start()
        self._on_state()

    def _on_event(self, name: str, data: dict) -> None:
        if name == "state":
            self._on_state()
        elif name == "progress":
            self.log.appendPlainText(data["text"])
        elif name == "result":
            self.log.appendPlainText("\n".join(data["lines"]) + f"\nsaved to {data['saved']}")

    def _on_state(self) -> None:
        state = self.model.state
        self.instructions.setText(self.model.instructions())
        self.start_button.setEnabled(state not in (FILMING, ANALYSING))
        self.start_button.setText("Again" if state in (DONE, FAILED) else "Start")
        if state == DONE:
            self.log.setPlainText("\n".join(self.model.result_lines) + f"\nsaved to {self.model.saved_to}")

    def _redraw(self) -> None:
        # The code is the host clock at this instant: what a camera films is how late it saw it.
        _, code = self.model.timecode()
        side = max(1, min(self.code.width(), self.code.height()) - 8)
        scale = max(1, side // code.shape[0])
        big = np.ascontiguousarray(np.kron(code, np.ones((scale, scale), np.uint8)))
        image = QtGui.QImage(big.data, big.shape[1], big.shape[0], big.shape[1],
                             QtGui.QImage.Format.Format_Grayscale8)
        self.code.setPixmap(QtGui.QPixmap.fromImage(image))
        cue = self.model.tap_cue()
        self.cue.setStyleSheet("font-size: 48px; font-weight: bold; border-radius: 12px; "
                               + ("background: #e8590c; color: white;" if cue else
                                  "background: #dee2e6; color: #868e96;"))
        left = self.model.seconds_left()
        self.countdown.setText(f"{left:4.1f} s" if self.model.state == FILMING else
                               {ANALYSING: "analysing", DONE: "done", FAILED: "failed"}.get(
                                   self.model.state, ""))

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 (Qt's name)
        self._timer.stop()
        self._events.detach()
        super().closeEvent(event)


def main(argv: list[str] | None = None) -> int:
    from collector.calibration.cli import calibrate
    from collector.config import load_config, sim_config

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="station config (default: the simulated station)")
    args = parser.parse_args(argv)
    config = load_config(args.config) if args.config else sim_config(glove_rate_hz=1000.0)
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    wizard = QtLatencyCalibrationWizard(LatencyCalibrationWizard(
        lambda seconds, progress: calibrate(config, seconds, progress)))
    wizard.showMaximized()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
