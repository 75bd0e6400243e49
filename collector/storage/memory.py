"""Episodes held in memory: the second implementation of the storage interfaces, for tests.

    from collector.storage import create_episode, open_episode
    from collector.storage.memory import EpisodeStore

    store = EpisodeStore()
    with create_episode("memory://ep1", specs, {"task": "pick"}, store=store) as writer:
        writer.append(sample, t_recv_ns)
    with open_episode("memory://ep1", store=store) as episode:
        episode.frames("cam0/color", "rgb", 0)

An episode is keyed by its path as text (``memory://name``, or any path when a store is passed,
e.g. the recorder's ``EpisodeSink(writer_factory=...)``); without ``store`` the process-wide
:data:`DEFAULT_STORE` is used. The semantics are the HDF5 backend's (checked by
tests/collector/storage/test_backends.py): samples become visible at ``flush``, ``close`` cuts
samples captured at or after ``stop_ns``, stores counters, the ledger and the synchronized
index and sets the status last; ``abort`` leaves an interrupted episode. JPEG-stored fields are
and video-stored fields are
kept decoded (``encodings`` still says ``"jpeg"`` or the codec, as the file would), so frames read back
exactly as appended; nothing is ever damaged, so ``frame_problems`` finds nothing.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from collector.storage.interface import EpisodeError, EpisodeReader, EpisodeWriter, LedgerBuilder
from collector.storage.schema import (COUNTERS, EVENT_DATASETS, TIME_DATASETS, attr_value, check_close,
                                      check_counters, check_options, default_master, end_attrs_at,
                                      event_row, field_encodings, prepare_field, root_attrs,
                                      sample_stream, samples_before, schema_version, seq_counters)
from collector.storage.video import check_video_options, is_video
from collector.storage.sync import (SYNC_METHOD, compute_sync_index, episode_latencies_ms, fit_device_clock,
                                    stream_sync_time_ns)
from collector.wire.protocol import RAW, Sample
from collector.wire.streams import StreamSpec


@dataclass
class StoredEpisode:
    """One episode in a store: what a file would hold, as Python objects."""

    attrs: dict[str, Any]
    specs: dict[str, StreamSpec]
    encodings: dict[str, dict[str, str]]
    #: stream -> column (field or time column) -> one value per sample
    columns: dict[str, dict[str, list]] = field(default_factory=dict)
    stream_attrs: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[tuple[int, bytes, bytes, bytes]] = field(default_factory=list)
    sync: dict[str, Any] | None = None


class EpisodeStore:
    """Episodes by name (thread-safe): ``name in store``, ``store[name]``, ``store.names()``,
    ``store.remove(name)``."""

    def __init__(self) -> None:
        self._episodes: dict[str, StoredEpisode] = {}
        self._lock = threading.Lock()

    def add(self, name: str, episode: StoredEpisode) -> None:
        with self._lock:
            if name in self._episodes:
                raise FileExistsError(f"{name}: the episode exists already")
            self._episodes[name] = episode

    def __contains__(self, name: object) -> bool:
        return str(name) in self._episodes

    def __getitem__(self, name: str | Path) -> StoredEpisode:
        try:
            return self._episodes[str(name)]
        except KeyError:
            raise EpisodeError(f"{name}: no such episode in the memory store") from None

    def names(self) -> list[str]:
        with self._lock:
            return list(self._episodes)

    def remove(self, name: str | Path) -> None:
        with self._lock:
            self._episodes.pop(str(name), None)


#: The store used when none is given.
DEFAULT_STORE = EpisodeStore()


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


class MemoryEpisodeWriter(EpisodeWriter):
    """An :class:`~collector.storage.EpisodeWriter` into an :class:`EpisodeStore`; takes the
    HDF5 writer's options (checked the same way; ``compression`` and ``checksums`` change
    nothing in memory)."""

    def __init__(self, path: str | Path, specs: list[StreamSpec], attrs: dict[str, Any] | None = None,
                 *, store: EpisodeStore | None = None, compression: str = "none",
                 color_encoding: str = "raw", jpeg_quality: int = 90, checksums: bool = True,
                 stream_encodings: dict[str, str] | None = None, video_encoder: str = "",
                 video_crf: float = 0, video_gop_s: float = 1.0) -> None:
        check_options(compression, color_encoding, jpeg_quality, stream_encodings)
        encodings = {s.name: field_encodings(s, color_encoding, stream_encodings) for s in specs}
        for codec in {e for fields in encodings.values() for e in fields.values() if is_video(e)}:
            check_video_options(codec, video_encoder, float(video_crf), float(video_gop_s))
        self.path, self.specs = path, {s.name: s for s in specs}
        if len(self.specs) != len(specs):
            raise ValueError(f"stream names must be unique: {[s.name for s in specs]}")
        self.jpeg_quality = int(jpeg_quality)
        self.store = store if store is not None else DEFAULT_STORE
        root = root_attrs(dict(attrs or {}), self.specs, compression=compression,
                          color_encoding=color_encoding, jpeg_quality=jpeg_quality,
                          version=schema_version(encodings.values()))
        self.master_stream = root["master_stream"]
        self._episode = StoredEpisode(
            attrs={k: _plain(attr_value(v)) for k, v in root.items()}, specs=dict(self.specs),
            encodings=encodings)
        for spec in specs:
            self._episode.columns[spec.name] = {c: [] for c in [*(f.name for f in spec.fields), *TIME_DATASETS]}
            self._episode.stream_attrs[spec.name] = {c: 0 for c in COUNTERS}
        self._buffers = {s.name: {c: [] for c in self._episode.columns[s.name]} for s in specs}
        self._nbytes = {s.name: 0 for s in specs}
        self._events: list[tuple[int, bytes, bytes, bytes]] = []
        self._counters: dict[str, dict[str, int]] = {name: {} for name in self.specs}
        self._closed = False
        self.store.add(str(path), self._episode)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self.path}: the episode writer is closed")

    def append(self, sample: Sample, t_recv_ns: int, prepared: dict[str, Any] | None = None) -> None:
        self._check_open()  # frames are kept decoded: nothing prepared is of use here
        name = sample_stream(sample, self.specs)
        spec, buf = self.specs[name], self._buffers[name]
        # Checked exactly as the file backend does; JPEG input is kept decoded.
        values = {fs.name: prepare_field(name, fs, sample, RAW, self.jpeg_quality) for fs in spec.fields}
        for field_name, value in values.items():
            original = sample.fields[field_name]
            keep = value is not original or not original.flags.writeable
            buf[field_name].append(value if keep else value.copy())
            self._nbytes[name] += value.nbytes + 32
        for key, value in (("seq", sample.seq), ("t_device_ns", sample.t_device_ns),
                           ("t_host_ns", sample.t_host_ns), ("t_recv_ns", t_recv_ns)):
            buf[key].append(int(value))

    def add_event(self, t_ns: int, kind: str, stream: str = "", detail: dict | None = None) -> None:
        self._check_open()
        self._events.append(event_row(t_ns, kind, stream, detail))

    def set_counters(self, stream: str, **counters: int | None) -> None:
        self._counters[stream].update(check_counters(stream, self._counters, counters))

    @property
    def counts(self) -> dict[str, int]:
        return {name: len(self._episode.columns[name]["seq"]) for name in self.specs}

    @property
    def buffered(self) -> dict[str, int]:
        return {name: len(buf["seq"]) for name, buf in self._buffers.items()}

    @property
    def buffered_bytes(self) -> int:
        return sum(self._nbytes.values())

    def flush(self, wait_s: float | None = None) -> None:
        self._check_open()
        for name, buf in self._buffers.items():
            for column, values in buf.items():
                self._episode.columns[name][column].extend(values)
                values.clear()
            self._nbytes[name] = 0
        self._episode.events.extend(self._events)
        self._events.clear()

    def close(self, status: str = "complete", end_attrs: dict[str, Any] | None = None,
              master_stream: str | None = None, *, stop_ns: int | None = None,
              ledger: LedgerBuilder | None = None) -> Any:
        end = check_close(status, end_attrs, master_stream, self.specs)
        try:
            self.flush()
        except BaseException:
            self.abort()
            raise
        self._closed = True
        ep, times, written = self._episode, {}, {}
        for name, spec in self.specs.items():
            cols = ep.columns[name]
            count = len(cols["seq"])
            if stop_ns is not None:
                count = samples_before(np.asarray(cols["t_host_ns"], np.int64), stop_ns)
                for values in cols.values():
                    del values[count:]
            t_device = np.asarray(cols["t_device_ns"], np.int64)
            t_host = np.asarray(cols["t_host_ns"], np.int64)
            written[name] = {"count": count, "first_t_ns": int(t_host[0]) if count else None,
                             "last_t_ns": int(t_host[-1]) if count else None,
                             "last_seq": int(cols["seq"][-1]) if count else None}
            fit = fit_device_clock(t_device, t_host)
            ep.stream_attrs[name] = {"count": count, "late": 0, "overflow": 0,
                                     **seq_counters(np.asarray(cols["seq"], np.uint64)),
                                     **self._counters.get(name, {}), "clock_fit": fit}
            times[name] = (spec.rate_hz, stream_sync_time_ns(t_device, t_host, fit,
                                                             episode_latencies_ms(ep.attrs).get(name)))
        end = end_attrs_at(end, int(ep.attrs["start_time_ns"]))
        if ledger is not None:
            end["ledger"] = json.dumps(ledger(written), separators=(",", ":"))
        ep.attrs.update({k: _plain(attr_value(v)) for k, v in end.items() if k != "status"})
        master = master_stream or str(ep.attrs.get("master_stream", "")) or default_master(self.specs.values())
        ep.attrs.update(master_stream=master, sync_method=SYNC_METHOD)
        ep.sync = compute_sync_index(master, times)
        ep.attrs["status"] = status
        return self.path

    def abort(self) -> None:
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True


class MemoryEpisode(EpisodeReader):
    """An :class:`~collector.storage.EpisodeReader` of a :class:`StoredEpisode`. It reads the
    stored episode live: what a writer flushes later is seen, as with a SWMR file."""

    def __init__(self, path: str | Path, episode: StoredEpisode) -> None:
        self.path, self._episode, self._open = path, episode, True
        self.attrs = dict(episode.attrs)
        self.interrupted = self.attrs.get("status") == "recording"
        self.streams = dict(episode.specs)

    def _columns(self, stream: str) -> dict[str, list]:
        if not self._open:
            raise EpisodeError(f"{self.path}: the episode is closed")
        if stream not in self.streams:
            raise KeyError(f"no stream '{stream}' (streams: {', '.join(self.streams) or 'none'})")
        return self._episode.columns[stream]

    def count(self, stream: str) -> int:
        return min(len(v) for v in self._columns(stream).values())

    def frames(self, stream: str, field: str,
               index: int | slice | Sequence[int] = slice(None)) -> np.ndarray:
        spec, count = self.streams[stream].field(field), self.count(stream)
        rows = self._columns(stream)[field][:count]
        if isinstance(index, (int, np.integer)):
            return rows[np.arange(count)[index]]
        positions = np.arange(count)[index]
        if not positions.size:
            return np.empty((0, *spec.shape), spec.dtype)
        return np.stack([rows[i] for i in positions])

    def timestamps(self, stream: str) -> dict[str, np.ndarray]:
        cols, count = self._columns(stream), self.count(stream)
        return {name: np.asarray(cols[name][:count], dtype) for name, dtype in TIME_DATASETS.items()}

    def events(self) -> list[dict[str, Any]]:
        rows = list(self._episode.events)
        out = []
        for t_ns, kind, stream, detail in rows:
            text = np.array(detail, EVENT_DATASETS["detail"]).item().decode(errors="replace")
            out.append({"t_ns": int(t_ns), "kind": kind.decode(errors="replace"),
                        "stream": stream.decode(errors="replace"), "detail": json.loads(text or "{}")})
        return out

    @property
    def sync(self) -> dict[str, Any] | None:
        return self._episode.sync

    def encodings(self, stream: str) -> dict[str, str]:
        self._columns(stream)
        return dict(self._episode.encodings[stream])

    def stream_attrs(self, stream: str) -> dict[str, Any]:
        self._columns(stream)
        return dict(self._episode.stream_attrs[stream])

    @property
    def size_bytes(self) -> int:
        return sum(np.asarray(v).nbytes for cols in self._episode.columns.values()
                   for values in cols.values() for v in values)

    def close(self) -> None:
        self._open = False


def open_memory_episode(path: str | Path, *, store: EpisodeStore | None = None) -> MemoryEpisode:
    """Open the episode ``path`` names in ``store`` (default :data:`DEFAULT_STORE`)."""
    store = store if store is not None else DEFAULT_STORE
    return MemoryEpisode(path, store[str(path)])
