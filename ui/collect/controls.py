"""Record controls: the big Start/Stop button, discard, outcome buttons and the reset countdown."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets


class QtRecordControls(QtWidgets.QFrame):
    """Buttons that call the model's actions; their state follows the model's ``state``."""

    def __init__(self, model, parent=None) -> None:
        super().__init__(parent)
        self.model = model
        self.setObjectName("panel")
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 12)
        self.record = QtWidgets.QPushButton("●  Record   [Space]")
        self.record.setObjectName("record")
        self.record.setMinimumHeight(58)
        self.record.clicked.connect(self.model.toggle_recording)
        layout.addWidget(self.record)
        row = QtWidgets.QHBoxLayout()
        self.success = QtWidgets.QPushButton("✓ Success  [S]")
        self.success.setObjectName("success")
        self.failure = QtWidgets.QPushButton("✗ Failure  [F]")
        self.failure.setObjectName("failure")
        self.success.clicked.connect(lambda: self.model.mark("success"))
        self.failure.clicked.connect(lambda: self.model.mark("failure"))
        row.addWidget(self.success)
        row.addWidget(self.failure)
        layout.addLayout(row)
        self.discard = QtWidgets.QPushButton("⟲ Discard && re-record  [Backspace]")
        self.discard.clicked.connect(self.model.discard_episode)
        layout.addWidget(self.discard)
        self.countdown = QtWidgets.QLabel("")
        self.countdown.setAlignment(QtCore.Qt.AlignCenter)
        self.countdown.setWordWrap(True)
        self.skip = QtWidgets.QPushButton("Skip reset  [Esc]")
        self.skip.clicked.connect(self.model.skip_reset)
        layout.addWidget(self.countdown)
        layout.addWidget(self.skip)
        #: What the next episode's pre-roll holds, and how hands-free episodes start.
        self.pre_roll = QtWidgets.QLabel("")
        self.pre_roll.setObjectName("dim")
        self.pre_roll.setWordWrap(True)
        layout.addWidget(self.pre_roll)
        self.set_state("starting-devices")

    def set_state(self, state: str) -> None:
        ready = self.model.opened
        recording = state == "recording"
        busy = state in ("starting", "stopping", "starting-devices", "calibrating")
        self.record.setText("■  Stop   [Space]" if recording else "●  Record   [Space]")
        self.record.setProperty("recording", "true" if recording else "false")
        self.record.style().unpolish(self.record)
        self.record.style().polish(self.record)
        self.record.setEnabled(ready and not busy)
        has_last = self.model.last_episode is not None
        self.success.setEnabled(ready and has_last and not recording and not busy)
        self.failure.setEnabled(ready and has_last and not recording and not busy)
        self.discard.setEnabled(ready and not busy and (recording or has_last))
        self.skip.setVisible(state == "reset")
        self.countdown.setVisible(state == "reset")

    def refresh(self) -> None:
        held = self.model.pre_roll
        if held and self.model.state != "recording":
            self.pre_roll.setText(f"Pre-roll: {held['held_s']:.1f} of {held['configured_s']:g} s held, "
                                  f"{held['held_mb']:.0f} of {held['limit_mb']:g} MB")
        elif self.model.state == "recording":
            self.pre_roll.setText("")
        if self.model.state == "reset":
            left = self.model.countdown_left_s
            then = "next episode starts" if self.model.config.session.auto_start_after_reset else "ready"
            self.countdown.setText(f"Reset the scene: {then} in <b>{left:.0f} s</b>")
