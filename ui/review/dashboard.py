"""Dataset dashboard: totals as cards, and bar charts of hours and episodes per task, operator and
day by outcome, and of quality flags. A view over :func:`collector.review.build_dashboard`."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from collector.review import Dashboard, GroupStats, build_dashboard

from ui import theme

OUTCOME_ORDER = ("success", "failure", "unknown")


def _duration_text(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def _bar_plot(title: str) -> pg.PlotWidget:
    plot = pg.PlotWidget()
    plot.setMouseEnabled(False, False)
    plot.hideButtons()
    plot.showGrid(y=True, alpha=0.15)
    plot.setTitle(title, color=theme.TEXT, size="10pt")
    plot.setMinimumHeight(200)
    plot.getAxis("left").enableAutoSIPrefix(False)  # "minutes (x0.001)" reads badly
    return plot


class QtDashboard(QtWidgets.QWidget):
    """Cards with totals over four charts; :meth:`show_summaries` redraws everything."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.board: Dashboard | None = None
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(10, 10, 10, 10)
        cards = QtWidgets.QHBoxLayout()
        self.cards: dict[str, QtWidgets.QLabel] = {}
        self.captions: dict[str, QtWidgets.QLabel] = {}
        for key, caption in (("episodes", "episodes"), ("hours", "recorded"),
                             ("kept", "after trims"), ("success", "success rate"),
                             ("flagged", "flagged"), ("damaged", "damaged files"), ("size", "on disk")):
            frame = QtWidgets.QFrame()
            frame.setObjectName("panel")
            box = QtWidgets.QVBoxLayout(frame)
            value = QtWidgets.QLabel("–")
            value.setObjectName("big")
            label = QtWidgets.QLabel(caption)
            label.setObjectName("dim")
            label.setWordWrap(True)
            box.addWidget(value)
            box.addWidget(label)
            cards.addWidget(frame)
            self.cards[key] = value
            self.captions[key] = label
        layout.addLayout(cards)
        grid = QtWidgets.QGridLayout()
        self.plots = {"task": _bar_plot("Time per task, by outcome"),
                      "operator": _bar_plot("Episodes per operator, by outcome"),
                      "day": _bar_plot("Time per day, by outcome"),
                      "flags": _bar_plot("Episodes per quality flag")}
        for i, plot in enumerate(self.plots.values()):
            grid.addWidget(plot, i // 2, i % 2)
        layout.addLayout(grid, 1)
        legend = QtWidgets.QLabel("   ".join(
            f"<span style='color:{theme.OUTCOME_COLORS[o]}'>■</span> {o}" for o in OUTCOME_ORDER))
        legend.setAlignment(QtCore.Qt.AlignRight)
        layout.addWidget(legend)

    def show_summaries(self, summaries) -> None:
        board = self.board = build_dashboard(summaries)
        t = board.total
        values = {"episodes": f"{t.episodes}", "hours": _duration_text(t.seconds),
                  "kept": _duration_text(t.kept_seconds),
                  "success": "–" if t.success_rate is None else f"{t.success_rate:.0%}",
                  "flagged": f"{t.flagged_share:.0%}", "damaged": f"{t.damaged}",
                  "size": f"{t.bytes / 1e9:.2f} GB"}
        for key, text in values.items():
            self.cards[key].setText(text)
        self.captions["success"].setText(t.success_caption)  # only labelled episodes count
        self._stacked(self.plots["task"], board.by_task, hours=True)
        self._stacked(self.plots["operator"], board.by_operator, hours=False)
        self._stacked(self.plots["day"], board.by_day, hours=True)
        flags = self.plots["flags"]
        flags.clear()
        names = list(board.flag_counts)
        if names:
            flags.addItem(pg.BarGraphItem(x=np.arange(len(names)), height=list(board.flag_counts.values()),
                                          width=0.6, brush=theme.LEVEL_COLORS["warn"]))
        flags.getAxis("bottom").setTicks([list(enumerate(names))])

    @staticmethod
    def _stacked(plot: pg.PlotWidget, groups: dict[str, GroupStats], hours: bool) -> None:
        plot.clear()
        names = list(groups)
        x = np.arange(len(names))
        bottom = np.zeros(len(names))
        # Small datasets read better in minutes than in thousandths of an hour.
        scale, unit = (1.0, "hours") if sum(g.hours for g in groups.values()) >= 1 else (60.0, "minutes")
        for outcome in OUTCOME_ORDER:
            if hours:  # a group's time split in proportion to its outcomes
                height = np.array([scale * g.hours * getattr(g, outcome) / max(1, g.episodes - g.damaged)
                                   for g in groups.values()])
            else:
                height = np.array([getattr(g, outcome) for g in groups.values()], float)
            if len(names):
                plot.addItem(pg.BarGraphItem(x=x, y0=bottom, height=height, width=0.6,
                                             brush=theme.OUTCOME_COLORS[outcome], pen=pg.mkPen(None)))
            bottom += height
        plot.getAxis("bottom").setTicks([list(enumerate(names))])
        plot.setLabel("left", unit if hours else "episodes")
        if len(names):
            plot.setXRange(-0.6, len(names) - 0.4, padding=0)
            plot.setYRange(0, max(bottom.max(), 1e-3) * 1.1, padding=0)
