"""The health strip: one tile per device, green / amber / red, with a tooltip saying what is wrong."""

from __future__ import annotations

import html

from PySide6 import QtCore, QtWidgets

from collector.recording.health import DeviceHealth

from ui import theme


def _stream_line(stream) -> str:
    s = stream.status
    parts = [f"{s.rate_hz:.1f}/{s.nominal_hz:g} Hz" if s.nominal_hz else f"{s.rate_hz:.1f} Hz",
             f"{s.missing} dropped"]
    if stream.display_latency_ms is not None:
        parts.append(f"{stream.display_latency_ms:.0f} ms to screen")
    if stream.skew_ms is not None:
        parts.append(f"skew {stream.skew_ms:.0f} ms")
    return " · ".join(parts)


class QtDeviceTile(QtWidgets.QFrame):
    """One device: a coloured dot, its name and state, and its main stream's figures."""

    def __init__(self, node: str, parent=None) -> None:
        super().__init__(parent)
        self.node = node
        self.setObjectName("panel")
        self.level = "ok"
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(1)
        self.title = QtWidgets.QLabel()
        self.title.setTextFormat(QtCore.Qt.RichText)
        self.detail = QtWidgets.QLabel()
        self.detail.setObjectName("dim")
        self.detail.setStyleSheet("font-size: 11px;")
        layout.addWidget(self.title)
        layout.addWidget(self.detail)

    def update_health(self, device: DeviceHealth) -> None:
        self.level = device.level
        color = theme.LEVEL_COLORS[self.level]
        self.setStyleSheet(f"QFrame#panel {{ border: 1px solid {color}; }}")
        self.title.setText(f"{theme.dot(self.level)} <b>{html.escape(device.node)}</b> "
                           f"<span style='color:{theme.TEXT_DIM}'>{html.escape(device.state)}</span>")
        main = device.streams[0] if device.streams else None
        self.detail.setText(_stream_line(main) if main else "no streams yet")
        rows = [f"<b>{html.escape(device.node)}</b>: {html.escape(device.state)}"]
        for stream in device.streams:
            rows.append(f"{theme.dot(stream.level, 8)} {html.escape(stream.name)}: "
                        f"{html.escape(_stream_line(stream))}")
        problems = device.problems()
        rows.append("<br>" + ("<br>".join(f"{theme.dot(level, 8)} {html.escape(text)}"
                                           for level, text in problems)
                              if problems else "All streams healthy."))
        self.setToolTip("<br>".join(rows))


class QtHealthStrip(QtWidgets.QWidget):
    """Tiles for every device of the session, refreshed on each ``health`` event."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.tiles: dict[str, QtDeviceTile] = {}
        self.layout_ = QtWidgets.QHBoxLayout(self)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.layout_.setSpacing(6)
        self.layout_.addStretch(1)

    def update_health(self, devices: list[DeviceHealth]) -> None:
        for device in devices:
            tile = self.tiles.get(device.node)
            if tile is None:
                tile = self.tiles[device.node] = QtDeviceTile(device.node)
                self.layout_.insertWidget(self.layout_.count() - 1, tile)
            tile.update_health(device)

    def level(self, node: str) -> str:
        return self.tiles[node].level
