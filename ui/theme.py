"""The app's look: a dark instrument palette, one stylesheet, and the colours of health levels."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6 import QtGui, QtWidgets

BACKGROUND = "#16181d"
PANEL = "#1f2229"
PANEL_RAISED = "#272b34"
BORDER = "#343944"
TEXT = "#e6e8ee"
TEXT_DIM = "#8b93a5"
ACCENT = "#4c8dff"
LEVEL_COLORS = {"ok": "#3fb950", "warn": "#e3b341", "bad": "#f85149"}
RECORD_RED = "#e5484d"
OUTCOME_COLORS = {"success": "#3fb950", "failure": "#f85149", "unknown": "#8b93a5"}
#: Distinguishable curve colours for plots (dark background).
CURVE_COLORS = ["#4c8dff", "#f0883e", "#3fb950", "#db61a2", "#e3b341", "#56d4dd", "#a371f7",
                "#ff7b72", "#7ee787", "#ffa657", "#79c0ff", "#d2a8ff", "#f2cc60", "#9be9a8",
                "#ffb3c7", "#b3d4ff", "#c9d1d9", "#ffdf5d", "#8ddb8c", "#ff9bce"]

STYLESHEET = f"""
QWidget {{ background: {BACKGROUND}; color: {TEXT}; font-size: 13px; }}
QFrame#panel, QGroupBox {{ background: {PANEL}; border: 1px solid {BORDER}; border-radius: 8px; }}
QGroupBox {{ margin-top: 14px; padding-top: 8px; font-weight: 600; }}
QGroupBox::title {{ subcontrol-origin: margin; left: 10px; padding: 0 4px; color: {TEXT_DIM}; }}
QLabel {{ background: transparent; border: none; }}
QLabel#dim {{ color: {TEXT_DIM}; }}
QLabel#prompt {{ font-size: 22px; font-weight: 600; padding: 6px 12px; }}
QLabel#big {{ font-size: 30px; font-weight: 700; font-family: "DejaVu Sans Mono", monospace; }}
QLabel#banner {{ border-radius: 6px; padding: 6px 10px; font-weight: 600; }}
QLineEdit, QComboBox, QPlainTextEdit, QSpinBox, QDoubleSpinBox, QTableWidget {{
    background: {PANEL_RAISED}; border: 1px solid {BORDER}; border-radius: 5px; padding: 4px 6px; }}
QComboBox QAbstractItemView {{ background: {PANEL_RAISED}; selection-background-color: {ACCENT}; }}
QPushButton {{ background: {PANEL_RAISED}; border: 1px solid {BORDER}; border-radius: 6px;
    padding: 7px 14px; font-weight: 600; }}
QPushButton:hover {{ border-color: {ACCENT}; }}
QPushButton:disabled {{ color: #5c6370; border-color: #2a2e36; }}
QPushButton#record {{ background: {RECORD_RED}; border: none; font-size: 18px; padding: 14px 18px; }}
QPushButton#record[recording="true"] {{ background: #3a3f4b; border: 2px solid {RECORD_RED}; }}
QPushButton#record:disabled {{ background: #4a2a2e; color: #8a7f84; }}
QPushButton#success {{ background: #1f3b2a; border-color: #2f6f43; }}
QPushButton#failure {{ background: #45201f; border-color: #8a2f2c; }}
QProgressBar {{ background: {PANEL_RAISED}; border: 1px solid {BORDER}; border-radius: 4px;
    height: 8px; text-align: center; font-size: 10px; }}
QProgressBar::chunk {{ background: {ACCENT}; border-radius: 4px; }}
QTabWidget::pane {{ border: 1px solid {BORDER}; border-radius: 6px; }}
QTabBar::tab {{ background: {PANEL}; padding: 6px 14px; border: 1px solid {BORDER}; }}
QTabBar::tab:selected {{ background: {PANEL_RAISED}; color: {TEXT}; }}
QToolTip {{ background: {PANEL_RAISED}; color: {TEXT}; border: 1px solid {BORDER}; }}
QStatusBar {{ color: {TEXT_DIM}; }}
"""


def apply(app: QtWidgets.QApplication) -> None:
    """Style the whole application (and pyqtgraph) once, before any window is built."""
    app.setStyle("Fusion")
    palette = QtGui.QPalette()
    for role, color in ((QtGui.QPalette.Window, BACKGROUND), (QtGui.QPalette.Base, PANEL_RAISED),
                        (QtGui.QPalette.Text, TEXT), (QtGui.QPalette.WindowText, TEXT),
                        (QtGui.QPalette.Button, PANEL_RAISED), (QtGui.QPalette.ButtonText, TEXT),
                        (QtGui.QPalette.Highlight, ACCENT), (QtGui.QPalette.ToolTipBase, PANEL_RAISED),
                        (QtGui.QPalette.ToolTipText, TEXT)):
        palette.setColor(role, QtGui.QColor(color))
    app.setPalette(palette)
    app.setStyleSheet(STYLESHEET)
    configure_pyqtgraph()


def configure_pyqtgraph() -> None:
    # Row-major images are what cameras deliver: no transpose per frame.
    pg.setConfigOptions(imageAxisOrder="row-major", background=PANEL, foreground=TEXT_DIM,
                        antialias=False)


def dot(level: str, size: int = 10) -> str:
    """A coloured dot as rich text, for labels."""
    return f'<span style="color:{LEVEL_COLORS.get(level, TEXT_DIM)}; font-size:{size}pt">●</span>'


def cache_axes(plot) -> None:
    """Draw a plot's axes from a cached pixmap until they change.

    Axis text is the costliest part of a pyqtgraph repaint in software rendering (offscreen, Xvfb,
    remote desktops): without the cache every new curve point repaints all tick labels.
    """
    from PySide6 import QtWidgets

    for name in ("left", "bottom", "right", "top"):
        axis = plot.getPlotItem().getAxis(name) if hasattr(plot, "getPlotItem") else plot.getAxis(name)
        axis.setCacheMode(QtWidgets.QGraphicsItem.DeviceCoordinateCache)


#: Depth shown by the colormap: 0 to this many millimetres (0 is "no reading", drawn black).
DEPTH_RANGE_MM = 2000


def depth_lut():
    """The depth colormap (turbo, 256 entries) with index 0 black: a pixel without a reading."""
    lut = pg.colormap.get("turbo").getLookupTable(0.0, 1.0, 256)
    lut[0] = (0, 0, 0)
    return lut
