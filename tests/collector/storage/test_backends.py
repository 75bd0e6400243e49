"""The storage contract, run against every backend: HDF5 files and the in-memory store.

Whatever the recorder, review, export or WAM rely on must hold for both, so a fast test on the
memory backend says something about the files."""

import json

import numpy as np
import pytest

from collector.storage import (EpisodeError, EpisodeReader, EpisodeWriter, create_episode,
                               open_episode, read_attrs)
from collector.storage.codecs import encode_jpeg
from collector.storage.memory import EpisodeStore
from collector.wire.protocol import JPEG, Sample
from collector.wire.streams import FieldSpec, StreamSpec

T0 = 1_700_000_000_000_000_000
H, W = 24, 32
CAM = StreamSpec("cam0/color", "color", 30, [FieldSpec("rgb", "|u1", (H, W, 3))], meta={"serial": "1"})
HAND = StreamSpec("glove/hand", "state", 100, [FieldSpec("q", "<f4", (3,)), FieldSpec("grip", "<f8", ())])


class Backend:
    def __init__(self, kind, tmp_path):
        self.kind, self.store = kind, EpisodeStore()
        self.tmp_path = tmp_path

    def path(self, name="e"):
        return self.tmp_path / f"{name}.h5" if self.kind == "hdf5" else f"memory://{name}"

    def options(self):
        return {} if self.kind == "hdf5" else {"store": self.store}

    def create(self, name="e", specs=(CAM, HAND), attrs=None, **options):
        return create_episode(self.path(name), list(specs), {"start_time_ns": T0, **(attrs or {})},
                              **self.options(), **options)

    def open(self, name="e"):
        return open_episode(self.path(name), **self.options())


@pytest.fixture(params=["hdf5", "memory"])
def backend(request, tmp_path):
    return Backend(request.param, tmp_path)


def frame(i):
    y, x = np.mgrid[0:H, 0:W]
    return np.stack([(x * 5 + i) % 256, (y * 7) % 256, np.full_like(x, i)], -1).astype(np.uint8)


def cam(i, t=None):
    t = T0 + i * 33_000_000 if t is None else t
    return Sample("cam0", "color", i, t - 1000, t, {"rgb": frame(i)})


def hand(i, t=None):
    t = T0 + i * 10_000_000 if t is None else t
    return Sample("glove", "hand", i, t - 500, t, {"q": np.full(3, i, np.float32), "grip": np.float64(i / 10)})


def write(writer, n_cam=10, n_hand=30):
    for i in range(n_cam):
        writer.append(cam(i), T0 + i * 33_000_000 + 5)
    for i in range(n_hand):
        writer.append(hand(i), T0 + i * 10_000_000 + 5)


def test_round_trip_of_samples_events_attrs_counters_ledger_and_sync(backend):
    w = backend.create(attrs={"task": "pick", "operator": "ana", "tags": ["a", "b"]})
    assert isinstance(w, EpisodeWriter)
    write(w)
    w.add_event(T0 + 5, "marker", "glove/hand", {"note": "x"})
    w.set_counters("glove/hand", late=2, overflow=1)
    w.close(end_attrs={"outcome": "success", "end_time_ns": T0 + 10**9},
            ledger=lambda written: {"version": 1, "written": {s: v["count"] for s, v in written.items()}})
    with backend.open() as ep:
        assert isinstance(ep, EpisodeReader)
        assert list(ep.streams) == ["cam0/color", "glove/hand"] and not ep.interrupted
        assert ep.streams["cam0/color"].meta == {"serial": "1"}
        a = ep.attrs
        assert (a["task"], a["operator"], a["status"], a["outcome"]) == ("pick", "ana", "complete", "success")
        assert json.loads(a["tags"]) == ["a", "b"] and a["start_time_ns"] == T0
        assert a["end_time_ns"] == T0 + 10**9 and a["duration_s"] == pytest.approx(1.0)
        assert a["master_stream"] == "cam0/color" and len(a["uuid"]) == 32
        assert ep.count("cam0/color") == 10 and ep.count("glove/hand") == 30
        np.testing.assert_array_equal(ep.frames("cam0/color", "rgb", 3), frame(3))
        np.testing.assert_array_equal(ep.frames("cam0/color", "rgb", [4, 2]), [frame(4), frame(2)])
        assert ep.frames("cam0/color", "rgb", slice(0, 0)).shape == (0, H, W, 3)
        np.testing.assert_array_equal(ep.frames("glove/hand", "q")[:, 0], np.arange(30))
        assert ep.frames("glove/hand", "grip").shape == (30,)
        t = ep.timestamps("glove/hand")
        np.testing.assert_array_equal(t["seq"], np.arange(30))
        assert t["t_host_ns"].dtype == np.int64 and t["seq"].dtype == np.uint64
        assert int(t["t_recv_ns"][1]) == T0 + 10_000_000 + 5
        assert ep.events() == [{"t_ns": T0 + 5, "kind": "marker", "stream": "glove/hand", "detail": {"note": "x"}}]
        stored = ep.stream_attrs("glove/hand")
        assert (stored["count"], stored["late"], stored["overflow"], stored["gaps"]) == (30, 2, 1, 0)
        assert stored["clock_fit"] is not None
        assert ep.ledger == {"version": 1, "written": {"cam0/color": 10, "glove/hand": 30}}
        assert ep.encodings("cam0/color") == {"rgb": "raw"}
        sync = ep.sync
        assert sync["master"] == "cam0/color" and sync["t_ns"].size == 10
        assert sync["streams"]["glove/hand"]["index"].size == 10
        summary = ep.summary()
        assert summary["streams"]["glove/hand"]["overflow"] == 1 and summary["file_bytes"] > 0
        assert summary["events"] == {"marker": 1}
    assert read_attrs(backend.path(), ("task", "status"), **backend.options()) == {"task": "pick", "status": "complete"}


def test_samples_appear_at_flush(backend):
    w = backend.create()
    w.append(hand(0), T0)
    assert w.counts["glove/hand"] == 0 and w.buffered["glove/hand"] == 1 and w.buffered_bytes > 0
    w.flush()
    assert w.counts["glove/hand"] == 1 and w.buffered["glove/hand"] == 0 and w.buffered_bytes == 0
    w.close()


def test_close_cuts_samples_captured_at_or_after_stop_ns(backend):
    w = backend.create()
    write(w)
    stop = T0 + 15 * 10_000_000  # hand samples 0..14 and camera frames 0..4 were before it
    w.close(stop_ns=stop, ledger=lambda written: {"written": written})
    with backend.open() as ep:
        assert ep.count("glove/hand") == 15 and ep.count("cam0/color") == 5
        assert ep.timestamps("glove/hand")["t_host_ns"].max() < stop
        assert ep.ledger["written"]["glove/hand"] == {"count": 15, "first_t_ns": T0,
                                                      "last_t_ns": T0 + 14 * 10_000_000, "last_seq": 14}
        assert ep.stream_attrs("glove/hand")["count"] == 15 and ep.sync["t_ns"].size == 5


def test_abort_leaves_an_interrupted_episode_with_what_was_flushed(backend):
    w = backend.create()
    write(w, 4, 8)
    w.flush()
    w.add_event(T0, "gap", "glove/hand")
    w.abort()
    w.abort()  # never raises, twice neither
    with backend.open() as ep:
        assert ep.interrupted and ep.attrs["status"] == "recording"
        assert ep.count("cam0/color") == 4 and ep.count("glove/hand") == 8
        assert ep.sync is None and ep.ledger is None
        assert [e["kind"] for e in ep.events()] == ["gap"]
    with pytest.raises(RuntimeError):
        w.append(hand(9), T0)


def test_counters_derive_from_seq_unless_set(backend):
    w = backend.create(specs=[HAND])
    for i in (0, 1, 2, 5, 6, 3):  # a gap of 2 samples, then a restart
        w.append(hand(i, T0 + len(w.buffered) + i), T0)
    w.close()
    with backend.open() as ep:
        s = ep.stream_attrs("glove/hand")
        assert (s["gaps"], s["missing"], s["restarts"]) == (1, 2, 1)


def test_samples_that_do_not_match_the_spec_are_refused_and_nothing_kept(backend):
    w = backend.create()
    bad = [Sample("glove", "nope", 0, 0, T0, {"q": np.zeros(3, np.float32)}),
           Sample("glove", "hand", 0, 0, T0, {"q": np.zeros(3, np.float32)}),
           Sample("glove", "hand", 0, 0, T0, {"q": np.zeros(4, np.float32), "grip": np.float64(0)}),
           Sample("glove", "hand", 0, 0, T0, {"q": np.zeros(3, np.float64), "grip": np.float64(0)}),
           Sample("glove", "hand", -1, 0, T0, {"q": np.zeros(3, np.float32), "grip": np.float64(0)})]
    for sample in bad:
        with pytest.raises(ValueError):
            w.append(sample, T0)
    assert w.buffered == {"cam0/color": 0, "glove/hand": 0}
    with pytest.raises(ValueError):
        w.set_counters("glove/hand", bogus=1)
    with pytest.raises(ValueError):
        w.close(status="recording")
    w.close()


def test_an_existing_episode_is_never_replaced(backend):
    backend.create().close()
    with pytest.raises(FileExistsError):
        backend.create()


def test_bad_options_and_attrs_are_refused(backend):
    with pytest.raises(ValueError):
        backend.create(compression="gzip9")
    with pytest.raises(ValueError):
        backend.create("m", attrs={"master_stream": "nope/x"})
    with pytest.raises(ValueError):
        backend.create("o", attrs={"outcome": "great"})


def test_jpeg_input_and_jpeg_storage_read_back_as_rgb(backend):
    w = backend.create(color_encoding="jpeg")
    w.append(Sample("cam0", "color", 0, T0, T0, {"rgb": encode_jpeg(frame(0), 95)}, {"rgb": JPEG}), T0)
    w.append(cam(1), T0 + 1)
    w.close()
    with backend.open() as ep:
        assert ep.encodings("cam0/color") == {"rgb": "jpeg"}
        got = ep.frames("cam0/color", "rgb")
        assert got.shape == (2, H, W, 3) and got.dtype == np.uint8
        assert np.abs(got.astype(int) - np.stack([frame(0), frame(1)]).astype(int)).mean() < 4


def test_events_are_cut_to_their_limits(backend):
    w = backend.create()
    w.add_event(T0, "k" * 40, "s" * 80, {"text": "x" * 1000})
    w.close()
    with backend.open() as ep:
        (event,) = ep.events()
        assert event["kind"] == "k" * 32 and event["stream"] == "s" * 64
        assert set(event["detail"]) == {"truncated"}


def test_a_missing_episode_is_an_episode_error(backend):
    with pytest.raises(EpisodeError):
        backend.open("absent")
