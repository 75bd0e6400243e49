"""The recorder: subscribes to every node's data endpoint and writes episodes, in its own process.

Three threads, so that neither ZeroMQ nor HDF5 ever waits on the other:

* the receiver drains the SUB socket (no receive limit), tracks ``seq`` gaps and per-stream
  health, and hands samples of a running episode to a byte-bounded queue;
* the writer appends them to the :class:`~collector.episode.EpisodeWriter` and flushes at least
  every ``flush_interval_s``; episode start/stop travel through the same queue, so every sample
  received before "stop" is in the file;
* the main thread answers control requests (``status``, ``start``, ``stop``, ``discard``,
  ``tag``, ``shutdown``) on a REP socket.

Nothing is dropped silently: gaps, restarts, malformed messages, unknown streams and queue
overflows are counted in the status and written into the episode as events.

Run: ``python -m collector.recorder --ctl ENDPOINT --nodes JSON --recording JSON``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import shutil
import signal
import threading
import time
import uuid as uuidlib
from collections import deque
from concurrent.futures import Future
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import zmq

from . import __version__, protocol
from .bus import Subscriber, fetch_describe, node_endpoints
from .clocksync import ClockEstimator, Pinger
from .config import RecordingConfig, from_mapping, to_mapping
from .episode import EpisodeWriter
from .health import StreamHealth, percentiles
from .library import episode_path, move_to_trash, update_episode_attrs
from .protocol import Describe, Event, Sample
from .streams import StreamSpec
from .writer_lock import marker_path

log = logging.getLogger("collector.recorder")

#: The writer queue holds at most this many bytes of samples before it counts overflows.
QUEUE_LIMIT_BYTES = 2 * 1024**3
#: Seconds between clock exchanges with each tcp:// node (collector.clocksync).
CLOCK_INTERVAL_S = 1.0
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


class Recorder:
    """Receives from nodes and records episodes; drive it with :meth:`handle` (JSON commands)."""

    def __init__(self, nodes: dict[str, str], recording: RecordingConfig, *,
                 context: zmq.Context | None = None, describe_timeout_s: float = 10.0) -> None:
        """``nodes`` maps node name to its base endpoint."""
        self.recording = recording
        self.context = context or zmq.Context.instance()
        self.endpoints = {name: node_endpoints(base) for name, base in nodes.items()}
        self.specs: dict[str, StreamSpec] = {}
        self.node_state: dict[str, str] = {}
        for name, ep in self.endpoints.items():
            self._learn(fetch_describe(ep.ctl, timeout_s=describe_timeout_s))
        self.unknown_streams: dict[str, int] = {}
        self.overflow = 0
        self._queue: queue.Queue = queue.Queue()
        self._queued_bytes = 0
        self._backlog_peak = 0
        self._lock = threading.Lock()
        self._recording = False
        self._writer: EpisodeWriter | None = None
        self._episode: dict[str, Any] | None = None
        self._episode_streams: set[str] = set()
        self._episode_overflow: dict[str, int] = {}
        self._last_path: Path | None = None
        self.error: str | None = None
        self._unflushed_t_host: list[int] = []
        self.disk_latency_ms: deque = deque(maxlen=200_000)
        self.flush_ms: deque = deque(maxlen=10_000)
        self._stop = threading.Event()
        self._subscriber = Subscriber([ep.data for ep in self.endpoints.values()], context=self.context,
                                      counters=StreamHealth)
        self.health: dict[str, StreamHealth] = self._subscriber.tracker.streams
        # Nodes on tcp:// may run on another host with its own clock: estimate offset and drift
        # before the first sample, keep estimating, and map their timestamps onto ours.
        self.clocks = {name: ClockEstimator() for name, ep in self.endpoints.items()
                       if ep.ctl.startswith("tcp://")}
        self._pingers = {name: Pinger(self.endpoints[name].ctl, self.context) for name in self.clocks}
        for name in self.clocks:
            self._sync_clock(name)
        self._clock_thread = threading.Thread(target=self._clock_loop, name="clocks", daemon=True)
        self._receiver = threading.Thread(target=self._receive_loop, name="receiver", daemon=True)
        self._writer_thread = threading.Thread(target=self._write_loop, name="writer", daemon=True)
        self._receiver.start()
        self._writer_thread.start()
        if self.clocks:
            self._clock_thread.start()

    def _learn(self, describe: Describe) -> None:
        for data in describe.streams:
            spec = StreamSpec.from_dict(data)
            self.specs[spec.name] = spec
        self.node_state.setdefault(describe.node, "connected")

    # ---- receiver thread -------------------------------------------------------------------
    def _receive_loop(self) -> None:
        sub = self._subscriber
        while not self._stop.is_set():
            message = sub.receive(100)
            if message is None:
                continue
            t_recv = protocol.now_ns()
            if isinstance(message, Sample):
                self._on_sample(message, t_recv, sub.last_anomaly)
            elif isinstance(message, Event):
                if message.node in self.clocks:
                    message.t_host_ns = self.clocks[message.node].to_local(message.t_host_ns)
                self.node_state[message.node] = message.kind if message.kind in (
                    "connected", "disconnected", "stalled", "error") else "connected"
                if self._recording:
                    self._put(("event", message.t_host_ns, message.kind, message.stream or "",
                               {"node": message.node, **message.detail}), 0)
            elif isinstance(message, Describe):
                known = set(self.specs)
                self._learn(message)
                if set(self.specs) - known:
                    log.warning("node %s declared new streams; they are recorded from the next episode",
                                message.node)
        sub.close()

    def _on_sample(self, sample: Sample, t_recv: int, anomaly: tuple[str, int] | None) -> None:
        clock = self.clocks.get(sample.node)
        if clock is not None:
            sample.t_host_ns = clock.to_local(sample.t_host_ns)
        h = self.health[sample.stream]  # created and seq-counted by the subscriber's tracker
        h.recent.append(t_recv)
        h.latency_ms = (t_recv - sample.t_host_ns) / 1e6
        h.last_t_recv_ns = t_recv
        if not self._recording:
            return
        if sample.stream not in self._episode_streams:
            self.unknown_streams[sample.stream] = self.unknown_streams.get(sample.stream, 0) + 1
            return
        if anomaly:
            kind, value = anomaly
            detail = {"missing": value} if kind == "gap" else {"seq": value}
            self._put(("event", sample.t_host_ns, kind, sample.stream, detail), 0)
        size = sample.nbytes()
        if self._queued_bytes + size > QUEUE_LIMIT_BYTES:
            self.overflow += 1
            self._episode_overflow[sample.stream] = self._episode_overflow.get(sample.stream, 0) + 1
            if self.overflow == 1 or self.overflow % 100 == 0:
                log.error("writer queue full (%d MB): %d samples not recorded",
                          self._queued_bytes >> 20, self.overflow)
            return
        self._put(("sample", sample, t_recv), size)

    def _put(self, item: tuple, size: int) -> None:
        with self._lock:
            self._queued_bytes += size
            self._backlog_peak = max(self._backlog_peak, self._queued_bytes)
        self._queue.put((item, size))

    # ---- clock thread ----------------------------------------------------------------------
    def _sync_clock(self, node: str) -> None:
        exchange = self._pingers[node].best_of(8)
        if exchange is None:
            log.warning("node %s did not answer the clock exchange", node)
            return
        estimate = self.clocks[node].add(*exchange)
        if self._recording:
            self._put(("event", exchange[2], "clock", "", {"node": node, **estimate.to_dict()}), 0)

    def _clock_loop(self) -> None:
        while not self._stop.wait(CLOCK_INTERVAL_S):
            for node in self.clocks:
                try:
                    self._sync_clock(node)
                except Exception as exc:  # a clock exchange must never stop the recording
                    log.warning("clock exchange with %s failed: %s", node, exc)
        for pinger in self._pingers.values():
            pinger.close()

    # ---- writer thread ---------------------------------------------------------------------
    def _write_loop(self) -> None:
        last_flush = time.monotonic()
        while True:
            try:
                (item, size) = self._queue.get(timeout=0.05)
            except queue.Empty:
                item, size = None, 0
            if size:
                with self._lock:
                    self._queued_bytes -= size
            if self._backlog_peak > TRIM_AFTER_BYTES and self._queued_bytes < TRIM_AFTER_BYTES // 16:
                self._backlog_peak = 0
                log.info("writer backlog drained; releasing its memory")
                _release_memory()
            if item is not None:
                kind = item[0]
                if kind == "quit":
                    return
                try:
                    self._apply(item)
                except Exception as exc:  # a failing disk must not kill the receiver
                    self._fail(exc)
            if self._writer is not None and time.monotonic() - last_flush >= self.recording.flush_interval_s:
                # Flushes start every interval (not an interval after the last one ended), so a
                # slow flush does not stretch what a crash can lose beyond interval + one flush.
                last_flush = time.monotonic()
                try:
                    self._check_disk()
                    if self._writer is not None:
                        started = time.perf_counter()
                        self._writer.flush()
                        self.flush_ms.append((time.perf_counter() - started) * 1e3)
                        self._note_flushed()
                except Exception as exc:
                    self._fail(exc)

    def _apply(self, item: tuple) -> None:
        kind = item[0]
        if kind == "sample":
            if self._writer is not None:
                try:
                    self._writer.append(item[1], item[2])
                    self._unflushed_t_host.append(item[1].t_host_ns)
                except ValueError as exc:  # a sample that does not match its declared spec
                    self._writer.add_event(item[1].t_host_ns, "rejected", item[1].stream, {"reason": str(exc)})
        elif kind == "event":
            if self._writer is not None:
                self._writer.add_event(item[1], item[2], item[3], item[4])
        elif kind == "command":
            _, action, future, args = item
            try:
                future.set_result(getattr(self, f"_writer_{action}")(**args))
            except Exception as exc:
                future.set_exception(exc)

    def _note_flushed(self) -> None:
        # Capture-to-disk latency: a sample is on disk once the flush after its append returns.
        now = protocol.now_ns()
        self.disk_latency_ms.extend((now - t) / 1e6 for t in self._unflushed_t_host)
        self._unflushed_t_host.clear()

    def _fail(self, exc: Exception) -> None:
        """Stop the episode after a write error, closing it as far as the disk allows."""
        if self._writer is not None:
            self._last_path = self._writer.path
        self.error = f"{type(exc).__name__}: {exc}"
        log.error("recording stopped: %s", self.error)
        self._recording = False
        if self._writer is None:
            return
        try:
            self._writer_close(discard=False, end_reason=self.error)
        except Exception as close_exc:  # e.g. no space even for the closing attributes
            self.error += (f"; closing failed ({close_exc}): the file holds everything up to the "
                           "last flush, run 'collector recover' once there is space")
        self._episode = None

    def _check_disk(self) -> None:
        if self._writer is None:
            return
        # What the coming flush writes counts as used: the reserve must survive it.
        pending_mb = self._writer.buffered_bytes / 2**20
        free_mb = shutil.disk_usage(self._writer.path.parent).free / 2**20 - pending_mb
        if free_mb < self.recording.reserve_mb:
            self._fail(DiskFullError(
                f"only {free_mb:.0f} MB left on {self._writer.path.parent}; recording stopped "
                f"to keep {self.recording.reserve_mb:g} MB for closing the episode "
                "(recording.reserve_mb)"))

    def _writer_open(self, path: Path, specs: list[StreamSpec], attrs: dict) -> None:
        rec = self.recording
        self._writer = EpisodeWriter(path, specs, attrs, compression=rec.compression,
                                     color_encoding=rec.color_encoding, jpeg_quality=rec.jpeg_quality)

    def _writer_close(self, discard: bool, end_reason: str = "") -> dict[str, Any]:
        writer, self._writer = self._writer, None
        if writer is None:
            return {}
        episode = self._episode or {}
        for stream in episode.get("streams", []):
            h = self.health.get(stream, StreamHealth())
            base = episode["baseline"].get(stream, (0, 0, 0))
            writer.set_counters(stream, gaps=h.gaps - base[0], missing=h.missing - base[1],
                                restarts=h.restarts - base[2],
                                overflow=self._episode_overflow.get(stream, 0))
        if discard:
            writer.abort()
            marker_path(writer.path).unlink(missing_ok=True)  # discarded, not to be recovered
            return {"counts": writer.counts}
        end = datetime.now(timezone.utc)
        self._unflushed_t_host.clear()
        try:
            path = writer.close(status="complete", master_stream=episode.get("master"), end_attrs={
                "end_time": end.isoformat(), "end_time_ns": time.time_ns(), "end_reason": end_reason,
                "duration_s": (time.time_ns() - episode["start_ns"]) / 1e9})
        except Exception:
            writer.abort()
            raise
        return {"counts": writer.counts, "path": str(path)}

    def _command(self, action: str, timeout_s: float = 60.0, **args) -> Any:
        future: Future = Future()
        self._put(("command", action, future, args), 0)
        return future.result(timeout_s)

    # ---- control ---------------------------------------------------------------------------
    def master_stream(self, streams: list[str]) -> str:
        if self.recording.master_stream:
            return self.recording.master_stream
        colors = [s for s in streams if self.specs[s].kind == "color"]
        return (colors or streams)[0]

    def start(self, meta: dict[str, Any] | None = None) -> dict[str, Any]:
        """Open a new episode file and record every declared stream into it."""
        if self._recording:
            return {"ok": False, "error": "already recording"}
        meta = dict(meta or {})
        free_gb = shutil.disk_usage(_existing_parent(Path(self.recording.output))).free / 1e9
        if free_gb < self.recording.min_free_gb:
            return {"ok": False, "error": f"only {free_gb:.1f} GB free on {self.recording.output}; "
                    f"need {self.recording.min_free_gb} GB (recording.min_free_gb)"}
        uuid = str(uuidlib.uuid4())
        now = datetime.now(timezone.utc)
        path = episode_path(self.recording, meta, uuid, now)
        streams = sorted(self.specs)
        if not streams:
            return {"ok": False, "error": "no streams declared by any node"}
        master = self.master_stream(streams)
        if master not in self.specs:
            return {"ok": False, "error": f"master stream '{master}' is not declared by any node "
                    f"(streams: {', '.join(streams)})"}
        attrs = {"uuid": uuid, "task": str(meta.get("task", "")), "operator": str(meta.get("operator", "")),
                 "station": str(meta.get("station", "")), "prompt": str(meta.get("prompt", "")),
                 "notes": str(meta.get("notes", "")), "tags": json.dumps(list(meta.get("tags", []))),
                 "outcome": "unknown", "start_time": now.isoformat(), "start_time_ns": time.time_ns(),
                 "app_version": __version__, "master_stream": master,
                 "recording_config": json.dumps(to_mapping(self.recording))}
        self.error = None
        self._command("open", path=path, specs=[self.specs[s] for s in streams], attrs=attrs)
        self._episode = {"uuid": uuid, "path": str(path), "streams": streams, "master": master,
                         "start_ns": attrs["start_time_ns"],
                         "baseline": {s: (h.gaps, h.missing, h.restarts) for s, h in self.health.items()}}
        self._episode_streams = set(streams)
        self._episode_overflow: dict[str, int] = {}
        self._recording = True
        for node, clock in self.clocks.items():  # every episode holds the estimate it started with
            if clock.estimate is not None:
                self._put(("event", protocol.now_ns(), "clock", "",
                           {"node": node, **clock.estimate.to_dict()}), 0)
        log.info("recording %s", path)
        return {"ok": True, "path": str(path), "uuid": uuid}

    def stop(self, discard: bool = False) -> dict[str, Any]:
        """Finish (or discard) the running episode; every sample received before now is in it."""
        if not self._recording:
            return {"ok": False, "error": self.error or "not recording"}
        self._recording = False
        result = self._command("close", discard=discard)
        episode, self._episode = self._episode, None
        if discard:
            move_to_trash(Path(episode["path"]), Path(self.recording.output))
            self._last_path = None
        else:
            self._last_path = Path(result["path"])
        return {"ok": True, "discarded": discard, **episode, **result,
                "error": self.error}

    def discard(self) -> dict[str, Any]:
        """Discard the running episode, or else the last finished one (moved to ``.trash``)."""
        if self._recording:
            return self.stop(discard=True)
        if self._last_path is None or not self._last_path.exists():
            return {"ok": False, "error": "no episode to discard"}
        target = move_to_trash(self._last_path, Path(self.recording.output))
        self._last_path = None
        return {"ok": True, "discarded": True, "trash": str(target)}

    def tag(self, **attrs: Any) -> dict[str, Any]:
        if self._last_path is None:
            return {"ok": False, "error": "no finished episode to tag"}
        update_episode_attrs(self._last_path, **attrs)
        return {"ok": True, "path": str(self._last_path)}

    def status(self) -> dict[str, Any]:
        now = protocol.now_ns()
        streams = {}
        for name in sorted(set(self.specs) | set(self.health)):
            h = self.health.get(name, StreamHealth())
            spec = self.specs.get(name)
            streams[name] = {"received": h.received, "gaps": h.gaps, "missing": h.missing,
                             "restarts": h.restarts, "rate_hz": h.rate_hz(now),
                             "nominal_hz": spec.rate_hz if spec else None,
                             "latency_ms": round(h.latency_ms, 3),
                             "age_s": (now - h.last_t_recv_ns) / 1e9 if h.last_t_recv_ns else None,
                             "last_t_host_ns": h.last_t_host_ns}
        episode = None
        if self._episode:
            episode = {k: self._episode[k] for k in ("uuid", "path", "master", "start_ns")}
            episode["elapsed_s"] = (now - self._episode["start_ns"]) / 1e9
        return {"ok": True, "recording": self._recording, "episode": episode, "streams": streams,
                "nodes": dict(self.node_state), "malformed": self._subscriber.malformed_count,
                "unknown_streams": dict(self.unknown_streams), "overflow": self.overflow,
                "queued_mb": self._queued_bytes / 2**20, "error": self.error,
                "disk_latency_ms": percentiles(self.disk_latency_ms),
                "flush_ms": percentiles(self.flush_ms),
                "clocks": {n: c.estimate.to_dict() for n, c in self.clocks.items() if c.estimate},
                "last_path": str(self._last_path) if self._last_path else None}

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request.get("cmd")
        args = {k: v for k, v in request.items() if k != "cmd"}
        if cmd == "status":
            return self.status()
        if cmd == "start":
            return self.start(args.get("meta"))
        if cmd == "stop":
            return self.stop()
        if cmd == "discard":
            return self.discard()
        if cmd == "tag":
            return self.tag(**args)
        if cmd == "ping":
            return {"ok": True, "t_host_ns": protocol.now_ns()}
        return {"ok": False, "error": f"unknown command {cmd!r}"}

    def close(self) -> None:
        """Finish a running episode, then stop the threads."""
        if self._recording:
            self.stop()
        self._put(("quit",), 0)
        self._writer_thread.join(30)
        self._stop.set()
        self._receiver.join(5)
        if self._clock_thread.is_alive():
            self._clock_thread.join(5)


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def serve(recorder: Recorder, ctl_endpoint: str, stop: threading.Event) -> None:
    sock = recorder.context.socket(zmq.REP)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(ctl_endpoint)
    parent = os.getppid()
    try:
        while not stop.is_set():
            if not sock.poll(100):
                if os.getppid() != parent:  # the app died: finish the episode rather than orphan it
                    log.warning("parent process exited; finishing and stopping")
                    stop.set()
                continue
            try:
                request = json.loads(sock.recv())
                if request.get("cmd") == "shutdown":
                    stop.set()
                    reply = {"ok": True}
                else:
                    reply = recorder.handle(request)
            except Exception as exc:  # the recorder outlives a bad request
                log.exception("control request failed")
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            sock.send(json.dumps(reply).encode())
    finally:
        sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m collector.recorder", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ctl", required=True, help="control endpoint to bind")
    parser.add_argument("--nodes", required=True, help='JSON object {"node": "base endpoint"}')
    parser.add_argument("--recording", default="{}", help="JSON of the [recording] options")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s recorder %(levelname)s %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    recorder = Recorder(json.loads(args.nodes),
                        from_mapping(RecordingConfig, json.loads(args.recording), "recording"))
    try:
        serve(recorder, args.ctl, stop)
    finally:
        recorder.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
