"""The recorder's writer thread (EpisodeSink) on the in-memory backend: no disk, no processes."""

import functools
import threading
import time
from pathlib import Path

import numpy as np

from collector.config import RecordingConfig
from collector.recording.episode_sink import EpisodeSink
from collector.recording.episode_window import EpisodeWindow
from collector.storage import open_episode
from collector.storage.memory import EpisodeStore, MemoryEpisodeWriter
from collector.wire.protocol import Sample
from collector.wire.streams import FieldSpec, StreamSpec
from tests.waiting import wait_for

T0 = 1_700_000_000_000_000_000
HAND = StreamSpec("glove/hand", "state", 100, [FieldSpec("q", "<f4", (3,))])


def sample(i):
    t = T0 + i * 10_000_000
    return Sample("glove", "hand", i, t, t, {"q": np.full(3, i, np.float32)})


def open_window(sink, tmp_path):
    """Open episode ``u1`` (the glove's hand stream) on ``sink``: its window."""
    window = EpisodeWindow(uuid="u1", path=Path(tmp_path / "ep.h5"), streams=["glove/hand"],
                           master="glove/hand", start_ns=T0, node_of={"glove/hand": "glove"},
                           baseline={})
    sink.open(window, [HAND], {"uuid": "u1" * 16, "task": "pick", "start_time_ns": T0})
    return window


def run_episode(tmp_path, *, discard=False):
    store, failures = EpisodeStore(), []
    sink = EpisodeSink(RecordingConfig(output=str(tmp_path)), {}, failures.append,
                       writer_factory=functools.partial(MemoryEpisodeWriter, store=store))
    try:
        window = open_window(sink, tmp_path)
        for i in range(20):
            sink.put(("sample", "u1", sample(i), T0 + i * 10_000_000 + 1, None))
        sink.put(("event", "u1", T0, "marker", "", {"n": 1}))
        window.stop_ns, window.discard = T0 + 15 * 10_000_000, discard
        result = sink.call("close", window=window, malformed={})
    finally:
        sink.stop()
    assert not failures and sink.error is None
    return store, window, result


def test_the_sink_records_through_a_writer_factory(tmp_path):
    store, window, result = run_episode(tmp_path)
    assert result["status"] == "complete" and result["counts"] == {"glove/hand": 15}
    assert not list(tmp_path.iterdir())  # nothing touched the disk
    with open_episode(window.path, store=store) as ep:
        assert ep.attrs["status"] == "complete" and ep.attrs["task"] == "pick"
        assert ep.count("glove/hand") == 15  # cut at the stop instant
        assert ep.ledger["streams"]["glove/hand"]["written"] == 15
        assert [e["kind"] for e in ep.events()] == ["marker"]


def test_a_discarded_episode_stays_interrupted(tmp_path):
    store, window, result = run_episode(tmp_path, discard=True)
    assert result["discarded"]
    with open_episode(window.path, store=store) as ep:
        assert ep.interrupted and ep.count("glove/hand") == 20


def test_capture_to_disk_of_pre_roll_samples_counts_from_the_start_not_from_their_capture(tmp_path):
    store, failures = EpisodeStore(), []
    sink = EpisodeSink(RecordingConfig(output=str(tmp_path), flush_interval_s=0.1), {},
                       failures.append, writer_factory=functools.partial(MemoryEpisodeWriter, store=store))
    try:
        now = time.time_ns()
        window = EpisodeWindow(uuid="u1", path=Path(tmp_path / "ep.h5"), streams=["glove/hand"],
                               master="glove/hand", start_ns=now - 3 * 10**9,
                               node_of={"glove/hand": "glove"}, baseline={})
        sink.open(window, [HAND], {"uuid": "u1" * 16, "task": "pick", "start_time_ns": now})
        # Held for the pre-roll since 3 s before the Start, then one captured live.
        for i, t in enumerate([now - 3 * 10**9, now - 2 * 10**9, time.time_ns()]):
            sink.put(("sample", "u1", Sample("glove", "hand", i, t, t, {"q": np.zeros(3, np.float32)}), t, None))
        wait_for(lambda: len(sink.disk_latency_ms) == 3)
    finally:
        sink.stop()
    assert not failures
    # From the Start (or the capture, for the live one) to the flush: well under the 2-3 s the
    # pre-roll samples were held before the episode existed.
    assert max(sink.disk_latency_ms) < 1900, list(sink.disk_latency_ms)
    assert len(sink.live_disk_latency_ms) == 1  # only the one captured after the Start


def test_an_adopted_pre_roll_is_flushed_once_written_not_an_interval_later(tmp_path):
    """A Start adopts seconds of held samples; the receiver asks for a flush right after them,
    so a crash moments after the Start does not lose the pre-roll with the unflushed tail."""
    store = EpisodeStore()
    # An interval no flush ever reaches (not a valid config): only the request flushes.
    recording = RecordingConfig(output=str(tmp_path), flush_interval_s=3600.0)
    sink = EpisodeSink(recording, {}, [].append,
                       writer_factory=functools.partial(MemoryEpisodeWriter, store=store))
    try:
        open_window(sink, tmp_path)
        for i in range(30):
            sink.put(("sample", "u1", sample(i), T0 + i * 10_000_000 + 1, None))
        wait_for(lambda: "u1" in sink._writers and sink._writers["u1"].buffered == {"glove/hand": 30})
        assert sink._writers["u1"].counts == {"glove/hand": 0}  # appended, not yet flushed
        sink.flush_soon()
        wait_for(lambda: sink._writers["u1"].counts == {"glove/hand": 30})
    finally:
        sink.stop()


def test_frames_waiting_to_be_compressed_ahead_are_bounded(tmp_path, monkeypatch):
    """Each job keeps its held frame alive: a writer busy elsewhere must not let them pile up."""
    from collector.recording import episode_sink

    monkeypatch.setattr(episode_sink, "MAX_PREPARING", 3)
    sink = EpisodeSink(RecordingConfig(output=str(tmp_path), compression="lz4"), {}, [].append)
    hold = threading.Event()
    try:
        compress = sink.chunks.compress
        monkeypatch.setattr(sink.chunks, "compress", lambda *a: hold.wait(30) and compress(*a))
        prepared = [{} for _ in range(5)]
        for i, out in enumerate(prepared):
            frame = np.full((48, 64), i, np.uint16)
            sink.prepare_chunks(Sample("cam0", "depth", i, T0, T0, {"depth": frame}), ["depth"], out)
        hold.set()
        wait_for(lambda: all(prepared[:3]))
        assert not any(prepared[3:])  # refused while three waited: compressed when written
    finally:
        hold.set()
        sink.stop()
