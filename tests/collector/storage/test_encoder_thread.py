"""A video encoder on its own thread: frames in order, every submitted frame out before packets()
returns, errors raised on the caller's thread."""

import threading

import av
import numpy as np
import pytest

from collector.storage.encoder_thread import EncoderThread
from collector.storage.video import VideoCodecError, VideoEncoder, open_decoder
from tests.collector.storage.test_video import H, RATE, W, color_frame, psnr


def decode(encoder, packets):
    decoder = open_decoder("h264", encoder.extradata)
    frames = []
    for packet in packets:
        frames += decoder.decode(av.Packet(packet.data.tobytes()))
    return [f.to_ndarray(format="rgb24") for f in frames + decoder.decode(None)]


def test_frames_come_out_in_order_and_packets_waits_for_every_submitted_frame():
    encoder = VideoEncoder("h264", W, H, RATE)
    worker = EncoderThread(encoder, "encoder cam0/color")
    for i in range(7):
        worker.submit(color_frame(i))
    first = worker.packets()  # no frame still inside the thread or the encoder (zerolatency)
    assert [p.pts for p in first] == list(range(7))
    for i in range(7, 12):
        worker.submit(color_frame(i))
    packets = first + worker.finish()
    assert [p.pts for p in packets] == list(range(12)) and packets[0].keyframe
    frames = decode(encoder, packets)
    assert len(frames) == 12 and min(psnr(f, color_frame(i)) for i, f in enumerate(frames)) > 30
    assert "encoder cam0/color" not in [t.name for t in threading.enumerate()]


def test_an_encoding_error_is_raised_on_the_caller_s_thread_and_stops_encoding():
    worker = EncoderThread(VideoEncoder("h264", W, H, RATE))
    worker.submit(color_frame(0))
    worker.submit(np.zeros((H, W, 3), np.float64))  # not 8-bit RGB: the encoder refuses it
    worker.submit(color_frame(2))
    with pytest.raises(VideoCodecError, match="libx264"):
        worker.packets()
    with pytest.raises(VideoCodecError):
        worker.submit(color_frame(3))
    worker.stop()  # returns: the thread ends after an error too
    worker.stop()


def test_a_flush_waits_for_the_encoder_a_moment_not_for_its_backlog(tmp_path, monkeypatch):
    """After a start the encoders have the pre-roll's held frames to encode (3 s: 90 a camera);
    a flush that waited for all of them held back every other stream's rows too. Now it waits
    ``wait_s`` at most: depth rows are written, colour frames count once their packets are."""
    from collector.storage.video import VideoEncoder as Encoder
    from collector.storage.writer import HDF5EpisodeWriter
    from tests.collector.storage.test_video import GOP, T0, sample, specs

    hold = threading.Event()
    encode = Encoder.encode
    monkeypatch.setattr(Encoder, "encode", lambda self, rgb: hold.wait(30) and encode(self, rgb))
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
