"""The recorder's receiver thread: reads the nodes and routes each sample to its episode.

A part of :class:`collector.recording.recorder.Recorder` (split by idea, not by size): the
routing rule is that a sample belongs to the episode whose window holds its capture time,
whenever it arrives (:mod:`collector.recording.episode_window`).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

from collector.recording.episode_window import CLOSING, EpisodeWindow
from collector.wire import protocol
from collector.wire.protocol import Describe, Event, Sample

log = logging.getLogger("collector.recording.recorder")

#: Samples captured after the last episode's stop are held for the pre-roll
#: (``recording.pre_roll_s``) and this long besides (at most ``recording.pre_roll_max_mb``) in
#: case a start arrives whose instant lies before them: an episode begins with the pre-roll,
#: and a recorder that answers the start late (busy, paused) still gets its first samples.
UNROUTED_S = 5.0


class EpisodeReceiver:
    """Receiver-thread methods of the recorder (mixed into ``Recorder``, which owns the state)."""

    # ---- receiver thread -------------------------------------------------------------------
    def _receive_loop(self) -> None:
        sub = self._subscriber
        try:
            while not self._stop.is_set():
                message = sub.receive(50)
                if message is not None:
                    try:
                        self._on_message(message, sub.last_anomaly)
                    except Exception as exc:  # contained to this message: counted, shown
                        self._on_receiver_failure(message, exc)
                self._adopt_unrouted()
                self._check_drains()
        except BaseException as exc:  # should never happen; if it does, no episode is "complete"
            self._thread_failed("receiver", exc)
        finally:
            sub.close()

    def _on_message(self, message: Any, anomaly: tuple[str, int] | None) -> None:
        if isinstance(message, Sample):
            self._on_sample(message, protocol.now_ns(), anomaly)
        elif isinstance(message, Event):
            self._on_event(message)
        elif isinstance(message, Describe):
            known = set(self.specs)
            self._learn(message)
            if set(self.specs) - known:
                log.warning("node %s declared new streams; they are recorded from the next episode",
                            message.node)

    def _on_receiver_failure(self, message: Any, exc: Exception) -> None:
        self.receiver_failures += 1
        stream = getattr(message, "stream", None)
        if isinstance(message, Sample):
            window = self._window_for(message.t_host_ns)
            if window is not None and stream in window.streams:
                window.tally(stream).receiver_failure += 1
        if self.receiver_failures <= 10 or self.receiver_failures % 1000 == 0:
            log.error("failed handling a message from %s (%d so far): %s",
                      getattr(message, "node", "?"), self.receiver_failures, str(exc)[:200])

    def _on_event(self, event: Event) -> None:
        if event.node in self.clocks:
            event.t_host_ns = self.clocks[event.node].to_local(event.t_host_ns)
        self.node_state[event.node] = event.kind if event.kind in (
            "connected", "disconnected", "stalled", "error") else "connected"
        window = self._window_for(event.t_host_ns) or self._current
        if event.kind in ("disconnected", "stalled", "error"):
            with self._lock:  # a lost device delivers no tail: do not wait for it
                for w in self._windows:
                    w.pending -= {s for s in w.pending if self.node_of.get(s) == event.node}
        if window is not None and window.state != CLOSING:
            self.sink.put(("event", window.uuid, event.t_host_ns, event.kind, event.stream or "",
                           {"node": event.node, **event.detail}))

    def _window_for(self, t_ns: int) -> EpisodeWindow | None:
        for window in self._windows:
            if window.holds(t_ns):
                return window
        return None

    def _on_sample(self, sample: Sample, t_recv: int, anomaly: tuple[str, int] | None) -> None:
        clock = self.clocks.get(sample.node)
        if clock is not None:
            sample.t_host_ns = clock.to_local(sample.t_host_ns)
        h = self.health[sample.stream]  # created and seq-counted by the subscriber's tracker
        if sample.stream not in self._first_seen_ns:
            # What came before a stream's first received sample was never received (the
            # subscription was still coming up): a pre-roll never reaches back past it.
            self._first_seen_ns[sample.stream] = sample.t_host_ns
        h.recent.append(t_recv)
        h.latency_ms = (t_recv - sample.t_host_ns) / 1e6
        h.last_t_recv_ns = t_recv
        for window in self._windows:
            window.note_arrival(sample.stream, sample.t_host_ns)
        self._adopt_unrouted()
        window = self._window_for(sample.t_host_ns)
        # Colour is encoded as it arrives, held for a pre-roll or not (collector.storage.preparing).
        prepared = self.preparer.prepare(sample, self.specs[sample.stream], held=window is None) \
            if self.preparer is not None and sample.stream in self.specs else None
        if window is None:
            self._hold_unrouted(sample, t_recv, prepared)
        else:
            self._route(window, sample, t_recv, anomaly, prepared)
        self._feed_triggers(sample)  # hands-free: may start or stop an episode

    def _hold_unrouted(self, sample: Sample, t_recv: int, prepared: dict | None) -> None:
        """Keep a sample captured outside every episode for a while: a start may yet arrive
        whose instant lies before it."""
        if any(sample.t_host_ns < w.stop_ns for w in self._windows):
            return  # before or inside a finished window: never part of a later episode
        self._unrouted.append((sample, t_recv, prepared))
        self._unrouted_bytes += sample.nbytes()
        horizon = sample.t_host_ns - int((self.recording.pre_roll_s + UNROUTED_S) * 1e9)
        limit = self.recording.pre_roll_max_mb * 2**20
        while self._unrouted and (self._unrouted_bytes > limit
                                  or self._unrouted[0][0].t_host_ns < horizon):
            gone = self._unrouted.popleft()[0]
            self._unrouted_bytes -= gone.nbytes()
            # A pre-roll never reaches back past a sample no longer held: its head is whole.
            self._unrouted_floor_ns = max(self._unrouted_floor_ns, gone.t_host_ns)

    def pre_roll_status(self) -> dict[str, Any]:
        """What the pre-roll holds now: its span (s), memory and limit (MiB), sample count."""
        held = self._unrouted
        # Held in order of arrival: a stream that lags (a busy node) arrives after newer
        # captures of the others, so the span is from the earliest capture to the latest.
        try:
            times = [item[0].t_host_ns for item in list(held)]
        except (IndexError, RuntimeError):  # changed by the receiver meanwhile
            times = []
        span = (max(times) - min(times)) / 1e9 if times else 0.0
        return {"configured_s": self.recording.pre_roll_s, "held_s": round(span, 3),
                "held_mb": round(self._unrouted_bytes / 2**20, 3),
                "limit_mb": self.recording.pre_roll_max_mb, "samples": len(held)}

    def _adopt_unrouted(self) -> None:
        """Move held samples into an episode that started since: before any newer sample, so
        every stream stays in capture order."""
        current = self._current
        if current is None or current.adopted:
            return
        current.adopted = True
        held, self._unrouted, self._unrouted_bytes = self._unrouted, deque(), 0
        for sample, t_recv, prepared in held:
            if current.holds(sample.t_host_ns):
                self._route(current, sample, t_recv, None, prepared)
        if held:
            self.sink.flush_soon()  # the pre-roll on disk now: a crash loses at most the last second

    def _route(self, window: EpisodeWindow, sample: Sample, t_recv: int,
               anomaly: tuple[str, int] | None, prepared: dict | None = None) -> None:
        if sample.stream not in window.streams:
            self.unknown_streams[sample.stream] = self.unknown_streams.get(sample.stream, 0) + 1
            return
        tally = window.tally(sample.stream)
        if window.state == CLOSING:
            tally.late += 1  # arrived after its episode stopped waiting: the ledger's tail
            return
        if anomaly:
            kind, value = anomaly
            detail = {"missing": value} if kind == "gap" else {"seq": value}
            self.sink.put(("event", window.uuid, sample.t_host_ns, kind, sample.stream, detail))
        size = sample.nbytes()
        if not self.sink.fits(size):
            self.overflow += 1
            tally.overflow += 1
            if self.overflow == 1 or self.overflow % 100 == 0:
                log.error("writer queue full (%d MB): %d samples not recorded",
                          self.sink.queued_bytes >> 20, self.overflow)
            return
        tally.add(sample.t_host_ns, sample.seq)
        self.sink.put(("sample", window.uuid, sample, t_recv, prepared), size)

    def _check_drains(self) -> None:
        now = time.monotonic()
        with self._lock:
            done = [w for w in self._windows if w.drained(now)]
            for window in done:
                window.state = CLOSING
        for window in done:
            if window.pending:
                log.warning("episode %s: %s did not deliver their tail within %g s",
                            window.uuid[:8], ", ".join(sorted(window.pending)),
                            self.recording.drain_timeout_s)
            self._jobs.put(("finish", window))
