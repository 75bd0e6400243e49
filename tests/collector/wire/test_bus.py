"""The ZeroMQ bus over real sockets: ipc:// endpoints in a short private folder under /tmp."""

from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
import pytest
import zmq

from collector.wire import protocol
from collector.wire.bus import (
    LIVE_HWM,
    LatestSubscriber,
    NodePublisher,
    SeqTracker,
    Subscriber,
    fetch_describe,
    node_endpoints,
    reliable_hwm,
    request,
)
from collector.wire.protocol import Describe, Event, Sample
from collector.wire.streams import FieldSpec, StreamSpec

SYNC_TIMEOUT_S = 5.0


# ----------------------------------------------------------------------------- fixtures/helpers


def _describe(node: str = "cam0") -> Describe:
    spec = StreamSpec(name=f"{node}/color", kind="color", rate_hz=30.0,
                      fields=[FieldSpec("rgb", "|u1", (4, 6, 3))], meta={"serial": "X1"})
    return Describe(node=node, streams=[spec.to_dict()], info={"driver": "test"})


def _publisher(rundir: str, ctx, node: str = "cam0", **kwargs) -> NodePublisher:
    return NodePublisher(f"ipc://{rundir}/{node}", _describe(node), context=ctx, **kwargs)


def _sample(seq: int, stream: str = "cam0/color", **fields) -> Sample:
    if not fields:
        fields = {"rgb": np.full((4, 6, 3), seq % 256, np.uint8),
                  "seq_copy": np.array([seq], np.int64)}
    return Sample(node=stream.split("/")[0], stream=stream, seq=seq, t_device_ns=seq * 1000,
                  t_host_ns=protocol.now_ns(), fields=fields)


def _probe(node: str = "cam0") -> Event:
    return Event(node=node, kind="probe", t_host_ns=protocol.now_ns())


def _sync(send_probe, receive_probe) -> None:
    """Beat the PUB/SUB slow-joiner problem: repeat a probe until the subscriber sees one."""
    deadline = time.monotonic() + SYNC_TIMEOUT_S
    while time.monotonic() < deadline:
        send_probe()
        if receive_probe():
            return
    raise AssertionError("subscriber never saw the probe")


def _sync_subscriber(pub: NodePublisher, sub: Subscriber) -> None:
    def received() -> bool:
        message = sub.receive(20)
        return isinstance(message, Event) and message.kind == "probe"
    _sync(lambda: pub.send(_probe(pub._describe.node)), received)
    while sub.receive(50) is not None:  # drain the probes still in flight
        pass


def _receive_samples(sub: Subscriber, count: int, timeout_s: float = 10.0) -> list[Sample]:
    samples: list[Sample] = []
    deadline = time.monotonic() + timeout_s
    while len(samples) < count and time.monotonic() < deadline:
        message = sub.receive(100)
        if isinstance(message, Sample):
            samples.append(message)
    return samples


# ----------------------------------------------------------------------------- endpoints


def test_node_endpoints_ipc():
    endpoints = node_endpoints("ipc:///tmp/run/cam0")
    assert (endpoints.data, endpoints.live, endpoints.ctl) == (
        "ipc:///tmp/run/cam0.data", "ipc:///tmp/run/cam0.live", "ipc:///tmp/run/cam0.ctl")


def test_node_endpoints_tcp():
    endpoints = node_endpoints("tcp://127.0.0.1:5550")
    assert (endpoints.data, endpoints.live, endpoints.ctl) == (
        "tcp://127.0.0.1:5550", "tcp://127.0.0.1:5551", "tcp://127.0.0.1:5552")
    assert node_endpoints("tcp://*:6000").ctl == "tcp://*:6002"


@pytest.mark.parametrize("base, message", [
    ("tcp://127.0.0.1", "tcp endpoint 'tcp://127.0.0.1' needs an explicit port"),
    ("tcp://host:http", "needs an explicit port"),
    ("inproc://cam0", "endpoint 'inproc://cam0' must start with ipc:// or tcp://"),
    ("/tmp/cam0", "must start with ipc:// or tcp://"),
])
def test_node_endpoints_errors(base, message):
    with pytest.raises(ValueError, match=message):
        node_endpoints(base)


def test_reliable_hwm_holds_seconds_of_output():
    assert reliable_hwm(1000) == 20_000
    assert reliable_hwm(1) == 1000


def test_publisher_binds_three_ipc_endpoints(rundir, ctx):
    pub = _publisher(rundir, ctx)
    try:
        for suffix in ("data", "live", "ctl"):
            assert os.path.exists(f"{rundir}/cam0.{suffix}")
        assert pub.data.getsockopt(zmq.SNDHWM) == reliable_hwm(100)
        assert pub.live.getsockopt(zmq.SNDHWM) == LIVE_HWM
    finally:
        pub.close()


def test_publisher_bind_failure_releases_endpoints(rundir, ctx):
    # Something already holds the ctl port: the node fails, and leaves data/live free for a
    # retry (ipc binds replace stale socket files, so a tcp port is the reliable blocker).
    taken = ctx.socket(zmq.REP)
    port = taken.bind_to_random_port("tcp://127.0.0.1")
    try:
        with pytest.raises(zmq.ZMQError):
            NodePublisher(f"tcp://127.0.0.1:{port - 2}", _describe(), context=ctx)
        # free again (ZeroMQ closes listeners asynchronously, so allow it a moment)
        data = ctx.socket(zmq.PUB)
        deadline = time.monotonic() + 2
        while True:
            try:
                data.bind(f"tcp://127.0.0.1:{port - 2}")
                break
            except zmq.ZMQError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        data.close(linger=0)
    finally:
        taken.close(linger=0)


# ----------------------------------------------------------------------------- data path


def test_all_samples_arrive_in_order(rundir, ctx):
    pub = _publisher(rundir, ctx)
    sub = Subscriber([pub.endpoints.data], context=ctx)
    try:
        _sync_subscriber(pub, sub)
        n = 500
        for seq in range(n):
            pub.send(_sample(seq))
        samples = _receive_samples(sub, n)
        assert [s.seq for s in samples] == list(range(n))
        for s in samples:
            assert s.fields["seq_copy"][0] == s.seq
            assert (s.fields["rgb"] == s.seq % 256).all()
        counters = sub.tracker.streams["cam0/color"]
        assert (counters.received, counters.gaps, counters.missing, counters.restarts) == (n, 0, 0, 0)
        assert counters.last_seq == n - 1
        assert sub.malformed_count == 0
    finally:
        sub.close()
        pub.close()


def test_subscriber_topic_filter(rundir, ctx):
    pub = _publisher(rundir, ctx)
    sub = Subscriber([pub.endpoints.data], topics=[b"event/", b"sample/cam0/depth"], context=ctx)
    try:
        _sync_subscriber(pub, sub)
        for seq in range(20):
            pub.send(_sample(seq, "cam0/color"))
            pub.send(_sample(seq, "cam0/depth"))
        samples = _receive_samples(sub, 20)
        assert {s.stream for s in samples} == {"cam0/depth"}
        assert sub.receive(100) is None
    finally:
        sub.close()
        pub.close()


def test_seq_tracker_gap_and_restart():
    tracker = SeqTracker()
    results = [tracker.update(_sample(seq)) for seq in (5, 6, 7, 10, 11, 0, 1, 1)]
    assert results == [None, None, None, ("gap", 2), None, ("restart", 0), None, ("restart", 1)]
    counters = tracker.streams["cam0/color"]
    assert (counters.received, counters.gaps, counters.missing, counters.restarts) == (8, 1, 2, 2)
    assert counters.last_seq == 1
    # streams are tracked independently
    assert tracker.update(_sample(100, "cam0/depth")) is None
    assert tracker.update(_sample(2, "cam0/color")) is None


def test_gap_and_restart_over_the_bus(rundir, ctx):
    pub = _publisher(rundir, ctx)
    sub = Subscriber([pub.endpoints.data], context=ctx)
    try:
        _sync_subscriber(pub, sub)
        sent = [0, 1, 2, 6, 7, 0, 1, 2]          # 3, 4, 5 lost; then the node restarts
        for seq in sent:
            pub.send(_sample(seq))
        assert [s.seq for s in _receive_samples(sub, len(sent))] == sent
        counters = sub.tracker.streams["cam0/color"]
        assert (counters.gaps, counters.missing, counters.restarts) == (1, 3, 1)
    finally:
        sub.close()
        pub.close()


def test_subscriber_counts_malformed_and_keeps_going(rundir, ctx):
    pub = _publisher(rundir, ctx)
    rogue = ctx.socket(zmq.PUB)
    rogue.setsockopt(zmq.LINGER, 0)
    rogue.bind(f"ipc://{rundir}/rogue")
    sub = Subscriber([pub.endpoints.data, f"ipc://{rundir}/rogue"], context=ctx)
    try:
        _sync_subscriber(pub, sub)

        def rogue_probe_seen() -> bool:
            message = sub.receive(20)
            return isinstance(message, Event) and message.node == "rogue"
        _sync(lambda: rogue.send_multipart(protocol.encode(_probe("rogue"))), rogue_probe_seen)
        while sub.receive(50) is not None:
            pass

        good = protocol.encode(_sample(0, "rogue/x"))
        header = json.loads(good[1])
        garbage = [
            [b"garbage"],
            [b"sample/rogue/x", b"{not json"],
            [b"sample/rogue/x", b"[1, 2, 3]"],
            [b"sample/rogue/x", json.dumps({**header, "v": 3}).encode(), *good[2:]],
            [b"sample/rogue/x", good[1], *good[2:], b"extra"],
            [b"sample/rogue/x", good[1], b"\x00", good[3]],
            [b"\xff\xfe", b"\x00" * 100, b"\x01"],
        ]
        for frames in garbage:
            rogue.send_multipart(frames)
        # only garbage pending: receive gives up quietly instead of raising
        assert sub.receive(300) is None
        assert sub.malformed_count == len(garbage)
        # valid messages still come through afterwards, from both publishers
        rogue.send_multipart(protocol.encode(_sample(1, "rogue/x")))
        for seq in range(10):
            pub.send(_sample(seq))
        samples = _receive_samples(sub, 11)
        assert sorted((s.stream, s.seq) for s in samples) == sorted(
            [("rogue/x", 1)] + [("cam0/color", seq) for seq in range(10)])
        assert sub.malformed_count == len(garbage)
        # counted by reason (a few keys whatever the input), the latest text of each kept
        assert sub.malformed == {"bad_frames": 2, "bad_header": 3, "bad_field": 1, "bad_topic": 1}
        assert sub.malformed_examples["bad_field"] == (
            "field 'rgb': buffer has 1 bytes, dtype |u1 and shape (4, 6, 3) need 72")
    finally:
        sub.close()
        rogue.close()
        pub.close()


# ----------------------------------------------------------------------------- control


def test_fetch_describe_and_ping(rundir, ctx):
    pub = _publisher(rundir, ctx)
    try:
        assert fetch_describe(pub.endpoints.ctl) == _describe()
        reply = request(pub.endpoints.ctl, "ping", context=ctx)
        assert reply["ok"] is True and isinstance(reply["t_host_ns"], int)
        assert abs(reply["t_host_ns"] - time.time_ns()) < 5e9
    finally:
        pub.close()


def test_set_describe_is_served_and_published(rundir, ctx):
    pub = _publisher(rundir, ctx)
    sub = Subscriber([pub.endpoints.data], context=ctx)
    try:
        _sync_subscriber(pub, sub)
        new = Describe(node="cam0", streams=[], info={"version": 2})
        pub.set_describe(new)
        assert sub.receive(2000) == new
        assert fetch_describe(pub.endpoints.ctl) == new
    finally:
        sub.close()
        pub.close()


def test_unknown_command_and_bad_requests(rundir, ctx):
    def explode(_request):
        raise RuntimeError("boom")

    pub = _publisher(rundir, ctx, handlers={"echo": lambda req: {"ok": True, "got": req},
                                            "explode": explode})
    try:
        reply = request(pub.endpoints.ctl, "frobnicate", context=ctx)
        assert reply == {"ok": False, "error": "unknown command 'frobnicate'"}
        assert request(pub.endpoints.ctl, "echo", context=ctx, x=1) == {
            "ok": True, "got": {"cmd": "echo", "x": 1}}
        assert request(pub.endpoints.ctl, "explode", context=ctx) == {
            "ok": False, "error": "RuntimeError: boom"}
        # a request that is not JSON does not kill the control thread
        raw = ctx.socket(zmq.REQ)
        raw.setsockopt(zmq.LINGER, 0)
        raw.connect(pub.endpoints.ctl)
        raw.send(b"\xffnot json")
        assert raw.poll(2000)
        assert json.loads(raw.recv())["ok"] is False
        raw.close()
        assert request(pub.endpoints.ctl, "ping", context=ctx)["ok"] is True
    finally:
        pub.close()


def test_request_to_nobody_times_out(rundir, ctx):
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"no reply from ipc://.*nobody.ctl to 'ping' within 0.2 s"):
        request(f"ipc://{rundir}/nobody.ctl", "ping", timeout_s=0.2, context=ctx)
    assert time.monotonic() - start < 2.0


def test_fetch_describe_refused(rundir, ctx):
    pub = _publisher(rundir, ctx, handlers={"describe": lambda _req: {"ok": False,
                                                                      "error": "not ready"}})
    try:
        with pytest.raises(RuntimeError, match="refused describe: not ready"):
            fetch_describe(pub.endpoints.ctl)
    finally:
        pub.close()


# ----------------------------------------------------------------------------- live path


def test_latest_subscriber_keeps_only_the_newest(rundir, ctx):
    pub = _publisher(rundir, ctx)
    latest = LatestSubscriber([pub.endpoints.live], context=ctx)
    try:
        def probe_seen() -> bool:
            time.sleep(0.02)
            return bool(latest.take_events())
        _sync(lambda: pub.send(_probe()), probe_seen)

        n = 300
        for seq in range(n - 1):  # a burst: the live queue drops what does not fit ...
            pub.send(_sample(seq, "cam0/color"))
            pub.send(_sample(seq, "cam0/depth"))
        # ... and ZeroMQ drops the newest, not the oldest, so the last sample goes after a pause
        time.sleep(0.3)
        pub.send(_sample(n - 1, "cam0/color"))
        pub.send(_sample(n - 1, "cam0/depth"))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            newest = latest.latest()
            if all(s in newest and newest[s].seq == n - 1 for s in ("cam0/color", "cam0/depth")):
                break
            time.sleep(0.01)
        newest = latest.latest()
        assert set(newest) == {"cam0/color", "cam0/depth"}
        assert newest["cam0/color"].seq == n - 1 and newest["cam0/depth"].seq == n - 1
        assert newest["cam0/color"].fields["seq_copy"][0] == n - 1
        # one sample per stream is kept, however many went by
        assert all(isinstance(s, Sample) for s in newest.values())
        assert latest.counters["cam0/color"].last_seq == n - 1

        pub.set_describe(_describe())
        deadline = time.monotonic() + 5
        while "cam0" not in latest.describes and time.monotonic() < deadline:
            time.sleep(0.01)
        assert latest.describes["cam0"] == _describe()
    finally:
        latest.close()
        pub.close()


def test_slow_live_subscriber_never_blocks_the_publisher(rundir, ctx):
    n = 2000
    # A data queue of 5000 messages: the burst below queues nearly all 2000 at once, and a
    # queue of exactly 2000 (the default 100 msg/s) loses the last one or two (ZeroMQ counts
    # the reader's progress in batches).
    pub = _publisher(rundir, ctx, messages_per_second=250)
    data_sub = Subscriber([pub.endpoints.data], context=ctx)
    # a display that connects to the live endpoint and then never reads
    stuck = ctx.socket(zmq.SUB)
    stuck.setsockopt(zmq.RCVHWM, LIVE_HWM)
    stuck.setsockopt(zmq.LINGER, 0)
    stuck.setsockopt(zmq.SUBSCRIBE, b"")
    stuck.connect(pub.endpoints.live)
    try:
        _sync_subscriber(pub, data_sub)
        _sync(lambda: pub.send(_probe()), lambda: bool(stuck.poll(20)))
        while data_sub.receive(50) is not None:
            pass

        received: list[int] = []

        def read() -> None:
            deadline = time.monotonic() + 60
            while len(received) < n and time.monotonic() < deadline:
                message = data_sub.receive(100)
                if isinstance(message, Sample):
                    received.append(message.seq)

        reader = threading.Thread(target=read)
        reader.start()
        color = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
        depth = np.random.default_rng(1).integers(0, 65536, (480, 640), dtype=np.uint16)
        start = time.monotonic()
        for seq in range(n):
            pub.send(_sample(seq, color=color, depth=depth))  # 1.5 MB each
        publish_s = time.monotonic() - start
        reader.join()
        total_s = time.monotonic() - start

        assert received == list(range(n)), f"got {len(received)} of {n}"
        assert data_sub.tracker.streams["cam0/color"].missing == 0
        # publishing only queues (zero copy): far quicker than the ~3 GB transfer itself
        assert publish_s < 5.0, publish_s
        assert publish_s < total_s
        # the stuck display holds only a few samples, not a backlog
        backlog = 0
        while stuck.poll(100):
            stuck.recv_multipart()
            backlog += 1
        assert backlog < 50, backlog
    finally:
        stuck.close()
        data_sub.close()
        pub.close()



def test_a_request_whose_send_cannot_go_out_is_a_timeout_not_a_hang(ctx, monkeypatch):
    """After a refused CurveZMQ handshake a REQ socket has no pipe and its send waits; seen as a
    120 s hang under load. Made deterministic here: ZMQ_IMMEDIATE and nobody listening."""
    from collector.wire import bus, security

    real_connect = security.connect

    def connect_immediate(sock, endpoint):
        sock.setsockopt(zmq.IMMEDIATE, 1)  # no pipe until a peer completes its handshake
        real_connect(sock, endpoint)

    monkeypatch.setattr(bus.security, "connect", connect_immediate)
    with pytest.raises(TimeoutError, match="could not send 'ping'"):
        request("tcp://127.0.0.1:9", "ping", 0.3, ctx)
