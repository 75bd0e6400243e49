"""Curation controls: outcome, tags, notes, a non-destructive trim, and move to trash.

The panel keeps no state of its own beyond its widgets: ``edit`` carries the attributes to write
(the review widget passes them to :meth:`collector.review.EpisodeCatalog.curate`) and ``trash``
asks to move the episode away (recoverable with Undo).
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from collector.review import EpisodeSummary

from ui import theme


class QtCurationPanel(QtWidgets.QWidget):
    """Shows one summary's curation; emits ``edit(dict)`` and ``trash()``."""

    edit = QtCore.Signal(dict)
    trash = QtCore.Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.summary: EpisodeSummary | None = None
        self.cursor_s = 0.0
        self.setStyleSheet(f"QPushButton:checked {{ border: 2px solid {theme.TEXT}; }}")
        form = QtWidgets.QFormLayout(self)
        form.setLabelAlignment(QtCore.Qt.AlignRight)
        form.setContentsMargins(8, 8, 8, 8)

        outcome_row = QtWidgets.QHBoxLayout()
        self.outcome_buttons: dict[str, QtWidgets.QPushButton] = {}
        group = QtWidgets.QButtonGroup(self)
        for outcome, key in (("success", "S"), ("failure", "F"), ("unknown", "U")):
            button = QtWidgets.QPushButton(f"{outcome.capitalize()}  [{key}]")
            button.setCheckable(True)
            button.setObjectName(outcome if outcome != "unknown" else "")
            button.setToolTip(f"Mark the episode {outcome} (written at once)")
            button.clicked.connect(lambda _=False, o=outcome: self.edit.emit({"outcome": o}))
            group.addButton(button)
            outcome_row.addWidget(button)
            self.outcome_buttons[outcome] = button
        form.addRow("Outcome", outcome_row)

        self.tags = QtWidgets.QLineEdit()
        self.tags.setPlaceholderText("comma-separated, e.g. occluded, retry")
        form.addRow("Tags", self.tags)
        self.notes = QtWidgets.QPlainTextEdit()
        self.notes.setPlaceholderText("What happened in this episode")
        self.notes.setFixedHeight(64)
        form.addRow("Notes", self.notes)

        trim_row = QtWidgets.QHBoxLayout()
        self.trim_enabled = QtWidgets.QCheckBox("Keep")
        self.trim_start = QtWidgets.QDoubleSpinBox(suffix=" s", decimals=2, singleStep=0.1, maximum=1e6)
        self.trim_end = QtWidgets.QDoubleSpinBox(suffix=" s", decimals=2, singleStep=0.1, maximum=1e6)
        to = QtWidgets.QLabel("to")
        to.setObjectName("dim")
        for w in (self.trim_enabled, self.trim_start, to, self.trim_end):
            trim_row.addWidget(w)
        self.start_here = QtWidgets.QPushButton("[ at cursor")
        self.start_here.setToolTip("Trim start at the playback cursor")
        self.start_here.clicked.connect(lambda: self._set_bound(self.trim_start, self.cursor_s))
        self.end_here = QtWidgets.QPushButton("] at cursor")
        self.end_here.setToolTip("Trim end at the playback cursor")
        self.end_here.clicked.connect(lambda: self._set_bound(self.trim_end, self.cursor_s))
        self.suggest = QtWidgets.QPushButton("Cut idle")
        self.suggest.setToolTip("Trim the idle start and end found from the glove's motion")
        self.suggest.clicked.connect(self.suggest_trim)
        for w in (self.start_here, self.end_here, self.suggest):
            trim_row.addWidget(w)
        trim_row.addStretch(1)
        form.addRow("Trim", trim_row)
        self.trim_enabled.toggled.connect(self._sync_trim_widgets)

        actions = QtWidgets.QHBoxLayout()
        self.state = QtWidgets.QLabel()
        self.state.setObjectName("dim")
        actions.addWidget(self.state, 1)
        self.revert = QtWidgets.QPushButton("Revert")
        self.revert.clicked.connect(lambda: self.show_summary(self.summary))
        self.save = QtWidgets.QPushButton("Save  [Ctrl+S]")
        self.save.setObjectName("success")
        self.save.clicked.connect(self.apply)
        self.trash_button = QtWidgets.QPushButton("Move to trash  [Del]")
        self.trash_button.setObjectName("failure")
        self.trash_button.setToolTip("Moves the file to the folder's .trash (Undo: Ctrl+Z)")
        self.trash_button.clicked.connect(self.trash.emit)
        for w in (self.revert, self.save, self.trash_button):
            actions.addWidget(w)
        form.addRow(actions)
        for signal in (self.tags.textEdited, self.notes.textChanged, self.trim_enabled.toggled,
                       self.trim_start.valueChanged, self.trim_end.valueChanged):
            signal.connect(self._mark_dirty)
        self.show_summary(None)

    # ---- state -------------------------------------------------------------------------------
    def show_summary(self, summary: EpisodeSummary | None) -> None:
        """Show ``summary``'s curation (``None`` or a damaged file: disabled)."""
        self.summary = summary
        usable = summary is not None and summary.ok
        for w in self.findChildren(QtWidgets.QWidget):
            w.setEnabled(usable)
        self.trash_button.setEnabled(summary is not None)  # a damaged file may be trashed too
        widgets = (self.tags, self.notes, self.trim_enabled, self.trim_start, self.trim_end)
        for w in widgets:
            w.blockSignals(True)
        if usable:
            for outcome, button in self.outcome_buttons.items():
                button.setChecked(outcome == summary.outcome)
            self.tags.setText(", ".join(summary.tags))
            self.notes.setPlainText(summary.notes)
            for box in (self.trim_start, self.trim_end):
                box.setMaximum(max(summary.duration_s, 0.01))
            self.trim_enabled.setChecked(bool(summary.trim))
            self.trim_start.setValue(summary.trim[0] if summary.trim else 0.0)
            self.trim_end.setValue(summary.trim[1] if summary.trim else summary.duration_s)
        else:
            self.tags.clear()
            self.notes.clear()
            self.trim_enabled.setChecked(False)
        for w in widgets:
            w.blockSignals(False)
        self._sync_trim_widgets()
        self._set_dirty(False)

    def _sync_trim_widgets(self) -> None:
        on = self.trim_enabled.isChecked() and self.summary is not None and self.summary.ok
        for w in (self.trim_start, self.trim_end, self.start_here, self.end_here):
            w.setEnabled(on)

    def _mark_dirty(self, *_args) -> None:
        self._set_dirty(True)

    def _set_dirty(self, dirty: bool) -> None:
        self.dirty = dirty
        self.save.setEnabled(dirty)
        self.revert.setEnabled(dirty)
        self.state.setText("unsaved changes" if dirty else "")
        self.state.setStyleSheet(f"color: {theme.LEVEL_COLORS['warn']}" if dirty else "")

    def show_error(self, text: str) -> None:
        """Say why an edit was not saved (the edits shown stay, to fix and save again)."""
        self.state.setText(text)
        self.state.setStyleSheet(f"color: {theme.LEVEL_COLORS['bad']}")

    def _set_bound(self, box: QtWidgets.QDoubleSpinBox, value: float) -> None:
        box.setValue(value)

    def suggest_trim(self) -> None:
        """Fill the trim from the quality report's idle start and end."""
        idle = (self.summary.quality or {}).get("idle") if self.summary else None
        if not idle or not idle.get("active"):
            self.state.setText("no glove motion to trim by")
            return
        self.trim_enabled.setChecked(True)
        self.trim_start.setValue(max(0.0, idle["active"][0] - 0.2))
        self.trim_end.setValue(min(self.summary.duration_s, idle["active"][1] + 0.2))

    def changes(self) -> dict:
        """The tags, notes and trim as shown, as attributes for ``curate``."""
        tags = [t.strip() for t in self.tags.text().split(",") if t.strip()]
        trim = [self.trim_start.value(), self.trim_end.value()] if self.trim_enabled.isChecked() else None
        return {"tags": tags, "notes": self.notes.toPlainText(), "trim": trim}

    def apply(self) -> None:
        if self.summary is not None and self.summary.ok:
            self.edit.emit(self.changes())
