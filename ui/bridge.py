"""Delivers a Qt-free model's events, raised on any thread, to Qt views on the GUI thread."""

from __future__ import annotations

from typing import Any

from PySide6 import QtCore


class ModelEvents(QtCore.QObject):
    """Subscribe to a model with ``subscribe(listener)``; re-emit its events as a Qt signal.

    A signal emitted from a worker thread reaches slots of GUI-thread objects through Qt's event
    queue, so views handle every event on the GUI thread without locks.
    """

    event = QtCore.Signal(str, object)

    def __init__(self, model: Any, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._unsubscribe = model.subscribe(lambda name, data: self.event.emit(name, data))

    def detach(self) -> None:
        self._unsubscribe()
