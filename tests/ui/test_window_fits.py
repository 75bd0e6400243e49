"""The collect window fits a laptop screen: nothing off-screen, the camera pane gets the space."""

import pytest
from PySide6 import QtCore, QtWidgets

from collector.wam.node import service_config


def _visible_in(widget, window) -> bool:
    """``widget`` is shown and lies wholly inside ``window``'s visible area."""
    top_left = widget.mapTo(window, QtCore.QPoint(0, 0))
    rect = QtCore.QRect(top_left, widget.size())
    return widget.isVisible() and window.rect().contains(rect) and not widget.visibleRegion().isEmpty()


@pytest.mark.parametrize("screen", [(1366, 768), (1280, 720)])
def test_window_fits_the_screen(window_factory, small_sim_config, qtbot, tmp_path, screen):
    config = small_sim_config(tmp_path)
    config.services.append(service_config())  # the predicted-futures strip too
    window, model = window_factory(config)
    qtbot.waitUntil(lambda: len(window.previews) == 1, timeout=30_000)
    available = QtCore.QRect(0, 0, *screen)
    window.fit_to_screen(available)
    qtbot.waitUntil(lambda: window.width() <= screen[0] and window.height() <= screen[1], timeout=5_000)
    assert window.minimumWidth() <= 1280 and window.minimumHeight() <= 720
    assert available.contains(window.frameGeometry()) or available.contains(window.geometry())
    QtWidgets.QApplication.processEvents()
    assert _visible_in(window.controls.record, window)
    assert _visible_in(window.session_panel.counter, window)
    # The live camera pane is the largest widget of the window's body.
    camera = window.cameras.width() * window.cameras.height()
    others = [window.previews[0].view, window.plots, window.hand, window.controls, window.session_panel]
    for other in others:
        assert camera > other.width() * other.height(), (type(other).__name__, other.size(),
                                                          window.cameras.size())
    # Nothing clipped: every plot-group button is at least as wide as its text needs.
    for button in window.plots.group_buttons.buttons():
        assert button.width() >= button.sizeHint().width(), button.text()


def test_window_opens_no_larger_than_the_screen(window_factory, small_sim_config, tmp_path):
    window, model = window_factory(small_sim_config(tmp_path))
    available = window.screen().availableGeometry()  # offscreen: 800x800, below the minimum
    assert window.width() <= max(available.width(), window.minimumWidth())
    assert window.height() <= max(available.height(), window.minimumHeight())
    assert (window.width(), window.height()) != (1500, 940)
