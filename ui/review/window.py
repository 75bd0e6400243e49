"""The review window: browse, play, judge and curate the episodes of a folder, and a dashboard.

:class:`QtReviewWidget` is the whole tool as one widget (the app window can add it as a tab);
:class:`QtReviewWindow` puts it in a main window with a status bar. Both are views over
:class:`collector.review.model.ReviewModel`, which lists the folder on its worker thread, keeps
the selection, filter and undo stack, and curates: every button and key calls a model method, and
the widgets change only in the ``_on_<event>`` handlers of the model's events (marshalled to the
Qt thread by one signal).
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from collector.review import EpisodeSummary
from collector.review.model import ReviewFilter, ReviewModel
from collector.storage.reader import EpisodeError

from ui import theme
from ui.review.curation import QtCurationPanel
from ui.review.dashboard import QtDashboard
from ui.review.player import QtEpisodePlayer
from ui.review.quality_view import QtQualityReport
from ui.review.table import COLUMN, SUMMARY_ROLE, EpisodeFilterProxy, EpisodeTableModel

log = logging.getLogger("ui.review")

ANY_OUTCOME, ANY_TASK = "any outcome", "any task"


class QtReviewWidget(QtWidgets.QWidget):
    """Episodes tab (table | player over curation and quality report) and Dashboard tab, over a
    :class:`ReviewModel` (``model``, or a new one; ``root``: open that folder)."""

    scanned = QtCore.Signal(list)
    message = QtCore.Signal(str)                    # for a status bar
    _event = QtCore.Signal(str, object)             # a model event, delivered on the Qt thread

    def __init__(self, root: str | Path | None = None, parent=None, *, model: ReviewModel | None = None) -> None:
        super().__init__(parent)
        self.review_model = model if model is not None else ReviewModel()
        self._build()
        self._shortcuts()
        self._event.connect(self._on_event)
        unsubscribe = self.review_model.subscribe(self._event.emit)
        self.destroyed.connect(lambda *_: unsubscribe())
        if self.review_model.catalog is not None:
            self._on_folder(self.review_model.root)
        if root is not None:
            self.open_folder(root)

    @property
    def catalog(self):
        return self.review_model.catalog

    @property
    def current(self) -> EpisodeSummary | None:
        return self.review_model.current

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
        self.outcome_filter.addItems([ANY_OUTCOME, "success", "failure", "unknown", "damaged"])
        self.task_filter = QtWidgets.QComboBox()
        self.task_filter.addItem(ANY_TASK)
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
        self.proxy = EpisodeFilterProxy(self.review_model.matches, self)
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

        model = self.review_model
        self.search.textChanged.connect(lambda text: model.set_filter(search=text))
        self.outcome_filter.currentTextChanged.connect(lambda text: model.set_filter(outcome=text))
        self.task_filter.currentTextChanged.connect(lambda text: model.set_filter(task=text))
        self.flagged_only.toggled.connect(lambda on: model.set_filter(flagged_only=on))
        self.curation.edit.connect(self.curate)
        self.curation.trash.connect(self.trash_current)
        self.player.position_changed.connect(lambda t: setattr(self.curation, "cursor_s", t))

    def _shortcuts(self) -> None:
        keys = {"Space": self.player.toggle_play, "Left": lambda: self.player.seek_step(self.player.step - 1),
                "Right": lambda: self.player.seek_step(self.player.step + 1),
                "Shift+Left": lambda: self.player.jump(-1), "Shift+Right": lambda: self.player.jump(1),
                "S": lambda: self.curate({"outcome": "success"}), "F": lambda: self.curate({"outcome": "failure"}),
                "U": lambda: self.curate({"outcome": "unknown"}), "Ctrl+S": self.curation.apply,
                "Delete": self.trash_current, "Ctrl+Z": self.undo, "F5": self.rescan,
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

    # ---- actions: each one a model method --------------------------------------------------
    def _choose_folder(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Episodes folder",
                                                            str(self.review_model.root or Path.cwd()))
        if folder:
            self.open_folder(folder)

    def open_folder(self, root: str | Path) -> None:
        """List ``root`` (in the background); the table fills when the scan is done."""
        self.review_model.open_folder(root)

    def rescan(self) -> None:
        self.review_model.scan()

    def curate(self, changes: dict) -> None:
        self.review_model.curate(**changes)

    def trash_current(self) -> None:
        self.review_model.trash()

    def undo(self) -> None:
        self.review_model.undo()

    undo_trash = undo

    def select_path(self, path: str) -> bool:
        """Select (and open) the row of ``path``; ``False`` if it is not shown."""
        for row in range(self.proxy.rowCount()):
            index = self.proxy.index(row, 0)
            if index.data(SUMMARY_ROLE).path == str(path):
                self.table.selectRow(row)
                self.table.scrollTo(index)
                return True
        return False

    def _on_row(self, current: QtCore.QModelIndex, _previous=None) -> None:
        self.review_model.select(current.data(SUMMARY_ROLE).path if current.isValid() else None)

    # ---- model events ------------------------------------------------------------------------
    def _on_event(self, name: str, data: dict) -> None:
        handler = getattr(self, f"_on_{name}", None)
        if handler is not None:
            handler(**data)

    def _on_message(self, text: str) -> None:
        self.message.emit(text)

    def _on_folder(self, root: Path) -> None:
        self.model.thumbnail_folder = self.review_model.thumbnail_folder
        self.folder_label.setText(str(Path(root).resolve()))

    def _on_scan_started(self, root: Path) -> None:
        self.refresh_button.setEnabled(False)

    def _on_scan_progress(self, done: int, total: int) -> None:
        self.progress.setVisible(done < total)
        self.progress.setRange(0, total)
        self.progress.setValue(done)

    def _on_scanned(self, summaries: list[EpisodeSummary] | None, tasks: list[str], error: str | None) -> None:
        self.refresh_button.setEnabled(not self.review_model.scanning)
        self.progress.setVisible(False)
        if error is not None:
            return
        current = self.review_model.current
        selected = current.path if current is not None else None
        self.model.set_summaries(summaries)
        task = self.task_filter.currentText()
        self.task_filter.blockSignals(True)
        self.task_filter.clear()
        self.task_filter.addItems([ANY_TASK, *tasks])
        self.task_filter.setCurrentText(task if task in tasks else ANY_TASK)
        self.task_filter.blockSignals(False)
        if task not in tasks and self.review_model.filter.task:
            self.review_model.set_filter(task="")
        for column in range(self.model.columnCount() - 1):
            self.table.resizeColumnToContents(column)
        self.dashboard.show_summaries(summaries)
        self.scanned.emit(summaries)
        if selected:
            self.select_path(selected)
        elif summaries and self.proxy.rowCount():
            self.table.selectRow(0)  # something to look at right away
        self.table.setFocus()  # keys (Space, arrows, S/F/U) act at once

    def _on_filter(self, filter: ReviewFilter) -> None:  # noqa: A002 (the event's name)
        shown = ((self.search, filter.search), (self.outcome_filter, filter.outcome or ANY_OUTCOME),
                 (self.task_filter, filter.task or ANY_TASK), (self.flagged_only, filter.flagged_only))
        for widget, value in shown:  # the filter set from elsewhere (a script, a test) shows too
            widget.blockSignals(True)
            if widget is self.search and widget.text() != value:
                widget.setText(value)
            elif isinstance(widget, QtWidgets.QComboBox) and widget.currentText() != value:
                widget.setCurrentText(value)
            elif widget is self.flagged_only:
                widget.setChecked(value)
            widget.blockSignals(False)
        self.proxy.refilter()

    def _on_selected(self, summary: EpisodeSummary | None) -> None:
        index = self.table.currentIndex()
        shown = index.data(SUMMARY_ROLE) if index.isValid() else None
        if summary is not None and (shown is None or shown.path != summary.path):
            self.select_path(summary.path)  # selected from elsewhere: show its row
        self.curation.show_summary(summary)
        self.quality.show_summary(summary)
        self.player.unload()
        if summary is None:
            return
        if not summary.ok:
            self.detail_tabs.setCurrentWidget(self.quality)
            return
        try:
            self.player.load(summary.path, summary.trim)
        except (EpisodeError, OSError) as exc:
            self.message.emit(f"Cannot play {summary.name}: {exc}")

    def _on_releasing(self, path: str) -> None:
        self.player.suspend(path)

    def _on_released(self, path: str) -> None:
        current = self.review_model.current
        try:
            self.player.resume(path, current.trim if current is not None and current.path == path else None)
        except (EpisodeError, OSError) as exc:
            self.message.emit(f"Cannot play {Path(path).name}: {exc}")

    def _on_curated(self, summary: EpisodeSummary, changes: dict) -> None:
        self.model.update_summary(summary)
        if self.review_model.current is not None and self.review_model.current.path == summary.path:
            self.curation.show_summary(summary)
        self.dashboard.show_summaries(self.review_model.summaries)

    def _on_error(self, action: str, message: str) -> None:
        if action == "Not saved":
            self.curation.show_error(f"Not saved: {message}")

    def _on_trashed(self, summary: EpisodeSummary, trash: Path) -> None:
        row = self.table.currentIndex().row()
        self.model.remove_path(summary.path)
        self.dashboard.show_summaries(self.review_model.summaries)
        if self.review_model.current is None and self.proxy.rowCount():
            self.table.selectRow(max(0, min(row, self.proxy.rowCount() - 1)))


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
        self.review.review_model.close(timeout_s=5.0)
        super().closeEvent(event)
