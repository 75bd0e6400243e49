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
