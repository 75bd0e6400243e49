"""Batches on real sockets: a Subscriber hands them out one sample at a time, in order, tracked
like single samples; a malformed batch is counted and loses nothing already received."""

from __future__ import annotations

import json
import shutil
import tempfile

import numpy as np

from collector.wire import protocol
from collector.wire.bus import LatestSubscriber, NodePublisher, Subscriber
from collector.wire.protocol import Describe, Event, Sample, SampleBatch
from collector.wire.streams import FieldSpec, StreamSpec
from tests.waiting import wait_for


def _describe(node: str = "glove") -> Describe:
    spec = StreamSpec(name=f"{node}/hand", kind="state", rate_hz=1000.0,
                      fields=[FieldSpec("joints", "<f4", (3,))])
    return Describe(node=node, streams=[spec.to_dict()])


def _samples(first: int, count: int, node: str = "glove") -> list[Sample]:
    return [Sample(node=node, stream=f"{node}/hand", seq=seq, t_device_ns=seq, t_host_ns=seq + 10,
                   fields={"joints": np.full(3, seq, np.float32)})
            for seq in range(first, first + count)]


def _batch(first: int, count: int, node: str = "glove") -> SampleBatch:
    return SampleBatch.of(_samples(first, count, node))


def _synced(pub: NodePublisher, sub: Subscriber) -> None:
    """Past PUB/SUB's slow joiner: probe until one arrives, then drain."""
    def probe_seen() -> bool:
        pub.send(Event(node=pub._describe.node, kind="probe", t_host_ns=protocol.now_ns()))
        return isinstance(sub.receive(20), Event)
    wait_for(probe_seen, timeout_s=10, interval_s=0)
    while sub.receive(50) is not None:
        pass


def _take(sub: Subscriber, count: int) -> list[Sample]:
    out: list[Sample] = []

    def enough() -> bool:
        message = sub.receive(50)
        if isinstance(message, Sample):
            out.append(message)
        return len(out) >= count
    wait_for(enough, timeout_s=10, interval_s=0, message=f"{count} samples")
    return out


def test_a_batch_comes_out_one_sample_per_receive_in_order(rundir, ctx):
    pub = NodePublisher(f"ipc://{rundir}/glove", _describe(), context=ctx)
    sub = Subscriber({"glove": pub.endpoints.data}, context=ctx)
    try:
        _synced(pub, sub)
        pub.send(_batch(0, 5))
        pub.send(_samples(5, 1)[0])  # a single sample between batches
        pub.send(_batch(6, 3))
        samples = _take(sub, 9)
        assert [s.seq for s in samples] == list(range(9))
        assert [int(s.fields["joints"][0]) for s in samples] == list(range(9))
        assert [s.t_host_ns for s in samples] == [seq + 10 for seq in range(9)]
        counters = sub.tracker.streams["glove/hand"]
        assert (counters.received, counters.gaps, counters.restarts) == (9, 0, 0)
        assert sub.receive(0) is None
    finally:
        sub.close()
        pub.close()


def test_a_gap_inside_a_batch_is_seen_at_its_sample(rundir, ctx):
    pub = NodePublisher(f"ipc://{rundir}/glove", _describe(), context=ctx)
    sub = Subscriber([pub.endpoints.data], context=ctx)
    try:
        _synced(pub, sub)
        samples = _samples(0, 5)
        del samples[2]  # the device lost seq 2
        pub.send(SampleBatch.of(samples))
        seen: list[tuple[int, tuple[str, int] | None]] = []

        def all_four() -> bool:
            message = sub.receive(50)
            if isinstance(message, Sample):
                seen.append((message.seq, sub.last_anomaly))
            return len(seen) == 4
        wait_for(all_four, timeout_s=10, interval_s=0)
        assert seen == [(0, None), (1, None), (3, ("gap", 1)), (4, None)]
    finally:
        sub.close()
        pub.close()


def test_the_publisher_counts_each_sample_of_a_batch(rundir, ctx, monkeypatch):
    record = tempfile.mkdtemp(prefix="cbr", dir="/tmp")
    monkeypatch.setenv("COLLECTOR_PUBLISH_RECORD", record)
    pub = NodePublisher(f"ipc://{rundir}/glove", _describe(), context=ctx)
    try:
        pub.send(_batch(0, 4))
        streams = pub.published.query(2**62)["streams"]
        assert streams["glove/hand"] == {"count": 4, "seq": 3, "known": True}
        # capture time decides, per sample: by t_host_ns 12, seq 0 and 1 were published
        assert pub.published.query(12)["streams"]["glove/hand"]["count"] == 2
    finally:
        pub.close()
    with open(f"{record}/glove.log") as f:
        assert f.read().splitlines() == [f"glove/hand {seq} {seq + 10}" for seq in range(4)]
    shutil.rmtree(record, ignore_errors=True)


def _malformed_batches(good: list) -> list[tuple[list, str]]:
    header = json.loads(bytes(good[1]))

    def with_header(**changes) -> list:
        return [good[0], json.dumps({**header, **changes}).encode(), *good[2:]]
    return [
        (with_header(count=9), "bad_header"),                        # count != list lengths
        (with_header(seq=[0, 1]), "bad_header"),                     # a list of the wrong length
        (with_header(seq=[0, -1, 2, 3]), "out_of_range"),            # seq < 0
        (with_header(t_host_ns=[0, 0, 0, 2**63]), "out_of_range"),   # past int64
        (with_header(count=protocol.MAX_BATCH_SAMPLES + 1), "too_large"),
        ([*good[:2], bytes(good[2])[:12]], "bad_field"),            # one sample's bytes, not 4
        (with_header(v=1), "bad_header"),                            # a batch needs version 2
    ]


def test_malformed_batches_are_counted_by_reason_and_lose_nothing(rundir, ctx):
    pub = NodePublisher(f"ipc://{rundir}/glove", _describe(), context=ctx)
    sub = Subscriber({"glove": pub.endpoints.data}, context=ctx)
    try:
        _synced(pub, sub)
        pub.send(_batch(0, 4))
        first = sub.receive(5000)  # one sample of the first batch taken, three still to come
        assert isinstance(first, Sample) and first.seq == 0
        bad = _malformed_batches(protocol.encode(_batch(4, 4)))
        for frames, _ in bad:
            pub.data.send_multipart(frames)
        pub.send(_batch(4, 4))
        samples = [first, *_take(sub, 7)]
        assert [s.seq for s in samples] == list(range(8))
        expected: dict[str, int] = {}
        for _, reason in bad:
            expected[reason] = expected.get(reason, 0) + 1
        wait_for(lambda: sub.receive(20) is None and sub.malformed_count == len(bad))
        assert dict(sub.malformed) == expected
        assert sub.malformed_from[("glove", "bad_field")] == 1
        assert "buffer has 12 bytes" in sub.malformed_examples["bad_field"]
        counters = sub.tracker.streams["glove/hand"]
        assert (counters.received, counters.gaps) == (8, 0)
    finally:
        sub.close()
        pub.close()


def test_a_batch_speaking_for_another_node_is_forged(rundir, ctx):
    pub = NodePublisher(f"ipc://{rundir}/glove", _describe(), context=ctx)
    sub = Subscriber({"glove": pub.endpoints.data}, context=ctx)
    try:
        _synced(pub, sub)
        pub.data.send_multipart(protocol.encode(_batch(0, 3, node="cam0")))
        pub.send(_batch(0, 2))
        assert [s.seq for s in _take(sub, 2)] == [0, 1]
        assert dict(sub.malformed) == {"forged_sender": 1}
    finally:
        sub.close()
        pub.close()


def test_latest_subscriber_keeps_the_last_sample_of_a_batch(rundir, ctx):
    pub = NodePublisher(f"ipc://{rundir}/glove", _describe(), context=ctx)
    latest = LatestSubscriber([pub.endpoints.live], context=ctx)
    try:
        def newest_seq() -> int:
            pub.send(_batch(0, 6))
            sample = latest.latest().get("glove/hand")
            return sample is not None and sample.seq == 5
        wait_for(newest_seq, timeout_s=10)
        assert float(latest.latest()["glove/hand"].fields["joints"][0]) == 5.0
    finally:
        latest.close()
        pub.close()
