"""ZeroMQ transport for the wire protocol: node publishers, reliable and latest-only subscribers.

Each device node binds three sockets derived from one base endpoint (:func:`node_endpoints`):

``data``  PUB with a deep send queue (:func:`reliable_hwm`): the recorder's path. A PUB socket
          drops silently for a subscriber whose queue is full, so the queue holds many seconds of
          the node's rated output, the recorder's SUB has no receive limit, and every receiver
          checks ``seq`` so that a drop, should one happen, is counted, never silent.
``live``  PUB with a queue of a few messages: displays, which only want the newest sample and
          must never make the node buffer for them.
``ctl``   REP answering JSON requests (``describe``, ``ping``), so late joiners get the streams.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import traceback
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import zmq

from collector.wire import protocol, security
from collector.wire.publish_log import PublishLog
from collector.wire.endpoints import (NodeEndpoints, default_endpoint,  # noqa: F401  (the bus's names)
                                      new_runtime_dir, node_endpoints)
from collector.wire.protocol import (Describe, Event, Message, ProtocolError, Sample, SampleBatch,
                                     clip)

log = logging.getLogger(__name__)

LIVE_HWM = 4
#: Node events a latest-only reader keeps until they are taken.
EVENTS_KEPT = 256
#: Seconds of a node's rated message rate that its data queue holds before ZeroMQ would drop.
RELIABLE_QUEUE_SECONDS = 20.0
#: Largest control request or reply, bytes.
MAX_REQUEST_BYTES = 1024 * 1024
#: Longest text a log line or an error reply carries from the outside.
LOG_TEXT = 200
#: At most one log line per reason in this many seconds; the rest are counted.
LOG_INTERVAL_S = 10.0


class ThrottledLog:
    """Log lines about untrusted input: each clipped to :data:`LOG_TEXT` characters, at most one
    per ``key`` (a reason, from a small fixed set) per ``interval_s``; the next line says how many
    were suppressed in between. Thread-safe."""

    def __init__(self, logger: logging.Logger, interval_s: float = LOG_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._log, self._interval, self._clock = logger, interval_s, clock
        self._last: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()
        self._lock = threading.Lock()

    def warning(self, key: str, text: str, *, exc_info: BaseException | None = None) -> None:
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._suppressed[key] += 1
                return
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
        line = clip(text, LOG_TEXT)
        if suppressed:
            line += f" (+{suppressed} more like it in the last {now - last:.0f} s)"
        if exc_info is not None:
            # The frames only: the exception's text may be anything a peer sent.
            line += "\n" + "".join(traceback.format_tb(exc_info.__traceback__)).rstrip()
        self._log.warning("%s", line)


def reliable_hwm(messages_per_second: float) -> int:
    return max(1000, int(messages_per_second * RELIABLE_QUEUE_SECONDS))


class NodePublisher:
    """The sending side of a node: call :meth:`publish` from one thread only (ZeroMQ sockets are
    not thread-safe); control requests are answered on a thread of their own."""

    def __init__(self, base_endpoint: str, describe: Describe, *, messages_per_second: float = 100.0,
                 context: zmq.Context | None = None,
                 handlers: dict[str, Callable[[dict], dict]] | None = None,
                 curve: "security.CurveServer | None" = None, insecure: bool = False) -> None:
        """``curve`` encrypts and authenticates all three sockets (:mod:`collector.wire.security`);
        without it a ``tcp://`` bind beyond loopback is refused unless ``insecure``."""
        self.endpoints = node_endpoints(base_endpoint)
        if curve is None and not insecure and not security.is_local(base_endpoint):
            raise security.SecurityError(
                f"refusing to bind {base_endpoint} without CurveZMQ keys: anyone on the network "
                "could read and inject data. Give keys (collector keys; --curve-secret, "
                "--curve-authorized), bind 127.0.0.1, or pass --insecure on a trusted network")
        self.curve = curve
        self.context = context or zmq.Context.instance()
        self._describe = describe
        #: What this node published, for the recorder's integrity ledger (collector.storage.ledger).
        self.published = PublishLog()
        self._truth = _open_publish_record(describe.node)
        self._handlers = {"describe": lambda _req: self._describe_reply(),
                          "published": self._published_reply,
                          "ping": lambda _req: {"ok": True, "t_host_ns": protocol.now_ns()}}
        self._handlers.update(handlers or {})
        self.data = self.context.socket(zmq.PUB)
        self.data.setsockopt(zmq.SNDHWM, reliable_hwm(messages_per_second))
        self.data.setsockopt(zmq.LINGER, 2000)
        self.live = self.context.socket(zmq.PUB)
        self.live.setsockopt(zmq.SNDHWM, LIVE_HWM)
        self.live.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            curve.apply(self.data)
            curve.apply(self.live)
        try:
            self.data.bind(self.endpoints.data)
            self.live.bind(self.endpoints.live)
        except zmq.ZMQError:
            self.data.close(linger=0)
            self.live.close(linger=0)
            raise
        self._stop = threading.Event()
        self._ctl_ready = threading.Event()
        self._ctl_error: Exception | None = None
        self._ctl_thread = threading.Thread(target=self._serve_control, name="ctl", daemon=True)
        self._ctl_thread.start()
        self._ctl_ready.wait(5)
        if self._ctl_error:
            # Release the data and live endpoints too, so that a retry can bind them again.
            self.data.close(linger=0)
            self.live.close(linger=0)
            raise self._ctl_error

    def _describe_reply(self) -> dict:
        return {"ok": True, "describe": json.loads(protocol.encode_describe(self._describe)[1])}

    def set_describe(self, describe: Describe) -> None:
        self._describe = describe
        self.send(describe)

    def _published_reply(self, request: dict) -> dict:
        at_ns = request.get("at_ns")
        if not isinstance(at_ns, int) or isinstance(at_ns, bool) or not -2**63 <= at_ns < 2**63:
            return {"ok": False, "error": "published needs an integer 'at_ns' (ns)"}
        return {"ok": True, **self.published.query(at_ns)}

    def _handle(self, request: dict) -> dict:
        handler = self._handlers.get(request["cmd"])
        if handler is None:
            return {"ok": False, "error": f"unknown command {protocol._show(request['cmd'])}"}
        return handler(request)

    def _serve_control(self) -> None:
        sock = self.context.socket(zmq.REP)
        sock.setsockopt(zmq.LINGER, 0)
        if self.curve is not None:
            self.curve.apply(sock)
        try:
            sock.bind(self.endpoints.ctl)
        except zmq.ZMQError as exc:
            self._ctl_error = exc
            self._ctl_ready.set()
            return
        self._ctl_ready.set()
        try:
            serve_requests(sock, self._handle, self._stop)
        finally:
            sock.close()

    def send(self, message: Message) -> None:
        """Publish ``message`` on the data and live sockets; a sample or batch is counted in
        :attr:`published` (and the publish record) once per sample."""
        frames = protocol.encode(message)
        if isinstance(message, Sample):
            self._note(message.stream, message.seq, message.t_host_ns)
        elif isinstance(message, SampleBatch):
            for seq, t_host_ns in zip(message.seq, message.t_host_ns):
                self._note(message.stream, seq, t_host_ns)
        self.data.send_multipart(frames, copy=False)
        try:
            self.live.send_multipart(frames, copy=False, flags=zmq.NOBLOCK)
        except zmq.Again:
            pass  # displays only want the newest sample

    def _note(self, stream: str, seq: int, t_host_ns: int) -> None:
        self.published.note(stream, t_host_ns, seq)
        if self._truth is not None:
            self._truth.write(f"{stream} {seq} {t_host_ns}\n")

    def close(self) -> None:
        self._stop.set()
        self._ctl_thread.join(2)
        self.data.close()
        self.live.close()
        if self._truth is not None:
            self._truth.close()


#: A folder: every node appends ``stream seq t_host_ns`` per published sample to ``<node>.log``
#: in it. Ground truth for the integrity tests (tests/collector/test_integrity.py), independent
#: of the ledger's own books; off unless set.
PUBLISH_RECORD_ENV = "COLLECTOR_PUBLISH_RECORD"


def _open_publish_record(node: str):
    folder = os.environ.get(PUBLISH_RECORD_ENV)
    if not folder:
        return None
    return open(os.path.join(folder, f"{node}.log"), "a", buffering=1)  # line-buffered: survives a kill


_control_log = ThrottledLog(log)


def _error_reply(text: str) -> dict:
    return {"ok": False, "error": clip(text, protocol.MAX_ERROR_TEXT)}


def _parse_request(frames: list) -> dict:
    """The request object in ``frames``; ``ValueError`` saying what is wrong with it."""
    if len(frames) != 1:
        raise ValueError(f"expected 1 frame (a JSON object), got {len(frames)}")
    data = frames[0]
    if len(data) > MAX_REQUEST_BYTES:
        raise ValueError(f"request is {len(data)} bytes, at most {MAX_REQUEST_BYTES}")
    try:
        request = json.loads(data, parse_constant=protocol._no_constant,
                             parse_float=protocol._finite_float)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"request is not JSON: {exc}") from None
    if not isinstance(request, dict):
        raise ValueError(f"a request must be a JSON object, got {type(request).__name__}")
    if not isinstance(request.get("cmd"), str):
        raise ValueError("a request's 'cmd' must be a string")
    return request


def _encode_reply(reply: Any) -> bytes:
    if not isinstance(reply, dict):
        return json.dumps(_error_reply(f"the reply must be a JSON object, got "
                                       f"{type(reply).__name__}")).encode()
    try:
        return json.dumps(reply).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        return json.dumps(_error_reply(f"the reply is not JSON: {exc}")).encode()


def serve_requests(sock: zmq.Socket, handle: Callable[[dict], dict], stop: threading.Event, *,
                   idle: Callable[[], None] | None = None, poll_ms: int = 100) -> None:
    """Answer JSON requests on the bound REP ``sock`` until ``stop`` is set: the one control loop
    of nodes and the recorder.

    Every request gets exactly one reply, whatever it holds: a wrong frame count, bytes that are
    not a JSON object with a string ``cmd``, a request over :data:`MAX_REQUEST_BYTES`, a handler
    that raises or returns something that is not a JSON object each get
    ``{"ok": false, "error": "..."}``, and the loop goes on. Nothing raises out of it; what
    it logs is clipped and rate-limited.

    Args:
        sock: a REP socket, bound; the caller closes it.
        handle: called with a valid request (a dict with a string ``"cmd"``), returns the reply
            object. It may set ``stop`` (e.g. on ``shutdown``): its reply is sent, then the loop
            ends.
        stop: ends the loop, checked every ``poll_ms``.
        idle: called whenever ``poll_ms`` passes without a request (e.g. to check that a
            parent process is alive and set ``stop`` if not).
        poll_ms: how often ``stop`` and ``idle`` are looked at.
    """
    while not stop.is_set():
        try:
            if not sock.poll(poll_ms):
                if idle is not None:
                    try:
                        idle()
                    except Exception as exc:
                        _control_log.warning("idle", f"control idle check failed: "
                                                     f"{type(exc).__name__}: {exc}", exc_info=exc)
                continue
            frames = sock.recv_multipart()
        except zmq.ZMQError as exc:
            if exc.errno in (zmq.ETERM, zmq.ENOTSOCK):
                return  # the context or the socket is gone: nothing left to serve
            _control_log.warning("recv", f"control socket: {exc}")
            continue
        try:
            request = _parse_request(frames)
        except ValueError as exc:
            _control_log.warning("bad_request", f"refused a control request: {exc}")
            reply = json.dumps(_error_reply(str(exc))).encode()
        else:
            try:
                reply = _encode_reply(handle(request))
            except Exception as exc:  # a bad request must not kill the loop
                text = f"{type(exc).__name__}: {exc}"
                _control_log.warning("handler", f"control request {protocol._show(request['cmd'])} "
                                                f"failed: {text}", exc_info=exc)
                reply = json.dumps(_error_reply(text)).encode()
        try:
            sock.send(reply)
        except zmq.ZMQError as exc:
            if exc.errno in (zmq.ETERM, zmq.ENOTSOCK):
                return
            _control_log.warning("send", f"control reply not sent: {exc}")


def request(endpoint: str, cmd: str, timeout_s: float = 2.0, context: zmq.Context | None = None,
            **params) -> dict:
    """One JSON request/reply on a control socket.

    Raises:
        TimeoutError: nobody answered within ``timeout_s``.
        ProtocolError: the reply is not one frame holding a JSON object (reason ``bad_reply``).
    """
    ctx = context or zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    # A send can block too: after a refused CurveZMQ handshake the peer's pipe is gone until a
    # reconnect, and a REQ socket without a pipe waits (seen: a 120 s hang on a busy machine).
    sock.setsockopt(zmq.SNDTIMEO, max(1, int(timeout_s * 1000)))
    security.connect(sock, endpoint)
    try:
        try:
            sock.send(json.dumps({"cmd": cmd, **params}).encode())
        except zmq.Again:
            raise TimeoutError(f"could not send '{cmd}' to {endpoint} within {timeout_s} s") from None
        if not sock.poll(int(timeout_s * 1000)):
            raise TimeoutError(f"no reply from {endpoint} to '{cmd}' within {timeout_s} s")
        frames = sock.recv_multipart()
    finally:
        sock.close()
    where = f"malformed reply from {endpoint} to '{cmd}'"
    if len(frames) != 1:
        raise ProtocolError(f"{where}: {len(frames)} frames, expected 1", protocol.BAD_REPLY)
    if len(frames[0]) > MAX_REQUEST_BYTES:
        raise ProtocolError(f"{where}: {len(frames[0])} bytes, at most {MAX_REQUEST_BYTES}",
                            protocol.TOO_LARGE)
    try:
        reply = json.loads(frames[0])
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"{where}: not JSON: {exc}", protocol.BAD_REPLY) from None
    if not isinstance(reply, dict):
        raise ProtocolError(f"{where}: not a JSON object but {type(reply).__name__}",
                            protocol.BAD_REPLY)
    return reply


def fetch_describe(ctl_endpoint: str, timeout_s: float = 5.0, node: str | None = None) -> Describe:
    """Ask a node for its stream declarations.

    Args:
        ctl_endpoint: the node's control endpoint.
        timeout_s: how long to wait for the reply.
        node: the node's name, when the caller knows it: a describe for any other node is
            refused (``ProtocolError``, reason ``forged_sender``).

    Raises:
        TimeoutError: no reply.
        RuntimeError: the node refused.
        ProtocolError: a malformed reply or describe, or another node's describe.
    """
    reply = request(ctl_endpoint, "describe", timeout_s)
    if not reply.get("ok"):
        raise RuntimeError(f"{ctl_endpoint} refused describe: {clip(str(reply.get('error')), 200)}")
    header = reply.get("describe")
    if not isinstance(header, dict) or not isinstance(header.get("node"), str):
        raise ProtocolError(f"malformed describe reply from {ctl_endpoint}: no describe object "
                            "with a node name", protocol.BAD_DESCRIBE)
    message = protocol.decode([f"{protocol.DESCRIBE}/{header['node']}".encode()[:protocol.MAX_TOPIC_BYTES + 1],
                               json.dumps(header).encode()])
    assert isinstance(message, Describe)
    if node is not None and message.node != node:
        raise ProtocolError(f"asked node '{node}' for its describe, got node "
                            f"{protocol._show(message.node)} (from {ctl_endpoint})",
                            protocol.FORGED_SENDER)
    return message


@dataclass
class StreamCounters:
    """What a receiver saw of one stream."""

    received: int = 0
    gaps: int = 0            # number of gap events
    missing: int = 0         # samples lost inside gaps (from seq)
    restarts: int = 0        # seq went backwards: the node restarted
    last_seq: int = -1
    last_t_host_ns: int = 0


class SeqTracker:
    """Detects gaps and restarts from ``seq``, per stream."""

    def __init__(self, counters: type[StreamCounters] = StreamCounters) -> None:
        self._counters = counters
        self.streams: dict[str, StreamCounters] = {}

    def update(self, sample: Sample) -> tuple[str, int] | None:
        """Count ``sample``; return ``("gap", n_missing)`` or ``("restart", seq)`` if it is not the
        successor of the previous sample of its stream, else ``None``."""
        c = self.streams.get(sample.stream)
        if c is None:
            c = self.streams[sample.stream] = self._counters()
        c.received += 1
        c.last_t_host_ns = sample.t_host_ns
        previous, c.last_seq = c.last_seq, sample.seq
        if previous < 0 or sample.seq == previous + 1:
            return None
        if sample.seq <= previous:
            c.restarts += 1
            return ("restart", sample.seq)
        missing = sample.seq - previous - 1
        c.gaps += 1
        c.missing += missing
        return ("gap", missing)


class Subscriber:
    """Reads nodes' data endpoints: nothing is dropped on the receive side (no HWM), malformed
    messages are counted by reason and logged (clipped, rate-limited), gaps are tracked.

    Given a mapping ``{node name: endpoint}``, each node gets a SUB socket of its own and a
    message may only speak for the node of the socket it came in on: a node publishing another
    node's samples, events or describe is rejected and counted as ``forged_sender``. Given a
    plain list of endpoints (displays, which do not care who says what), one socket reads them
    all. Messages of one node keep their order; busy nodes do not starve quiet ones. A batch
    (:class:`collector.wire.protocol.SampleBatch`) comes out as its samples, one per
    :meth:`receive`, in order, each counted by :attr:`tracker` as it is handed over.
    """

    def __init__(self, endpoints: Mapping[str, str] | Iterable[str] = (), *,
                 topics: Iterable[bytes] = (b"",), hwm: int = 0, context: zmq.Context | None = None,
                 counters: type[StreamCounters] = StreamCounters) -> None:
        self.context = context or zmq.Context.instance()
        self._topics = tuple(topics)
        self._hwm = hwm
        self._poller = zmq.Poller()
        #: The node each socket belongs to (``None``: the shared socket of unnamed endpoints).
        self._node_of: dict[zmq.Socket, str | None] = {}
        self._socket_of: dict[str | None, zmq.Socket] = {}
        self._ready: deque[zmq.Socket] = deque()
        #: The rest of the last batch received, handed out before anything else is read.
        self._unbatched: deque[Sample] = deque()
        self.tracker = SeqTracker(counters)
        #: What :meth:`SeqTracker.update` said of the last sample received (None: in sequence).
        self.last_anomaly: tuple[str, int] | None = None
        #: Rejected messages by reason (:data:`collector.wire.protocol.REASONS`): a few keys at most.
        self.malformed: Counter[str] = Counter()
        #: Rejected messages by (node of the socket, or ``"?"`` for unnamed endpoints; reason).
        self.malformed_from: Counter[tuple[str, str]] = Counter()
        #: The latest rejection text per reason, clipped, for a tooltip or a status line.
        self.malformed_examples: dict[str, str] = {}
        self._log = ThrottledLog(log)
        if isinstance(endpoints, Mapping):
            for node, endpoint in endpoints.items():
                self.connect(endpoint, node=node)
        else:
            self._shared()
            for endpoint in endpoints:
                self.connect(endpoint)

    def _socket(self, node: str | None) -> zmq.Socket:
        sock = self._socket_of.get(node)
        if sock is None:
            sock = self.context.socket(zmq.SUB)
            sock.setsockopt(zmq.RCVHWM, self._hwm)
            sock.setsockopt(zmq.LINGER, 0)
            for topic in self._topics:
                sock.setsockopt(zmq.SUBSCRIBE, topic)
            self._socket_of[node] = sock
            self._node_of[sock] = node
            self._poller.register(sock, zmq.POLLIN)
        return sock

    def _shared(self) -> zmq.Socket:
        return self._socket(None)

    @property
    def socket(self) -> zmq.Socket:
        """The socket of unnamed endpoints (or the only socket): for benchmarks and tests."""
        if None in self._socket_of or len(self._socket_of) != 1:
            return self._shared()
        return next(iter(self._socket_of.values()))

    @property
    def nodes(self) -> list[str]:
        """The named nodes read, each on a socket of its own."""
        return [node for node in self._socket_of if node is not None]

    def connect(self, endpoint: str, node: str | None = None) -> None:
        """Read ``endpoint`` too; with ``node``, on that node's own socket, checked against it."""
        security.connect(self._socket(node), endpoint)  # as a CURVE client if the node is secured

    def receive(self, timeout_ms: int | None = 100) -> Sample | Describe | Event | None:
        """The next valid message (a batch's samples one by one), or ``None`` after
        ``timeout_ms`` without one (``None`` or a negative value: wait for ever)."""
        if self._unbatched:
            return self._track(self._unbatched.popleft())
        wait = None if timeout_ms is None or timeout_ms < 0 else timeout_ms
        deadline = time.monotonic() + wait / 1000 if wait else None
        while True:
            if not self._ready:
                if deadline is not None:
                    # a malformed message does not shorten the wait for a valid one
                    wait = max(0, round((deadline - time.monotonic()) * 1000))
                events = self._poller.poll(wait)
                if not events:
                    return None
                # One message from each ready socket in turn, then poll again: fair to all nodes.
                self._ready.extend(sock for sock, _ in events)
            sock = self._ready.popleft()
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                continue
            node = self._node_of[sock]
            try:
                message = protocol.decode(frames)
                if node is not None and message.node != node:
                    raise ProtocolError(
                        f"node '{node}' sent a {type(message).__name__.lower()} of node "
                        f"{protocol._show(message.node)}", protocol.FORGED_SENDER)
            except ProtocolError as exc:
                self._reject(exc, node)
                continue
            if isinstance(message, SampleBatch):
                self._unbatched.extend(message.samples())
                return self._track(self._unbatched.popleft())
            if isinstance(message, Sample):
                return self._track(message)
            return message

    def _track(self, sample: Sample) -> Sample:
        self.last_anomaly = self.tracker.update(sample)
        return sample

    def _reject(self, error: ProtocolError, node: str | None) -> None:
        reason = error.reason
        self.malformed[reason] += 1
        self.malformed_from[(node or "?", reason)] += 1
        text = clip(str(error), LOG_TEXT)
        self.malformed_examples[reason] = text
        source = f" from node '{node}'" if node is not None else ""
        self._log.warning(reason, f"dropped a malformed message{source} ({reason}): {text}")

    @property
    def malformed_count(self) -> int:
        return sum(self.malformed.values())

    def close(self) -> None:
        for sock in self._socket_of.values():
            sock.close()


class LatestSubscriber:
    """Reads nodes' ``live`` endpoints on a background thread and keeps only the newest sample of
    each stream, for displays that redraw on a timer. Thread-safe :meth:`latest`."""

    def __init__(self, endpoints: Mapping[str, str] | Iterable[str], *,
                 context: zmq.Context | None = None) -> None:
        """``endpoints``: live endpoints, as a list or as ``{node: endpoint}`` (see
        :class:`Subscriber`: a mapping rejects nodes speaking for others)."""
        self._endpoints = dict(endpoints) if isinstance(endpoints, Mapping) else list(endpoints)
        self._context = context or zmq.Context.instance()
        self._lock = threading.Lock()
        self._latest: dict[str, Sample] = {}
        self._events: list[Event] = []
        self.describes: dict[str, Describe] = {}
        #: Per-stream counters, filled by the background thread (the same dict throughout).
        self.counters: dict[str, StreamCounters] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="latest-subscriber", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sub = Subscriber(self._endpoints, hwm=LIVE_HWM, context=self._context)
        sub.tracker.streams = self.counters
        try:
            while not self._stop.is_set():
                message = sub.receive(50)
                if message is None:
                    continue
                with self._lock:
                    if isinstance(message, Sample):
                        self._on_sample(message)
                    elif isinstance(message, Event):
                        self._events.append(message)
                        del self._events[:-EVENTS_KEPT]
                    else:
                        self.describes[message.node] = message
        finally:
            sub.close()

    def _on_sample(self, sample: Sample) -> None:
        """Keep ``sample``; runs on the reader thread under the lock (subclasses keep more)."""
        self._latest[sample.stream] = sample

    def latest(self) -> dict[str, Sample]:
        with self._lock:
            return dict(self._latest)

    def take_events(self) -> list[Event]:
        with self._lock:
            events, self._events = self._events, []
            return events

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
