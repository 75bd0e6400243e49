"""The recorder's finisher thread: the nodes' side of the integrity ledger, then the close.

A part of :class:`collector.recording.recorder.Recorder`: for each episode it asks every node
what it had published by the start and stop instants (:mod:`collector.wire.publish_log`), then
queues the close on the writer thread, which balances the ledger (:mod:`collector.storage.ledger`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from collector.recording.episode_window import EpisodeWindow
from collector.storage.ledger import SourceMarks
from collector.storage.library import move_to_trash
from collector.wire.bus import request

log = logging.getLogger("collector.recording.recorder")

#: Seconds after a start instant that the nodes are asked what they had published by then.
MARK_DELAY_S = 1.0
#: Finished episodes whose results ``status`` keeps.
FINISHED_KEPT = 50


class EpisodeFinisher:
    """Finisher-thread methods of the recorder (mixed into ``Recorder``, which owns the state)."""

    # ---- finisher thread: the nodes' side of the ledger, then the close ----------------------
    def _finish_loop(self) -> None:
        while True:
            job, window = self._jobs.get()
            if job == "quit":
                return
            try:
                if job == "start":
                    # Late enough that each node has published what it captured before the
                    # start (publishing lags capture), early enough for its history to hold it.
                    time.sleep(max(0.0, window.start_ns / 1e9 + MARK_DELAY_S - time.time()))
                    for node in self._nodes_of(window):
                        window.marks[node] = self._marks(node, window.start_ns)
                    continue
                self._close_window(window)
            except Exception as exc:
                log.exception("finishing episode %s failed", window.uuid[:8])
                self._publish_result(window, {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                                              "path": str(window.path)})

    def _nodes_of(self, window: EpisodeWindow) -> set[str]:
        return {window.node_of[s] for s in window.streams if s in window.node_of}

    def _marks(self, node: str, at_ns: int) -> SourceMarks:
        """What ``node`` had published by ``at_ns`` (its own clock for tcp:// nodes)."""
        clock = self.clocks.get(node)
        remote_ns = int(at_ns + clock.offset_at(at_ns)) if clock is not None else at_ns
        try:
            reply = request(self.endpoints[node].ctl, "published", timeout_s=2.0, context=self.context,
                            at_ns=remote_ns)
        except Exception as exc:
            return SourceMarks(error=f"node {node} did not answer: {exc}")
        if not reply.get("ok") or not isinstance(reply.get("streams"), dict):
            return SourceMarks(error=f"node {node} cannot report what it published "
                               f"({reply.get('error', 'no answer')})")
        return SourceMarks(start=reply)

    def _close_window(self, window: EpisodeWindow) -> None:
        if not window.discard:
            for node in self._nodes_of(window):
                # Asked again now, the start count is exact even for a node that published
                # late under load; the early answer serves when the history no longer reaches.
                start = self._marks(node, window.start_ns).start
                early = window.marks.setdefault(node, SourceMarks())
                if start is not None and all(s["known"] for s in start["streams"].values()) and (
                        early.start is None or early.start["boot"] == start["boot"]):
                    early.start = start
                stop = self._marks(node, window.stop_ns)
                mark = window.marks.setdefault(node, SourceMarks(error=stop.error))
                mark.stop, mark.error = stop.start, mark.error or stop.error
        malformed = {"by_reason": dict(getattr(self._subscriber, "malformed", {}))}
        result = self.sink.call("close", window=window, malformed=malformed)
        with self._lock:
            if window in self._windows:
                self._windows.remove(window)
        if window.discard and result.get("discarded"):
            move_to_trash(window.path, Path(self.recording.output))
        self._publish_result(window, {"ok": True, **window.summary(), **result})

    def _publish_result(self, window: EpisodeWindow, result: dict[str, Any]) -> None:
        window.result = result
        self.finished[window.uuid] = result
        while len(self.finished) > FINISHED_KEPT:
            self.finished.popitem(last=False)
        window.closed.set()
