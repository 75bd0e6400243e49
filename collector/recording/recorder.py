"""The recorder: subscribes to every node's data endpoint and writes episodes, in its own process.

Episodes are windows on the capture clock (:mod:`collector.recording.episode_window`): a sample belongs to
the episode whose ``[start, stop)`` holds its ``t_host_ns``, whenever it arrives, and after Stop
an episode drains until every stream has delivered past the stop instant while the next one may
already record. Four threads, so that neither ZeroMQ nor HDF5 nor a node ever waits on another:

* the receiver drains the SUB sockets (no receive limit), tracks ``seq`` gaps and per-stream
  health, routes each sample to its episode and hands it to a byte-bounded queue; a failure while
  handling one message is contained to it and counted;
* the writer (:class:`~collector.recording.episode_sink.EpisodeSink`) appends to the open episode files,
  flushes at least every ``flush_interval_s`` and closes drained episodes with their ledger;
* the finisher asks the nodes what they published at each start and stop instant (the
  integrity ledger, :mod:`collector.storage.ledger`) and queues the close;
* the main thread answers control requests (``status``, ``start``, ``stop``, ``discard``,
  ``tag``, ``meta``, ``hands_free``, ``shutdown``; ``recording``, a cheap "is an episode
  recording?" for background jobs that hold while one does) on a REP socket.

Nothing is dropped silently: gaps, restarts, malformed messages, unknown streams, queue overflows
and undrained tails are counted in the status, the episode's events and its ledger.

Run: ``python -m collector.recording.recorder --ctl ENDPOINT --nodes JSON --recording JSON``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import signal
import threading
import time
import uuid as uuidlib
from collections import OrderedDict, deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import zmq

from collector import __version__
from collector.wire import protocol
from collector.wire.bus import Subscriber, fetch_describe, node_endpoints, serve_requests
from collector.wire.clocksync import ClockEstimator, Pinger
from collector.calibration.station import episode_attr as calibration_attr
from collector.config import RecordingConfig
from collector.wire.options import from_mapping, to_mapping
from collector.recording.disk import start_refusal
from collector.recording.episode_sink import EpisodeSink
from collector.recording.episode_window import CLOSING, DRAINING, EpisodeWindow
from collector.recording.finishing import EpisodeFinisher
from collector.recording.receiving import EpisodeReceiver
from collector.recording.triggers import MANUAL
from collector.recording.triggers_recorder import HandsFreeTriggers
from collector.recording.health import StreamHealth, percentiles
from collector.storage.preparing import SamplePreparer
from collector.storage.library import editable_attr_values, episode_path, move_to_trash, update_episode_attrs
from collector.wire.protocol import Describe, Sample
from collector.wire.streams import StreamSpec

log = logging.getLogger("collector.recording.recorder")

#: Seconds between clock exchanges with each tcp:// node (collector.wire.clocksync).
CLOCK_INTERVAL_S = 1.0
#: A start or stop instant may lie at most this far from the recorder's clock (a request's
#: ``t_ns`` is taken by the client when the operator pressed the key).
INSTANT_TOLERANCE_NS = 600 * 10**9


class Recorder(EpisodeReceiver, EpisodeFinisher, HandsFreeTriggers):
    """Receives from nodes and records episodes; drive it with :meth:`handle` (JSON commands)."""

    def __init__(self, nodes: dict[str, str], recording: RecordingConfig, *,
                 context: zmq.Context | None = None, describe_timeout_s: float = 10.0) -> None:
        """``nodes`` maps node name to its base endpoint."""
        self.recording = recording
        self.context = context or zmq.Context.instance()
        self.endpoints = {name: node_endpoints(base) for name, base in nodes.items()}
        self.specs: dict[str, StreamSpec] = {}
        self.node_of: dict[str, str] = {}
        self.node_state: dict[str, str] = {}
        for name, ep in self.endpoints.items():
            self._learn(fetch_describe(ep.ctl, timeout_s=describe_timeout_s))
        self._init_hands_free()  # before the receiver thread feeds it
        self.unknown_streams: dict[str, int] = {}
        self.receiver_failures = 0
        self.overflow = 0
        self.error: str | None = None
        self._lock = threading.Lock()
        self._windows: list[EpisodeWindow] = []   # open: recording and draining, by start
        self._current: EpisodeWindow | None = None
        self._last: EpisodeWindow | None = None
        self.finished: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._unrouted: deque[tuple[Sample, int, dict | None]] = deque()
        self._unrouted_bytes = 0
        #: Capture time of the newest sample the held buffer let go (a pre-roll starts after it).
        self._unrouted_floor_ns = 0
        #: Stop instant of the last episode, kept or discarded (a pre-roll starts after it).
        self._last_stop_ns = 0
        #: The running episode's trigger instant (its start is the pre-roll earlier).
        self._trigger_ns: dict[str, int] = {}
        self._stop = threading.Event()
        self._subscriber = Subscriber({name: ep.data for name, ep in self.endpoints.items()},
                                      context=self.context, counters=StreamHealth)
        #: Nothing captured before this was received: a pre-roll never reaches back past it.
        self._listening_ns = protocol.now_ns()
        #: Capture time of each stream's first received sample (the same, per stream).
        self._first_seen_ns: dict[str, int] = {}
        self.health: dict[str, StreamHealth] = self._subscriber.tracker.streams
        self.sink = EpisodeSink(recording, self.health, self._on_write_failure)
        # Colour is encoded as it arrives, between episodes too, and held frames are compressed,
        # so that a Start writes its pre-roll without a burst (collector.storage.preparing).
        # Without a pre-roll nothing is held and the episodes' own encoders keep up.
        self.preparer = SamplePreparer(
            color_encoding=recording.color_encoding, stream_encodings=recording.stream_encodings,
            video_encoder=recording.video_encoder, video_crf=recording.video_crf,
            video_gop_s=recording.video_gop_s, compress=self.sink.prepare_chunks,
        ) if recording.pre_roll_s > 0 else None
        # Nodes on tcp:// may run on another host with its own clock: estimate offset and drift
        # before the first sample, keep estimating, and map their timestamps onto ours.
        self.clocks = {name: ClockEstimator() for name, ep in self.endpoints.items()
                       if ep.ctl.startswith("tcp://")}
        self._pingers = {name: Pinger(self.endpoints[name].ctl, self.context) for name in self.clocks}
        for name in self.clocks:
            self._sync_clock(name)
        self._jobs: queue.Queue = queue.Queue()
        self._clock_thread = threading.Thread(target=self._clock_loop, name="clocks", daemon=True)
        self._receiver = threading.Thread(target=self._receive_loop, name="receiver", daemon=True)
        self._finisher = threading.Thread(target=self._finish_loop, name="finisher", daemon=True)
        self._receiver.start()
        self._finisher.start()
        if self.clocks:
            self._clock_thread.start()

    def _learn(self, describe: Describe) -> None:
        specs = [StreamSpec.from_dict(data) for data in describe.streams]  # all or nothing
        for spec in specs:
            self.specs[spec.name] = spec
            self.node_of[spec.name] = describe.node
        self.node_state.setdefault(describe.node, "connected")

    # ---- failures ----------------------------------------------------------------------------
    def _on_write_failure(self, exc: Exception) -> None:
        """On the writer thread: a write failed; stop every episode, closing it if possible."""
        self.error = f"{type(exc).__name__}: {exc}"
        log.error("recording stopped: %s", self.error)
        with self._lock:
            windows, self._windows, self._current = list(self._windows), [], None
            if windows:
                self._last = windows[-1]
        try:
            self.sink._do_fail_all(self.error)
        except Exception as close_exc:
            self.error += f"; {close_exc}"
        for window in windows:
            self._publish_result(window, {"ok": False, **window.summary(), "error": self.error})

    def _thread_failed(self, name: str, exc: BaseException) -> None:
        self.error = f"the recorder's {name} thread failed: {type(exc).__name__}: {exc}"
        log.critical("%s", self.error, exc_info=exc)
        now = protocol.now_ns()
        with self._lock:
            current, self._current = self._current, None
            for window in self._windows:
                window.failed = True
                window.end_reason = self.error
                window.pending.clear()
            if current is not None:
                current.begin_drain(now, set(), 0.0)
            windows = [w for w in self._windows if w.state != CLOSING]
            for window in windows:
                window.state = CLOSING
        for window in windows:
            self._jobs.put(("finish", window))

    # ---- clock thread ----------------------------------------------------------------------
    def _sync_clock(self, node: str) -> None:
        exchange = self._pingers[node].best_of(8)
        if exchange is None:
            log.warning("node %s did not answer the clock exchange", node)
            return
        estimate = self.clocks[node].add(*exchange)
        if self._current is not None:
            self.sink.put(("event", self._current.uuid, exchange[2], "clock", "",
                           {"node": node, **estimate.to_dict()}))

    def _clock_loop(self) -> None:
        while not self._stop.wait(CLOCK_INTERVAL_S):
            for node in self.clocks:
                try:
                    self._sync_clock(node)
                except Exception as exc:  # a clock exchange must never stop the recording
                    log.warning("clock exchange with %s failed: %s", node, exc)
        for pinger in self._pingers.values():
            pinger.close()

    # ---- control ---------------------------------------------------------------------------
    def master_stream(self, streams: list[str]) -> str:
        if self.recording.master_stream:
            return self.recording.master_stream
        colors = [s for s in streams if self.specs[s].kind == "color"]
        return (colors or streams)[0]

    def _instant(self, t_ns: Any) -> int:
        now = protocol.now_ns()
        if t_ns is None:
            return now
        if not isinstance(t_ns, int) or isinstance(t_ns, bool) or abs(t_ns - now) > INSTANT_TOLERANCE_NS:
            raise ValueError(f"t_ns must be an integer within {INSTANT_TOLERANCE_NS // 10**9} s of "
                             f"the recorder's clock, got {t_ns!r}")
        return min(t_ns, now)

    @property
    def recording_now(self) -> bool:
        return self._current is not None

    def start(self, meta: dict[str, Any] | None = None, t_ns: int | None = None, *,
              trigger: str = MANUAL, exact: bool = False) -> dict[str, Any]:
        """Open a new episode starting at instant ``t_ns`` (default: now) on the capture clock.
        An earlier episode may still be draining. ``trigger`` is what started it (an episode
        attribute); ``exact`` starts it at ``t_ns`` itself, without the pre-roll (an activity cut
        whose onset is known)."""
        if self._current is not None:
            return {"ok": False, "error": "already recording"}
        if not (self._receiver.is_alive() and self.sink.alive):
            return {"ok": False, "error": self.error or "the recorder's threads are not running"}
        try:
            start_ns = self._instant(t_ns)
        except ValueError as exc:
            return {"ok": False, "error": str(exc)}
        meta = dict(meta or {})
        refusal = start_refusal(self.recording)
        if refusal:
            return {"ok": False, "error": refusal}
        streams = sorted(self.specs)
        if not streams:
            return {"ok": False, "error": "no streams declared by any node"}
        master = self.master_stream(streams)
        if master not in self.specs:
            return {"ok": False, "error": f"master stream '{master}' is not declared by any node "
                    f"(streams: {', '.join(streams)})"}
        trigger_ns = start_ns
        with self._lock:  # never overlap the previous episode's window
            previous = [w.stop_ns for w in self._windows]
            previous.append(self._last_stop_ns)
            # A stop instant in the past (an activity's end, known later; a press heard late):
            # what was captured after it but routed before the stop went to that episode, which
            # cuts it at its close. The next episode begins after it, missing none of it.
            previous += [t.last_t_ns + 1 for w in [*self._windows, self._last] if w is not None
                         for t in list(w.tallies.values())
                         if t.last_t_ns is not None and t.last_t_ns >= w.stop_ns]
            start_ns = max([start_ns, *previous])
            if exact:  # no earlier than what is still held, nor than anything was received
                pre_roll_ns = 0
                start_ns = max(start_ns, self._listening_ns, self._unrouted_floor_ns + 1)
            else:
                pre_roll_ns = int(self.recording.pre_roll_s * 1e9)
            # The pre-roll: begin earlier, with the samples held since the previous stop, but
            # never before what was received and is still held.
            # (Just after a stream's first sample, not on it: a start on a frame would leave
            # that frame without the other streams' samples before it.)
            floor = max([*previous, self._listening_ns, self._unrouted_floor_ns + 1,
                         *(t + 1 for t in list(self._first_seen_ns.values()))])
            start_ns = min(start_ns, max(start_ns - pre_roll_ns, floor))
            # With colour encoded as it is held, a pre-roll that begins on a keyframe instant
            # (up to one GOP earlier than asked) takes every packet from the continuous
            # encoders: nothing is encoded at the Start (collector.storage.preparing).
            grid = self.preparer.keyframe_grid_ns(streams) if self.preparer and pre_roll_ns else None
            if grid and start_ns - start_ns % grid >= floor:
                start_ns -= start_ns % grid
        uuid = str(uuidlib.uuid4())
        now = datetime.now(timezone.utc)
        path = episode_path(self.recording.output, self.recording.path_pattern, meta, uuid, now)
        attrs = {"uuid": uuid, "task": str(meta.get("task", "")), "operator": str(meta.get("operator", "")),
                 "station": str(meta.get("station", "")), "prompt": str(meta.get("prompt", "")),
                 "notes": str(meta.get("notes", "")), "tags": json.dumps(list(meta.get("tags", []))),
                 "outcome": "unknown", "start_time_ns": start_ns, "trigger_ns": trigger_ns,
                 "trigger": trigger,
                 "pre_roll_s": (trigger_ns - start_ns) / 1e9,
                 "app_version": __version__, "master_stream": master,
                 "recording_config": json.dumps(to_mapping(self.recording)),
                 # Measured by `collector calibrate latency`; applied when the episode closes.
                 "latency_calibration": calibration_attr(
                     str(meta.get("station", "")),
                     {s: str(self.specs[s].meta.get("serial", "")) for s in streams},
                     self.recording.latency_calibration or None)}
        window = EpisodeWindow(uuid=uuid, path=path, streams=streams, master=master,
                               start_ns=start_ns, node_of=dict(self.node_of),
                               baseline={s: (h.gaps, h.missing, h.restarts) for s, h in self.health.items()})
        self.error = None
        try:  # registered with the writer before the window can receive samples
            self.sink.open(window, [self.specs[s] for s in streams], attrs)
        except Exception as exc:
            return {"ok": False, "error": f"cannot create {path}: {type(exc).__name__}: {exc}"}
        with self._lock:
            self._windows.append(window)
            self._current = window
            self._trigger_ns = {uuid: trigger_ns}
            self._trigger_of = {**{w.uuid: self._trigger_of.get(w.uuid, MANUAL)
                                   for w in [*self._windows, self._last] if w is not None},
                                uuid: trigger}
        self._jobs.put(("start", window))
        for node, clock in self.clocks.items():  # every episode holds the estimate it started with
            if clock.estimate is not None:
                self.sink.put(("event", uuid, protocol.now_ns(), "clock", "",
                               {"node": node, **clock.estimate.to_dict()}))
        log.info("recording %s", path)
        return {"ok": True, "path": str(path), "uuid": uuid, "start_ns": start_ns,
                "trigger_ns": trigger_ns, "trigger": trigger}

    def stop(self, discard: bool = False, t_ns: int | None = None, wait: bool = True,
             timeout_s: float = 120.0, *, trigger: str = MANUAL,
             drain_timeout_s: float | None = None) -> dict[str, Any]:
        """End the running episode at instant ``t_ns`` (default: now). It drains (keeps every
        sample captured before the instant, whenever it arrives) and closes with its ledger;
        ``wait`` returns only then, else at once (the next episode can start meanwhile).
        ``trigger`` is what stopped it (its ``end_trigger`` attribute); ``drain_timeout_s``
        replaces ``recording.drain_timeout_s`` for this stop."""
        window = self._current
        if window is None:
            return {"ok": False, "error": self.error or "not recording"}
        try:
            stop_ns = self._instant(t_ns)
        except ValueError as exc:
            return {"ok": False, "error": str(exc)}
        # Wait for every stream that is delivering (it may not have reached this episode yet:
        # a paused recorder reads its backlog after the stop), not for a lost device's.
        expected = {s for s in window.streams if s in self.health and self.health[s].received
                    and self.node_state.get(window.node_of.get(s, "")) not in ("disconnected", "stalled", "error")}
        with window.lock:
            window.end_attrs.setdefault("end_trigger", trigger)
        with self._lock:
            self._current = None
            window.discard = discard
            window.begin_drain(stop_ns, set() if discard else expected,
                               drain_timeout_s or self.recording.drain_timeout_s)
            self._last_stop_ns = max(self._last_stop_ns, window.stop_ns)
        self._last = None if discard else window
        if discard:
            self._check_drains()
        if wait:
            return self.wait_closed(window.uuid, timeout_s)
        return {"ok": True, "discarded": discard, "draining": True, **window.summary(),
                "error": self.error}

    def wait_closed(self, uuid: str, timeout_s: float = 120.0) -> dict[str, Any]:
        """The result of episode ``uuid`` once closed (path, counts, ledger problems)."""
        window = next((w for w in [*self._windows, self._last] if w is not None and w.uuid == uuid), None)
        if window is None:
            return self.finished.get(uuid) or {"ok": False, "error": f"no episode {uuid}"}
        if not window.closed.wait(timeout_s):
            return {"ok": False, "error": f"episode {uuid[:8]} did not close within {timeout_s} s"}
        return {**window.result, "error": window.result.get("error") or self.error}

    def discard(self) -> dict[str, Any]:
        """Discard the running episode, or else the last one (moved to ``.trash``)."""
        if self._current is not None:  # nothing to drain: closes (and moves) at once
            return self.stop(discard=True, wait=True, timeout_s=60.0)
        window = self._last
        if window is None:
            return {"ok": False, "error": "no episode to discard"}
        self._last = None
        with window.lock:
            if window.state != "closed":
                window.discard = True  # still draining: thrown away when it closes
                return {"ok": True, "discarded": True, "path": str(window.path)}
        window.closed.wait(60.0)
        if not window.path.exists():
            return {"ok": False, "error": "no episode to discard"}
        target = move_to_trash(window.path, Path(self.recording.output))
        return {"ok": True, "discarded": True, "trash": str(target)}

    def tag(self, **attrs: Any) -> dict[str, Any]:
        """Set outcome/notes/tags on the last episode (applied at close if it still drains)."""
        window = self._last
        if window is None:
            return {"ok": False, "error": "no finished episode to tag"}
        with window.lock:
            if window.state != "closed":
                window.end_attrs.update({k: v for k, v in editable_attr_values(attrs).items()
                                         if v is not None})
                return {"ok": True, "path": str(window.path)}
        window.closed.wait(60.0)  # past the point of taking attributes: wait until the file is
        update_episode_attrs(window.path, **attrs)
        return {"ok": True, "path": str(window.path)}

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
        episode, current = None, self._current
        if current is not None:
            episode = {"uuid": current.uuid, "path": str(current.path), "master": current.master,
                       "start_ns": current.start_ns, "elapsed_s": (now - current.start_ns) / 1e9,
                       "trigger_ns": self._trigger_ns.get(current.uuid, current.start_ns),
                       "trigger": self.trigger_of(current.uuid)}
        last = self._last
        threads = {"receiver": self._receiver.is_alive(), "writer": self.sink.alive,
                   "finisher": self._finisher.is_alive()}
        thread_cpu_s = {name: thread_cpu_seconds(thread) for name, thread in (
            ("receiver", self._receiver), ("writer", self.sink.thread), ("finisher", self._finisher))}
        return {"ok": True, "recording": current is not None, "episode": episode, "streams": streams,
                "nodes": dict(self.node_state), "malformed": self._subscriber.malformed_count,
                "malformed_by_reason": dict(getattr(self._subscriber, "malformed", {})),
                "receiver_failures": self.receiver_failures,
                "unknown_streams": dict(self.unknown_streams), "overflow": self.overflow,
                "queued_mb": self.sink.queued_bytes / 2**20, "error": self.error or self.sink.error,
                "threads": threads, "thread_cpu_s": thread_cpu_s, "pre_roll": self.pre_roll_status(),
                "continuous_encoding": self.preparer.status() if self.preparer else None,
                "draining": [w.summary() for w in self._windows if w.state in (DRAINING, CLOSING)],
                "finished": dict(self.finished),
                "disk_latency_ms": percentiles(self.sink.disk_latency_ms),
                "live_disk_latency_ms": percentiles(self.sink.live_disk_latency_ms),
                "flush_ms": percentiles(self.sink.flush_ms),
                "clocks": {n: c.estimate.to_dict() for n, c in self.clocks.items() if c.estimate},
                "output": str(self.recording.output),
                "last_path": str(last.path) if last else None,
                "last_uuid": last.uuid if last else None,
                "last_trigger": self.trigger_of(last.uuid) if last else None,
                "last_end_trigger": last.end_attrs.get("end_trigger") if last else None,
                "hands_free": self.hands_free_status()}

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Answer one control request (see the module docstring); never waits for a close."""
        cmd = request.get("cmd")
        args = {k: v for k, v in request.items() if k != "cmd"}
        if cmd == "status":
            return self.status()
        if cmd == "start":
            return self.start(args.get("meta"), t_ns=args.get("t_ns"))
        if cmd == "stop":
            return self.stop(t_ns=args.get("t_ns"), wait=False)
        if cmd == "discard":
            return self.discard()
        if cmd == "tag":
            return self.tag(**args)
        if cmd == "meta":  # for the episodes the glove starts (hands-free)
            self.episode_meta = dict(args.get("meta") or {})
            return {"ok": True}
        if cmd == "hands_free":  # {"enabled": false} before a session closes
            self.hands_free_enabled = bool(args.get("enabled", True))
            return {"ok": True, **self.hands_free_status()}
        if cmd == "ping":
            return {"ok": True, "t_host_ns": protocol.now_ns()}
        if cmd == "recording":  # the cheap question a background job asks ten times a second
            current = self._current
            return {"ok": True, "recording": current is not None,
                    "uuid": current.uuid if current is not None else None}
        return {"ok": False, "error": f"unknown command {cmd!r}"}

    def close(self, timeout_s: float | None = None) -> None:
        """Finish a running episode, let every episode drain and close, then stop the threads."""
        self.hands_free_enabled = False  # the glove starts nothing more
        if self._current is not None:
            self.stop(wait=False)
        deadline = time.monotonic() + (timeout_s or self.recording.drain_timeout_s + 30.0)
        for window in list(self._windows):
            window.closed.wait(max(0.0, deadline - time.monotonic()))
        self._jobs.put(("quit", None))
        self._finisher.join(5)
        self.sink.stop(30)
        self._stop.set()
        self._receiver.join(5)
        if self.preparer is not None:
            self.preparer.close()
        if self._clock_thread.is_alive():
            self._clock_thread.join(5)


def thread_cpu_seconds(thread: threading.Thread) -> float | None:
    """CPU seconds ``thread`` has used so far (``None`` once it ended, or where the platform
    has no per-thread CPU clock): which of the recorder's threads a recording's CPU goes to
    (benchmarks/record_throughput.py prints it per recorded second)."""
    if not thread.is_alive():  # a joined thread's handle may already name another thread
        return None
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    except (AttributeError, OSError, TypeError):  # ended meanwhile, or not POSIX
        return None


#: Seconds an orphaned recorder (its app is gone, and the nodes with it) waits for samples
#: captured before the app was last seen.
ORPHAN_DRAIN_S = 2.0


def serve(recorder: Recorder, ctl_endpoint: str, stop: threading.Event) -> None:
    """Answer control requests on ``ctl_endpoint`` until ``shutdown``, a signal, or the parent
    process exiting (then the episode is finished rather than orphaned)."""
    sock = recorder.context.socket(zmq.REP)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(ctl_endpoint)
    parent = os.getppid()

    def handle(request: dict[str, Any]) -> dict[str, Any]:
        if request.get("cmd") == "shutdown":
            stop.set()
            return {"ok": True}
        return recorder.handle(request)

    parent_seen_ns = [protocol.now_ns()]

    def idle() -> None:
        if os.getppid() == parent:
            parent_seen_ns[0] = protocol.now_ns()
            return
        # The nodes go with the app, so the episode ends when the app was last seen alive,
        # not when this loop noticed (up to a poll later, after the nodes' last samples).
        log.warning("parent process exited; finishing and stopping")
        recorder.hands_free_enabled = False
        # Their samples from before that instant are a receive away; no tail proves it, since
        # the nodes are gone: a short drain, not the 10 s one that waits for the next sample.
        recorder.stop(t_ns=parent_seen_ns[0], wait=False,
                      drain_timeout_s=min(ORPHAN_DRAIN_S, recorder.recording.drain_timeout_s))
        stop.set()

    try:
        serve_requests(sock, handle, stop, idle=idle)
    finally:
        sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m collector.recording.recorder", description=__doc__,
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
