"""Video-stored colour: encoded while writing, keyframe index, random access, bad input, crashes."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from collector.config import ConfigError, RecordingConfig, sim_config
from collector.recording.session import Session
from collector.storage.memory import MemoryEpisodeWriter
from collector.storage.reader import EpisodeError, deep_problems, open_episode, recover_episode, validate_episode
from collector.storage.video import VideoCodecError, VideoEncoder, VideoFrameReader, check_encoder_opens
from collector.storage.writer import HDF5EpisodeWriter
from collector.wire.protocol import Sample
from collector.wire.streams import FieldSpec, StreamSpec

ROOT = Path(__file__).resolve().parents[3]
T0 = 1_700_000_000_000_000_000
H, W, RATE = 32, 48, 10.0  # tiny frames; a 10 fps stream with a 0.5 s GOP has a keyframe every 5
GOP = 5


def specs():
    return [StreamSpec("cam0/color", "color", RATE, [FieldSpec("rgb", "|u1", (H, W, 3))]),
            StreamSpec("cam0/depth", "depth", RATE, [FieldSpec("depth", "<u2", (H, W), unit="mm")])]


def color_frame(i):
    y, x = np.mgrid[0:H, 0:W]
    return np.stack([x * 4 + 3 * i, y * 5 + i, np.full_like(x, 60 + 4 * i)],
                    axis=-1).astype(np.uint8)


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255 ** 2 / max(mse, 1e-9))


def sample(i, stream="cam0/color", **fields):
    t = T0 + int(i * 1e9 / RATE)
    if not fields:
        fields = {"rgb": color_frame(i)} if stream == "cam0/color" else \
            {"depth": np.full((H, W), 500 + i, np.uint16)}
    return Sample("cam0", stream, i, t, t, fields)


def write(path, codec, frames=12, close=True, **options):
    w = HDF5EpisodeWriter(path, specs(), {"start_time_ns": T0}, color_encoding=codec,
                          compression="lz4", video_gop_s=GOP / RATE, **options)
    for i in range(frames):
        w.append(sample(i), 0)
        w.append(sample(i, "cam0/depth"), 0)
    if close:
        w.close()
    return w


@pytest.mark.parametrize("codec", ["h264", "hevc", "av1"])
def test_video_round_trip_keeps_every_frame_with_a_keyframe_index(tmp_path, codec):
    path = write(tmp_path / f"{codec}.h5", codec).path
    assert validate_episode(path) == []
    with open_episode(path) as ep:
        assert ep.attrs["schema_version"] == 3 and ep.encodings("cam0/color") == {"rgb": codec}
        frames = ep.frames("cam0/color", "rgb")
        assert frames.shape == (12, H, W, 3)
        assert min(psnr(frames[i], color_frame(i)) for i in range(12)) > 30
        np.testing.assert_array_equal(ep.frames("cam0/depth", "depth")[:, 0, 0], 500 + np.arange(12))
    with h5py.File(path) as f:
        g = f["streams/cam0/color"]
        assert np.flatnonzero(g["rgb.key"][:]).tolist() == [0, 5, 10]
        assert g["rgb.pts"][:].tolist() == list(range(12))
        assert g["rgb.video"].attrs["codec"] == codec and g["rgb.video"].attrs["gop"] == GOP
        assert "rgb" not in g  # no raw copy


def test_random_access_decodes_from_the_keyframe_and_sequential_reads_decode_once(tmp_path):
    path = write(tmp_path / "ep.h5", "h264", frames=15).path
    with open_episode(path) as ep:
        reader = ep.video_reader("cam0/color", "rgb")
        late = ep.frames("cam0/color", "rgb", 13)
        assert reader.decoded == 4  # keyframe 10, then 11, 12, 13
        assert psnr(late, color_frame(13)) > 30
        ep.frames("cam0/color", "rgb", 11)  # a step back inside the GOP: cached
        assert reader.decoded == 4
        with pytest.raises(Exception, match="out of range|index"):
            ep.frames("cam0/color", "rgb", 15)
    with open_episode(path) as ep:
        reader = ep.video_reader("cam0/color", "rgb")
        for i in range(15):  # as a player or a data loader walks an episode
            assert psnr(ep.frames("cam0/color", "rgb", i), color_frame(i)) > 30
        assert reader.decoded == 15


def test_copy_video_writes_an_mp4_of_the_same_frames_without_re_encoding(tmp_path):
    import av

    path = write(tmp_path / "ep.h5", "h264").path
    with open_episode(path) as ep:
        assert ep.copy_video("cam0/color", "rgb", tmp_path / "cut.mp4", start=5, stop=11) == 6
        expected = ep.frames("cam0/color", "rgb", slice(5, 11))
        with pytest.raises(ValueError, match="keyframe"):
            ep.copy_video("cam0/color", "rgb", tmp_path / "bad.mp4", start=3)
        with pytest.raises(EpisodeError, match="not stored as video"):
            ep.copy_video("cam0/depth", "depth", tmp_path / "depth.mp4")
    with av.open(str(tmp_path / "cut.mp4")) as container:
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    np.testing.assert_array_equal(decoded, expected)  # the same packets: bit-identical pictures


def test_per_stream_choice_overrides_the_colour_encoding(tmp_path):
    two = [*specs(), StreamSpec("wrist/color", "color", RATE, [FieldSpec("rgb", "|u1", (H, W, 3))])]
    w = HDF5EpisodeWriter(tmp_path / "ep.h5", two, {"start_time_ns": T0}, color_encoding="h264",
                          stream_encodings={"wrist/color": "jpeg"})
    for i in range(3):
        w.append(sample(i), 0)
        w.append(sample(i, "cam0/depth"), 0)
        w.append(Sample("wrist", "wrist/color", i, T0 + i, T0 + i, {"rgb": color_frame(i)}), 0)
    w.close()
    with open_episode(w.path) as ep:
        assert ep.encodings("cam0/color") == {"rgb": "h264"}
        assert ep.encodings("wrist/color") == {"rgb": "jpeg"}
        assert ep.frames("wrist/color", "rgb").shape == (3, H, W, 3)
    with pytest.raises(ValueError, match="stream_encodings"):
        HDF5EpisodeWriter(tmp_path / "bad.h5", two, stream_encodings={"wrist/color": "mpeg2"})


def test_a_bad_frame_is_refused_and_loses_nothing_recorded(tmp_path):
    w = write(tmp_path / "ep.h5", "h264", frames=3, close=False)
    with pytest.raises(ValueError, match="shape"):
        w.append(sample(3, rgb=np.zeros((H + 1, W, 3), np.uint8)), 0)
    for i in range(3, 6):
        w.append(sample(i), 0)
        w.append(sample(i, "cam0/depth"), 0)
    w.close()
    with open_episode(w.path) as ep:
        assert ep.count("cam0/color") == 6
        assert min(psnr(ep.frames("cam0/color", "rgb", i), color_frame(i)) for i in range(6)) > 30


def encoder_opens(encoder: str) -> bool:
    """Whether this machine can run the FFmpeg encoder ``encoder`` for h264."""
    try:
        VideoEncoder("h264", 320, 240, RATE, encoder=encoder).finish()
    except VideoCodecError:
        return False
    return True


def test_a_chosen_hardware_encoder_this_machine_lacks_is_refused_before_anything_starts(tmp_path):
    missing = next((e for e in ("h264_qsv", "h264_nvenc") if not encoder_opens(e)), None)
    if missing is None:
        pytest.skip("both hardware encoders open on this machine")
    with pytest.raises(VideoCodecError, match=f"video_encoder '{missing}' cannot encode h264.*"
                                              "choose '' .*libx264.* or 'hardware'"):
        check_encoder_opens(["raw", "h264"], missing)
    check_encoder_opens(["h264", "jpeg"], "")  # software and "hardware" always have a way
    check_encoder_opens(["h264"], "hardware")
    check_encoder_opens(["raw", "jpeg"], missing)  # no video stream: nothing to encode
    # The session refuses it as a config error (the CLI prints it, exit 2) before any process.
    config = sim_config()
    config.recording.output = tmp_path
    config.recording.color_encoding, config.recording.video_encoder = "h264", missing
    session = Session(config)
    with pytest.raises(ConfigError, match=f"'{missing}' cannot encode h264"):
        session.open()
    assert session.supervisor is None


def test_encoder_choices_fail_clearly_and_hardware_falls_back_to_software():
    with pytest.raises(VideoCodecError, match="does not write h264"):
        VideoEncoder("h264", W, H, RATE, encoder="libx265")
    with pytest.raises(VideoCodecError, match="video_crf"):
        VideoEncoder("av1", W, H, RATE, crf=99)
    with pytest.raises(VideoCodecError, match="even width and height"):
        VideoEncoder("hevc", W + 1, H, RATE)
    missing = "h264_qsv"  # Intel Quick Sync: not openable on this machine's CPU-only runners
    try:
        chosen = VideoEncoder("h264", W, H, RATE, encoder=missing).encoder
    except VideoCodecError as exc:
        assert missing in str(exc)
    else:
        assert chosen == missing
    assert VideoEncoder("h264", W, H, RATE, encoder="hardware").encoder in (
        "h264_nvenc", "h264_qsv", "libx264")
    with pytest.raises(ConfigError, match="video_gop_s"):
        RecordingConfig(color_encoding="av1", video_gop_s=0).validate()
    with pytest.raises(ConfigError, match="color_encoding"):
        RecordingConfig(color_encoding="mjpeg").validate()


def test_packets_that_do_not_decode_are_a_clear_error():
    packets = [b"\x00\x00\x01garbage" * 3] * 4
    reader = VideoFrameReader("h264", b"", (H, W, 3), 4, np.array([0]), lambda lo, hi: packets[lo:hi])
    with pytest.raises(VideoCodecError, match="frame 2|undecodable"):
        reader.frame(2)


def test_memory_backend_takes_the_video_options():
    w = MemoryEpisodeWriter("memory://video", specs(), {"start_time_ns": T0}, color_encoding="av1",
                            video_crf=30, video_gop_s=0.5)
    w.append(sample(0), 0)
    w.close()
    with open_episode_memory(w) as ep:
        assert ep.encodings("cam0/color") == {"rgb": "av1"}
        np.testing.assert_array_equal(ep.frames("cam0/color", "rgb", 0), color_frame(0))


def open_episode_memory(writer):
    from collector.storage import open_episode as open_any
    return open_any(writer.path, store=writer.store)


def test_a_damaged_packet_is_named_by_validate_deep(tmp_path):
    path = write(tmp_path / "ep.h5", "h264", frames=6, checksums=True).path
    with h5py.File(path, "r+") as f:
        g = f["streams/cam0/color"]
        start = int(g["rgb.offsets"][2])  # first byte of frame 3's packet
        g["rgb.video"][start + 4] ^= 0xFF  # rewritten through HDF5: only the CRC sees it
    assert any("sample 3" in p or "samples 3" in p for p in deep_problems(path))


def test_a_partly_written_gop_is_cut_to_whole_packets_on_recovery(tmp_path):
    # A writer killed inside a flush: the last packet's bytes were cut off after its offset
    # was written. Recovery keeps the whole packets, and every kept frame decodes.
    w = write(tmp_path / "ep.h5", "h264", frames=8, close=False)
    w.flush()
    w.abort()
    with h5py.File(w.path, "r+") as f:
        data = f["streams/cam0/color/rgb.video"]
        last_start = int(f["streams/cam0/color/rgb.offsets"][-2])
        data.resize((last_start + 3,))
    with open_episode(w.path) as ep:
        assert ep.interrupted and ep.count("cam0/color") <= 7
    recover_episode(w.path)
    assert validate_episode(w.path) == []
    with open_episode(w.path) as ep:
        kept = ep.count("cam0/color")
        assert 5 <= kept <= 7  # the encoder held at most one frame back, the cut one is gone
        frames = ep.frames("cam0/color", "rgb")
        assert min(psnr(frames[i], color_frame(i)) for i in range(kept)) > 30


# The child writes 10 fps video with a 0.5 s GOP and flushes after frames 3, 6 and 9, then
# appends two more frames (mid-GOP, not flushed), says so and waits to be killed.
CHILD = r"""
import signal, sys
sys.path.insert(0, sys.argv[2])
from tests.collector.storage.test_video import sample, specs, T0, GOP, RATE
from collector.storage.writer import HDF5EpisodeWriter
w = HDF5EpisodeWriter(sys.argv[1], specs()[:1], {"start_time_ns": T0}, color_encoding="h264",
                      video_gop_s=GOP / RATE)
for i in range(11):
    w.append(sample(i), 0)
    if i in (2, 5, 8):
        w.flush()
print(w.counts["cam0/color"], w.buffered["cam0/color"], flush=True)
signal.pause()  # until the test kills it
"""


def test_a_killed_writer_loses_at_most_the_unflushed_frames_and_recovers(tmp_path):
    path = tmp_path / "killed.h5"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(ROOT)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        report = child.stdout.readline().split()
        assert report, child.stderr.read()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    flushed, buffered = map(int, report)
    assert (flushed, buffered) == (9, 2) and flushed % GOP != 0  # killed inside the second GOP
    recover_episode(path)
    assert validate_episode(path) == []
    with open_episode(path) as ep:
        kept = ep.count("cam0/color")
        # Every flushed frame but the one the encoder may still have held (rc-lookahead 0, no
        # B-frames); the two unflushed ones are lost: far less than the last second.
        assert flushed - 1 <= kept <= flushed
        frames = ep.frames("cam0/color", "rgb")
        assert min(psnr(frames[i], color_frame(i)) for i in range(kept)) > 30


@pytest.mark.skipif(not hasattr(os, "sched_getscheduler"), reason="Linux scheduling policies")
def test_an_av1_encoder_leaves_the_writer_threads_scheduling_policy_as_it_was():
    # SVT-AV1, run as root (containers), switches the thread that starts it to real-time
    # SCHED_FIFO: on the recorder's writer thread that would starve the capture nodes.
    before = os.sched_getscheduler(0)
    encoder = VideoEncoder("av1", 64, 48, 30.0)
    frame = np.zeros((48, 64, 3), np.uint8)
    packets = [*encoder.encode(frame), *encoder.encode(frame), *encoder.finish()]
    assert len(packets) == 2
    assert os.sched_getscheduler(0) == before


@pytest.mark.parametrize("codec", ["h264", "hevc", "av1"])
def test_keyframes_placed_by_the_caller_are_where_it_asked_even_close_together(codec):
    """The recorder's continuous encoders key on capture time, not every ``gop`` frames: each
    codec honours every keyframe asked for (x265 ignored ones closer than its min-keyint) and
    makes none of its own in between."""
    encoder = VideoEncoder(codec, W, H, RATE, gop_s=GOP / RATE, keyframes_by_caller=True)
    asked = {3, 4, 11}
    packets = [p for i in range(16) for p in encoder.encode(color_frame(i), i in asked)]
    packets += encoder.finish()
    assert [p.pts for p in packets if p.keyframe] == [0, 3, 4, 11]
