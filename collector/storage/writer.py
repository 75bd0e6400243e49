"""Episode files, schema v1: one crash-safe HDF5 file per demonstration (docs/episode-format.md).

:class:`EpisodeWriter` creates every group, dataset and attribute up front, then switches the file
to SWMR mode and from then on only appends and flushes: a SWMR file killed mid-recording keeps
everything up to its last flush, where a plain HDF5 file is usually lost whole. ``close()`` reopens
the file plainly to write the final attributes and the synchronized index.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable
from uuid import uuid4

import h5py
import hdf5plugin
import numpy as np

from collector import __version__
from collector.storage.checksums import (CRC_SUFFIX, SAMPLE_CRC, checksum_options, frame_crc32, row_crc32,
                                 sample_crc_fields)
from collector.storage.codecs import CodecError, decode_jpeg, encode_jpeg, is_color_image, jpeg_shape
from collector.wire.protocol import JPEG, RAW, Sample
from collector.wire.streams import StreamSpec
from collector.storage.sync import SYNC_METHOD, fit_device_clock, sync_time_ns, write_sync_group
from collector.storage.writer_lock import WriterLock

log = logging.getLogger(__name__)

#: 2: the integrity ledger (root attribute ``ledger``), episodes cut on the capture clock and
#: the ``failed`` status. Readers accept every version in SCHEMA_VERSIONS.
SCHEMA_VERSION = 2
SCHEMA_VERSIONS = (1, 2)
#: ``failed``: closed after a recorder thread died; what it holds is sound, but not all of it.
STATUSES = ("recording", "complete", "recovered", "failed")
OUTCOMES = ("success", "failure", "unknown")
COMPRESSIONS = ("none", "lz4", "zstd")
COLOR_ENCODINGS = ("raw", "jpeg")
#: Root attributes every episode has, with their defaults (``None``: filled in when created).
ROOT_ATTRS: dict[str, Any] = {
    "schema_version": SCHEMA_VERSION, "uuid": None, "task": "", "operator": "", "station": "",
    "prompt": "", "notes": "", "tags": "[]", "outcome": "unknown", "status": "recording",
    "start_time": None, "start_time_ns": None, "end_time": "", "end_time_ns": 0,
    "duration_s": 0.0, "app_version": __version__, "master_stream": "",
    "sync_method": SYNC_METHOD, "compression": "none", "color_encoding": "raw", "jpeg_quality": 90,
}
#: Per-sample bookkeeping datasets of every stream, with their dtypes.
TIME_DATASETS = {"seq": np.uint64, "t_device_ns": np.int64, "t_host_ns": np.int64,
                 "t_recv_ns": np.int64}
#: Stream-group attributes written at close.
COUNTERS = ("count", "gaps", "missing", "restarts", "late", "overflow")
#: ``/events`` parallel datasets; fixed-length strings because vlen types are unsafe in SWMR.
EVENT_DATASETS = {"t_ns": np.dtype("<i8"), "kind": np.dtype("S32"), "stream": np.dtype("S64"),
                  "detail": np.dtype("S512")}
JPEG_SUFFIX, OFFSETS_SUFFIX = ".jpeg", ".offsets"
#: A stream whose buffered rows exceed this is written before the next flush.
EARLY_WRITE_BYTES = 64 << 20
_JPEG_CHUNK_BYTES = 256 << 10
_MAX_CHUNK_BYTES = 1 << 20
LIBVER = ("v110", "latest")  # SWMR needs >= 1.10 formats; no newer, so HDF5 1.10+ can read


def iso_utc(t_ns: int) -> str:
    """``t_ns`` (ns since the epoch) as ISO 8601 UTC with microseconds, e.g. ``...T07:35:25.123456Z``."""
    t = datetime.fromtimestamp(t_ns // 10**9, timezone.utc) + timedelta(microseconds=t_ns % 10**9 // 1000)
    return t.isoformat(timespec="microseconds").replace("+00:00", "Z")


def default_master(specs: Iterable[StreamSpec]) -> str:
    """The first color stream, else the first stream, else ``""``."""
    specs = list(specs)
    color = [s.name for s in specs if s.kind == "color"]
    return color[0] if color else (specs[0].name if specs else "")


def field_encodings(spec: StreamSpec, color_encoding: str) -> dict[str, str]:
    """How each field of ``spec`` is stored: JPEG for RGB fields of color streams when asked."""
    jpeg = color_encoding == "jpeg" and spec.kind == "color"
    return {f.name: JPEG if jpeg and is_color_image(f.dtype, f.shape) else RAW for f in spec.fields}


def compression_options(compression: str, dtype: Any) -> dict:
    """h5py ``create_dataset`` keywords for ``compression`` (uint16, i.e. depth, gets Blosc2)."""
    if compression == "none":
        return {}
    if np.dtype(dtype) == np.uint16:
        return dict(hdf5plugin.Blosc2(cname="lz4", clevel=5, filters=hdf5plugin.Blosc2.SHUFFLE))
    if compression == "lz4":
        return dict(hdf5plugin.LZ4())
    return dict(hdf5plugin.Zstd(clevel=1))


def _json(value: Any) -> str:
    # Driver metadata often holds numpy values (intrinsics matrices, scales).
    return json.dumps(value, default=lambda v: v.tolist() if isinstance(v, (np.ndarray, np.generic))
                      else str(v))


def _attr_value(value: Any) -> Any:
    if value is None:
        return ""
    return value if isinstance(value, (str, bool, int, float, np.generic)) else _json(value)


def _rows_per_chunk(row_bytes: int, rate_hz: float) -> int:
    # About one second of samples, but no chunk over 1 MiB: one image is one chunk.
    return max(1, min(int(np.ceil(rate_hz)), _MAX_CHUNK_BYTES // max(1, row_bytes)))


def _fit_json(detail: dict, limit: int) -> bytes:
    text = out = json.dumps(detail, separators=(",", ":"), default=str).encode()
    while len(out) > limit:  # keep it valid JSON rather than cutting it mid-token
        text = text[:len(text) - (len(out) - limit)]
        out = json.dumps({"truncated": text.decode(errors="ignore")}, separators=(",", ":")).encode()
    return out


class _StreamBuffer:
    """Rows of one stream waiting for the next write: one list per field and per time column."""

    def __init__(self, spec: StreamSpec, encodings: dict[str, str]) -> None:
        self.spec, self.encodings, self.written, self.nbytes = spec, encodings, 0, 0
        self.names = {f.name for f in spec.fields}
        self.columns: dict[str, list] = {name: [] for name in [*self.names, *TIME_DATASETS]}
        #: Datasets the per-sample CRC covers (empty: no checksums); see collector.storage.checksums.
        self.crc_fields: list[str] = []

    n = property(lambda self: len(self.columns["seq"]))


class EpisodeWriter:
    """Writes one episode file; used from one thread (the recorder's writer thread).

    ``specs`` are the streams the episode will hold, ``attrs`` the root attributes (task,
    operator, prompt, ...; see :data:`ROOT_ATTRS`). The file must not exist yet.
    """

    def __init__(self, path: str | Path, specs: list[StreamSpec], attrs: dict[str, Any] | None = None,
                 *, compression: str = "none", color_encoding: str = "raw", jpeg_quality: int = 90,
                 checksums: bool = True) -> None:
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
        if color_encoding not in COLOR_ENCODINGS:
            raise ValueError(f"color_encoding must be one of {COLOR_ENCODINGS}, got {color_encoding!r}")
        if not 1 <= int(jpeg_quality) <= 100:
            raise ValueError(f"jpeg_quality must be 1..100, got {jpeg_quality}")
        self.path, self.specs = Path(path), {s.name: s for s in specs}
        if len(self.specs) != len(specs):
            raise ValueError(f"stream names must be unique: {[s.name for s in specs]}")
        self.compression, self.color_encoding = compression, color_encoding
        self.jpeg_quality = int(jpeg_quality)
        # Fletcher-32 per chunk and a CRC32 per JPEG frame (collector.storage.checksums); off only to measure.
        self.checksums = bool(checksums)
        self._buffers = {s.name: _StreamBuffer(s, field_encodings(s, color_encoding)) for s in specs}
        self._counters: dict[str, dict[str, int]] = {name: {} for name in self.specs}
        self._events: list[tuple[int, bytes, bytes, bytes]] = []
        self._closed = False
        root = self._root_attrs(dict(attrs or {}))
        self.master_stream = root["master_stream"]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            raise FileExistsError(f"{self.path}: the episode file exists already")
        # Locked until close: tells recovery this file has a live writer (collector.storage.writer_lock).
        self._lock = WriterLock(self.path)
        try:
            self._h5 = h5py.File(self.path, "w-", libver=LIBVER)
        except BaseException:
            self._lock.release(remove=True)
            raise
        try:
            self._h5.attrs.update({k: _attr_value(v) for k, v in root.items()})
            self._h5.create_group("streams")
            for buf in self._buffers.values():
                self._create_stream(buf)
            events = self._h5.create_group("events")
            for name, dtype in EVENT_DATASETS.items():
                events.create_dataset(name, (0,), dtype=dtype, maxshape=(None,), chunks=(256,),
                                      **checksum_options(self.checksums))
            self._h5.swmr_mode = True  # from here on: append and flush only, never create
        except BaseException:
            self._h5.close()
            self.path.unlink(missing_ok=True)
            self._lock.release(remove=True)
            raise

    def _root_attrs(self, attrs: dict[str, Any]) -> dict[str, Any]:
        root = {**ROOT_ATTRS, **attrs, "schema_version": SCHEMA_VERSION, "status": "recording",
                "compression": self.compression, "color_encoding": self.color_encoding,
                "jpeg_quality": self.jpeg_quality}
        start_ns = int(root["start_time_ns"] or time.time_ns())
        root.update(start_time_ns=start_ns, start_time=root["start_time"] or iso_utc(start_ns),
                    uuid=root["uuid"] or uuid4().hex)
        _check_root_values(root)
        master = root["master_stream"] or default_master(self.specs.values())
        if master and master not in self.specs:
            raise ValueError(f"master stream '{master}' is not one of the episode's streams")
        root["master_stream"] = master
        return root

    def _create_stream(self, buf: _StreamBuffer) -> None:
        spec, g = buf.spec, self._h5.create_group(f"streams/{buf.spec.name}")
        g.attrs.update(kind=spec.kind, rate_hz=float(spec.rate_hz), spec=_json(spec.to_dict()),
                       encodings=json.dumps(buf.encodings), **{c: 0 for c in COUNTERS})
        g.attrs.update({f"meta.{k}": _attr_value(v) for k, v in spec.meta.items()})
        time_rows = max(64, min(_rows_per_chunk(8, spec.rate_hz), 8192))
        check = checksum_options(self.checksums)
        for fs in spec.fields:
            attrs = {"unit": fs.unit, "encoding": buf.encodings[fs.name]}
            if fs.channel_names:
                attrs["channel_names"] = list(fs.channel_names)
            if buf.encodings[fs.name] == JPEG:
                ds = g.create_dataset(fs.name + JPEG_SUFFIX, (0,), dtype=np.uint8, maxshape=(None,),
                                      chunks=(_JPEG_CHUNK_BYTES,), **check)
                ds.attrs.update(attrs, dtype=fs.dtype, shape=list(fs.shape))
                offsets = g.create_dataset(fs.name + OFFSETS_SUFFIX, (0,), dtype=np.uint64,
                                           maxshape=(None,), chunks=(time_rows,), **check)
                offsets.attrs.update(layout="end", unit="byte")
                if self.checksums:
                    g.create_dataset(fs.name + CRC_SUFFIX, (0,), dtype=np.uint32, maxshape=(None,),
                                     chunks=(time_rows,), **check)
            else:
                # Images: one sample per chunk, so reading a frame decompresses only that frame.
                rows = 1 if spec.kind in ("color", "depth") else _rows_per_chunk(fs.nbytes, spec.rate_hz)
                ds = g.create_dataset(fs.name, (0, *fs.shape), dtype=fs.dtype,
                                      maxshape=(None, *fs.shape), chunks=(rows, *fs.shape),
                                      **compression_options(self.compression, fs.dtype), **check)
                ds.attrs.update(attrs)
        for name, dtype in TIME_DATASETS.items():
            ds = g.create_dataset(name, (0,), dtype=dtype, maxshape=(None,), chunks=(time_rows,),
                                  **compression_options(self.compression, dtype), **check)
            ds.attrs["unit"] = "" if name == "seq" else "ns"
        if self.checksums and SAMPLE_CRC not in buf.names:
            buf.crc_fields = sample_crc_fields(
                [(fs.name, fs.nbytes) for fs in spec.fields if buf.encodings[fs.name] != JPEG],
                TIME_DATASETS)
            crc = g.create_dataset(SAMPLE_CRC, (0,), dtype=np.uint32, maxshape=(None,),
                                   chunks=(time_rows,), **check)
            crc.attrs["fields"] = json.dumps(buf.crc_fields)

    def append(self, sample: Sample, t_recv_ns: int) -> None:
        """Buffer one sample; it reaches the file at the next :meth:`flush`.

        Raises ``ValueError`` (and keeps nothing of the sample) when its stream is unknown or a
        field's name, encoding, dtype or shape differs from the stream's spec.
        """
        self._check_open()
        name = sample.stream if sample.stream in self._buffers else f"{sample.node}/{sample.stream}"
        buf = self._buffers.get(name)
        if buf is None:
            raise ValueError(f"unknown stream '{sample.stream}' (episode streams: "
                             f"{', '.join(self._buffers) or 'none'})")
        if sample.fields.keys() != buf.names:
            raise ValueError(f"stream '{name}': fields {sorted(sample.fields)} do not match "
                             f"the spec's {sorted(buf.names)}")
        if sample.seq < 0:
            raise ValueError(f"stream '{name}': seq must be >= 0, got {sample.seq}")
        values = {fs.name: self._prepare(name, fs, sample, buf.encodings[fs.name])
                  for fs in buf.spec.fields}
        for field_name, value in values.items():
            # A writable array may be a producer's reused frame buffer: copy it. A read-only one
            # (a received ZeroMQ frame, which nobody writes to again) is kept as it is.
            original = sample.fields[field_name]
            keep = value is not original or not original.flags.writeable
            buf.columns[field_name].append(value if keep else value.copy())
            buf.nbytes += value.nbytes + 32
        for key, value in (("seq", sample.seq), ("t_device_ns", sample.t_device_ns),
                           ("t_host_ns", sample.t_host_ns), ("t_recv_ns", t_recv_ns)):
            buf.columns[key].append(int(value))
        if buf.nbytes >= EARLY_WRITE_BYTES:
            self._write_stream(buf)

    def _prepare(self, stream: str, fs: Any, sample: Sample, stored: str) -> np.ndarray:
        array = np.asarray(sample.fields[fs.name])
        encoding = sample.encodings.get(fs.name, RAW)
        where = f"stream '{stream}' field '{fs.name}'"
        if encoding == JPEG:
            try:
                shape = jpeg_shape(array)
            except CodecError as exc:
                raise ValueError(f"{where}: {exc}") from None
            if np.dtype(fs.dtype) != np.uint8 or shape != fs.shape:
                raise ValueError(f"{where}: JPEG of shape {shape} does not match the spec's "
                                 f"{fs.dtype} {fs.shape}")
            return array.copy() if stored == JPEG else decode_jpeg(array)
        if encoding != RAW:
            raise ValueError(f"{where}: unknown encoding '{encoding}'")
        if array.dtype.str != fs.dtype:
            raise ValueError(f"{where}: dtype {array.dtype.str} does not match the spec's {fs.dtype}")
        if array.shape != fs.shape:
            raise ValueError(f"{where}: shape {array.shape} does not match the spec's {fs.shape}")
        return encode_jpeg(array, self.jpeg_quality) if stored == JPEG else array

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self.path}: the episode writer is closed")

    def add_event(self, t_ns: int, kind: str, stream: str = "", detail: dict | None = None) -> None:
        """Record an event (gap, restart, disconnected, stalled, overflow, marker, ...).

        ``kind`` and ``stream`` are cut to 32 and 64 bytes; a ``detail`` whose JSON exceeds 512
        bytes is replaced by ``{"truncated": <its start>}``.
        """
        self._check_open()
        self._events.append((int(t_ns), kind.encode()[:32], (stream or "").encode()[:64],
                             _fit_json(detail or {}, 512)))

    def set_counters(self, stream: str, **counters: int | None) -> None:
        """Counters to store as the stream's attributes at close (``gaps``, ``missing``,
        ``restarts``, ``late``, ``overflow``); they replace the counts derived from ``seq``."""
        if stream not in self._counters:
            raise ValueError(f"unknown stream '{stream}'")
        unknown = set(counters) - set(COUNTERS[1:])
        if unknown:
            raise ValueError(f"unknown counters {sorted(unknown)} (known: {', '.join(COUNTERS[1:])})")
        self._counters[stream].update({k: int(v) for k, v in counters.items() if v is not None})

    @property
    def counts(self) -> dict[str, int]:
        """Samples per stream written to the file so far (buffered ones not included)."""
        return {name: buf.written for name, buf in self._buffers.items()}

    @property
    def buffered_bytes(self) -> int:
        """Bytes appended but not yet written: what the next :meth:`flush` puts on disk."""
        return sum(buf.nbytes for buf in self._buffers.values())

    @property
    def buffered(self) -> dict[str, int]:
        """Samples per stream waiting for the next flush."""
        return {name: buf.n for name, buf in self._buffers.items()}

    def _write_stream(self, buf: _StreamBuffer) -> None:
        n, start, g = buf.n, buf.written, self._h5["streams"][buf.spec.name]
        if not n:
            return
        covered: dict[str, np.ndarray] = {}
        for name, column in buf.columns.items():
            if buf.encodings.get(name) == JPEG:
                data, offsets = g[name + JPEG_SUFFIX], g[name + OFFSETS_SUFFIX]
                base = data.shape[0]
                ends = base + np.cumsum([len(b) for b in column], dtype=np.uint64)
                data.resize((int(ends[-1]),))
                data[base:] = np.concatenate(column)
                offsets.resize((start + n,))
                offsets[start:] = ends
                if name + CRC_SUFFIX in g:
                    g[name + CRC_SUFFIX].resize((start + n,))
                    g[name + CRC_SUFFIX][start:] = frame_crc32(column)
            else:
                g[name].resize(start + n, axis=0)
                values = np.asarray(column, dtype=g[name].dtype) if name in TIME_DATASETS \
                    else np.stack(column)
                g[name][start:] = values
                if name in buf.crc_fields:
                    covered[name] = values
            column.clear()
        if buf.crc_fields:
            g[SAMPLE_CRC].resize((start + n,))
            g[SAMPLE_CRC][start:] = row_crc32([covered[name] for name in buf.crc_fields])
        buf.written, buf.nbytes = start + n, 0

    def flush(self) -> None:
        """Write every buffered sample and event and flush the file: after this returns, a crash
        loses nothing appended before the call."""
        self._check_open()
        for buf in self._buffers.values():
            self._write_stream(buf)
        if self._events:
            events, n = self._h5["events"], len(self._events)
            start = events["t_ns"].shape[0]
            for i, name in enumerate(EVENT_DATASETS):
                events[name].resize((start + n,))
                events[name][start:] = np.array([e[i] for e in self._events], EVENT_DATASETS[name])
            self._events.clear()
        self._h5.flush()

    def close(self, status: str = "complete", end_attrs: dict[str, Any] | None = None,
              master_stream: str | None = None, *, stop_ns: int | None = None,
              ledger: Callable[[dict[str, dict[str, int]]], dict] | None = None) -> Path:
        """Flush, then finalize: status, end time, duration, per-stream counters and the
        synchronized index. ``end_attrs`` updates root attributes (outcome, notes, tags, ...);
        ``stop_ns`` and ``ledger`` are as in :func:`finalize_episode`. The finished file opens
        with a plain ``h5py.File(path)``. Returns the path."""
        if status not in STATUSES[1:]:
            raise ValueError(f"close status must be one of {STATUSES[1:]}, got {status!r}")
        end_attrs = dict(end_attrs or {})
        _check_root_values(end_attrs)
        if master_stream and master_stream not in self.specs:
            raise ValueError(f"master stream '{master_stream}' is not one of the episode's streams")
        try:
            self.flush()
        except BaseException:
            self.abort()
            raise
        self._closed = True
        self._h5.close()
        try:
            with h5py.File(self.path, "r+") as f:
                finalize_episode(f, status=status, end_attrs=end_attrs, master_stream=master_stream,
                                 counters=self._counters, stop_ns=stop_ns, ledger=ledger)
        except BaseException:
            self._lock.release(remove=False)  # left "recording": start-up recovery finds it
            raise
        self._lock.release(remove=True)
        return self.path

    def abort(self) -> None:
        """Close without finalizing: buffered data is flushed if possible, the status stays
        ``"recording"`` (readers report the episode as interrupted). Never raises."""
        if self._closed:
            return
        try:
            self.flush()
        except Exception as exc:  # the abort is often the reaction to a failing write
            log.warning("%s: flush on abort failed: %s", self.path, exc)
        self._closed = True
        try:
            self._h5.close()
        except Exception as exc:
            log.warning("%s: close on abort failed: %s", self.path, exc)
        self._lock.release(remove=False)

    def __enter__(self) -> "EpisodeWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _check_root_values(attrs: dict[str, Any]) -> None:
    if "outcome" in attrs and attrs["outcome"] not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {attrs['outcome']!r}")
    if "tags" in attrs and not isinstance(attrs["tags"], str):
        attrs["tags"] = json.dumps(list(attrs["tags"]))


def stream_groups(f: h5py.File) -> dict[str, tuple[StreamSpec, h5py.Group]]:
    """Each stream of an open episode file: ``{name: (spec, group)}``, in file order."""
    found: dict[str, tuple[StreamSpec, h5py.Group]] = {}
    for node in f["streams"].values():
        for group in node.values():
            spec = StreamSpec.from_dict(json.loads(group.attrs["spec"]))
            found[spec.name] = (spec, group)
    return found


def stream_length(group: h5py.Group) -> int:
    """Samples present in every dataset of a stream group: the shortest dataset wins, so a file
    cut off mid-flush still reads as whole samples."""
    lengths = []
    for name, ds in group.items():
        if name.endswith(JPEG_SUFFIX):
            continue
        if name.endswith(OFFSETS_SUFFIX):
            nbytes = group[name[:-len(OFFSETS_SUFFIX)] + JPEG_SUFFIX].shape[0]
            lengths.append(int(np.searchsorted(ds[:], nbytes, side="right")))
        else:
            lengths.append(ds.shape[0])
    return min(lengths, default=0)


def seq_counters(seq: np.ndarray) -> dict[str, int]:
    """Gaps (jumps), missing samples inside them and restarts (seq going back) from ``seq``."""
    step = np.diff(np.asarray(seq).astype(np.int64))
    jumps = step[step > 1]
    return {"gaps": int(jumps.size), "missing": int((jumps - 1).sum()),
            "restarts": int(np.count_nonzero(step <= 0))}


def truncate_stream(group: h5py.Group, count: int) -> None:
    """Cut every per-sample dataset of a stream group to its first ``count`` samples (JPEG
    byte datasets to the end of frame ``count``); the file must be open plainly."""
    for name, ds in group.items():
        if name.endswith(JPEG_SUFFIX):
            offsets = group[name[:-len(JPEG_SUFFIX)] + OFFSETS_SUFFIX]
            ds.resize((int(offsets[count - 1]) if count else 0,))
        elif ds.shape and ds.shape[0] > count:
            ds.resize(count, axis=0)


def _samples_before(t_host: np.ndarray, stop_ns: int) -> int:
    # A stream arrives in capture order, so what was captured at or after the stop instant
    # (routed to the episode before the stop was known) is its tail.
    count = t_host.size
    while count and t_host[count - 1] >= stop_ns:
        count -= 1
    return count


def finalize_episode(f: h5py.File, *, status: str, end_attrs: dict[str, Any] | None = None,
                     master_stream: str | None = None,
                     counters: dict[str, dict[str, int]] | None = None,
                     stop_ns: int | None = None,
                     ledger: Callable[[dict[str, dict[str, int]]], dict] | None = None) -> None:
    """Write the closing attributes and ``/sync`` into an episode opened plainly for writing.

    Shared by :meth:`EpisodeWriter.close` and recovery. ``end_attrs`` values win; missing
    ``end_time_ns`` is now, ``end_time``/``duration_s`` follow from it. With ``stop_ns``,
    samples captured at or after it are cut from each stream's tail (they belong to no part of
    this episode). ``ledger(written)`` gets each stream's ``count``, ``first_t_ns``,
    ``last_t_ns`` and ``last_seq`` and returns the integrity ledger to store. The status is
    written last, so a failure here leaves ``"recording"`` and the file counts as interrupted.
    """
    end = dict(end_attrs or {})
    streams = stream_groups(f)
    times, written = {}, {}
    for name, (spec, group) in streams.items():
        count = stream_length(group)
        if stop_ns is not None:
            kept = _samples_before(group["t_host_ns"][:count], stop_ns)
            if kept < count:
                truncate_stream(group, kept)
            count = kept
        host = group["t_host_ns"][:count]
        written[name] = {"count": count, "first_t_ns": int(host[0]) if count else None,
                         "last_t_ns": int(host[-1]) if count else None,
                         "last_seq": int(group["seq"][count - 1]) if count else None}
        values = {"late": 0, "overflow": 0, **seq_counters(group["seq"][:count]),
                  **(counters or {}).get(name, {})}
        group.attrs.update(count=count, **values)
        t_device, t_host = group["t_device_ns"][:count], group["t_host_ns"][:count]
        fit = fit_device_clock(t_device, t_host)
        group.attrs["clock_fit"] = json.dumps(fit)
        times[name] = (spec.rate_hz, sync_time_ns(t_device, t_host, fit))
    end_ns = int(end.get("end_time_ns") or time.time_ns())
    end.setdefault("end_time", iso_utc(end_ns))
    end.setdefault("duration_s", (end_ns - int(f.attrs["start_time_ns"])) / 1e9)
    end["end_time_ns"] = end_ns
    if ledger is not None:
        end["ledger"] = json.dumps(ledger(written), separators=(",", ":"))
    f.attrs.update({k: _attr_value(v) for k, v in end.items() if k != "status"})
    master = master_stream or str(f.attrs.get("master_stream", "")) or default_master(
        s for s, _ in streams.values())
    f.attrs.update(master_stream=master, sync_method=SYNC_METHOD)
    write_sync_group(f, master, times)
    f.attrs["status"] = status
