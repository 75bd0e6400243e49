"""Samples prepared as they arrive: colour encoded by continuous encoders with keyframes on a
capture-time grid, frames held for a pre-roll compressed into the chunks the episode stores."""

import numpy as np

from collector.storage import chunks as chunk_module
from collector.storage import writer as writer_module
from collector.storage.preparing import ChunkCompressor, PreparedChunk, SamplePreparer
from collector.storage.reader import open_episode, validate_episode
from collector.storage.writer import HDF5EpisodeWriter
from collector.wire.protocol import Sample
from collector.wire.streams import FieldSpec, StreamSpec
from tests.collector.storage.test_video import GOP, RATE, T0, sample, specs

GLOVE = StreamSpec("glove/hand", "state", 1000.0, [FieldSpec("joints", "<f4", (22,))])


def preparer(**options):
    compressed = []
    prepare = SamplePreparer(color_encoding="h264", video_gop_s=GOP / RATE,
                             compress=lambda s, fields, out: compressed.append((s.seq, fields, out)),
                             **options)
    return prepare, compressed


def test_keyframes_fall_on_the_capture_time_grid_whatever_frames_are_missing():
    prepare, _ = preparer()
    color = specs()[0]
    try:
        frames = [i for i in range(3, 23) if i not in (10, 11)]  # 10 (a grid frame) never came
        tickets = [prepare.prepare(sample(i), color)["rgb"] for i in frames]
        # The grid is every 0.5 s of capture time: frames 5, 10, 15, 20 (10 missing: 12 instead),
        # and the first frame the encoder sees.
        assert [i for i, t in zip(frames, tickets) if t.keyframe] == [3, 5, 12, 15, 20]
        assert all(t.source.wait(t, 30) for t in tickets)
        assert [t.packet.keyframe for t in tickets] == [t.keyframe for t in tickets]
        assert prepare.status() == {"fields": ["cam0/color/rgb"], "skipped": 0}
    finally:
        prepare.close()


def test_only_held_frames_are_compressed_ahead_and_most_samples_cost_nothing():
    prepare, compressed = preparer(stream_encodings={"cam0/color": "raw"})
    color, depth = specs()
    glove = Sample("glove", "glove/hand", 0, T0, T0, {"joints": np.zeros(22, np.float32)})
    assert prepare.prepare(glove, GLOVE, held=True) is None
    assert prepare.prepare(sample(0, "cam0/depth"), depth) is None  # routed: the writer compresses
    held = prepare.prepare(sample(1, "cam0/depth"), depth, held=True)
    raw_color = prepare.prepare(sample(2), color, held=True)
    assert [(seq, fields) for seq, fields, _ in compressed] == [(1, ["depth"]), (2, ["rgb"])]
    assert compressed[0][2] is held and compressed[1][2] is raw_color
    prepare.close()


def test_an_episode_stores_the_chunks_compressed_ahead_byte_for_byte(tmp_path, monkeypatch):
    written = []
    monkeypatch.setattr(writer_module, "write_chunks", lambda ds, start, chunks: (
        written.append(list(chunks)), chunk_module.write_chunks(ds, start, chunks)))
    compressor = ChunkCompressor("lz4", checksums=True)
    prepared = []
    for i in range(8):
        prepared.append({})
        if i < 6:  # the pre-roll's; 6 and 7 arrived after the Start
            compressor.compress(sample(i, "cam0/depth"), ["depth"], prepared[i])
    prepared[2]["depth"] = PreparedChunk((("not", "this"),), b"other filters")  # not used
    path = tmp_path / "ep.h5"
    w = HDF5EpisodeWriter(path, specs(), {"start_time_ns": T0}, color_encoding="h264",
                          compression="lz4", video_gop_s=GOP / RATE)
    for i in range(8):
        w.append(sample(i), 0)
        w.append(sample(i, "cam0/depth"), 0, prepared[i])
    w.close()
    assert len(written) == 1 and written[0][0] == prepared[0]["depth"].data
    assert written[0][2] != b"other filters" and len(written[0]) == 8
    assert validate_episode(path) == []
    with open_episode(path) as ep:
        np.testing.assert_array_equal(ep.frames("cam0/depth", "depth")[:, 0, 0], 500 + np.arange(8))
        stored = ep.h5["streams/cam0/depth/depth"].id.read_direct_chunk((1, 0, 0))[1]
    assert stored == prepared[1]["depth"].data
