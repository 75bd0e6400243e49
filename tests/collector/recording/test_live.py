"""LiveFeed over real sockets: newest frames, plot history in time order, skew, node events."""

from __future__ import annotations

import shutil
import tempfile
import time

import numpy as np
import pytest
import zmq

from collector.wire.bus import NodePublisher, node_endpoints
from collector.recording.live import LiveFeed, RingHistory
from collector.wire.protocol import Describe, Event, Sample
from collector.wire.streams import FieldSpec, StreamSpec


@pytest.fixture
def rundir():
    path = tempfile.mkdtemp(prefix="cl", dir="/tmp")  # ipc:// paths must stay short
    yield path
    shutil.rmtree(path, ignore_errors=True)


def glove_sample(seq: int, t_ns: int) -> Sample:
    return Sample(node="glove", stream="glove/hand", seq=seq, t_device_ns=seq, t_host_ns=t_ns,
                  fields={"grip": np.array([seq * 0.001], np.float32),
                          "buttons": np.array([seq % 2, 0], np.uint8)})


def test_ring_history_keeps_the_last_samples_in_time_order():
    ring = RingHistory(glove_sample(0, 0), capacity=8)
    for i in range(13):
        ring.append(glove_sample(i, 1000 + i))
    count, t, fields = ring.snapshot()
    assert count == 13
    assert t.tolist() == [1000 + i for i in range(5, 13)]
    assert np.allclose(fields["grip"][:, 0], [i * 0.001 for i in range(5, 13)])
    _, t_new, _ = ring.snapshot(since_count=11)
    assert t_new.tolist() == [1011, 1012]


def test_live_feed_over_the_bus(rundir):
    ctx = zmq.Context()
    spec = StreamSpec("glove/hand", "state", 200.0, [FieldSpec("grip", "float32", (1,)),
                                                     FieldSpec("buttons", "uint8", (2,))])
    cam = StreamSpec("cam0/color", "color", 30.0, [FieldSpec("rgb", "uint8", (48, 64, 3))])
    glove_pub = NodePublisher(f"ipc://{rundir}/glove", Describe("glove", [spec.to_dict()]), context=ctx)
    cam_pub = NodePublisher(f"ipc://{rundir}/cam0", Describe("cam0", [cam.to_dict()]), context=ctx)
    feed = LiveFeed([node_endpoints(f"ipc://{rundir}/{n}").live for n in ("glove", "cam0")],
                    rates_hz={"glove/hand": 200.0}, context=ctx)
    try:
        deadline = time.monotonic() + 10
        seq = 0
        while time.monotonic() < deadline and "cam0/color" not in feed.latest():
            # Publish slowly enough for the live queue: the reader keeps up and loses nothing.
            base = time.time_ns()
            glove_pub.send(glove_sample(seq, base))
            cam_pub.send(Sample("cam0", "cam0/color", seq, 0, base + 3_000_000,
                                {"rgb": np.full((48, 64, 3), seq % 256, np.uint8)}))
            seq += 1
            time.sleep(0.01)
        for i in range(seq, seq + 20):
            glove_pub.send(glove_sample(i, time.time_ns()))
            time.sleep(0.005)
        cam_pub.send(Event("cam0", "disconnected", time.time_ns(), detail={"message": "unplugged"}))
        time.sleep(0.3)
        latest = feed.latest()
        assert latest["cam0/color"].fields["rgb"].shape == (48, 64, 3)
        count, t, fields = feed.history("glove/hand")
        assert np.all(np.diff(t) > 0)  # time order
        assert fields["grip"].shape == (len(t), 1)
        assert "cam0/color" not in feed.history_streams()  # images get no history
        skew = feed.skew_ms("glove/hand", "cam0/color")
        assert skew is not None and skew < 50
        events = feed.take_events()
        assert [(e.node, e.kind) for e in events] == [("cam0", "disconnected")]
        assert feed.take_events() == []
    finally:
        feed.close()
        glove_pub.close()
        cam_pub.close()
        ctx.destroy(linger=0)
