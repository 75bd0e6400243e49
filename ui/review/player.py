"""Synchronized playback of one episode: every camera, the glove plots with a cursor that follows
the video, a timeline scrubber, play/pause, speed, frame stepping and jumps to gaps, events and
surprise peaks. A view over :class:`collector.review.playback.EpisodePlayback`."""

from __future__ import annotations

import math
import time

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from collector.review.playback import EpisodePlayback, Marker

from ui import theme

SPEEDS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
#: Fields plotted per stream, in order; other streams plot their first field.
PLOT_FIELDS = ("wrist_pos", "finger_joints", "grip", "surprise")
MAX_PLOTS = 4
MARKER_COLORS = {"gap": theme.LEVEL_COLORS["bad"], "disconnected": "#f0883e", "surprise": "#a371f7",
                 "stalled": theme.LEVEL_COLORS["warn"]}
JUMP_KINDS = {"All marks": None, "Gaps": ("gap",), "Events": "events", "Surprise peaks": ("surprise",)}


class QtCameraViews(pg.GraphicsLayoutWidget):
    """One image view per camera stream, in a grid; ``show(frames)`` draws a step."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setMinimumSize(320, 200)
        self.items: dict[str, pg.ImageItem] = {}
        self.labels: dict[str, pg.TextItem] = {}

    def build(self, cameras: list[str]) -> None:
        if list(self.items) == list(cameras):
            return
        self.clear()
        self.items, self.labels = {}, {}
        columns = max(1, math.ceil(math.sqrt(len(cameras))))
        for i, name in enumerate(cameras):
            view = self.addViewBox(row=i // columns, col=i % columns, lockAspect=True, invertY=True,
                                   enableMouse=False)
            view.setMenuEnabled(False)
            item = pg.ImageItem()
            if name.endswith("depth"):
                item.setLookupTable(theme.depth_lut())
            view.addItem(item)
            label = pg.TextItem(name, anchor=(0, 0), color=theme.TEXT, fill=pg.mkBrush(0, 0, 0, 150))
            label.setZValue(10)
            view.addItem(label, ignoreBounds=True)
            self.items[name], self.labels[name] = item, label

    def show_frames(self, frames: dict[str, np.ndarray | None]) -> None:
        for name, image in frames.items():
            item = self.items.get(name)
            if item is None:
                continue
            if image is None:  # no synchronized frame within the skew bound at this step
                self.labels[name].setText(f"{name} · no frame")
                self.labels[name].setColor(theme.LEVEL_COLORS["warn"])
                continue
            self.labels[name].setText(name)
            self.labels[name].setColor(theme.TEXT)
            levels = (0, theme.DEPTH_RANGE_MM) if image.dtype == np.uint16 else (0, 255)
            item.setImage(image, autoLevels=False, levels=levels)


class QtEpisodePlayer(QtWidgets.QWidget):
    """Plays one episode at a time (:meth:`load`); ``position_changed`` carries the time in s."""

    position_changed = QtCore.Signal(float)
    loaded = QtCore.Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.playback: EpisodePlayback | None = None
        self.step = 0
        self.speed = 1.0
        self.markers: list[Marker] = []
        self._suspended: tuple[str, int, bool] | None = None  # (path, step, playing) while written
        self._play_origin: tuple[float, float] | None = None  # (wall clock, episode time)
        self.rows: list[dict] = []
        self.cursors: list[pg.InfiniteLine] = []
        self.trim_regions: list[pg.LinearRegionItem] = []
        self._build()
        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.PreciseTimer)
        self.timer.timeout.connect(self._tick)
        self.set_enabled(False)

    # ---- layout ------------------------------------------------------------------------------
    def _build(self) -> None:
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        split = QtWidgets.QSplitter(QtCore.Qt.Vertical)
        self.cameras = QtCameraViews()
        self.plots = pg.GraphicsLayoutWidget()
        self.plots.setMinimumHeight(160)
        self.plots.scene().sigMouseClicked.connect(self._on_plot_click)
        split.addWidget(self.cameras)
        split.addWidget(self.plots)
        split.setSizes([520, 420])
        layout.addWidget(split, 1)
        self.placeholder = QtWidgets.QLabel("Select an episode to play it")
        self.placeholder.setObjectName("dim")
        self.placeholder.setAlignment(QtCore.Qt.AlignCenter)
        layout.addWidget(self.placeholder)

        bar = QtWidgets.QHBoxLayout()
        bar.setSpacing(4)

        style = self.style()

        def button(icon: str, tip: str, slot) -> QtWidgets.QPushButton:
            b = QtWidgets.QPushButton(style.standardIcon(getattr(QtWidgets.QStyle, icon)), "")
            b.setToolTip(tip)
            b.setFixedWidth(40)
            b.clicked.connect(slot)
            bar.addWidget(b)
            return b

        self.prev_mark = button("SP_MediaSkipBackward", "Previous mark (Shift+Left)", lambda: self.jump(-1))
        self.step_back = button("SP_MediaSeekBackward", "Previous frame (Left)",
                                lambda: self.seek_step(self.step - 1))
        self.play_button = button("SP_MediaPlay", "Play / pause (Space)", self.toggle_play)
        self.step_fwd = button("SP_MediaSeekForward", "Next frame (Right)", lambda: self.seek_step(self.step + 1))
        self.next_mark = button("SP_MediaSkipForward", "Next mark (Shift+Right)", lambda: self.jump(1))
        self.jump_kind = QtWidgets.QComboBox()
        self.jump_kind.addItems(list(JUMP_KINDS))
        self.jump_kind.setToolTip("What the ⏮ ⏭ buttons jump to")
        bar.addWidget(self.jump_kind)
        self.speed_box = QtWidgets.QComboBox()
        self.speed_box.addItems([f"{s:g}×" for s in SPEEDS])
        self.speed_box.setCurrentIndex(SPEEDS.index(1.0))
        self.speed_box.setToolTip("Playback speed")
        self.speed_box.currentIndexChanged.connect(lambda i: self.set_speed(SPEEDS[i]))
        bar.addWidget(self.speed_box)
        self.slider = QtWidgets.QSlider(QtCore.Qt.Horizontal)
        self.slider.valueChanged.connect(self._on_slider)
        bar.addWidget(self.slider, 1)
        self.time_label = QtWidgets.QLabel("–")
        self.time_label.setMinimumWidth(190)
        self.time_label.setStyleSheet("font-family: 'DejaVu Sans Mono', monospace;")
        bar.addWidget(self.time_label)
        layout.addLayout(bar)

    def set_enabled(self, enabled: bool) -> None:
        for w in (self.prev_mark, self.step_back, self.play_button, self.step_fwd, self.next_mark,
                  self.slider, self.jump_kind, self.speed_box):
            w.setEnabled(enabled)
        self.cameras.setVisible(enabled)
        self.plots.setVisible(enabled)
        self.placeholder.setVisible(not enabled)

    # ---- loading -----------------------------------------------------------------------------
    def load(self, path: str, trim: list[float] | None = None) -> None:
        """Open ``path`` and show its first frame (raises EpisodeError for a damaged file)."""
        self.unload()
        playback = EpisodePlayback(path)
        self.playback = playback
        self.markers = playback.markers()
        self.cameras.build(playback.cameras)
        self._build_plots(trim)
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, playback.frame_count - 1))
        self.slider.setValue(0)
        self.slider.blockSignals(False)
        self.set_enabled(playback.frame_count > 0)
        self.seek_step(0, force=True)
        self.loaded.emit()

    def unload(self) -> None:
        """Close the episode (the plot layout stays, for the next episode of the same rig)."""
        self.pause()
        if self.playback is not None:
            self.playback.close()
        self.playback, self.markers, self.step = None, [], 0
        self.set_enabled(False)

    def suspend(self, path: str) -> None:
        """Close ``path`` if it is the open episode, remembering the frame and whether it played:
        HDF5 will not let this process write (or move) a file it has open for reading."""
        pb = self.playback
        if pb is None or str(pb.path) != str(path):
            return
        self._suspended = (str(path), self.step, self.playing)
        self.unload()

    def resume(self, path: str, trim: list[float] | None = None) -> None:
        """Reopen what :meth:`suspend` closed, at the same frame (raises EpisodeError/OSError)."""
        suspended, self._suspended = self._suspended, None
        if suspended is None or suspended[0] != str(path):
            return
        _, step, playing = suspended
        self.load(path, trim)
        self.seek_step(step)
        if playing:
            self.play()

    def _plot_fields(self) -> list[tuple[str, str, tuple[str, ...], str]]:
        """``(stream, field, channel names, unit)`` of each plot row."""
        pb, chosen = self.playback, []
        for stream in pb.plot_streams:
            names = [f.name for f in pb.episode.streams[stream].fields]
            for field in [n for n in PLOT_FIELDS if n in names] or names[:1]:
                chosen.append((stream, field, tuple(pb.channel_names(stream, field)),
                               pb.episode.streams[stream].field(field).unit))
        return chosen[:MAX_PLOTS]

    def _build_plots(self, trim: list[float] | None) -> None:
        pb = self.playback
        layout = self._plot_fields()
        if layout != getattr(self, "_layout", None):
            self._make_plot_rows(layout)  # building plots costs most of opening: only on change
        for row, (stream, field, _, _) in zip(self.rows, layout):
            series = pb.series(stream)
            for i, curve in enumerate(row["curves"]):
                curve.setData(series["t_s"], series[field][:, i] if i < series[field].shape[1] else None)
            for line in row["marks"]:
                row["plot"].removeItem(line)
            row["marks"] = []
            for mark in self.markers:
                line = pg.InfiniteLine(mark.t_s, angle=90, movable=False,
                                       pen=pg.mkPen(MARKER_COLORS.get(mark.kind, theme.TEXT_DIM), width=1,
                                                    style=QtCore.Qt.DashLine))
                line.setToolTip(f"{mark.t_s:.2f} s: {mark.label}")
                row["plot"].addItem(line, ignoreBounds=True)
                row["marks"].append(line)
        self.show_trim(trim)
        if self.rows:
            self.rows[0]["plot"].setXRange(0, max(pb.duration_s, 0.1), padding=0.01)

    def _make_plot_rows(self, layout: list[tuple[str, str, tuple[str, ...], str]]) -> None:
        self._layout = layout
        self.plots.clear()
        self.rows: list[dict] = []
        self.cursors, self.trim_regions = [], []
        for index, (stream, field, channels, unit) in enumerate(layout):
            plot = self.plots.addPlot(row=index, col=0)
            plot.showGrid(x=True, y=True, alpha=0.15)
            plot.setClipToView(True)
            plot.setDownsampling(auto=True, mode="peak")
            plot.setMouseEnabled(x=True, y=False)
            plot.getAxis("left").setWidth(48)
            plot.setTitle(f"{stream} · {field}" + (f" ({unit})" if unit else ""), color=theme.TEXT_DIM, size="8pt")
            if index < len(layout) - 1:
                plot.getAxis("bottom").setStyle(showValues=False)
            else:
                plot.setLabel("bottom", "time since start (s)")
            curves = [plot.plot(pen=pg.mkPen(theme.CURVE_COLORS[i % len(theme.CURVE_COLORS)], width=1.2),
                                name=channel) for i, channel in enumerate(channels)]
            region = pg.LinearRegionItem(values=(0, 1), movable=False, brush=pg.mkBrush(76, 141, 255, 28),
                                         pen=pg.mkPen(theme.ACCENT, width=1))
            region.setZValue(-10)
            plot.addItem(region, ignoreBounds=True)
            cursor = pg.InfiniteLine(0, angle=90, movable=True, pen=pg.mkPen(theme.TEXT, width=1.5),
                                     hoverPen=pg.mkPen(theme.ACCENT, width=2))
            cursor.sigDragged.connect(lambda line: self.seek_time(line.value()))
            plot.addItem(cursor, ignoreBounds=True)
            if self.rows:
                plot.setXLink(self.rows[0]["plot"])
            self.rows.append({"plot": plot, "curves": curves, "marks": []})
            self.cursors.append(cursor)
            self.trim_regions.append(region)
        if not layout:
            self.plots.addLabel("no glove or state streams in this episode", color=theme.TEXT_DIM)

    def _on_plot_click(self, event) -> None:
        """A left click inside a plot moves the cursor (and the video) there."""
        if event.button() != QtCore.Qt.LeftButton or self.playback is None:
            return
        for row in self.rows:
            view = row["plot"].vb
            if view.sceneBoundingRect().contains(event.scenePos()):
                self.seek_time(view.mapSceneToView(event.scenePos()).x())
                return

    def show_trim(self, trim: list[float] | None) -> None:
        for region in self.trim_regions:
            region.setVisible(bool(trim))
            if trim:
                region.setRegion(trim)

    # ---- position ----------------------------------------------------------------------------
    @property
    def time_s(self) -> float:
        pb = self.playback
        return float(pb.times_s[self.step]) if pb is not None and pb.frame_count else 0.0

    def seek_step(self, step: int, force: bool = False) -> None:
        pb = self.playback
        if pb is None or not pb.frame_count:
            return
        step = int(np.clip(step, 0, pb.frame_count - 1))
        if step == self.step and not force:
            return
        self.step = step
        self.cameras.show_frames(pb.frame(step))
        t = self.time_s
        for cursor in self.cursors:
            if not cursor.moving:
                cursor.setValue(t)
        self.slider.blockSignals(True)
        self.slider.setValue(step)
        self.slider.blockSignals(False)
        self.time_label.setText(f"{t:6.2f} / {pb.duration_s:.2f} s   {step + 1}/{pb.frame_count}")
        self.position_changed.emit(t)

    def seek_time(self, t_s: float) -> None:
        if self.playback is not None:
            self.seek_step(self.playback.index_at(t_s))
            if self._play_origin is not None:
                self._play_origin = (time.monotonic(), self.time_s)

    def _on_slider(self, value: int) -> None:
        self.seek_step(value)
        if self._play_origin is not None:
            self._play_origin = (time.monotonic(), self.time_s)

    def jump(self, direction: int) -> Marker | None:
        """Go to the previous (-1) or next (+1) mark of the chosen kind; returns it."""
        kinds = JUMP_KINDS[self.jump_kind.currentText()]
        marks = [m for m in self.markers if kinds is None
                 or (kinds == "events" and m.kind not in ("gap", "surprise"))
                 or (kinds != "events" and m.kind in kinds)]
        # Compare frames, not times: a mark between two frames shows at the nearer one.
        pb, step = self.playback, self.step
        if pb is None:
            return None
        if direction > 0:
            target = next((m for m in marks if pb.index_at(m.t_s) > step), None)
        else:
            target = next((m for m in reversed(marks) if pb.index_at(m.t_s) < step), None)
        if target is not None:
            self.seek_time(target.t_s)
        return target

    # ---- playing -----------------------------------------------------------------------------
    @property
    def playing(self) -> bool:
        return self._play_origin is not None

    def toggle_play(self) -> None:
        self.pause() if self.playing else self.play()

    def play(self) -> None:
        pb = self.playback
        if pb is None or not pb.frame_count:
            return
        if self.step >= pb.frame_count - 1:
            self.seek_step(0)
        self._play_origin = (time.monotonic(), self.time_s)
        self.play_button.setIcon(self.style().standardIcon(QtWidgets.QStyle.SP_MediaPause))
        self.timer.start(10)

    def pause(self) -> None:
        self._play_origin = None
        self.timer.stop()
        self.play_button.setIcon(self.style().standardIcon(QtWidgets.QStyle.SP_MediaPlay))

    def set_speed(self, speed: float) -> None:
        self.speed = speed
        if self._play_origin is not None:
            self._play_origin = (time.monotonic(), self.time_s)

    def _tick(self) -> None:
        pb = self.playback
        if pb is None or self._play_origin is None:
            return self.pause()
        wall, start_t = self._play_origin
        t = start_t + (time.monotonic() - wall) * self.speed
        self.seek_step(pb.index_at(t))
        if t >= pb.duration_s:
            self.pause()
