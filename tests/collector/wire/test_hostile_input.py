"""Hostile input on real sockets: floods of malformed messages, nodes speaking for other nodes,
broken control requests. Receivers count by reason, log a bounded amount, answer every request
and keep going (issue 13, items 4, 5 and 6)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from collector.wire import protocol
from collector.wire.bus import NodePublisher, Subscriber, fetch_describe, request, serve_requests
from collector.wire.protocol import Describe, Event, ProtocolError, Sample
from collector.wire.streams import FieldSpec, StreamSpec
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[3]


def _describe(node: str) -> Describe:
    spec = StreamSpec(name=f"{node}/hand", kind="state", rate_hz=200.0,
                      fields=[FieldSpec("q", "<f4", (3,))])
    return Describe(node=node, streams=[spec.to_dict()], info={})


def _sample(node: str, seq: int, stream: str | None = None) -> Sample:
    return Sample(node=node, stream=stream or f"{node}/hand", seq=seq, t_device_ns=seq,
                  t_host_ns=protocol.now_ns(), fields={"q": np.full(3, seq, np.float32)})


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _Collected:
    """What a subscriber delivered, read until a condition holds."""

    def __init__(self, sub: Subscriber) -> None:
        self.sub = sub
        self.messages: list = []

    def until(self, condition, timeout_s: float = 30.0, message: str = ""):
        def step():
            got = self.sub.receive(20)
            if got is not None:
                self.messages.append(got)
            return condition()
        return wait_for(step, timeout_s, interval_s=0, message=message)

    def probes(self, node: str, kind: str = "probe") -> int:
        return sum(isinstance(m, Event) and m.node == node and m.kind == kind for m in self.messages)


def _connect(sub: Subscriber, pub: NodePublisher, collected: _Collected) -> None:
    """Repeat a probe until the subscriber sees one (PUB/SUB slow joiner)."""
    node = pub._describe.node
    deadline = time.monotonic() + 10
    while not collected.probes(node) and time.monotonic() < deadline:
        pub.send(Event(node=node, kind="probe", t_host_ns=protocol.now_ns()))
        collected.until(lambda: True)
    assert collected.probes(node), f"subscriber never saw {node}"


# ----------------------------------------------------------------------------- item 5: flood

_FLOOD = r'''
import json, sys, zmq
endpoint, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ctx = zmq.Context()
pub = ctx.socket(zmq.XPUB)
pub.setsockopt(zmq.SNDHWM, 0)
pub.bind(endpoint)
pub.recv()  # a subscription: the subscriber is connected
header = json.dumps({"v": 1, "type": "event", "node": "rogue", "kind": "x", "t_host_ns": 1}).encode()
for i in range(count):
    topic = b"event/rogue/%08d" % i
    pub.send_multipart([topic + b"z" * (size - len(topic)), header])
pub.send_multipart([b"event/rogue", json.dumps({"v": 1, "type": "event", "node": "rogue",
                                                 "kind": "done", "t_host_ns": 1}).encode()])
pub.close(linger=30000)
ctx.term()
'''


def test_unique_topic_flood_keeps_counters_logs_and_memory_bounded(rundir, ctx, caplog):
    """400 messages with unique 1 MB topics (measured before: +408 MB RSS, a 391 MB log)."""
    endpoint = f"ipc://{rundir}/rogue.data"
    sub = Subscriber({"rogue": endpoint}, context=ctx)
    collected = _Collected(sub)
    caplog.set_level(logging.WARNING, logger="collector.wire.bus")
    rss_before = _rss_bytes()
    flood = subprocess.Popen([sys.executable, "-c", _FLOOD, endpoint, "400", str(1 << 20)])
    try:
        collected.until(lambda: collected.probes("rogue", "done"), 120, "the flood's last message")
        rss_growth = _rss_bytes() - rss_before
        assert flood.wait(30) == 0
    finally:
        flood.kill()
        sub.close()
    assert sub.malformed_count == 400
    assert dict(sub.malformed) == {"too_large": 400}
    assert sub.malformed_from == {("rogue", "too_large"): 400}
    log_text = "".join(record.getMessage() for record in caplog.records)
    assert len(caplog.records) <= 3 and len(log_text) < 1000, log_text[:2000]
    assert "too_large" in log_text and "topic is 1048576 bytes, at most 256" in log_text
    assert rss_growth < 100e6, f"RSS grew by {rss_growth / 1e6:.0f} MB"
    print(f"flood of 400 x 1 MB topics: RSS +{rss_growth / 1e6:.1f} MB, {len(caplog.records)} log "
          f"lines, {len(log_text)} chars")


def test_malformed_log_is_rate_limited_per_reason_with_a_suppressed_count(caplog):
    from collector.wire import bus

    clock = [1000.0]
    caplog.set_level(logging.WARNING, logger="collector.wire.bus")
    limiter = bus.ThrottledLog(logging.getLogger("collector.wire.bus"), interval_s=10.0,
                               clock=lambda: clock[0])
    for i in range(50):
        limiter.warning("bad_topic", "topic 'x%d' does not match" % i + "y" * 10_000)
    clock[0] += 11
    limiter.warning("bad_topic", "one more")
    limiter.warning("bad_field", "another reason")
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 3, lines
    assert lines[0].startswith("topic 'x0' does not match") and len(lines[0]) <= 200
    assert "49 more like it" in lines[1] and lines[1].startswith("one more")
    assert lines[2] == "another reason"


# ----------------------------------------------------------------------------- item 6: identity


def test_a_node_cannot_speak_for_another_node(rundir, ctx):
    """A fake node publishing the glove's events and samples on its own endpoint: rejected as
    forged and counted, while the glove's own messages and the fake's own ones come through."""
    glove = NodePublisher(f"ipc://{rundir}/glove", _describe("glove"), context=ctx)
    fake = NodePublisher(f"ipc://{rundir}/fake", _describe("fake"), context=ctx)
    sub = Subscriber({"glove": glove.endpoints.data, "fake": fake.endpoints.data}, context=ctx)
    collected = _Collected(sub)
    try:
        _connect(sub, glove, collected)
        _connect(sub, fake, collected)
        fake.send(Event(node="glove", kind="disconnected", t_host_ns=protocol.now_ns()))
        for seq in range(5):
            fake.send(_sample("glove", 100 + seq))
        fake.send(Describe(node="glove", streams=[], info={}))
        for seq in range(5):
            glove.send(_sample("glove", seq))
            fake.send(_sample("fake", seq))
        fake.send(Event(node="fake", kind="done", t_host_ns=protocol.now_ns()))
        glove.send(Event(node="glove", kind="done", t_host_ns=protocol.now_ns()))
        collected.until(lambda: collected.probes("fake", "done") and collected.probes("glove", "done"))
    finally:
        sub.close()
        glove.close()
        fake.close()
    glove_samples = [m.seq for m in collected.messages if isinstance(m, Sample) and m.node == "glove"]
    assert glove_samples == [0, 1, 2, 3, 4]  # the forged 100..104 never arrive, order kept
    assert [m.seq for m in collected.messages if isinstance(m, Sample) and m.node == "fake"] == list(range(5))
    assert not any(isinstance(m, Event) and m.kind == "disconnected" for m in collected.messages)
    assert not any(isinstance(m, Describe) for m in collected.messages)
    assert sub.malformed == {"forged_sender": 7}
    assert sub.malformed_from == {("fake", "forged_sender"): 7}
    counters = sub.tracker.streams["glove/hand"]
    assert (counters.received, counters.gaps, counters.restarts) == (5, 0, 0)


def test_a_plain_endpoint_list_still_reads_every_node(rundir, ctx):
    """Displays that do not care who sends what pass a list, as before."""
    a = NodePublisher(f"ipc://{rundir}/a", _describe("a"), context=ctx)
    b = NodePublisher(f"ipc://{rundir}/b", _describe("b"), context=ctx)
    sub = Subscriber([a.endpoints.data, b.endpoints.data], context=ctx)
    collected = _Collected(sub)
    try:
        _connect(sub, a, collected)
        _connect(sub, b, collected)
        for seq in range(20):
            a.send(_sample("a", seq))
            b.send(_sample("b", seq))
        collected.until(lambda: sum(isinstance(m, Sample) for m in collected.messages) == 40)
    finally:
        sub.close()
        a.close()
        b.close()
    for node in "ab":
        assert [m.seq for m in collected.messages if isinstance(m, Sample) and m.node == node] == list(range(20))


def test_a_busy_node_does_not_starve_a_quiet_one(rundir, ctx):
    busy = NodePublisher(f"ipc://{rundir}/busy", _describe("busy"), context=ctx, messages_per_second=5000)
    quiet = NodePublisher(f"ipc://{rundir}/quiet", _describe("quiet"), context=ctx)
    sub = Subscriber({"busy": busy.endpoints.data, "quiet": quiet.endpoints.data}, context=ctx)
    collected = _Collected(sub)
    try:
        _connect(sub, busy, collected)
        _connect(sub, quiet, collected)
        for seq in range(3000):
            busy.send(_sample("busy", seq))
        quiet.send(_sample("quiet", 0))
        collected.until(lambda: any(isinstance(m, Sample) and m.node == "quiet" for m in collected.messages))
        position = next(i for i, m in enumerate(collected.messages)
                        if isinstance(m, Sample) and m.node == "quiet")
        busy_before = sum(isinstance(m, Sample) and m.node == "busy" for m in collected.messages[:position])
    finally:
        sub.close()
        busy.close()
        quiet.close()
    assert busy_before < 2900, "the quiet node's sample waited for the whole backlog of the busy one"


def test_fetch_describe_checks_the_node_it_asked(rundir, ctx):
    pub = NodePublisher(f"ipc://{rundir}/glove", _describe("glove"), context=ctx)
    try:
        assert fetch_describe(pub.endpoints.ctl, node="glove").node == "glove"
        with pytest.raises(ProtocolError, match="asked node 'cam0' for its describe, got node 'glove'") as info:
            fetch_describe(pub.endpoints.ctl, node="cam0")
        assert info.value.reason == "forged_sender"
    finally:
        pub.close()


# ----------------------------------------------------------------------------- item 4: control


def _raw_request(ctx, endpoint: str, frames: list[bytes]) -> dict:
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        sock.send_multipart(frames)
        assert sock.poll(5000), f"no reply to {frames!r:.80}"
        reply = sock.recv_multipart()
        assert len(reply) == 1
        return json.loads(reply[0])
    finally:
        sock.close()


_BAD_REQUESTS = [
    ("two frames", [b'{"cmd": "ping"}', b"x"], "expected 1 frame"),
    ("three frames", [b"", b"", b""], "expected 1 frame"),
    ("empty", [b""], "not JSON"),
    ("not json", [b"\xffnot json"], "not JSON"),
    ("json list", [b"[1, 2]"], "must be a JSON object"),
    ("json number", [b"5"], "must be a JSON object"),
    ("no cmd", [b'{"x": 1}'], "'cmd' must be a string"),
    ("cmd not a string", [b'{"cmd": [1]}'], "'cmd' must be a string"),
    ("nan", [b'{"cmd": "ping", "x": NaN}'], "not JSON"),
    ("huge", [b'{"cmd": "ping", "pad": "' + b"p" * (2 << 20) + b'"}'], "bytes, at most"),
    ("unknown cmd huge", [json.dumps({"cmd": "c" * 100_000}).encode()], "unknown command"),
]


def test_node_control_answers_every_bad_request_and_keeps_serving(rundir, ctx, caplog):
    pub = NodePublisher(f"ipc://{rundir}/glove", _describe("glove"), context=ctx,
                        handlers={"explode": lambda req: 1 / 0, "weird": lambda req: {"x": object()},
                                  "listy": lambda req: [1]})
    caplog.set_level(logging.WARNING)
    try:
        for _name, frames, message in _BAD_REQUESTS:
            reply = _raw_request(ctx, pub.endpoints.ctl, frames)
            assert reply["ok"] is False and message in reply["error"], (_name, reply)
            assert len(reply["error"]) <= 300
            assert request(pub.endpoints.ctl, "ping", context=ctx)["ok"] is True
        assert request(pub.endpoints.ctl, "explode", context=ctx) == {
            "ok": False, "error": "ZeroDivisionError: division by zero"}
        assert "not JSON" in request(pub.endpoints.ctl, "weird", context=ctx)["error"]
        assert "must be a JSON object" in request(pub.endpoints.ctl, "listy", context=ctx)["error"]
        assert fetch_describe(pub.endpoints.ctl) == _describe("glove")
    finally:
        pub.close()
    assert sum(len(r.getMessage()) for r in caplog.records) < 20 * 300


def test_serve_requests_stops_on_request_and_calls_idle(ctx, rundir):
    """The loop the recorder runs: ``shutdown`` sets stop after its reply; ``idle`` runs on
    every quiet poll (the recorder checks its parent there) and may stop the loop itself."""
    endpoint = f"ipc://{rundir}/rec.ctl"
    sock = ctx.socket(zmq.REP)
    sock.bind(endpoint)
    stop = threading.Event()
    idles = []

    def handle(req: dict) -> dict:
        if req["cmd"] == "shutdown":
            stop.set()
            return {"ok": True}
        if req["cmd"] == "fail":
            raise RuntimeError("x" * 100_000)
        return {"ok": True, "cmd": req["cmd"]}

    def idle() -> None:
        idles.append(1)
        if len(idles) == 3:
            raise OSError("an idle hook that fails does not stop the loop")

    thread = threading.Thread(target=serve_requests, args=(sock, handle, stop),
                              kwargs={"idle": idle, "poll_ms": 10}, daemon=True)
    thread.start()
    try:
        assert request(endpoint, "status", context=ctx) == {"ok": True, "cmd": "status"}
        error = request(endpoint, "fail", context=ctx)["error"]
        assert error.startswith("RuntimeError: xxx") and len(error) <= 300
        assert _raw_request(ctx, endpoint, [b"a", b"b"])["ok"] is False
        wait_for(lambda: len(idles) > 5, message="idle calls")
        assert request(endpoint, "shutdown", context=ctx) == {"ok": True}
        thread.join(5)
        assert not thread.is_alive()
    finally:
        stop.set()
        thread.join(5)
        sock.close()

    # idle can stop the loop (the recorder's parent died)
    sock = ctx.socket(zmq.REP)
    sock.bind(f"ipc://{rundir}/rec2.ctl")
    stop2 = threading.Event()
    thread = threading.Thread(target=serve_requests, args=(sock, handle, stop2),
                              kwargs={"idle": stop2.set, "poll_ms": 10}, daemon=True)
    thread.start()
    thread.join(5)
    sock.close()
    assert not thread.is_alive()


_BAD_SERVER = r'''
import sys, zmq
ctx = zmq.Context()
rep = ctx.socket(zmq.REP)
rep.bind(sys.argv[1])
for reply in ([b"not json"], [b"[1]"], [b"{}", b"{}"]):
    rep.recv_multipart()
    rep.send_multipart(reply)
rep.close(linger=5000)
'''


def test_request_raises_a_clear_error_on_a_malformed_reply(rundir, ctx):
    endpoint = f"ipc://{rundir}/bad.ctl"
    server = subprocess.Popen([sys.executable, "-c", _BAD_SERVER, endpoint])
    try:
        for expected in ("not JSON", "not a JSON object", "2 frames"):
            with pytest.raises(ProtocolError, match=f"malformed reply from {endpoint} to 'ping': .*{expected}"):
                request(endpoint, "ping", timeout_s=10, context=ctx)
        assert server.wait(10) == 0
    finally:
        server.kill()


def test_latest_subscriber_takes_a_node_mapping_and_drops_forgeries(rundir, ctx):
    from collector.wire.bus import LatestSubscriber

    glove = NodePublisher(f"ipc://{rundir}/glove", _describe("glove"), context=ctx)
    fake = NodePublisher(f"ipc://{rundir}/fake", _describe("fake"), context=ctx)
    latest = LatestSubscriber({"glove": glove.endpoints.live, "fake": fake.endpoints.live}, context=ctx)
    try:
        def both_seen() -> bool:
            glove.send(_sample("glove", 1))
            fake.send(_sample("glove", 999))  # forged: never shown as the glove's
            fake.send(_sample("fake", 2))
            got = latest.latest()
            return "glove/hand" in got and "fake/hand" in got
        wait_for(both_seen, message="samples from both nodes")
        assert latest.latest()["glove/hand"].seq == 1
    finally:
        latest.close()
        glove.close()
        fake.close()
