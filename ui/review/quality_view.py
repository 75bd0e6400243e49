"""The quality report of one episode: flags, per-stream drops, gaps and stalls, sync skew
distribution (with a histogram), disconnects and idle time."""

from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from collector.review import EpisodeSummary, flag_sentences

from ui import theme


def quality_html(s: EpisodeSummary) -> str:
    """The report as rich text (Qt's HTML subset)."""
    e = html.escape
    if not s.ok:
        return (f"<h3 style='color:{theme.LEVEL_COLORS['bad']}'>Damaged file</h3><p>{e(s.error)}</p>"
                f"<p style='color:{theme.TEXT_DIM}'>{e(s.path)}</p>")
    q = s.quality
    warn, ok, dim = theme.LEVEL_COLORS["warn"], theme.LEVEL_COLORS["ok"], theme.TEXT_DIM
    parts = [f"<h3>{e(s.task or 'untitled')} · {e(s.operator or '?')} · {s.duration_s:.1f} s</h3>"]
    if s.flags:
        bad = theme.LEVEL_COLORS["bad"]
        parts.append("<table cellspacing=2>" + "".join(
            f"<tr><td style='color:{bad if f == 'failed' else warn}'><b>⚑ {e(f)}</b></td>"
            f"<td>{e(sentence)}</td></tr>" for f, sentence in flag_sentences(s.flags, s.integrity))
            + "</table>")
    else:
        parts.append(f"<p style='color:{ok}'><b>✓ no quality flags</b></p>")
    head = "".join(f"<th align=right>{h}</th>" for h in
                   ("samples", "Hz", "gaps", "lost", "stalls", "skew ms p50/p99/max", "unmatched"))
    rows = []
    for name, st in q.get("streams", {}).items():
        skew = st.get("skew")
        if name == s.master_stream:
            skew_text, unmatched = "master", ""
        elif skew and "p50_ms" in skew:
            skew_text = f"{skew['p50_ms']:.1f} / {skew['p99_ms']:.1f} / {skew['max_ms']:.1f}"
            unmatched = f"{skew['unmatched_inside']} (+{skew['unmatched'] - skew['unmatched_inside']} at ends)"
        else:
            skew_text, unmatched = "–", ""
        lost = st["missing"]
        color = warn if lost or st["stalls"] else ""
        stall_text = ", ".join(f"{x['t_s']:.1f}s+{x['duration_s']:.2f}" for x in st["stalls"][:3])
        stall_text += " …" if len(st["stalls"]) > 3 else ""
        rows.append(f"<tr><td nowrap><b>{e(name)}</b></td>"
                    f"<td align=right>{st['count']}</td>"
                    f"<td align=right>{st['measured_rate_hz']:.1f}/{st['rate_hz']:g}</td>"
                    f"<td align=right style='color:{color}'>{st['gaps']}</td>"
                    f"<td align=right nowrap style='color:{color}'>{lost} ({st['drop_share']:.1%})</td>"
                    f"<td align=right>{e(stall_text) or 0}</td><td align=right nowrap>{skew_text}</td>"
                    f"<td align=right>{unmatched}</td></tr>")
    parts.append(f"<table cellspacing=0 cellpadding=4 width=100%><tr><th align=left>stream</th>{head}</tr>"
                 + "".join(rows) + "</table>")
    idle = q.get("idle")
    if idle:
        parts.append(f"<p>Hand ({e(idle['stream'])}): idle <b>{idle['start_s']:.1f} s</b> at the start, "
                     f"<b>{idle['end_s']:.1f} s</b> at the end.</p>")
    if q.get("disconnects"):
        parts.append("<p>Disconnects: " + ", ".join(
            f"{d['node'] or d['stream']} at {d['t_s']:.1f} s" for d in q["disconnects"]) + "</p>")
    if s.calibration:  # the latency calibration applied to the index (docs/time-sync.md)
        parts.append(f"<p style='color:{dim}'>" + "<br>".join(e(line) for line in s.calibration) + "</p>")
    events = q.get("events") or {}
    parts.append(f"<p style='color:{dim}'>Events: " +
                 (", ".join(f"{k} {v}" for k, v in sorted(events.items())) or "none") +
                 f" · status {e(s.status)} · {s.file_bytes / 1e6:.1f} MB · {e(s.path)}</p>")
    return "".join(parts)


class QtQualityReport(QtWidgets.QWidget):
    """Report text beside the skew histogram of one stream (chosen in a box)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.summary: EpisodeSummary | None = None
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        split = QtWidgets.QSplitter(QtCore.Qt.Vertical)
        self.text = QtWidgets.QTextBrowser()
        self.text.setOpenLinks(False)
        split.addWidget(self.text)
        side_widget = QtWidgets.QWidget()
        side = QtWidgets.QHBoxLayout(side_widget)
        side.setContentsMargins(0, 0, 0, 0)
        self.stream_box = QtWidgets.QComboBox()
        self.stream_box.setToolTip("Stream whose skew against the master is shown")
        self.stream_box.currentTextChanged.connect(self._draw_histogram)
        side.addWidget(self.stream_box, 0, QtCore.Qt.AlignTop)
        self.histogram = pg.PlotWidget()
        self.histogram.setMouseEnabled(False, False)
        self.histogram.hideButtons()
        self.histogram.setMinimumHeight(120)
        self.histogram.setLabel("bottom", "|skew| to master (ms)")
        self.histogram.setLabel("left", "frames")
        side.addWidget(self.histogram, 1)
        split.addWidget(side_widget)
        split.setSizes([260, 150])
        layout.addWidget(split)

    def show_summary(self, summary: EpisodeSummary | None) -> None:
        self.summary = summary
        self.text.setHtml(quality_html(summary) if summary else "")
        streams = [n for n, st in ((summary.quality or {}).get("streams", {}).items() if summary else [])
                   if (st.get("skew") or {}).get("histogram")]
        self.stream_box.blockSignals(True)
        self.stream_box.clear()
        self.stream_box.addItems(streams)
        self.stream_box.blockSignals(False)
        self._draw_histogram(streams[0] if streams else "")

    def _draw_histogram(self, stream: str) -> None:
        self.histogram.clear()
        skew = ((self.summary.quality or {}).get("streams", {}).get(stream, {}).get("skew")
                if self.summary and stream else None)
        if not skew or not skew.get("histogram"):
            self.histogram.setTitle("no skew data", color=theme.TEXT_DIM, size="9pt")
            return
        edges, counts = np.array(skew["histogram_edges_ms"]), np.array(skew["histogram"])
        self.histogram.addItem(pg.BarGraphItem(x0=edges[:-1], x1=edges[1:], height=counts,
                                               brush=theme.ACCENT, pen=pg.mkPen(theme.PANEL)))
        limit = pg.InfiniteLine(skew["limit_ms"], angle=90,
                                pen=pg.mkPen(theme.LEVEL_COLORS["bad"], style=QtCore.Qt.DashLine))
        self.histogram.addItem(limit)
        self.histogram.setTitle(f"{stream}: p99 {skew['p99_ms']:.1f} ms, limit {skew['limit_ms']:.1f} ms",
                                color=theme.TEXT_DIM, size="9pt")
