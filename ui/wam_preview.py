"""The "predicted futures" panel: frames the WAM expects at +0.25 .. +2 s, the prediction's age,
its live skill over the still frame, the live surprise score and its trace, or a clear "preview
unavailable: <reason>". When the preview has lately been no better than the still frame it says
so in words and shows the predicted frames greyed, not as a forecast.

A thin view over :class:`collector.wam.preview.WamPreview`; it polls the model on a timer and keeps
no state of its own. :func:`draw_hand_trajectory` draws the predicted wrist path over a live image.
"""

from __future__ import annotations

import cv2
import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from collector.wam.preview import PreviewState, WamPreview

from ui import theme

#: Horizons (s) shown in the strip.
STRIP_HORIZONS = (0.25, 0.5, 1.0, 1.5, 2.0)
#: Size of each predicted frame in the strip: the model's square frames shown back at the
#: cameras' usual 4:3.
TILE_SIZE = (112, 84)
#: Tiles on a short window (see :meth:`QtWamPreview.set_compact`).
COMPACT_TILE_SIZE = (64, 48)
#: Seconds of surprise trace drawn.
TRACE_WINDOW_S = 30.0


def draw_hand_trajectory(image: np.ndarray, hand_uv: np.ndarray, *, color=(76, 141, 255),
                         thickness: int | None = None) -> np.ndarray:
    """A copy of ``image`` (H, W, 3) uint8 RGB with the predicted wrist path drawn on it.

    ``hand_uv`` (K, 2) are pixel coordinates in ``image`` (nearest future first); NaN points are
    skipped. The path fades from solid (soon) to faint (far ahead), with a dot at each step.
    """
    out = np.ascontiguousarray(image).copy()
    points = np.asarray(hand_uv, np.float64)
    ok = np.isfinite(points).all(axis=1)
    if ok.sum() == 0:
        return out
    thickness = thickness or max(1, round(min(out.shape[:2]) / 160))
    h, w = out.shape[:2]
    pts = [(int(round(u)), int(round(v))) for u, v in points[ok]]
    n = len(pts)
    overlay = out.copy()
    for i in range(n):
        fade = 1.0 - 0.7 * i / max(1, n - 1)
        c = tuple(int(x * fade + 255 * (1 - fade) * 0.2) for x in color)
        if i:
            cv2.line(overlay, pts[i - 1], pts[i], c, thickness, cv2.LINE_AA)
        if 0 <= pts[i][0] < w and 0 <= pts[i][1] < h:
            cv2.circle(overlay, pts[i], thickness + 1, c, -1, cv2.LINE_AA)
    return cv2.addWeighted(overlay, 0.85, out, 0.15, 0)


def greyed(rgb: np.ndarray) -> np.ndarray:
    """A washed-out grey copy of ``rgb``: still legible, plainly not a forecast to act on."""
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    faded = (grey.astype(np.uint16) // 2 + 64).astype(np.uint8)
    return np.repeat(faded[..., None], 3, axis=2)


def _pixmap(rgb: np.ndarray, size: tuple[int, int]) -> QtGui.QPixmap:
    rgb = np.ascontiguousarray(rgb)
    image = QtGui.QImage(rgb.data, rgb.shape[1], rgb.shape[0], rgb.strides[0],
                         QtGui.QImage.Format.Format_RGB888)
    return QtGui.QPixmap.fromImage(image.copy()).scaled(
        size[0], size[1], QtCore.Qt.AspectRatioMode.IgnoreAspectRatio,
        QtCore.Qt.TransformationMode.SmoothTransformation)


class QtWamPreview(QtWidgets.QFrame):
    """Predicted-futures strip, prediction age, surprise score and trace for one WAM node."""

    def __init__(self, model: WamPreview, parent=None, *, interval_ms: int = 100) -> None:
        super().__init__(parent)
        self.model = model
        self.setObjectName("panel")
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        header = QtWidgets.QHBoxLayout()
        title = QtWidgets.QLabel("Predicted futures")
        title.setStyleSheet("font-weight: 600;")
        self.age_label = QtWidgets.QLabel("")
        self.age_label.setObjectName("dim")
        self.surprise_label = QtWidgets.QLabel("")
        self.skill_label = QtWidgets.QLabel("")
        # What the running model learned from and its held-out skill; never widens the panel.
        self.trained_label = QtWidgets.QLabel("")
        self.trained_label.setObjectName("dim")
        self.trained_label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored,
                                         QtWidgets.QSizePolicy.Policy.Preferred)
        header.addWidget(title)
        header.addSpacing(8)
        header.addWidget(self.trained_label, 1)
        header.addWidget(self.age_label)
        header.addSpacing(12)
        header.addWidget(self.skill_label)
        header.addSpacing(12)
        header.addWidget(self.surprise_label)
        layout.addLayout(header)

        self.strip = QtWidgets.QWidget()
        strip_layout = QtWidgets.QHBoxLayout(self.strip)
        strip_layout.setContentsMargins(0, 0, 0, 0)
        self.tiles: list[QtWidgets.QLabel] = []
        self.tile_captions: list[QtWidgets.QLabel] = []
        for h in STRIP_HORIZONS:
            column = QtWidgets.QVBoxLayout()
            tile = QtWidgets.QLabel()
            tile.setFixedSize(*TILE_SIZE)
            tile.setStyleSheet(f"border: 1px solid {theme.BORDER}; background: {theme.PANEL_RAISED};")
            caption = QtWidgets.QLabel(f"+{h:g} s")
            caption.setObjectName("dim")
            caption.setAlignment(QtCore.Qt.AlignmentFlag.AlignHCenter)
            column.addWidget(tile)
            column.addWidget(caption)
            strip_layout.addLayout(column)
            self.tiles.append(tile)
            self.tile_captions.append(caption)
        strip_layout.addStretch(1)
        layout.addWidget(self.strip)

        self.skill_warning = QtWidgets.QLabel("")
        self.skill_warning.setWordWrap(True)
        self.skill_warning.setStyleSheet(f"color: {theme.LEVEL_COLORS['warn']};")
        self.skill_warning.hide()
        layout.addWidget(self.skill_warning)

        self.unavailable_label = QtWidgets.QLabel("")
        self.unavailable_label.setObjectName("banner")
        self.unavailable_label.setWordWrap(True)
        self.unavailable_label.setStyleSheet(
            f"background: {theme.PANEL_RAISED}; color: {theme.TEXT_DIM}; border-radius: 6px; padding: 8px;")
        layout.addWidget(self.unavailable_label)

        self.trace = pg.PlotWidget()
        self.trace.setFixedHeight(70)
        self.trace.setMenuEnabled(False)
        self.trace.setMouseEnabled(False, False)
        self.trace.hideButtons()
        self.trace.getAxis("bottom").setStyle(showValues=False)
        self.trace.setLabel("left", "surprise")
        self.trace_curve = self.trace.plot(pen=pg.mkPen(theme.LEVEL_COLORS["warn"], width=1.5))
        self.baseline_curve = self.trace.plot(pen=pg.mkPen(theme.TEXT_DIM, width=1, style=QtCore.Qt.PenStyle.DashLine))
        theme.cache_axes(self.trace)
        layout.addWidget(self.trace)

        self.compact = False
        self._timer = QtCore.QTimer(self)
        self._timer.timeout.connect(self.refresh)
        self._timer.start(interval_ms)
        self.refresh()

    def set_compact(self, compact: bool) -> None:
        """On a short window: smaller tiles and no surprise trace (the score stays in the
        header), so that the live camera keeps the space."""
        if compact == self.compact:
            return
        self.compact = compact
        size = COMPACT_TILE_SIZE if compact else TILE_SIZE
        for tile in self.tiles:
            tile.setFixedSize(*size)
        self.trace.setVisible(not compact)

    def refresh(self) -> None:
        self._show(self.model.state())

    def _show(self, state: PreviewState) -> None:
        if state.available and state.prediction is not None:
            self.unavailable_label.hide()
            self.strip.show()
            for (h, frame), tile, caption in zip(state.prediction.frames_at(STRIP_HORIZONS),
                                                 self.tiles, self.tile_captions):
                shown = greyed(frame) if state.not_a_forecast else frame
                tile.setPixmap(_pixmap(shown, COMPACT_TILE_SIZE if self.compact else TILE_SIZE))
                caption.setText(f"+{h:g} s")
            level = "ok" if state.health == "ok" else "warn"
            self.age_label.setText(f"{theme.dot(level)} {state.age_s * 1000:.0f} ms old"
                                   + (f", round trip {state.round_trip_s * 1000:.0f} ms"
                                      if state.round_trip_s is not None else "")
                                   + ("  (slow)" if state.health == "slow" else ""))
        else:
            self.strip.hide()
            self.unavailable_label.setText(f"Preview unavailable: {state.reason}")
            self.unavailable_label.show()
            self.age_label.setText("")
        self._show_skill(state)
        self.trained_label.setText(state.trained_on)
        self.trained_label.setToolTip(state.trained_on)
        if state.surprise is not None:
            self.surprise_label.setText(f"surprise {100 * state.surprise:.1f}"
                                        + (f" (still scene {100 * state.surprise_baseline:.1f})"
                                           if state.surprise_baseline is not None else ""))
        else:
            self.surprise_label.setText("surprise –")
        if len(state.trace_t):
            t = state.trace_t - state.trace_t[-1]
            keep = t > -TRACE_WINDOW_S
            self.trace_curve.setData(t[keep], 100 * state.trace_score[keep])
            self.baseline_curve.setData(t[keep], 100 * state.trace_baseline[keep])
        else:
            self.trace_curve.setData([], [])
            self.baseline_curve.setData([], [])

    def _show_skill(self, state: PreviewState) -> None:
        skill = state.skill
        if skill is None:
            self.skill_label.setText("")
        else:
            level = {True: "ok", False: "warn", None: "idle"}[skill.better_than_still]
            self.skill_label.setText(f"{theme.dot(level)} {skill.describe()}")
        warn = state.not_a_forecast and state.available and state.prediction is not None
        if warn:
            self.skill_warning.setText(
                f"Not better than the still frame ({skill.db:+.1f} dB over the last {skill.window_s:g} s): "
                "the greyed frames are not a forecast; trust the live camera.")
        self.skill_warning.setVisible(warn)

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        self._timer.stop()
        super().closeEvent(event)
