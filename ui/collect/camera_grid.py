"""Live camera panes: colour and colour-mapped depth per camera, in a grid that fits the count."""

from __future__ import annotations

import math
import time

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from ui import theme

#: Depth shown from 0 to this many millimetres (a tabletop scene; farther is clipped).
#: Size of the depth inset relative to the colour image.
DEPTH_INSET = 0.3
#: Depth pixels drawn: every DEPTH_STEP-th row and column (the inset cannot show more).
DEPTH_STEP = 3


class QtCameraPane(pg.GraphicsLayoutWidget):
    """One camera: its colour image with depth in a colormap as an inset (0 = no depth, black)."""

    def __init__(self, camera: str, has_depth: bool, parent=None) -> None:
        super().__init__(parent)
        self.camera = camera
        self.setMinimumSize(260, 120)
        self.ci.setContentsMargins(2, 2, 2, 2)
        self.ci.setSpacing(4)
        self.color_item = pg.ImageItem()
        self.depth_item = pg.ImageItem() if has_depth else None
        view = self.addViewBox(lockAspect=True, invertY=True, enableMouse=False)
        view.setMenuEnabled(False)
        view.addItem(self.color_item)
        self.views = [view]
        if self.depth_item is not None:
            # Depth as a picture-in-picture inset: colour gets the space, depth shows it works.
            self.depth_item.setZValue(5)
            self.depth_item.setBorder(pg.mkPen(theme.BORDER, width=1))
            view.addItem(self.depth_item)
            self.depth_item.setLookupTable(theme.depth_lut())
        self.label = pg.TextItem(anchor=(0, 0), color=theme.TEXT, fill=pg.mkBrush(0, 0, 0, 150))
        self.label.setZValue(10)
        self.views[0].addItem(self.label, ignoreBounds=True)
        self.rec_label = pg.TextItem("● REC", anchor=(1, 0), color=theme.RECORD_RED,
                                     fill=pg.mkBrush(0, 0, 0, 150))
        self.rec_label.setZValue(10)
        self.rec_label.setVisible(False)
        self.views[0].addItem(self.rec_label, ignoreBounds=True)
        # The WAM's predicted hand path, in this image's pixels (nearest future first).
        self.trajectory = pg.PlotDataItem(pen=pg.mkPen(theme.ACCENT, width=2), symbol="o",
                                          symbolSize=5, symbolBrush=theme.ACCENT, symbolPen=None)
        self.trajectory.setZValue(8)
        view.addItem(self.trajectory, ignoreBounds=True)
        #: The streams this pane draws (set by :meth:`QtCameraGrid.build`).
        self.color_stream: str | None = None
        self.depth_stream: str | None = None
        self.shown_seq: dict[str, int] = {}
        self._frame_times: list[float] = []
        self.display_fps = 0.0
        self._size = None

    def show_color(self, sample, field: str | None = None) -> None:
        """Draw ``sample``'s ``field`` (the stream's declared image; default its first field)."""
        rgb = sample.fields[field] if field is not None else next(iter(sample.fields.values()))
        self.color_item.setImage(rgb, autoLevels=False, levels=(0, 255))
        height, width = rgb.shape[:2]
        if self._size != (width, height):
            self._size = (width, height)
            for view in self.views:
                view.setRange(QtCore.QRectF(0, 0, width, height), padding=0)
            if self.depth_item is not None:
                scale = DEPTH_INSET * DEPTH_STEP
                self.depth_item.setTransform(QtGui.QTransform.fromScale(scale, scale))
                self.depth_item.setPos(width * (1 - DEPTH_INSET) - 4, height * (1 - DEPTH_INSET) - 4)
            self.label.setPos(4, 4)
            self.rec_label.setPos(width - 4, 4)
        self.shown_seq["color"] = sample.seq
        now = time.monotonic()
        self._frame_times = [t for t in self._frame_times if now - t < 1.0] + [now]
        self.display_fps = len(self._frame_times) / 1.0

    def show_depth(self, sample, field: str | None = None) -> None:
        """Draw ``sample``'s ``field`` (the stream's declared image) as the depth inset."""
        if self.depth_item is None:
            return
        depth = sample.fields[field] if field is not None else next(iter(sample.fields.values()))
        # The inset is a third of the image: colour-map a third of the pixels per axis.
        self.depth_item.setImage(depth[::DEPTH_STEP, ::DEPTH_STEP], autoLevels=False,
                                 levels=(0, theme.DEPTH_RANGE_MM))
        self.shown_seq["depth"] = sample.seq

    def show_trajectory(self, hand_uv, source_size) -> None:
        """Draw the predicted hand path (pixels of a ``source_size`` image), or clear it."""
        if hand_uv is None or self._size is None:
            self.trajectory.setData([], [])
            return
        points = np.asarray(hand_uv, np.float64)
        points = points[np.isfinite(points).all(axis=1)]
        sx, sy = self._size[0] / source_size[0], self._size[1] / source_size[1]
        self.trajectory.setData(points[:, 0] * sx, points[:, 1] * sy)

    def set_caption(self, text: str, recording: bool) -> None:
        self.label.setText(text)
        self.rec_label.setVisible(recording)


class QtCameraGrid(QtWidgets.QWidget):
    """All cameras of the session; :meth:`refresh` draws the newest frames (called on a timer)."""

    def __init__(self, model, parent=None) -> None:
        super().__init__(parent)
        self.model = model
        self.panes: dict[str, QtCameraPane] = {}
        self.layout_ = QtWidgets.QGridLayout(self)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.layout_.setSpacing(6)
        self.placeholder = QtWidgets.QLabel("Starting devices…")
        self.placeholder.setAlignment(QtCore.Qt.AlignCenter)
        self.placeholder.setObjectName("dim")
        self.layout_.addWidget(self.placeholder, 0, 0)
        #: The services' preview providers (set by the window); see :meth:`_draw_prediction`.
        self.previews: list = []
        #: (stream, capture ns, drawn ns, received ns) of frames drawn, for latency measurements.
        self.shown: list[tuple[str, int, int]] = []

    def build(self) -> None:
        """Create one pane per camera from the model's stream declarations.

        A pane shows a colour stream (its declared image field, whatever the stream is named)
        with the same node's depth stream as an inset; a node with several colour streams gets a
        pane per stream, named by the stream, else the pane is named by the node.
        """
        colors: dict[str, list[str]] = {}
        depths: dict[str, str] = {}
        for name, spec in sorted(self.model.specs.items()):
            if spec.image() is None:
                continue
            if spec.kind == "color":
                colors.setdefault(spec.node, []).append(name)
            elif spec.kind == "depth":
                depths.setdefault(spec.node, name)
        panes: list[tuple[str, str | None, str | None]] = []  # (pane name, colour, depth)
        for node in sorted(set(colors) | set(depths)):
            streams = colors.get(node) or [None]
            for color in streams:
                panes.append((node if len(streams) == 1 else color, color, depths.get(node)))
        for pane in self.panes.values():
            pane.setParent(None)
        self.panes.clear()
        self.placeholder.setVisible(not panes)
        if not panes:
            self.placeholder.setText("No cameras in this configuration")
        columns = max(1, math.ceil(math.sqrt(len(panes))))
        for i, (name, color, depth) in enumerate(panes):
            pane = self.panes[name] = QtCameraPane(name, depth is not None)
            pane.color_stream, pane.depth_stream = color, depth
            self.layout_.addWidget(pane, i // columns, i % columns)

    def refresh(self) -> None:
        live = self.model.live
        if live is None or not self.panes:
            return
        latest = live.latest()
        recording = self.model.state == "recording"
        health = {s.name: s for d in self.model.health for s in d.streams}
        specs = self.model.specs
        for name, pane in self.panes.items():
            color = latest.get(pane.color_stream) if pane.color_stream else None
            depth = latest.get(pane.depth_stream) if pane.depth_stream else None
            if color is not None and pane.shown_seq.get("color") != color.seq:
                pane.show_color(color, specs[pane.color_stream].image())
                self.shown.append((color.stream, color.t_host_ns, time.time_ns(),
                                   live.received_ns(color.stream)))
                del self.shown[:-1000]
            if depth is not None and pane.shown_seq.get("depth") != depth.seq:
                pane.show_depth(depth, specs[pane.depth_stream].image())
            self._draw_prediction(pane)
            stream = health.get(pane.color_stream or pane.depth_stream)
            rate = f"{stream.status.rate_hz:.0f}/{stream.status.nominal_hz:g} fps" if stream else ""
            pane.set_caption(f" {name}  {rate} ", recording)

    def _draw_prediction(self, pane: QtCameraPane) -> None:
        """Draw over the pane's image what a service's preview offers for its colour stream
        (``trajectory(stream)``: the WAM's predicted hand path, in that image's pixels)."""
        if pane.color_stream is None:
            return
        for provider in self.previews:
            trajectory = getattr(provider, "trajectory", None)
            path = trajectory(pane.color_stream) if trajectory is not None else None
            if path is not None:
                pane.show_trajectory(path, pane._size or (1, 1))
                return
        pane.show_trajectory(None, (1, 1))
