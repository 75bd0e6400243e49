"""Episode files: writer and reader round trip, encodings, validation, errors."""

import json
import os

import cv2
import h5py
import numpy as np
import pytest

import collector.storage.writer as episode_module
from collector.storage.codecs import decode_jpeg, encode_jpeg, jpeg_shape
from collector.storage.writer import SCHEMA_VERSION, HDF5EpisodeWriter
from collector.storage.reader import (EpisodeError, format_info, open_episode, recover_episode,
                                      validate_episode)
from collector.wire.protocol import Sample
from collector.wire.streams import FieldSpec, StreamSpec

T0 = 1_700_000_000_000_000_000
DTYPES = ["|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f2", "<f4", "<f8", "|b1"]
H, W = 48, 64


def specs():
    return [
        StreamSpec("cam0/color", "color", 30, [FieldSpec("rgb", "|u1", (H, W, 3))],
                   meta={"serial": "123", "intrinsics": {"fx": 600.0}, "depth_scale": 0.001}),
        StreamSpec("cam0/depth", "depth", 30, [FieldSpec("depth", "<u2", (H, W), unit="mm")]),
        StreamSpec("glove/hand", "state", 1000,
                   [FieldSpec(f"f_{np.dtype(d).name}", d, (3,), unit="u",
                              channel_names=["a", "b", "c"]) for d in DTYPES]
                   + [FieldSpec("scalar", "<f8", ()), FieldSpec("matrix", "<f4", (2, 4))]),
    ]


def color_frame(i):
    # Smooth content (JPEG-friendly) that differs per frame and per channel.
    y, x = np.mgrid[0:H, 0:W]
    return np.stack([(x * 3 + i) % 256, (y * 4 + 2 * i) % 256, np.full_like(x, 40 + i)],
                    axis=-1).astype(np.uint8)


def glove_fields(i):
    fields = {f"f_{np.dtype(d).name}": (np.arange(3) + i).astype(d) for d in DTYPES}
    fields["f_bool"] = np.array([i % 2, 1, 0], dtype=bool)
    fields.update(scalar=np.float64(i / 7), matrix=np.full((2, 4), i, np.float32))
    return fields


def write_episode(path, compression="none", color_encoding="raw", frames=10, glove=300,
                  close=True, **close_kw):
    w = HDF5EpisodeWriter(path, specs(), {"task": "pick", "operator": "ana", "tags": ["a", "b"],
                                      "prompt": "pick the cube", "start_time_ns": T0},
                      compression=compression, color_encoding=color_encoding)
    for i in range(glove):
        seq = i if i < 100 else i + 5  # a gap of 5 samples
        t = T0 + i * 1_000_000
        w.append(Sample("glove", "glove/hand", seq, i * 10, t, glove_fields(i)), t + 100)
        if i % 30 == 0 and i // 30 < frames:
            k = i // 30
            w.append(Sample("cam0", "cam0/color", k, k, t + 2_000_000, {"rgb": color_frame(k)}), t + 3)
            depth = np.full((H, W), k * 100, np.uint16)
            w.append(Sample("cam0", "cam0/depth", k, k, t, {"depth": depth}), t + 3)
        if i == 150:
            w.flush()
    w.add_event(T0 + 5, "marker", "", {"label": "grasp"})
    w.add_event(T0 + 6, "gap", "glove/hand", {"missing": 5, "text": "x" * 2000})
    w.set_counters("glove/hand", overflow=3, late=1)
    if close:
        w.close(end_attrs={"outcome": "success", "notes": "ok", "end_time_ns": T0 + 2 * 10**9}, **close_kw)
    return w


@pytest.mark.parametrize("compression,color_encoding",
                         [("none", "raw"), ("lz4", "raw"), ("zstd", "raw"), ("none", "jpeg"),
                          ("zstd", "jpeg")])
def test_round_trip(tmp_path, compression, color_encoding):
    path = tmp_path / "deep" / "dir" / "ep.h5"
    w = write_episode(path, compression, color_encoding)
    assert w.counts == {"cam0/color": 10, "cam0/depth": 10, "glove/hand": 300}
    with h5py.File(path, "r") as f:  # a finished file opens plainly
        assert f.attrs["status"] == "complete" and f.attrs["schema_version"] == SCHEMA_VERSION
        g = f["streams/glove/hand"]
        assert g.attrs["count"] == 300 and g.attrs["gaps"] == 1 and g.attrs["missing"] == 5
        assert g.attrs["overflow"] == 3 and g.attrs["late"] == 1 and g.attrs["restarts"] == 0
        assert g["f_float32"].attrs["unit"] == "u"
        assert list(g["f_float32"].attrs["channel_names"]) == ["a", "b", "c"]
        assert g["f_float32"].chunks == (1000, 3) and g["seq"].dtype == np.uint64
        assert f["streams/cam0/color"].attrs["meta.serial"] == "123"
        assert json.loads(f["streams/cam0/color"].attrs["meta.intrinsics"]) == {"fx": 600.0}
        assert StreamSpec.from_dict(json.loads(f["streams/cam0/color"].attrs["spec"])) == specs()[0]
        depth = f["streams/cam0/depth/depth"]
        assert depth.chunks == (1, H, W)
        assert (depth.compression is None) == (compression == "none")
        if color_encoding == "jpeg":
            assert "rgb" not in f["streams/cam0/color"] and f["streams/cam0/color/rgb.offsets"].shape == (10,)
        else:
            assert f["streams/cam0/color/rgb"].attrs["encoding"] == "raw"
    assert validate_episode(path) == []
    with open_episode(path) as ep:
        assert not ep.interrupted and ep.attrs["outcome"] == "success" and ep.attrs["notes"] == "ok"
        assert json.loads(ep.attrs["tags"]) == ["a", "b"] and ep.attrs["task"] == "pick"
        assert ep.attrs["end_time_ns"] == T0 + 2 * 10**9 and ep.attrs["end_time"].endswith("Z")
        assert set(ep.streams) == {"cam0/color", "cam0/depth", "glove/hand"}
        for i in (0, 150, 299):
            for name, value in glove_fields(i).items():
                got = ep.frames("glove/hand", name, i)
                assert got.dtype == np.asarray(value).dtype and np.array_equal(got, value), name
        rgb = ep.frames("cam0/color", "rgb")
        expected = np.stack([color_frame(k) for k in range(10)])
        assert rgb.shape == expected.shape and rgb.dtype == np.uint8
        error = np.abs(rgb.astype(int) - expected).mean()
        assert error == 0 if color_encoding == "raw" else error < 3
        assert np.array_equal(ep.frames("cam0/depth", "depth")[:, 0, 0], np.arange(10) * 100)
        t = ep.timestamps("glove/hand")
        assert t["seq"][99:102].tolist() == [99, 105, 106] and t["t_recv_ns"][0] == T0 + 100
        assert t["t_device_ns"][3] == 30 and t["t_host_ns"].dtype == np.int64
        events = ep.events()
        assert events[0] == {"t_ns": T0 + 5, "kind": "marker", "stream": "", "detail": {"label": "grasp"}}
        assert events[1]["kind"] == "gap" and events[1]["detail"]["truncated"].startswith('{"missing":5')
        sync = ep.sync
        assert sync["master"] == "cam0/color" and sync["t_ns"].size == 10
        # Color frames are stamped 2 ms after glove sample 30k.
        assert sync["streams"]["glove/hand"]["index"].tolist() == [k * 30 + 2 for k in range(10)]
        assert sync["streams"]["cam0/depth"]["skew_ns"].tolist() == [-2_000_000] * 10


def test_frames_indexing(tmp_path):
    write_episode(tmp_path / "a.h5", color_encoding="jpeg")
    with open_episode(tmp_path / "a.h5") as ep:
        seq_field = lambda idx: ep.frames("glove/hand", "scalar", idx) * 7  # noqa: E731
        assert np.allclose(seq_field([5, 2, 5, -1]), [5, 2, 5, 299])
        assert np.allclose(seq_field(slice(10, 20, 3)), [10, 13, 16, 19])
        assert ep.frames("glove/hand", "scalar", slice(5, 5)).shape == (0,)
        assert ep.frames("glove/hand", "matrix", []).shape == (0, 2, 4)
        assert ep.frames("cam0/color", "rgb", [7, 1]).shape == (2, H, W, 3)
        assert ep.frames("cam0/color", "rgb", -1).shape == (H, W, 3)
        assert ep.frames("cam0/color", "rgb", []).shape == (0, H, W, 3)
        with pytest.raises(IndexError):
            ep.frames("glove/hand", "scalar", 300)
        with pytest.raises(KeyError, match="no stream 'nope/x'"):
            ep.count("nope/x")


def test_jpeg_is_standard_and_rgb_ordered(tmp_path):
    red = np.zeros((H, W, 3), np.uint8)
    red[..., 0] = 255
    buffer = encode_jpeg(red, 95)
    assert jpeg_shape(buffer) == (H, W, 3)
    bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR)  # any JPEG reader sees a red image
    assert bgr[..., 2].mean() > 250 and bgr[..., 0].mean() < 5
    assert decode_jpeg(buffer)[..., 0].mean() > 250
    # Already-encoded frames are stored as they came (jpeg) or decoded (raw).
    spec = [StreamSpec("cam0/color", "color", 30, [FieldSpec("rgb", "|u1", (H, W, 3))])]
    for encoding in ("jpeg", "raw"):
        path = tmp_path / f"{encoding}.h5"
        with HDF5EpisodeWriter(path, spec, {}, color_encoding=encoding) as w:
            w.append(Sample("cam0", "cam0/color", 0, 0, T0, {"rgb": buffer}, {"rgb": "jpeg"}), T0)
        with h5py.File(path) as f:
            if encoding == "jpeg":
                assert np.array_equal(f["streams/cam0/color/rgb.jpeg"][:], buffer)
            else:
                assert f["streams/cam0/color/rgb"][0, ..., 0].mean() > 250


def test_append_rejects_mismatches_with_exact_messages(tmp_path):
    w = HDF5EpisodeWriter(tmp_path / "e.h5", specs(), {})
    good = glove_fields(0)
    cases = [
        (Sample("x", "x/y", 0, 0, T0, good),
         "unknown stream 'x/y' (episode streams: cam0/color, cam0/depth, glove/hand)"),
        (Sample("glove", "glove/hand", 0, 0, T0, {**good, "extra": np.zeros(1)}),
         "stream 'glove/hand': fields ['extra', 'f_bool', "),
        (Sample("glove", "glove/hand", 0, 0, T0, {**good, "matrix": np.zeros((2, 4), np.float64)}),
         "stream 'glove/hand' field 'matrix': dtype <f8 does not match the spec's <f4"),
        (Sample("glove", "glove/hand", 0, 0, T0, {**good, "matrix": np.zeros((4, 2), np.float32)}),
         "stream 'glove/hand' field 'matrix': shape (4, 2) does not match the spec's (2, 4)"),
        (Sample("glove", "glove/hand", -1, 0, T0, good), "stream 'glove/hand': seq must be >= 0, got -1"),
        (Sample("cam0", "cam0/color", 0, 0, T0, {"rgb": np.zeros(10, np.uint8)}, {"rgb": "jpeg"}),
         "stream 'cam0/color' field 'rgb': not a JPEG (no start-of-image marker)"),
        (Sample("cam0", "cam0/color", 0, 0, T0, {"rgb": encode_jpeg(np.zeros((8, 8, 3), np.uint8))},
                {"rgb": "jpeg"}),
         "stream 'cam0/color' field 'rgb': JPEG of shape (8, 8, 3) does not match the spec's "
         "|u1 (48, 64, 3)"),
        (Sample("cam0", "cam0/color", 0, 0, T0, {"rgb": color_frame(0)}, {"rgb": "png"}),
         "stream 'cam0/color' field 'rgb': unknown encoding 'png'"),
    ]
    for sample, message in cases:
        with pytest.raises(ValueError) as info:
            w.append(sample, T0)
        assert str(info.value).startswith(message), str(info.value)
    # The stream name may also come as node + short name; nothing of the bad samples was kept.
    w.append(Sample("glove", "hand", 0, 0, T0, good), T0)
    assert w.buffered["glove/hand"] == 1
    with pytest.raises(ValueError, match="unknown counters"):
        w.set_counters("glove/hand", bogus=1)
    with pytest.raises(ValueError, match="outcome must be one of"):
        w.close(end_attrs={"outcome": "great"})
    w.close()
    with pytest.raises(RuntimeError, match="closed"):
        w.append(Sample("glove", "hand", 1, 0, T0, good), T0)
    with pytest.raises(FileExistsError):
        HDF5EpisodeWriter(tmp_path / "e.h5", specs(), {})
    with pytest.raises(ValueError, match="master stream 'nope/x'"):
        HDF5EpisodeWriter(tmp_path / "f.h5", specs(), {"master_stream": "nope/x"})
    assert not (tmp_path / "f.h5").exists()


def test_large_buffers_are_written_before_the_flush(tmp_path, monkeypatch):
    monkeypatch.setattr(episode_module, "EARLY_WRITE_BYTES", 3 * H * W * 3)
    w = HDF5EpisodeWriter(tmp_path / "e.h5", specs()[:1], {})
    for k in range(7):
        w.append(Sample("cam0", "cam0/color", k, k, T0 + k, {"rgb": color_frame(k)}), T0)
    assert w.counts["cam0/color"] == 6 and w.buffered["cam0/color"] == 1
    w.close()
    with open_episode(tmp_path / "e.h5") as ep:
        assert np.array_equal(ep.frames("cam0/color", "rgb", 6), color_frame(6))


def test_abort_leaves_an_interrupted_file_that_recovers(tmp_path):
    path = tmp_path / "e.h5"
    w = write_episode(path, close=False)
    w.abort()
    w.abort()  # idempotent
    with open_episode(path) as ep:
        assert ep.interrupted and ep.count("glove/hand") == 300 and ep.sync is None
        assert format_info(ep.summary())  # works without a sync index
    problem = "status is 'recording': the recording was interrupted (run collector recover)"
    assert problem in validate_episode(path)
    out = recover_episode(path, tmp_path / "out" / "r.h5")
    assert validate_episode(out) == [] and validate_episode(path) != []
    with open_episode(out) as ep:
        assert ep.attrs["status"] == "recovered" and ep.count("cam0/color") == 10
        assert len(ep.events()) == 2
    assert validate_episode(out, allow_recovered=False) == [
        "status is 'recovered': the end of the recording may be lost"]


def test_summary_and_info(tmp_path):
    write_episode(tmp_path / "e.h5")
    with open_episode(tmp_path / "e.h5") as ep:
        s = ep.summary()
    glove = s["streams"]["glove/hand"]
    assert glove["count"] == 300 and glove["gaps"] == 1 and glove["missing"] == 5 and glove["overflow"] == 3
    assert abs(glove["measured_rate_hz"] - 1000) < 1 and glove["duration_s"] == pytest.approx(0.299)
    assert glove["skew"]["max_ms"] == 0 and glove["skew"]["unmatched"] == 0
    assert s["streams"]["cam0/depth"]["skew"]["p50_ms"] == pytest.approx(2.0)
    assert s["streams"]["cam0/color"]["skew"] is None and s["events"] == {"gap": 1, "marker": 1}
    assert s["status"] == "complete" and not s["interrupted"] and s["duration_s"] == 2.0
    text = format_info(s)
    assert "glove/hand" in text and "cam0/depth" in text and "master" in text and "pick" in text


def _mutations():
    def drop(path):
        return lambda f: f.__delitem__(path)

    def attr(path, key, value):
        return lambda f: f[path].attrs.__setitem__(key, value)

    def rewrite(path, func):
        def apply(f):
            data = func(f[path][:])
            del f[path]
            f.create_dataset(path, data=data)
        return apply

    def seq_repeat(seq):
        seq[3] = seq[2]
        return seq

    def host_back(t):
        t[5] = t[4] - 1
        return t

    def sync_range(index):
        index[0] = 10**6
        return index

    return {
        "missing attr": (lambda f: f.attrs.__delitem__("uuid"), "root attribute 'uuid' is missing"),
        "outcome": (attr("/", "outcome", "meh"), "outcome 'meh' is not one of"),
        "status": (attr("/", "status", "recording"), "status is 'recording'"),
        "tags": (attr("/", "tags", "not json"), "tags 'not json' is not a JSON list"),
        "time": (attr("/", "start_time", "yesterday"), "start_time 'yesterday' is not an ISO 8601 time"),
        "dataset": (drop("streams/cam0/depth/t_recv_ns"),
                    "stream 'cam0/depth': dataset 't_recv_ns' is missing"),
        "lengths": (lambda f: f["streams/cam0/depth/t_recv_ns"].resize((9,)),
                    "stream 'cam0/depth': datasets have different lengths"),
        "dtype": (rewrite("streams/cam0/depth/depth", lambda a: a.astype(np.int32)),
                  "stream 'cam0/depth': dataset 'depth' is <i4 (48, 64), the spec says <u2 (48, 64)"),
        "seq": (rewrite("streams/glove/hand/seq", seq_repeat),
                "stream 'glove/hand': seq is not strictly increasing"),
        "host": (rewrite("streams/glove/hand/t_host_ns", host_back),
                 "stream 'glove/hand': t_host_ns goes backwards 1 times"),
        "count": (attr("streams/cam0/color", "count", 99), "stream 'cam0/color': count attribute 99 != 10"),
        "no sync": (drop("sync"), "/sync is missing"),
        "sync index": (rewrite("sync/glove/hand/index", sync_range), "/sync/glove/hand/index out of range"),
        "sync stream": (drop("sync/cam0"), "/sync has no index for stream 'cam0/depth'"),
        "events": (lambda f: f["events/kind"].resize((1,)), "/events datasets have different lengths"),
        "schema": (attr("/", "schema_version", 99), "schema version 99 is not supported"),
    }


@pytest.fixture(scope="module")
def valid_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("valid") / "ep.h5"
    write_episode(path, "lz4")
    return path.read_bytes()


@pytest.mark.parametrize("name", list(_mutations()))
def test_validate_catches(tmp_path, valid_file, name):
    mutate, expected = _mutations()[name]
    path = tmp_path / "ep.h5"
    path.write_bytes(valid_file)
    with h5py.File(path, "r+") as f:
        mutate(f)
    problems = validate_episode(path)
    assert any(expected in p for p in problems), problems


def test_bad_files_raise_episode_error(tmp_path, valid_file):
    cases = {"missing.h5": None, "random.h5": os.urandom(4096),
             "truncated.h5": valid_file[:len(valid_file) // 2], "empty.h5": b"",
             "garbage.h5": b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 4}
    for name, data in cases.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f["x"] = np.arange(3)
    messages = {"missing.h5": "no such file", "random.h5": "not an HDF5 file", "empty.h5": "not an HDF5 file",
                "truncated.h5": "truncated or corrupt", "garbage.h5": "truncated or corrupt",
                "foreign.h5": "not a collector episode"}
    for name, message in messages.items():
        with pytest.raises(EpisodeError, match=message):
            open_episode(tmp_path / name)
        assert message in validate_episode(tmp_path / name)[0]
    with pytest.raises(EpisodeError):
        recover_episode(tmp_path / "random.h5")
