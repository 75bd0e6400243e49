"""Session panel: who records what where, notes, the episode counter and timer, disk left, and
the last episode (outcome, and once closed whether anything is missing from it, in words)."""

from __future__ import annotations

import html

from PySide6 import QtCore, QtWidgets

from ui import theme

#: Integrity problems listed under the last episode; the rest are counted.
MAX_PROBLEMS_SHOWN = 3


def _combo(items: list[str], current: str) -> QtWidgets.QComboBox:
    box = QtWidgets.QComboBox()
    box.setEditable(True)
    box.setInsertPolicy(QtWidgets.QComboBox.InsertAtTop)
    for item in dict.fromkeys([current, *items]):
        if item:
            box.addItem(item)
    box.setCurrentText(current)
    return box


def format_duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60:02d}:{seconds % 60:02d}" if seconds < 3600 else \
        f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit in ("B", "KB") else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


class QtSessionPanel(QtWidgets.QFrame):
    """Edits the model's session info; shows counters the window refreshes on its timer."""

    def __init__(self, model, parent=None) -> None:
        super().__init__(parent)
        self.model = model
        self.setObjectName("panel")
        info = model.config.session
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 12)

        counters = QtWidgets.QGridLayout()
        self.counter = QtWidgets.QLabel("0 / 0")
        self.counter.setObjectName("big")
        self.timer = QtWidgets.QLabel("00:00")
        self.timer.setObjectName("big")
        self.timer.setAlignment(QtCore.Qt.AlignRight | QtCore.Qt.AlignVCenter)
        counters.addWidget(self._caption("EPISODE"), 0, 0)
        counters.addWidget(self._caption("TIME", QtCore.Qt.AlignRight), 0, 1)
        counters.addWidget(self.counter, 1, 0)
        counters.addWidget(self.timer, 1, 1)
        layout.addLayout(counters)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setTextVisible(False)
        self.progress.setFixedHeight(8)
        layout.addWidget(self.progress)
        self.last = QtWidgets.QLabel("No episode yet")
        self.last.setTextFormat(QtCore.Qt.RichText)
        self.last.setWordWrap(True)
        layout.addWidget(self.last)
        self.disk = QtWidgets.QLabel("disk: …")
        self.disk.setObjectName("dim")
        layout.addWidget(self.disk)

        form = QtWidgets.QFormLayout()
        form.setLabelAlignment(QtCore.Qt.AlignRight)
        self.operator = _combo(info.known_operators, info.operator)
        self.task = _combo(info.known_tasks, info.task)
        self.station = _combo(info.known_stations, info.station)
        self.goal = QtWidgets.QSpinBox()
        self.goal.setRange(0, 100000)
        self.goal.setValue(info.goal_episodes)
        self.goal.setSpecialValueText("no goal")
        self.prompt = QtWidgets.QLineEdit(info.prompt)
        self.prompt.setPlaceholderText("what the operator should do")
        form.addRow("Operator", self.operator)
        form.addRow("Task", self.task)
        form.addRow("Station", self.station)
        form.addRow("Prompt", self.prompt)
        form.addRow("Goal", self.goal)
        layout.addLayout(form)
        layout.addWidget(self._caption("NOTES (written into the episode)"))
        self.notes = QtWidgets.QPlainTextEdit()
        self.notes.setPlaceholderText("anything unusual about this episode…")
        self.notes.setMaximumHeight(80)
        layout.addWidget(self.notes)
        layout.addStretch(1)

        for box, key in ((self.operator, "operator"), (self.task, "task"), (self.station, "station")):
            box.currentTextChanged.connect(lambda text, key=key: self.model.set_session_info(**{key: text}))
        self.prompt.textChanged.connect(lambda text: self.model.set_session_info(prompt=text))
        self.goal.valueChanged.connect(lambda n: self.model.set_session_info(goal_episodes=n))
        self.notes.textChanged.connect(lambda: self.model.set_notes(self.notes.toPlainText()))

    @staticmethod
    def _caption(text: str, align=QtCore.Qt.AlignLeft) -> QtWidgets.QLabel:
        label = QtWidgets.QLabel(text)
        label.setObjectName("dim")
        label.setStyleSheet("font-size: 10px; letter-spacing: 1px;")
        label.setAlignment(align | QtCore.Qt.AlignVCenter)
        return label

    def set_editable(self, editable: bool) -> None:
        """Who, what and where are fixed while an episode records."""
        for widget in (self.operator, self.task, self.station, self.prompt, self.goal):
            widget.setEnabled(editable)

    def refresh(self) -> None:
        m = self.model
        goal = m.goal
        self.counter.setText(f"{m.episodes_recorded} / {goal}" if goal else str(m.episodes_recorded))
        self.progress.setMaximum(max(goal, 1))
        self.progress.setValue(min(m.episodes_recorded, max(goal, 1)))
        recording = m.state == "recording"
        self.timer.setText(format_duration(m.elapsed_s))
        self.timer.setStyleSheet(f"color: {theme.RECORD_RED if recording else theme.TEXT};")
        free = m.disk_free_bytes
        if free is None:
            self.disk.setText("disk: unknown")
        else:
            hours = m.hours_left
            rate = f" · {hours:.1f} h at {format_bytes(m.data_rate_bps)}/s" if hours is not None else ""
            low = free < m.config.recording.min_free_gb * 1e9
            color = theme.LEVEL_COLORS["bad" if low else "ok" if (hours or 99) > 1 else "warn"]
            self.disk.setText(f"<span style='color:{color}'>●</span> disk {format_bytes(free)} free{rate}")

    def show_last(self, episode: dict | None) -> None:
        """The last episode: its outcome, file, and once closed whether it is whole, in words."""
        if not episode:
            self.last.setText("No episode to mark")
            return
        outcome = episode.get("outcome", "unknown")
        name = html.escape((episode.get("path") or "").rsplit("/", 1)[-1])
        dim, warn, bad = theme.TEXT_DIM, theme.LEVEL_COLORS["warn"], theme.LEVEL_COLORS["bad"]
        text = (f"Last: <span style='color:{theme.OUTCOME_COLORS.get(outcome)}'><b>{outcome.upper()}</b></span> "
                f"<span style='color:{dim}; font-size:11px'>{name}</span>")
        problems = episode.get("problems") or []
        if episode.get("closed") is False:
            text += f"<br><span style='color:{dim}; font-size:11px'>saving…</span>"
        elif episode.get("status") == "failed":
            text += f"<br><span style='color:{bad}'><b>✖ RECORDING FAILED</b></span>"
        elif problems:
            text += f"<br><span style='color:{warn}'><b>⚠ INCOMPLETE</b></span>"
        elif episode.get("closed"):
            text += f"<br><span style='color:{theme.LEVEL_COLORS['ok']}; font-size:11px'>✓ saved, nothing missing</span>"
        shown = problems[:MAX_PROBLEMS_SHOWN]
        more = len(problems) - len(shown)
        text += "".join(f"<br><span style='font-size:11px'>· {html.escape(p)}</span>" for p in shown)
        if more > 0:
            text += f"<br><span style='color:{dim}; font-size:11px'>and {more} more (collector info)</span>"
        self.last.setText(text)
