"""A node's own account of what it published, for the recorder's integrity ledger.

The recorder asks each node, for an episode's start and stop instants, how many samples of each
stream it had published with ``t_host_ns`` before them (:mod:`collector.storage.ledger`).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from typing import Any

#: Seconds of publish history a node keeps to answer "what had you published by T?".
PUBLISH_HISTORY_S = 120.0


class PublishLog:
    """A node's account of what it published: per stream, ``(t_host_ns, count, seq)`` of each
    sample over the last :data:`PUBLISH_HISTORY_S` seconds. :meth:`note` runs on the publishing
    thread, :meth:`query` on the control thread."""

    def __init__(self, history_s: float = PUBLISH_HISTORY_S) -> None:
        self.boot = os.urandom(6).hex()  # tells a restarted node's counts from the old ones
        self._history_ns = int(history_s * 1e9)
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._history: dict[str, deque[tuple[int, int, int]]] = {}

    def note(self, stream: str, t_host_ns: int, seq: int) -> None:
        """Count one published sample of ``stream``."""
        with self._lock:
            count = self._counts.get(stream, 0) + 1
            self._counts[stream] = count
            history = self._history.get(stream)
            if history is None:
                history = self._history[stream] = deque()
            history.append((t_host_ns, count, seq))
            cutoff = t_host_ns - self._history_ns
            while history[0][0] < cutoff:
                history.popleft()

    def query(self, at_ns: int) -> dict[str, Any]:
        """Per stream at instant ``at_ns``: ``count`` (samples published with ``t_host_ns <
        at_ns``, since the node started) and ``seq`` of the last of them (-1: none); ``known``
        is false when the history no longer reaches back to ``at_ns``."""
        out: dict[str, Any] = {}
        with self._lock:
            for stream, history in self._history.items():
                entries = list(history)
                pruned = entries[0][1] - 1 if entries else 0  # published before the history
                known = not entries or entries[0][0] < at_ns or pruned == 0
                # Counted by capture time, not publish order: a node may publish out of order.
                before = [e for e in entries if e[0] < at_ns]
                out[stream] = {"count": pruned + len(before),
                               "seq": max((e[2] for e in before), default=-1), "known": known}
        return {"boot": self.boot, "streams": out}
