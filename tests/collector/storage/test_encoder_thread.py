"""A video encoder on its own thread: frames in order, each frame's ticket gets its packet,
errors raised on the caller's thread, an idle encoder that holds frames is drained."""

import threading

import av
import numpy as np
import pytest

from collector.storage import encoder_thread
from collector.storage.encoder_thread import EncoderThread
from collector.storage.video import EncodedPacket, VideoCodecError, VideoEncoder, open_decoder
from tests.collector.storage.test_video import H, RATE, W, color_frame, psnr


def decode(encoder, packets):
    decoder = open_decoder("h264", encoder.extradata)
    frames = []
    for packet in packets:
        frames += decoder.decode(av.Packet(packet.data.tobytes()))
    return [f.to_ndarray(format="rgb24") for f in frames + decoder.decode(None)]


def test_frames_come_out_in_order_on_their_tickets_and_close_ends_the_thread():
    encoder = VideoEncoder("h264", W, H, RATE)
    worker = EncoderThread(encoder, "encoder cam0/color")
    tickets = [worker.submit(color_frame(i)) for i in range(12)]
    assert [t.index for t in tickets] == list(range(12))
    # Sure keyframes are known at submission: the first frame and every GOP (5 frames) after.
    assert [t.keyframe for t in tickets] == [i % encoder.gop == 0 for i in range(12)]
    worker.close()
    assert all(worker.wait(t) for t in tickets)
    worker.join()
    packets = [t.packet for t in tickets]
    assert [p.pts for p in packets] == list(range(12)) and packets[0].keyframe
    frames = decode(encoder, packets)
    assert len(frames) == 12 and min(psnr(f, color_frame(i)) for i, f in enumerate(frames)) > 30
    assert "encoder cam0/color" not in [t.name for t in threading.enumerate()]


def test_an_encoding_error_is_raised_on_the_caller_s_thread_and_stops_encoding():
    worker = EncoderThread(VideoEncoder("h264", W, H, RATE))
    first = worker.submit(color_frame(0))
    bad = worker.submit(np.zeros((H, W, 3), np.float64))  # not 8-bit RGB: the encoder refuses it
    after = worker.submit(color_frame(2))
    assert worker.wait(first)
    for ticket in (bad, after):
        with pytest.raises(VideoCodecError, match="libx264"):
            worker.wait(ticket)
    with pytest.raises(VideoCodecError):
        worker.submit(color_frame(3))
    worker.stop()  # returns: the thread ends after an error too
    worker.stop()


class HoldingEncoder:
    """An encoder that keeps every frame until drained (as a hardware encoder with a delay may)."""

    rate, gop, encoder = 10, 5, "holding"

    def __init__(self):
        self.held = 0

    def encode(self, rgb, keyframe=None):
        self.held += 1
        return []

    def finish(self):
        out = [EncodedPacket(np.zeros(1, np.uint8), i, i == 0) for i in range(self.held)]
        self.held = 0
        return out


def test_an_idle_encoder_holding_frames_is_drained_and_reopened(monkeypatch):
    monkeypatch.setattr(encoder_thread, "IDLE_DRAIN_S", 0.05)
    opened = []
    worker = EncoderThread(HoldingEncoder(), reopen=lambda: opened.append(1) or HoldingEncoder())
    try:
        tickets = [worker.submit(color_frame(i), False) for i in range(3)]
        assert all(worker.wait(t, 30) for t in tickets)  # no frame came after them: drained
        assert opened == [1]
        after = worker.submit(color_frame(3), False)
        assert after.keyframe  # the first frame of the reopened encoder
    finally:
        worker.stop()


def test_a_full_queue_refuses_a_frame_at_once_without_blocking(monkeypatch):
    hold = threading.Event()
    encoder = HoldingEncoder()
    monkeypatch.setattr(encoder, "encode", lambda rgb, keyframe=None: hold.wait(30) and [])
    worker = EncoderThread(encoder)
    try:
        tickets = [worker.submit(color_frame(0), block=False) for _ in range(70)]
        assert None in tickets[60:] and None not in tickets[:60]  # room for 60 frames (and one in hand)
    finally:
        hold.set()
        worker.stop()


def test_a_flush_waits_for_the_encoder_a_moment_not_for_its_backlog(tmp_path, monkeypatch):
    """After a start the encoders may have held frames to encode; a flush that waited for all
    of them held back every other stream's rows too. Now it waits ``wait_s`` at most: depth
    rows are written, colour frames count once their packets are."""
    from collector.storage.video import VideoEncoder as Encoder
    from collector.storage.writer import HDF5EpisodeWriter
    from tests.collector.storage.test_video import GOP, T0, sample, specs

    hold = threading.Event()
    encode = Encoder.encode
    monkeypatch.setattr(Encoder, "encode", lambda self, rgb, keyframe=None: hold.wait(30)
                        and encode(self, rgb, keyframe))
    w = HDF5EpisodeWriter(tmp_path / "ep.h5", specs(), {"start_time_ns": T0}, color_encoding="h264",
                          video_gop_s=GOP / RATE)
    try:
        for i in range(6):
            w.append(sample(i), 0)
            w.append(sample(i, "cam0/depth"), 0)
        w.flush(wait_s=0.05)  # returns with the encoder still held
        assert w.counts == {"cam0/color": 0, "cam0/depth": 6}
        hold.set()
        w.flush()  # waits for every frame appended before it
        assert w.counts == {"cam0/color": 6, "cam0/depth": 6}
    finally:
        hold.set()
        w.close()
