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
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable

import zmq

from . import protocol, security
from .protocol import Describe, Event, Message, ProtocolError, Sample

log = logging.getLogger(__name__)

LIVE_HWM = 4
#: Node events a latest-only reader keeps until they are taken.
EVENTS_KEPT = 256
#: Seconds of a node's rated message rate that its data queue holds before ZeroMQ would drop.
RELIABLE_QUEUE_SECONDS = 20.0


@dataclass(frozen=True)
class NodeEndpoints:
    data: str
    live: str
    ctl: str


def node_endpoints(base: str) -> NodeEndpoints:
    """The three endpoints of a node: ``ipc://X`` gives ``ipc://X.data`` ...; ``tcp://H:P``
    gives ports P, P+1 and P+2."""
    if base.startswith("ipc://"):
        return NodeEndpoints(f"{base}.data", f"{base}.live", f"{base}.ctl")
    if base.startswith("tcp://"):
        host, _, port = base[len("tcp://"):].rpartition(":")
        if not port.isdigit():
            raise ValueError(f"tcp endpoint '{base}' needs an explicit port, e.g. tcp://127.0.0.1:5550")
        p = int(port)
        return NodeEndpoints(f"tcp://{host}:{p}", f"tcp://{host}:{p + 1}", f"tcp://{host}:{p + 2}")
    raise ValueError(f"endpoint '{base}' must start with ipc:// or tcp://")


def new_runtime_dir() -> str:
    """A fresh private folder for one session's ipc sockets (short: ipc paths max ~100 chars)."""
    return tempfile.mkdtemp(prefix=f"collector-{os.getpid()}-{uuid.uuid4().hex[:6]}-")


def default_endpoint(runtime_dir: str, node: str) -> str:
    return f"ipc://{os.path.join(runtime_dir, node)}"


def reliable_hwm(messages_per_second: float) -> int:
    return max(1000, int(messages_per_second * RELIABLE_QUEUE_SECONDS))


class NodePublisher:
    """The sending side of a node: call :meth:`publish` from one thread only (ZeroMQ sockets are
    not thread-safe); control requests are answered on a thread of their own."""

    def __init__(self, base_endpoint: str, describe: Describe, *, messages_per_second: float = 100.0,
                 context: zmq.Context | None = None,
                 handlers: dict[str, Callable[[dict], dict]] | None = None,
                 curve: "security.CurveServer | None" = None, insecure: bool = False) -> None:
        """``curve`` encrypts and authenticates all three sockets (:mod:`collector.security`);
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
        self._handlers = {"describe": lambda _req: self._describe_reply(),
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
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(100):
                continue
            try:
                request = json.loads(sock.recv())
                handler = self._handlers.get(request.get("cmd"))
                reply = handler(request) if handler else {"ok": False, "error": f"unknown command {request.get('cmd')!r}"}
            except Exception as exc:  # a bad request must not kill the node
                reply = {"ok": False, "error": str(exc)}
            sock.send(json.dumps(reply).encode())
        sock.close()

    def send(self, message: Message) -> None:
        frames = protocol.encode(message)
        self.data.send_multipart(frames, copy=False)
        try:
            self.live.send_multipart(frames, copy=False, flags=zmq.NOBLOCK)
        except zmq.Again:
            pass  # displays only want the newest sample

    def close(self) -> None:
        self._stop.set()
        self._ctl_thread.join(2)
        self.data.close()
        self.live.close()


def request(endpoint: str, cmd: str, timeout_s: float = 2.0, context: zmq.Context | None = None,
            **params) -> dict:
    """One JSON request/reply on a control socket; raise ``TimeoutError`` if nobody answers."""
    ctx = context or zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    security.connect(sock, endpoint)
    try:
        sock.send(json.dumps({"cmd": cmd, **params}).encode())
        if not sock.poll(int(timeout_s * 1000)):
            raise TimeoutError(f"no reply from {endpoint} to '{cmd}' within {timeout_s} s")
        return json.loads(sock.recv())
    finally:
        sock.close()


def fetch_describe(ctl_endpoint: str, timeout_s: float = 5.0) -> Describe:
    reply = request(ctl_endpoint, "describe", timeout_s)
    if not reply.get("ok"):
        raise RuntimeError(f"{ctl_endpoint} refused describe: {reply.get('error')}")
    message = protocol.decode([b"describe/" + reply["describe"]["node"].encode(),
                               json.dumps(reply["describe"]).encode()])
    assert isinstance(message, Describe)
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
    """A SUB socket connected to several nodes' data endpoints; nothing is dropped on the receive
    side (no HWM), malformed messages are counted and logged, gaps are tracked."""

    def __init__(self, endpoints: Iterable[str] = (), *, topics: Iterable[bytes] = (b"",),
                 hwm: int = 0, context: zmq.Context | None = None,
                 counters: type[StreamCounters] = StreamCounters) -> None:
        self.context = context or zmq.Context.instance()
        self.socket = self.context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.RCVHWM, hwm)
        self.socket.setsockopt(zmq.LINGER, 0)
        for topic in topics:
            self.socket.setsockopt(zmq.SUBSCRIBE, topic)
        for endpoint in endpoints:
            self.connect(endpoint)
        self.tracker = SeqTracker(counters)
        #: What :meth:`SeqTracker.update` said of the last sample received (None: in sequence).
        self.last_anomaly: tuple[str, int] | None = None
        self.malformed: Counter[str] = Counter()

    def connect(self, endpoint: str) -> None:
        security.connect(self.socket, endpoint)  # as a CURVE client if the node is secured

    def receive(self, timeout_ms: int = 100) -> Message | None:
        """The next valid message, or ``None`` after ``timeout_ms`` without one."""
        deadline = time.monotonic() + timeout_ms / 1000 if timeout_ms and timeout_ms > 0 else None
        while self.socket.poll(timeout_ms):
            frames = self.socket.recv_multipart(copy=False)
            try:
                message = protocol.decode(frames)
            except ProtocolError as exc:
                self.malformed[str(exc)] += 1
                if sum(self.malformed.values()) <= 20 or self.malformed[str(exc)] == 1:
                    log.warning("dropped malformed message: %s", exc)
                # a malformed message does not shorten the wait for a valid one
                if deadline is not None:
                    timeout_ms = max(0, round((deadline - time.monotonic()) * 1000))
                continue
            if isinstance(message, Sample):
                self.last_anomaly = self.tracker.update(message)
            return message
        return None

    @property
    def malformed_count(self) -> int:
        return sum(self.malformed.values())

    def close(self) -> None:
        self.socket.close()


class LatestSubscriber:
    """Reads nodes' ``live`` endpoints on a background thread and keeps only the newest sample of
    each stream, for displays that redraw on a timer. Thread-safe :meth:`latest`."""

    def __init__(self, endpoints: Iterable[str], *, context: zmq.Context | None = None) -> None:
        self._endpoints = list(endpoints)
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
