"""An episode as the recorder sees it: a window ``[start_ns, stop_ns)`` on the capture clock.

A sample belongs to the episode whose window holds its ``t_host_ns``, whenever it arrives: a
backlog in the queues or a paused recorder never moves samples into the wrong episode. After
Stop an episode *drains*: it keeps receiving until every stream it expects has delivered a
sample captured at or after ``stop_ns`` (so everything captured before has arrived: each node's
messages arrive in order), or its drain deadline passes. Meanwhile the next episode can start.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.storage.ledger import SourceMarks, StreamTally

#: ``stop_ns`` of an episode that is still recording.
OPEN = 2**63 - 1

RECORDING, DRAINING, CLOSING, CLOSED = "recording", "draining", "closing", "closed"


@dataclass
class EpisodeWindow:
    """One episode from start to close; shared by the recorder's threads under ``lock``."""

    uuid: str
    path: Path
    streams: list[str]
    master: str
    start_ns: int
    node_of: dict[str, str]
    baseline: dict[str, tuple[int, int, int]]
    stop_ns: int = OPEN
    state: str = RECORDING
    #: Whether the receiver has moved the samples it held for a late start into this episode.
    adopted: bool = False
    tallies: dict[str, StreamTally] = field(default_factory=dict)
    #: Streams that must still deliver a sample captured at or after ``stop_ns``.
    pending: set[str] = field(default_factory=set)
    drain_deadline: float = float("inf")
    marks: dict[str, SourceMarks] = field(default_factory=dict)
    #: Root attributes to write at close (a tag given while the episode drains).
    end_attrs: dict[str, Any] = field(default_factory=dict)
    end_reason: str = ""
    discard: bool = False
    failed: bool = False
    result: dict[str, Any] | None = None
    closed: threading.Event = field(default_factory=threading.Event)
    #: Guards ``end_attrs`` and ``state`` between a tag (control thread) and the close (writer).
    lock: threading.Lock = field(default_factory=threading.Lock)

    def holds(self, t_ns: int) -> bool:
        return self.start_ns <= t_ns < self.stop_ns

    def tally(self, stream: str) -> StreamTally:
        tally = self.tallies.get(stream)
        if tally is None:
            tally = self.tallies[stream] = StreamTally()
        return tally

    def begin_drain(self, stop_ns: int, expected: set[str], timeout_s: float) -> None:
        """Stop at ``stop_ns``; wait for ``expected`` streams for at most ``timeout_s``."""
        self.stop_ns = max(self.start_ns, stop_ns)
        self.state = DRAINING
        self.pending = set(expected)
        self.drain_deadline = time.monotonic() + timeout_s

    def note_arrival(self, stream: str, t_host_ns: int) -> None:
        """A sample of ``stream`` captured at ``t_host_ns`` arrived (in whichever episode)."""
        if self.state == DRAINING and t_host_ns >= self.stop_ns:
            self.pending.discard(stream)

    def drained(self, now: float) -> bool:
        return self.state == DRAINING and (not self.pending or now >= self.drain_deadline)

    def summary(self) -> dict[str, Any]:
        return {"uuid": self.uuid, "path": str(self.path), "master": self.master,
                "start_ns": self.start_ns, "stop_ns": None if self.stop_ns == OPEN else self.stop_ns,
                "state": self.state, "streams": list(self.streams)}
