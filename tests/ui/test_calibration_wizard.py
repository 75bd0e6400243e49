"""The calibration wizard shows a readable time code of the host clock, cues taps, and shows the
procedure's result or its error (the procedure itself is tested in tests/collector/calibration)."""

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from collector.calibration.wizard import DONE, FAILED, FILMING, LatencyCalibrationWizard
from ui.calibration_wizard import QtLatencyCalibrationWizard

CALIBRATION = {"streams": {
    "cam0/color": {"latency_ms": 1.11, "uncertainty_ms": 0.02, "p95_ms": 1.92, "jitter_ms": 0.53,
                   "method": "timecode", "frames": 590},
    "glove/hand": {"latency_ms": 3.8, "uncertainty_ms": 0.35, "offset_ms": 2.69, "method": "taps",
                   "taps": 14, "relative_to": "cam0/color"}},
    "display": {"refresh_ms": 16.683, "delay_ms": 16.4, "pipeline_ms_stated": 8.0}}


def grabbed_code(view) -> str:
    image = view.code.grab().toImage()
    image = image.convertToFormat(image.Format.Format_RGB888)
    rgb = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    rgb = rgb[:, :image.width() * 3].reshape(image.height(), image.width(), 3)
    return cv2.QRCodeDetector().detectAndDecode(np.ascontiguousarray(rgb))[0]


def test_the_wizard_shows_the_host_clock_and_the_result(qtbot):
    def procedure(seconds, progress):
        progress("decoding cam0/color's time codes")
        return CALIBRATION, "/tmp/station.json"

    model = LatencyCalibrationWizard(procedure, seconds=20)
    view = QtLatencyCalibrationWizard(model)
    qtbot.addWidget(view)
    view.resize(1366, 768)
    view.show()
    qtbot.waitUntil(lambda: view.code.pixmap() is not None and not view.code.pixmap().isNull())
    before = time.time_ns()
    texts = []
    qtbot.waitUntil(lambda: bool(texts.append(grabbed_code(view)) or texts[-1]))
    shown = int(texts[-1])
    # The code is the host clock when it was drawn (a redraw every few ms).
    assert before - 1_000_000_000 < shown <= time.time_ns()
    assert "Point every camera at this screen" in view.instructions.text()
    view.start_button.click()
    qtbot.waitUntil(lambda: model.state == DONE)
    qtbot.waitUntil(lambda: "glove/hand: latency 3.80 ± 0.35 ms" in view.log.toPlainText())
    assert "saved to /tmp/station.json" in view.log.toPlainText()
    assert view.start_button.text() == "Again" and view.start_button.isEnabled()


def test_a_failed_procedure_says_what_to_do(qtbot):
    def procedure(seconds, progress):
        raise ValueError("cam0/color: only 3 frames showed a readable time code (need 10); "
                         "point it at the time-code screen")

    model = LatencyCalibrationWizard(procedure)
    view = QtLatencyCalibrationWizard(model)
    qtbot.addWidget(view)
    view.start_button.click()
    qtbot.waitUntil(lambda: model.state == FAILED)
    qtbot.waitUntil(lambda: "point it at the time-code screen" in view.instructions.text())


def test_the_collect_window_calibrates_with_its_running_session(window_factory, small_sim_config,
                                                                qtbot, tmp_path):
    """The window's Calibrate button opens the wizard over the devices the window already runs
    (no second session opens a camera); the live view keeps drawing while it films, and the
    calibration episode goes to the trash once analysed."""
    config = small_sim_config(tmp_path / "out")
    config.nodes[0].options.update(width=320, height=240, scene="taps", timecode_screen=True,
                                   screen_refresh_hz=59.5)
    config.nodes[1].options.update(scene="taps")
    window, model = window_factory(config)
    window.calibrate_button.click()
    wizard = window.calibration_wizard
    assert wizard.isVisible() and not wizard.isModal()
    wizard.model.seconds = 6.0  # ~4 taps: enough for the procedure, not for accuracy
    wizard.start_button.click()
    qtbot.waitUntil(lambda: wizard.model.state == FILMING)
    # The window says what the devices are doing, and records nothing meanwhile.
    qtbot.waitUntil(lambda: window.state_pill.text() == "CALIBRATING")
    assert not window.controls.record.isEnabled()
    drawn = window._tick
    qtbot.waitUntil(lambda: window._tick > drawn + 10)  # the live view is not blocked
    qtbot.waitUntil(lambda: wizard.model.state in (DONE, FAILED), timeout=120_000)
    assert wizard.model.state == DONE, wizard.model.error
    qtbot.waitUntil(lambda: window.state_pill.text() == "READY" and window.controls.record.isEnabled())
    qtbot.waitUntil(lambda: "glove/hand: latency" in wizard.log.toPlainText())
    assert Path(wizard.model.saved_to).is_file()
    episodes = [p for p in (tmp_path / "out").rglob("*.h5")]
    assert episodes and all(".trash" in p.parts for p in episodes)
