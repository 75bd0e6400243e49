"""The review window: browse, play, judge and curate the episodes of a folder, and a dashboard.

:class:`QtReviewWidget` is the whole tool as one widget (the app window can add it as a tab);
:class:`QtReviewWindow` puts it in a main window with a status bar. Both are views over
:class:`collector.review.EpisodeCatalog`: listing runs on a worker thread (cached summaries make
a folder of 1,000 episodes list in about a second), every edit is a catalog call.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from collector.storage.reader import EpisodeError
from collector.review import EpisodeCatalog, EpisodeSummary

from ui import theme
from ui.review.curation import QtCurationPanel
from ui.review.dashboard import QtDashboard
from ui.review.player import QtEpisodePlayer
from ui.review.quality_view import QtQualityReport
from ui.review.table import COLUMN, SUMMARY_ROLE, EpisodeFilterProxy, EpisodeTableModel

log = logging.getLogger("ui.review")


class QtReviewWidget(QtWidgets.QWidget):
    """Episodes tab (table | player over curation and quality report) and Dashboard tab."""

    scanned = QtCore.Signal(list)
    _scan_done = QtCore.Signal(object, object)      # summaries or None, error text or None
    _scan_progress = QtCore.Signal(int, int)
    message = QtCore.Signal(str)                    # for a status bar

    def __init__(self, root: str | Path | None = None, parent=None) -> None:
        super().__init__(parent)
        self.catalog: EpisodeCatalog | None = None
        self.current: EpisodeSummary | None = None
        self._last_trashed: tuple[Path, str] | None = None  # (trash path, original path)
        self._scanning = False
        self._build()
        self._shortcuts()
        self._scan_done.connect(self._on_scanned)
        self._scan_progress.connect(self._on_progress)
        if root is not None:
            self.open_folder(root)

    # ---- layout ------------------------------------------------------------------------------
    def _build(self) -> None:
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 4)
        bar = QtWidgets.QHBoxLayout()
        self.folder_label = QtWidgets.QLabel("No folder")
        self.folder_label.setObjectName("dim")
        open_button = QtWidgets.QPushButton("Open folder…")
        open_button.clicked.connect(self._choose_folder)
        self.refresh_button = QtWidgets.QPushButton("⟳ Rescan")
        self.refresh_button.setToolTip("List the folder again (F5); changed files are re-read")
        self.refresh_button.clicked.connect(self.rescan)
        self.search = QtWidgets.QLineEdit()
        self.search.setPlaceholderText("Search task, operator, tags, notes, flags, file…  (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.outcome_filter = QtWidgets.QComboBox()
        self.outcome_filter.addItems(["any outcome", "success", "failure", "unknown", "damaged"])
        self.task_filter = QtWidgets.QComboBox()
        self.task_filter.addItem("any task")
        self.flagged_only = QtWidgets.QCheckBox("flagged only")
        self.progress = QtWidgets.QProgressBar()
        self.progress.setMaximumWidth(160)
        self.progress.setVisible(False)
        for w in (open_button, self.refresh_button, self.folder_label):
            bar.addWidget(w)
        bar.addStretch(1)
        for w in (self.progress, self.search, self.outcome_filter, self.task_filter, self.flagged_only):
            bar.addWidget(w)
        self.search.setMinimumWidth(300)
        layout.addLayout(bar)

        self.tabs = QtWidgets.QTabWidget()
        layout.addWidget(self.tabs, 1)
        episodes = QtWidgets.QSplitter(QtCore.Qt.Horizontal)
        self.model = EpisodeTableModel(self)
        self.proxy = EpisodeFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.table = QtWidgets.QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(COLUMN["Started"], QtCore.Qt.DescendingOrder)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(26)
        self.table.horizontalHeader().setStretchLastSection(True)
        # Fit columns to the first rows only: measuring 1,000 rows would take seconds.
        self.table.horizontalHeader().setResizeContentsPrecision(60)
        self.table.setStyleSheet(f"QTableView {{ alternate-background-color: {theme.PANEL}; "
                                 f"selection-background-color: #2d4a7a; }}")
        self.table.selectionModel().currentRowChanged.connect(self._on_row)
        left = QtWidgets.QSplitter(QtCore.Qt.Vertical)
        left.addWidget(self.table)
        self.detail_tabs = QtWidgets.QTabWidget()
        self.curation = QtCurationPanel()
        self.quality = QtQualityReport()
        self.detail_tabs.addTab(self.curation, "Curate")
        self.detail_tabs.addTab(self.quality, "Quality report")
        left.addWidget(self.detail_tabs)
        left.setSizes([480, 420])
        episodes.addWidget(left)
        self.player = QtEpisodePlayer()
        episodes.addWidget(self.player)
        episodes.setSizes([760, 840])
        self.tabs.addTab(episodes, "Episodes")
        self.dashboard = QtDashboard()
        self.tabs.addTab(self.dashboard, "Dashboard")

        self.search.textChanged.connect(lambda text: self._filter(search=text))
        self.outcome_filter.currentTextChanged.connect(
            lambda text: self._filter(outcome="" if text == "any outcome" else text))
        self.task_filter.currentTextChanged.connect(
            lambda text: self._filter(task="" if text == "any task" else text))
        self.flagged_only.toggled.connect(lambda on: self._filter(flagged_only=on))
        self.curation.edit.connect(self.curate)
        self.curation.trash.connect(self.trash_current)
        self.player.position_changed.connect(lambda t: setattr(self.curation, "cursor_s", t))

    def _shortcuts(self) -> None:
        keys = {"Space": self.player.toggle_play, "Left": lambda: self.player.seek_step(self.player.step - 1),
                "Right": lambda: self.player.seek_step(self.player.step + 1),
                "Shift+Left": lambda: self.player.jump(-1), "Shift+Right": lambda: self.player.jump(1),
                "S": lambda: self.curate({"outcome": "success"}), "F": lambda: self.curate({"outcome": "failure"}),
                "U": lambda: self.curate({"outcome": "unknown"}), "Ctrl+S": self.curation.apply,
                "Delete": self.trash_current, "Ctrl+Z": self.undo_trash, "F5": self.rescan,
                "Ctrl+F": self.search.setFocus}
        self.shortcuts = {}
        for key, slot in keys.items():
            shortcut = QtGui.QShortcut(QtGui.QKeySequence(key), self)
            # Typing in a text field keeps its keys; the shortcuts act everywhere else.
            shortcut.setContext(QtCore.Qt.WidgetWithChildrenShortcut)
            shortcut.activated.connect(lambda s=slot, k=key: self._shortcut(k, s))
            self.shortcuts[key] = shortcut

    #: Shortcuts that also act while a text field has the focus (the others are its keys there).
    TEXT_FIELD_SHORTCUTS = ("Ctrl+S", "F5", "Ctrl+F")

    def _shortcut(self, key: str, slot) -> None:
        focus = QtWidgets.QApplication.focusWidget()
        typing = isinstance(focus, (QtWidgets.QLineEdit, QtWidgets.QPlainTextEdit, QtWidgets.QAbstractSpinBox))
        if not typing or key in self.TEXT_FIELD_SHORTCUTS:
            slot()

    # ---- folder and listing -----------------------------------------------------------------
    def _choose_folder(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Episodes folder",
                                                            str(self.catalog.root if self.catalog else Path.cwd()))
        if folder:
            self.open_folder(folder)

    def open_folder(self, root: str | Path) -> None:
        """List ``root`` (in the background); the table fills when the scan is done."""
        self.catalog = EpisodeCatalog(root)
        self.model.thumbnail_folder = self.catalog.thumbnail_folder
        self.folder_label.setText(str(Path(root).resolve()))
        self.rescan()

    def rescan(self) -> None:
        if self.catalog is None or self._scanning:
            return
        self._scanning = True
        self.refresh_button.setEnabled(False)
        self.message.emit(f"Listing {self.catalog.root} …")
        catalog = self.catalog

        def work() -> None:
            try:
                summaries = catalog.scan(progress=lambda done, total: self._scan_progress.emit(done, total))
                self._scan_done.emit(summaries, None)
            except Exception as exc:  # an unreadable folder must not kill the window
                log.exception("scan failed")
                self._scan_done.emit(None, str(exc))

        threading.Thread(target=work, name="review-scan", daemon=True).start()

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setVisible(done < total)
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.message.emit(f"Reading new or changed episodes: {done}/{total}")

    def _on_scanned(self, summaries, error) -> None:
        self._scanning = False
        self.refresh_button.setEnabled(True)
        self.progress.setVisible(False)
        if error is not None:
            self.message.emit(f"Cannot list {self.catalog.root}: {error}")
            return
        selected = self.current.path if self.current else None
        self.model.set_summaries(summaries)
        tasks = sorted({s.task for s in summaries if s.ok and s.task})
        current_task = self.task_filter.currentText()
        self.task_filter.blockSignals(True)
        self.task_filter.clear()
        self.task_filter.addItems(["any task", *tasks])
        self.task_filter.setCurrentText(current_task if current_task in tasks else "any task")
        self.task_filter.blockSignals(False)
        for column in range(self.model.columnCount() - 1):
            self.table.resizeColumnToContents(column)
        self.dashboard.show_summaries(summaries)
        damaged = sum(not s.ok for s in summaries)
        self.message.emit(f"{len(summaries)} episodes" + (f", {damaged} damaged" if damaged else ""))
        self.scanned.emit(summaries)
        if selected:
            self.select_path(selected)
        elif summaries and self.proxy.rowCount():
            self.table.selectRow(0)  # something to look at right away
        self.table.setFocus()  # keys (Space, arrows, S/F/U) act at once

    def _filter(self, **values) -> None:
        self.proxy.set_filter(**values)

    def select_path(self, path: str) -> bool:
        """Select (and open) the row of ``path``; ``False`` if it is not shown."""
        for row in range(self.proxy.rowCount()):
            index = self.proxy.index(row, 0)
            if index.data(SUMMARY_ROLE).path == str(path):
                self.table.selectRow(row)
                self.table.scrollTo(index)
                return True
        return False

    # ---- selection ---------------------------------------------------------------------------
    def _on_row(self, current: QtCore.QModelIndex, _previous=None) -> None:
        summary = current.data(SUMMARY_ROLE) if current.isValid() else None
        if summary is not None and self.current is not None and summary.path == self.current.path:
            return
        self.show_episode(summary)

    def show_episode(self, summary: EpisodeSummary | None) -> None:
        self.current = summary
        self.curation.show_summary(summary)
        self.quality.show_summary(summary)
        self.player.unload()
        if summary is None:
            return
        if not summary.ok:
            self.detail_tabs.setCurrentWidget(self.quality)
            self.message.emit(f"Damaged: {summary.error}")
            return
        try:
            self.player.load(summary.path, summary.trim)
        except (EpisodeError, OSError) as exc:
            self.message.emit(f"Cannot play {summary.name}: {exc}")

    # ---- curation ----------------------------------------------------------------------------
    def curate(self, changes: dict) -> None:
        s = self.current
        if s is None or not s.ok or self.catalog is None:
            return
        # HDF5 will not open a file for writing while this process reads it: close the player's
        # handle for the edit, then reopen at the same place.
        step, playing = self.player.step, self.player.playing
        self.player.unload()
        try:
            updated = self.catalog.curate(s.path, **changes)
        except (ValueError, OSError) as exc:
            updated = None
            self.message.emit(f"Not saved: {exc}")
            self.curation.show_error(f"Not saved: {exc}")
        if updated is not None:
            self.current = updated
            self.model.update_summary(updated)
            self.curation.show_summary(updated)
        try:
            self.player.load(self.current.path, self.current.trim)
            self.player.seek_step(step)
            if playing:
                self.player.play()
        except (EpisodeError, OSError) as exc:
            self.message.emit(f"Cannot play {self.current.name}: {exc}")
        if updated is None:
            return
        self.dashboard.show_summaries(self.model.summaries)
        self.message.emit(f"Saved {', '.join(changes)} of {updated.name}")

    def trash_current(self) -> None:
        s = self.current
        if s is None or self.catalog is None:
            return
        self.player.unload()  # the file must not be open while it moves
        try:
            target = self.catalog.trash(s.path)
        except OSError as exc:
            self.message.emit(f"Cannot move to trash: {exc}")
            return
        self._last_trashed = (target, s.path)
        row = self.table.currentIndex().row()
        self.current = None
        self.model.remove_path(s.path)
        self.dashboard.show_summaries(self.model.summaries)
        if self.proxy.rowCount():
            self.table.selectRow(min(row, self.proxy.rowCount() - 1))
        else:
            self.show_episode(None)
        self.message.emit(f"Moved {s.name} to {target.parent} — Ctrl+Z puts it back")

    def undo_trash(self) -> None:
        if self._last_trashed is None or self.catalog is None:
            return
        trashed, original = self._last_trashed
        self._last_trashed = None
        try:
            restored = self.catalog.restore(trashed)
        except OSError as exc:
            self.message.emit(f"Cannot restore: {exc}")
            return
        self.message.emit(f"Restored {restored}")
        self.current = EpisodeSummary(str(restored))  # reselect it once listed
        self.rescan()


class QtReviewWindow(QtWidgets.QMainWindow):
    """The review tool as a window: :class:`QtReviewWidget` and a status bar."""

    def __init__(self, root: str | Path | None = None, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("collector — review")
        self.resize(1600, 980)
        self.review = QtReviewWidget(parent=self)
        self.setCentralWidget(self.review)
        self.review.message.connect(lambda text: self.statusBar().showMessage(text))
        if root is not None:
            self.review.open_folder(root)

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        self.review.player.unload()
        super().closeEvent(event)
