"""The episode table: a Qt model over the review model's summaries, and a proxy that sorts and
filters them with the review model's filter."""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any, Callable

from PySide6 import QtCore, QtGui

from collector.review import EpisodeSummary, flag_sentences

from ui import theme

SORT_ROLE = QtCore.Qt.UserRole + 1
SUMMARY_ROLE = QtCore.Qt.UserRole + 2


def _started(s: EpisodeSummary) -> str:
    if not s.start_time_ns:
        return "—"
    return datetime.fromtimestamp(s.start_time_ns / 1e9).strftime("%Y-%m-%d %H:%M:%S")


def _duration(s: EpisodeSummary) -> str:
    if not s.ok:
        return "—"
    text = f"{s.duration_s:.1f} s"
    return f"{text}  ✂ {s.kept_duration_s:.1f}" if s.trim else text


#: (header, display text, sort key) per column.
COLUMNS: list[tuple[str, Callable[[EpisodeSummary], str], Callable[[EpisodeSummary], Any]]] = [
    ("Started", _started, lambda s: s.start_time_ns),
    ("Task", lambda s: s.task, lambda s: s.task.lower()),
    ("Operator", lambda s: s.operator, lambda s: s.operator.lower()),
    ("Station", lambda s: s.station, lambda s: s.station.lower()),
    ("Duration", _duration, lambda s: s.duration_s),
    ("Outcome", lambda s: s.outcome if s.ok else "damaged", lambda s: s.outcome if s.ok else "~"),
    ("Tags", lambda s: ", ".join(s.tags), lambda s: ",".join(s.tags)),
    ("Quality", lambda s: "  ".join(s.flags) if s.flags else "✓", lambda s: (len(s.flags), s.flags)),
    ("Size", lambda s: f"{s.file_bytes / 1e6:.1f} MB", lambda s: s.file_bytes),
    ("File", lambda s: s.name, lambda s: s.name),
]
COLUMN = {name: i for i, (name, _, _) in enumerate(COLUMNS)}
_ROLES = {QtCore.Qt.DisplayRole, SORT_ROLE, SUMMARY_ROLE, QtCore.Qt.ForegroundRole, QtCore.Qt.ToolTipRole,
          QtCore.Qt.TextAlignmentRole}


class EpisodeTableModel(QtCore.QAbstractTableModel):
    """Rows are :class:`EpisodeSummary` objects; :meth:`set_summaries` replaces them all and
    :meth:`update_summary` refreshes one row in place (after curation)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.summaries: list[EpisodeSummary] = []
        #: Folder of the catalog's thumbnails (shown in the file column's tooltip), or None.
        self.thumbnail_folder = None

    def set_summaries(self, summaries: list[EpisodeSummary]) -> None:
        self.beginResetModel()
        self.summaries = list(summaries)
        self.endResetModel()

    def update_summary(self, summary: EpisodeSummary) -> None:
        for row, s in enumerate(self.summaries):
            if s.path == summary.path:
                self.summaries[row] = summary
                self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))
                return

    def remove_path(self, path: str) -> None:
        for row, s in enumerate(self.summaries):
            if s.path == path:
                self.beginRemoveRows(QtCore.QModelIndex(), row, row)
                del self.summaries[row]
                self.endRemoveRows()
                return

    def rowCount(self, parent=QtCore.QModelIndex()) -> int:  # noqa: N802 (Qt API)
        return 0 if parent.isValid() else len(self.summaries)

    def columnCount(self, parent=QtCore.QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=QtCore.Qt.DisplayRole):  # noqa: N802
        if orientation == QtCore.Qt.Horizontal and role == QtCore.Qt.DisplayRole:
            return COLUMNS[section][0]
        return None

    def data(self, index, role=QtCore.Qt.DisplayRole):
        if role not in _ROLES or not index.isValid():  # views ask for many roles: answer fast
            return None
        s, column = self.summaries[index.row()], index.column()
        name = COLUMNS[column][0]
        if role == QtCore.Qt.DisplayRole:
            if not s.ok and name in ("Task", "Quality"):
                return "damaged file" if name == "Task" else s.error
            return COLUMNS[column][1](s)
        if role == SORT_ROLE:
            return COLUMNS[column][2](s)
        if role == SUMMARY_ROLE:
            return s
        if role == QtCore.Qt.ForegroundRole:
            if not s.ok:
                return QtGui.QColor(theme.LEVEL_COLORS["bad"])
            if name == "Outcome":
                return QtGui.QColor(theme.OUTCOME_COLORS.get(s.outcome, theme.TEXT_DIM))
            if name == "Quality":
                level = "bad" if "failed" in s.flags else "warn" if s.flags else "ok"
                return QtGui.QColor(theme.LEVEL_COLORS[level])
        if role == QtCore.Qt.ToolTipRole:
            if not s.ok:
                return f"{s.path}\n{s.error}"
            if name == "Quality" and s.flags:
                return "\n".join(f"{f}: {sentence}" for f, sentence in flag_sentences(s.flags, s.integrity))
            if name in ("File", "Started", "Task"):
                thumb = self.thumbnail_folder / s.thumbnail if self.thumbnail_folder and s.thumbnail else None
                image = f"<img src='{html.escape(str(thumb))}'><br>" if thumb and thumb.exists() else ""
                notes = f"<br><i>{html.escape(s.notes)}</i>" if s.notes else ""
                return f"{image}{html.escape(s.path)}{notes}"
        if role == QtCore.Qt.TextAlignmentRole and name in ("Duration", "Size"):
            return int(QtCore.Qt.AlignRight | QtCore.Qt.AlignVCenter)
        return None


class EpisodeFilterProxy(QtCore.QSortFilterProxyModel):
    """Sorts on raw values and keeps the rows ``accepts(summary)`` keeps (the review model's
    filter, :meth:`collector.review.model.ReviewModel.matches`); :meth:`refilter` after it changed."""

    def __init__(self, accepts: Callable[[EpisodeSummary], bool] = lambda s: True, parent=None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.accepts = accepts

    def refilter(self) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.9; invalidateFilter is deprecated there
            self.beginFilterChange()
            self.endFilterChange(QtCore.QSortFilterProxyModel.Direction.Rows)
        else:
            self.invalidateFilter()

    def filterAcceptsRow(self, row: int, parent) -> bool:  # noqa: N802 (Qt API)
        return self.accepts(self.sourceModel().summaries[row])

    def lessThan(self, left, right) -> bool:  # noqa: N802
        a, b = left.data(SORT_ROLE), right.data(SORT_ROLE)
        try:
            return a < b
        except TypeError:
            return str(a) < str(b)
