"""The recorder's writer thread: appends samples to the open episode files and closes them.

Several episodes can be open at once (one recording, earlier ones draining), so every queued
item names its episode. The queue is FIFO: an episode's close is queued only after its last
sample, so every sample routed to it is in the file before its ledger is written.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
from collections import deque
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable

from collector.wire import protocol
from collector.storage import EpisodeWriter, create_episode
from collector.recording.episode_window import EpisodeWindow
from collector.recording.health import StreamHealth
from collector.storage.ledger import build_ledger, ledger_problems
from collector.storage.preparing import ChunkCompressor
from collector.storage.library import format_free_space
from collector.config import RecordingConfig
from collector.wire.streams import StreamSpec

log = logging.getLogger("collector.recording.recorder")

#: Seconds a flush waits for the video encoders to catch up (a frame or two in steady state):
#: an encoder may be further behind (a busy machine; an episode started between keyframes
#: encodes its head itself), and the other streams' rows must reach the disk meanwhile.
FLUSH_WAIT_S = 0.1
#: The writer queue holds at most this many bytes of samples before it counts overflows.
QUEUE_LIMIT_BYTES = 2 * 1024**3
#: Held frames waiting to be compressed ahead at most: each job keeps its frame alive, so a
#: writer busy elsewhere (closing a long episode, a slow disk) must not let them pile up; a
#: frame not compressed ahead is compressed when it is written, as without a pre-roll.
MAX_PREPARING = 600
#: After a backlog over this many bytes drains, freed memory is handed back to the OS.
TRIM_AFTER_BYTES = 256 << 20


def _release_memory() -> None:
    """Return freed heap memory to the OS (glibc ``malloc_trim``). A drained backlog of received
    frames (allocated by ZeroMQ's I/O thread) otherwise stays in the process's RSS for good.
    Measured: a 1,500-frame depth backlog (peak RSS ~0.9-1.0 GB) left 229 MB without the trim,
    138 MB with it (run side by side)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


class DiskFullError(OSError):
    """Free space fell below ``recording.reserve_mb``."""


class EpisodeSink:
    """Owns the writer thread and every open :class:`EpisodeWriter`.

    ``on_failure(exc)`` is called (on the writer thread) when writing fails; ``counters()``
    gives the receiver's per-stream health for the closing counters. ``writer_factory(path,
    specs, attrs, **options)`` creates each episode's writer (default
    :func:`collector.storage.create_episode`: HDF5 files; tests may pass the memory backend).
    """

    def __init__(self, recording: RecordingConfig, health: dict[str, StreamHealth],
                 on_failure: Callable[[Exception], None], *,
                 writer_factory: Callable[..., EpisodeWriter] = create_episode) -> None:
        self.recording = recording
        self._writer_factory = writer_factory
        self._health = health
        self._on_failure = on_failure
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self.queued_bytes = 0
        self._backlog_peak = 0
        self._writers: dict[str, EpisodeWriter] = {}
        self._rejected: dict[str, dict[str, int]] = {}
        #: Capture times of the samples appended per episode and stream and not yet durable
        #: (the writer's ``counts``), oldest first: capture-to-disk latency, sample by sample.
        self._unflushed_t_host: dict[str, dict[str, deque]] = {}
        self._durable_counted: dict[str, dict[str, int]] = {}
        #: When each open episode started (its writer was created): a pre-roll sample's
        #: capture-to-disk latency counts from then, not from its capture, which it was held
        #: past by design before any episode existed.
        self._opened_ns: dict[str, int] = {}
        self.disk_latency_ms: deque = deque(maxlen=200_000)
        #: The same for the samples captured after their episode started (not its pre-roll,
        #: which reaches the disk all at once after the Start).
        self.live_disk_latency_ms: deque = deque(maxlen=200_000)
        self.flush_ms: deque = deque(maxlen=10_000)
        #: Compresses frames held for a pre-roll, on this thread (collector.storage.preparing).
        self.chunks = ChunkCompressor(recording.compression, recording.checksums)
        # Jobs queued (counted by the receiver) and done (by the writer): one writer each.
        self._prepare_queued = self._prepare_done = 0
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)
        self._thread.start()

    @property
    def thread(self) -> threading.Thread:
        """The writer thread (the recorder's status reports its CPU time)."""
        return self._thread

    # ---- called from other threads -----------------------------------------------------------
    def fits(self, size: int) -> bool:
        return self.queued_bytes + size <= QUEUE_LIMIT_BYTES

    def put(self, item: tuple, size: int = 0) -> None:
        with self._lock:
            self.queued_bytes += size
            self._backlog_peak = max(self._backlog_peak, self.queued_bytes)
        self._queue.put((item, size))

    def prepare_chunks(self, sample: Any, fields: list[str], prepared: dict) -> None:
        """Compress ``fields`` of a sample held for the pre-roll into ``prepared``, on the
        writer thread, before any later item (the sample's own, once a Start adopts it).
        Skipped while :data:`MAX_PREPARING` jobs wait."""
        if self._prepare_queued - self._prepare_done >= MAX_PREPARING:
            return
        self._prepare_queued += 1
        self.put(("prepare", sample, fields, prepared))

    def submit(self, action: str, **args: Any) -> Future:
        """Queue ``_do_<action>(**args)`` for the writer thread, after everything queued before."""
        future: Future = Future()
        self.put(("command", action, future, args))
        return future

    def call(self, action: str, timeout_s: float = 60.0, **args: Any) -> Any:
        """:meth:`submit` and wait for the result."""
        return self.submit(action, **args).result(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout_s: float = 30.0) -> None:
        self.put(("quit",))
        self._thread.join(timeout_s)

    # ---- the writer thread -------------------------------------------------------------------
    def flush_soon(self) -> None:
        """Flush every open episode once the items queued so far are written (a Start's adopted
        pre-roll: on disk at once, not up to a flush interval later)."""
        self.put(("flush",))

    def _run(self) -> None:
        last_flush = time.monotonic()
        try:
            while True:
                try:
                    item, size = self._queue.get(timeout=0.05)
                except queue.Empty:
                    item, size = None, 0
                if size:
                    with self._lock:
                        self.queued_bytes -= size
                if self._backlog_peak > TRIM_AFTER_BYTES and self.queued_bytes < TRIM_AFTER_BYTES // 16:
                    self._backlog_peak = 0
                    log.info("writer backlog drained; releasing its memory")
                    _release_memory()
                if item is not None:
                    if item[0] == "quit":
                        return
                    if item[0] == "flush":
                        last_flush = 0.0  # now, below
                    try:
                        self._apply(item)
                    except Exception as exc:  # a failing disk must not kill the receiver
                        self._on_failure(exc)
                if self._writers and time.monotonic() - last_flush >= self.recording.flush_interval_s:
                    # Flushes start every interval (not an interval after the last one ended), so
                    # a slow flush does not stretch what a crash can lose beyond interval + flush.
                    last_flush = time.monotonic()
                    try:
                        self._check_disk()
                        self._flush_all()
                    except Exception as exc:
                        self._on_failure(exc)
        except BaseException as exc:  # the files stay "recording": start-up recovery finds them
            self.error = f"writer thread failed: {type(exc).__name__}: {exc}"
            log.exception("writer thread failed")

    def _apply(self, item: tuple) -> None:
        kind = item[0]
        if kind == "sample":
            _, uuid, sample, t_recv, prepared = item
            writer = self._writers.get(uuid)
            if writer is None:
                return
            try:
                writer.append(sample, t_recv, prepared)
                # Keyed as the writer counts (a stand-alone sample may name its stream short).
                stream = sample.stream if sample.stream in writer.specs else f"{sample.node}/{sample.stream}"
                opened = self._opened_ns[uuid]
                self._unflushed_t_host[uuid].setdefault(stream, deque()).append(
                    (max(sample.t_host_ns, opened), sample.t_host_ns >= opened))
            except ValueError as exc:  # a sample that does not match its declared spec
                rejected = self._rejected[uuid]
                rejected[sample.stream] = rejected.get(sample.stream, 0) + 1
                writer.add_event(sample.t_host_ns, "rejected", sample.stream, {"reason": str(exc)[:200]})
        elif kind == "prepare":
            _, sample, fields, prepared = item
            try:
                self.chunks.compress(sample, fields, prepared)
            finally:
                self._prepare_done += 1
        elif kind == "event":
            _, uuid, t_ns, event_kind, stream, detail = item
            if uuid in self._writers:
                self._writers[uuid].add_event(t_ns, event_kind, stream, detail)
        elif kind == "command":
            _, action, future, args = item
            try:
                future.set_result(getattr(self, f"_do_{action}")(**args))
            except Exception as exc:
                future.set_exception(exc)

    def _flush_all(self) -> None:
        for uuid, writer in list(self._writers.items()):
            started = time.perf_counter()
            # Video encoders get a moment, not the time a backlog needs: rows of the other
            # streams must not wait for them (they are written by a later flush).
            writer.flush(wait_s=FLUSH_WAIT_S)
            self.flush_ms.append((time.perf_counter() - started) * 1e3)
            now = protocol.now_ns()  # a sample is on disk once a flush has written it whole
            durable, counted = writer.counts, self._durable_counted[uuid]
            for stream, waiting in self._unflushed_t_host[uuid].items():
                for _ in range(min(len(waiting), durable.get(stream, 0) - counted.get(stream, 0))):
                    t_host, live = waiting.popleft()
                    self.disk_latency_ms.append((now - t_host) / 1e6)
                    if live:
                        self.live_disk_latency_ms.append((now - t_host) / 1e6)
                counted[stream] = durable.get(stream, 0)

    def _check_disk(self) -> None:
        for writer in list(self._writers.values()):
            # What the coming flush writes counts as used: the reserve must survive it.
            folder = writer.storage_folder
            if folder is None:  # not on a disk (the memory backend)
                continue
            pending_mb = writer.buffered_bytes / 2**20
            free_mb = shutil.disk_usage(folder).free / 2**20 - pending_mb
            if free_mb < self.recording.reserve_mb:
                raise DiskFullError(format_free_space(free_mb, self.recording.reserve_mb,
                                                      folder) +
                                    "; recording stopped to keep the reserve for closing the episode")

    def open(self, window: EpisodeWindow, specs: list[StreamSpec], attrs: dict) -> None:
        """Create the episode file now, on the caller's thread (a backlog in the queue must not
        delay a start), and queue its registration: call before any of its samples is queued.
        From then on only the writer thread uses it."""
        rec = self.recording
        writer = self._writer_factory(window.path, specs, attrs, compression=rec.compression,
                                      color_encoding=rec.color_encoding,
                                      jpeg_quality=rec.jpeg_quality, checksums=rec.checksums,
                                      stream_encodings=rec.stream_encodings,
                                      video_encoder=rec.video_encoder, video_crf=rec.video_crf,
                                      video_gop_s=rec.video_gop_s)
        self.submit("register", uuid=window.uuid, writer=writer, opened_ns=protocol.now_ns())

    def _forget(self, uuid: str) -> None:
        """An episode closes: its last samples are written by the close, not timed by a flush."""
        self._opened_ns.pop(uuid, None)
        self._unflushed_t_host.pop(uuid, None)
        self._durable_counted.pop(uuid, None)

    def _do_register(self, uuid: str, writer: EpisodeWriter, opened_ns: int) -> None:
        self._writers[uuid] = writer
        self._rejected[uuid] = {}
        self._opened_ns[uuid] = opened_ns
        self._unflushed_t_host[uuid], self._durable_counted[uuid] = {}, {}

    def _do_close(self, window: EpisodeWindow, malformed: dict[str, dict[str, int]]) -> dict[str, Any]:
        """Flush, balance the ledger, finalize (or discard) the episode of ``window``."""
        writer = self._writers.pop(window.uuid, None)
        rejected = self._rejected.pop(window.uuid, {})
        self._forget(window.uuid)
        if writer is None:
            return {"error": "episode was not open"}
        for stream in window.streams:
            h = self._health.get(stream, StreamHealth())
            base = window.baseline.get(stream, (0, 0, 0))
            tally = window.tallies.get(stream)
            writer.set_counters(stream, gaps=h.gaps - base[0], missing=h.missing - base[1],
                                restarts=h.restarts - base[2],
                                overflow=tally.overflow if tally else 0)
        if window.discard:
            writer.discard()  # aborted, and not to be recovered
            return {"counts": writer.counts, "discarded": True}
        with window.lock:
            end_attrs = dict(window.end_attrs)
            window.state = "closed"
        books: dict[str, Any] = {}
        transport_gaps = {s: self._health[s].missing - window.baseline.get(s, (0, 0, 0))[1]
                          for s in window.streams if s in self._health}

        def ledger(written: dict[str, dict[str, Any]]) -> dict[str, Any]:
            books.update(build_ledger(
                start_ns=window.start_ns, stop_ns=window.stop_ns,
                streams={s: spec.rate_hz for s, spec in writer.specs.items()}, written=written,
                rejected=rejected, tallies=window.tallies, marks=window.marks,
                node_of=window.node_of, malformed=malformed, undrained=set(window.pending),
                transport_gaps=transport_gaps, kinds={s: spec.kind for s, spec in writer.specs.items()}))
            return books

        status = "failed" if window.failed else "complete"
        path = writer.close(status=status, master_stream=window.master, stop_ns=window.stop_ns,
                            ledger=ledger, end_attrs={
            **end_attrs, "end_time_ns": window.stop_ns, "end_reason": window.end_reason,
            "duration_s": (window.stop_ns - window.start_ns) / 1e9})
        return {"counts": {s: b["written"] for s, b in books.get("streams", {}).items()},
                "path": str(path), "status": status, "problems": ledger_problems(books or None)}

    def _do_fail_all(self, reason: str) -> list[Path]:
        """Close every open episode after a write error, as far as the disk allows."""
        paths = []
        for uuid, writer in list(self._writers.items()):
            self._writers.pop(uuid)
            self._forget(uuid)
            paths.append(writer.path)
            try:
                writer.close(status="complete", end_attrs={"end_reason": reason})
            except Exception as exc:  # e.g. no space even for the closing attributes
                writer.abort()
                raise OSError(f"closing failed ({exc}): the file holds everything up to the last "
                              "flush, run 'collector recover' once there is space") from None
        return paths

