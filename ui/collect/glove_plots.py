"""Scrolling plots of the glove's channels, by group, and a top view of the hand and gripper."""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6 import QtWidgets

from ui import theme

#: Plot groups: label -> the fields they show (the first present field of each is plotted).
GROUPS = {
    "Wrist": ("wrist_pos",),
    "Fingers": ("finger_joints",),
    "Pressure": ("pressure",),
    "Grip": ("grip", "buttons"),
    "IMU": ("imu_gyro",),
    "Command": ("ee_pos", "gripper", "target_pos"),
}
WINDOW_S = 10.0


def state_streams(model) -> list[str]:
    """Streams with small per-sample fields worth plotting (glove state, teleop commands)."""
    return sorted(name for name, spec in model.specs.items()
                  if spec.kind not in ("color", "depth") and spec.bytes_per_sample <= 4096)


class QtGlovePlots(QtWidgets.QWidget):
    """A group selector over one scrolling plot of the last ``WINDOW_S`` seconds."""

    def __init__(self, model, parent=None) -> None:
        super().__init__(parent)
        self.model = model
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        bar = QtWidgets.QHBoxLayout()
        self.stream_box = QtWidgets.QComboBox()
        self.stream_box.setToolTip("Stream to plot")
        self.stream_box.setSizeAdjustPolicy(QtWidgets.QComboBox.AdjustToContents)
        bar.addWidget(self.stream_box)
        self.group_buttons = QtWidgets.QButtonGroup(self)
        for i, group in enumerate(GROUPS):
            button = QtWidgets.QPushButton(group)
            button.setCheckable(True)
            # Never narrower than its text: the bar gives up its stretch first.
            button.setSizePolicy(QtWidgets.QSizePolicy.Minimum, QtWidgets.QSizePolicy.Fixed)
            button.setChecked(i == 0)
            self.group_buttons.addButton(button, i)
            bar.addWidget(button)
        bar.addStretch(1)
        layout.addLayout(bar)
        self.plot = pg.PlotWidget()
        self.plot.setMinimumHeight(150)
        self.plot.showGrid(x=True, y=True, alpha=0.15)
        self.plot.setXRange(-WINDOW_S, 0, padding=0)
        self.plot.setLabel("bottom", "s")
        self.plot.setMouseEnabled(x=False, y=True)
        self.plot.setClipToView(True)
        self.plot.setDownsampling(auto=True, mode="peak")
        self.legend = self.plot.addLegend(offset=(-6, 6), labelTextSize="8pt", colCount=4)
        theme.cache_axes(self.plot)
        layout.addWidget(self.plot, 1)
        self.curves: list[pg.PlotDataItem] = []
        self._shown_key = None
        self.group_buttons.idClicked.connect(lambda _id: self._rebuild())
        self.stream_box.currentIndexChanged.connect(lambda _i: self._rebuild())

    @property
    def group(self) -> str:
        return list(GROUPS)[self.group_buttons.checkedId()]

    def build(self) -> None:
        self.stream_box.blockSignals(True)
        self.stream_box.clear()
        self.stream_box.addItems(state_streams(self.model))
        self.stream_box.blockSignals(False)
        self._rebuild()

    def select(self, group: str) -> None:
        self.group_buttons.button(list(GROUPS).index(group)).setChecked(True)
        self._rebuild()

    def _field(self) -> tuple[str, str] | None:
        stream = self.stream_box.currentText()
        spec = self.model.specs.get(stream)
        if spec is None:
            return None
        names = {f.name for f in spec.fields}
        for name in GROUPS[self.group]:
            if name in names:
                return stream, name
        return None

    def _rebuild(self) -> None:
        self.plot.clear()
        self.legend.clear()
        self.curves = []
        self._shown_key = self._field()
        if self._shown_key is None:
            self.plot.setTitle(f"{self.stream_box.currentText() or 'no stream'} has no "
                               f"{self.group.lower()} channels", color=theme.TEXT_DIM, size="9pt")
            return
        stream, field = self._shown_key
        spec = self.model.specs[stream].field(field)
        channels = spec.channel_names or [str(i) for i in range(int(np.prod(spec.shape)))]
        unit = f" ({spec.unit})" if spec.unit else ""
        self.plot.setTitle(f"{stream} · {field}{unit}", color=theme.TEXT_DIM, size="9pt")
        for i, channel in enumerate(channels):
            pen = pg.mkPen(theme.CURVE_COLORS[i % len(theme.CURVE_COLORS)], width=1.5)
            self.curves.append(self.plot.plot(pen=pen, name=channel))

    def refresh(self) -> None:
        if self._shown_key is None or self.model.live is None:
            return
        stream, field = self._shown_key
        snapshot = self.model.live.history(stream)
        if snapshot is None:
            return
        _, t_ns, fields = snapshot
        if not len(t_ns):
            return
        t = (t_ns - time.time_ns()) / 1e9
        keep = t >= -WINDOW_S - 0.5
        values = fields[field][keep].reshape(int(keep.sum()), -1).astype(np.float32)
        for i, curve in enumerate(self.curves):
            curve.setData(t[keep], values[:, i])


class QtHandView(pg.PlotWidget):
    """Top view of the table: the wrist's path over the last seconds and a gripper glyph whose
    jaws open with the grip aperture and turn with the wrist's yaw."""

    TRAIL_S = 3.0

    def __init__(self, model, parent=None) -> None:
        super().__init__(parent)
        self.model = model
        self.setAspectLocked(True)
        self.setMouseEnabled(False, False)
        self.hideButtons()
        self.showGrid(x=True, y=True, alpha=0.1)
        self.setTitle("hand · top view", color=theme.TEXT_DIM, size="9pt")
        self.setLabel("bottom", "x (m)")
        self.setLabel("left", "y (m)")
        self.trail = self.plot(pen=pg.mkPen(theme.ACCENT, width=2))
        self.jaws = self.plot(pen=pg.mkPen(theme.TEXT, width=4))
        self.wrist = self.plot(symbol="o", symbolSize=10, symbolBrush=theme.ACCENT, pen=None)
        for axis in ("bottom", "left"):
            self.getAxis(axis).enableAutoSIPrefix(False)
        theme.cache_axes(self)
        self.stream: str | None = None
        self._centre: tuple[float, float] | None = None

    def build(self) -> None:
        self.stream = next((name for name, spec in sorted(self.model.specs.items())
                            if {"wrist_pos", "wrist_quat"} <= {f.name for f in spec.fields}), None)

    def refresh(self) -> None:
        if self.stream is None or self.model.live is None:
            return
        snapshot = self.model.live.history(self.stream)
        if snapshot is None or not len(snapshot[1]):
            return
        _, t_ns, fields = snapshot
        recent = t_ns >= t_ns[-1] - int(self.TRAIL_S * 1e9)
        pos = fields["wrist_pos"][recent]
        self.trail.setData(pos[:, 0], pos[:, 1])
        x, y = float(pos[-1, 0]), float(pos[-1, 1])
        w, qx, qy, qz = (float(v) for v in fields["wrist_quat"][-1])
        yaw = np.arctan2(2 * (w * qz + qx * qy), 1 - 2 * (qy * qy + qz * qz))
        aperture = float(fields["grip"][-1][0]) if "grip" in fields else 0.05
        # Jaws: two short bars across the approach direction, ``aperture`` apart.
        across = np.array([-np.sin(yaw), np.cos(yaw)])
        along = np.array([np.cos(yaw), np.sin(yaw)]) * 0.03
        half = across * max(aperture, 0.004) / 2
        centre = np.array([x, y])
        a0, a1 = centre + half, centre + half + along
        b0, b1 = centre - half, centre - half + along
        jaws = np.array([a1, a0, b0, b1])
        self.jaws.setData(jaws[:, 0], jaws[:, 1])
        self.wrist.setData([x], [y])
        self.setTitle(f"hand (top) · grip {aperture * 100:.1f} cm · z {float(pos[-1, 2]):.2f} m",
                      color=theme.TEXT_DIM, size="9pt")
        # The view follows the hand in steps, so that the picture does not swim.
        if self._centre is None or abs(x - self._centre[0]) > 0.15 or abs(y - self._centre[1]) > 0.12:
            self._centre = (x, y)
            self.setRange(xRange=(x - 0.3, x + 0.3), yRange=(y - 0.22, y + 0.22), padding=0)
