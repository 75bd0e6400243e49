"""Episode files (schema v2, v3 with video): one crash-safe HDF5 file per demonstration (docs/episode-format.md).

:class:`HDF5EpisodeWriter` creates every group, dataset and attribute up front, then switches the file
to SWMR mode and from then on only appends and flushes: a SWMR file killed mid-recording keeps
everything up to its last flush, where a plain HDF5 file is usually lost whole. ``close()`` reopens
the file plainly to write the final attributes and the synchronized index.
"""

from __future__ import annotations

import json
import time
import logging
from pathlib import Path
from typing import Any, Callable

import h5py
import hdf5plugin
import numpy as np

from collector.storage.crc import (CRC_SUFFIX, SAMPLE_CRC, checksum_options, frame_crc32, row_crc32,
                                   sample_crc_fields)
from collector.storage.interface import EpisodeWriter
from collector.storage.layout import BYTES_SUFFIXES, JPEG_SUFFIX, LIBVER, OFFSETS_SUFFIX, bytes_suffix
from collector.storage.schema import (COLOR_ENCODINGS, COMPRESSIONS, COUNTERS, EVENT_DATASETS,  # noqa: F401
                                      OUTCOMES, ROOT_ATTRS, SCHEMA_VERSION, SCHEMA_VERSIONS, STATUSES,
                                      TIME_DATASETS, attr_value, check_close, check_counters,
                                      check_options, default_master, end_attrs_at, event_row,
                                      field_encodings, iso_utc, prepare_field, root_attrs,
                                      sample_stream, samples_before, schema_version, seq_counters,
                                      to_json)
from collector.storage.encoder_thread import EncoderThread, Ticket
from collector.storage.chunks import ChunkEncoder, chunk_encoder, write_chunks
from collector.storage.packet_feed import PacketFeed
from collector.storage.preparing import PreparedChunk, chunked_frames
from collector.storage.video import VideoEncoder, check_video_options, is_video
from collector.storage.video_h5 import append_packets, create_video_datasets
from collector.wire.protocol import JPEG, RAW, Sample
from collector.wire.streams import StreamSpec
from collector.storage.sync import (SYNC_METHOD, episode_latencies_ms, fit_device_clock, stream_sync_time_ns,
                                    write_sync_group)
from collector.storage.writer_lock import WriterLock, marker_path

log = logging.getLogger(__name__)

#: A stream whose buffered rows exceed this is written before the next flush.
EARLY_WRITE_BYTES = 64 << 20
_JPEG_CHUNK_BYTES = 256 << 10
_MAX_CHUNK_BYTES = 1 << 20


def compression_options(compression: str, dtype: Any) -> dict:
    """h5py ``create_dataset`` keywords for ``compression`` (uint16, i.e. depth, gets Blosc2).

    Depth: Blosc2 Zstd level 1 on bit-shuffled pixels, lossless, chosen by
    benchmarks/video_storage.py (about twice the ratio of Blosc2-LZ4 with byte shuffle at about
    the same CPU; FFV1 and JPEG-LS compress a little better at 4-7x the CPU)."""
    if compression == "none":
        return {}
    if np.dtype(dtype) == np.uint16:
        return dict(hdf5plugin.Blosc2(cname="zstd", clevel=1, filters=hdf5plugin.Blosc2.BITSHUFFLE))
    if compression == "lz4":
        return dict(hdf5plugin.LZ4())
    return dict(hdf5plugin.Zstd(clevel=1))


_json, _attr_value = to_json, attr_value


def _rows_per_chunk(row_bytes: int, rate_hz: float) -> int:
    # About one second of samples, but no chunk over 1 MiB: one image is one chunk.
    return max(1, min(int(np.ceil(rate_hz)), _MAX_CHUNK_BYTES // max(1, row_bytes)))


class _DatasetCache(dict):
    """A stream group's datasets by name, each looked up once: h5py's name lookup costs more
    than appending a flush's rows of a small dataset (measured with py-spy on the writer thread)."""

    def __init__(self, group: h5py.Group) -> None:
        super().__init__()
        self.group = group

    def __missing__(self, name: str) -> h5py.Dataset:
        dataset = self[name] = self.group[name]
        return dataset

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name) or name in self.group


class _StreamBuffer:
    """Rows of one stream waiting for the next write: one list per field and per time column."""

    def __init__(self, spec: StreamSpec, encodings: dict[str, str]) -> None:
        self.spec, self.encodings, self.written, self.nbytes = spec, encodings, 0, 0
        self.names = {f.name for f in spec.fields}
        self.columns: dict[str, list] = {name: [] for name in [*self.names, *TIME_DATASETS]}
        #: Datasets the per-sample CRC covers (empty: no checksums); see collector.storage.checksums.
        self.crc_fields: list[str] = []
        self.datasets: _DatasetCache | None = None  # set at the first write
        #: Packets written per video-stored field: a row is a whole sample once its packet is.
        self.packets_written: dict[str, int] = {name: 0 for name, e in encodings.items() if is_video(e)}
        #: Per one-frame-per-chunk field: each buffered frame's chunk compressed ahead, or None
        #: (collector.storage.preparing); and the field's chunk encoder, made at the first write.
        self.prepared: dict[str, list] = {name: [] for name in chunked_frames(spec, encodings)}
        self.chunk_encoders: dict[str, ChunkEncoder | None] = {}

    n = property(lambda self: len(self.columns["seq"]))


class HDF5EpisodeWriter(EpisodeWriter):
    """Writes one episode file; used from one thread (the recorder's writer thread).

    ``specs`` are the streams the episode will hold, ``attrs`` the root attributes (task,
    operator, prompt, ...; see :data:`ROOT_ATTRS`). The file must not exist yet.
    """

    def __init__(self, path: str | Path, specs: list[StreamSpec], attrs: dict[str, Any] | None = None,
                 *, compression: str = "none", color_encoding: str = "raw", jpeg_quality: int = 90,
                 checksums: bool = True, stream_encodings: dict[str, str] | None = None,
                 video_encoder: str = "", video_crf: float = 0, video_gop_s: float = 1.0) -> None:
        check_options(compression, color_encoding, jpeg_quality, stream_encodings)
        self.path, self.specs = Path(path), {s.name: s for s in specs}
        if len(self.specs) != len(specs):
            raise ValueError(f"stream names must be unique: {[s.name for s in specs]}")
        self.compression, self.color_encoding = compression, color_encoding
        self.jpeg_quality = int(jpeg_quality)
        # Fletcher-32 per chunk and a CRC32 per JPEG frame (collector.storage.checksums); off only to measure.
        self.checksums = bool(checksums)
        self._buffers = {s.name: _StreamBuffer(s, field_encodings(s, color_encoding, stream_encodings))
                         for s in specs}
        # Video-stored fields: packets from the recorder's continuous encoders or from the
        # episode's own, on a thread of its own, fed in order (packet_feed.py, encoder_thread.py).
        self.video_options = dict(encoder=video_encoder, crf=float(video_crf), gop_s=float(video_gop_s))
        self._feeds: dict[tuple[str, str], PacketFeed] = {}
        for buf in self._buffers.values():
            for codec in {e for e in buf.encodings.values() if is_video(e)}:
                check_video_options(codec, **self.video_options)
        self._version = schema_version(buf.encodings for buf in self._buffers.values())
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
            self._stop_encoders()
            self._h5.close()
            self.path.unlink(missing_ok=True)
            self._lock.release(remove=True)
            raise

    def _root_attrs(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return root_attrs(attrs, self.specs, compression=self.compression,
                          color_encoding=self.color_encoding, jpeg_quality=self.jpeg_quality,
                          version=self._version)

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
            if is_video(buf.encodings[fs.name]):
                encoder = VideoEncoder(buf.encodings[fs.name], fs.shape[1], fs.shape[0],
                                       spec.rate_hz, **self.video_options)
                self._feeds[spec.name, fs.name] = PacketFeed(
                    self._own_encoders(encoder, spec.name), encoder, f"{spec.name}/{fs.name}")
                create_video_datasets(g, fs.name, encoder, dict(attrs, dtype=fs.dtype,
                                      shape=list(fs.shape)), time_rows, check)
            elif buf.encodings[fs.name] == JPEG:
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
                [(fs.name, fs.nbytes) for fs in spec.fields if buf.encodings[fs.name] == RAW],
                TIME_DATASETS)
            crc = g.create_dataset(SAMPLE_CRC, (0,), dtype=np.uint32, maxshape=(None,),
                                   chunks=(time_rows,), **check)
            crc.attrs["fields"] = json.dumps(buf.crc_fields)

    def _own_encoders(self, first: VideoEncoder, stream: str) -> Callable[[], EncoderThread]:
        """Starts the episode's own encoder threads for one field: ``first`` (opened to read
        its attributes when the file was created), then fresh ones like it."""
        spare = [first]

        def open_own() -> EncoderThread:
            encoder = spare.pop() if spare else VideoEncoder(
                first.codec, first.width, first.height, float(first.rate), **self.video_options)
            return EncoderThread(encoder, f"encoder {stream}")
        return open_own

    def append(self, sample: Sample, t_recv_ns: int, prepared: dict[str, Any] | None = None) -> None:
        """Buffer one sample; it reaches the file at the next :meth:`flush`. ``prepared``: the
        tickets of fields encoded already (collector.storage.preparing); a ticket from an
        encoder with other settings than this episode's is not used.

        Raises ``ValueError`` (and keeps nothing of the sample) when its stream is unknown or a
        field's name, encoding, dtype or shape differs from the stream's spec.
        """
        self._check_open()
        name = sample_stream(sample, self.specs)
        buf = self._buffers[name]
        values = {fs.name: self._prepare(name, fs, sample, buf.encodings[fs.name])
                  for fs in buf.spec.fields}
        for field_name, value in values.items():
            # A writable array may be a producer's reused frame buffer: copy it. A read-only one
            # (a received ZeroMQ frame, which nobody writes to again) is kept as it is.
            original = sample.fields[field_name]
            keep = value is not original or not original.flags.writeable
            value = value if keep else value.copy()
            feed = self._feeds.get((name, field_name))
            if feed is not None:  # its packets are collected when the stream is written
                feed.add(value, (prepared or {}).get(field_name))
                continue
            buf.columns[field_name].append(value)
            buf.nbytes += value.nbytes + 32
            if field_name in buf.prepared:
                buf.prepared[field_name].append((prepared or {}).get(field_name))
        for key, value in (("seq", sample.seq), ("t_device_ns", sample.t_device_ns),
                           ("t_host_ns", sample.t_host_ns), ("t_recv_ns", t_recv_ns)):
            buf.columns[key].append(int(value))
        if buf.nbytes >= EARLY_WRITE_BYTES:
            self._write_stream(buf, wait_s=0.0)

    def _prepare(self, stream: str, fs: Any, sample: Sample, stored: str) -> np.ndarray:
        return prepare_field(stream, fs, sample, stored, self.jpeg_quality)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self.path}: the episode writer is closed")

    def add_event(self, t_ns: int, kind: str, stream: str = "", detail: dict | None = None) -> None:
        """Record an event (gap, restart, disconnected, stalled, overflow, marker, ...).

        ``kind`` and ``stream`` are cut to 32 and 64 bytes; a ``detail`` whose JSON exceeds 512
        bytes is replaced by ``{"truncated": <its start>}``.
        """
        self._check_open()
        self._events.append(event_row(t_ns, kind, stream, detail))

    def set_counters(self, stream: str, **counters: int | None) -> None:
        """Counters to store as the stream's attributes at close (``gaps``, ``missing``,
        ``restarts``, ``late``, ``overflow``); they replace the counts derived from ``seq``."""
        self._counters[stream].update(check_counters(stream, self._counters, counters))

    @property
    def counts(self) -> dict[str, int]:
        """Whole samples per stream written to the file so far (buffered ones, and rows whose
        video packet is not written yet, not included)."""
        return {name: min([buf.written, *buf.packets_written.values()])
                for name, buf in self._buffers.items()}

    @property
    def buffered_bytes(self) -> int:
        """Bytes appended but not yet written: what the next :meth:`flush` puts on disk."""
        return sum(buf.nbytes for buf in self._buffers.values())

    @property
    def buffered(self) -> dict[str, int]:
        """Samples per stream waiting for the next flush."""
        return {name: buf.n for name, buf in self._buffers.items()}

    def _write_stream(self, buf: _StreamBuffer, wait_s: float | None = None) -> None:
        if buf.datasets is None:
            buf.datasets = _DatasetCache(self._h5["streams"][buf.spec.name])
        n, start, g = buf.n, buf.written, buf.datasets
        # Packets lag their samples by the encoder's delay (a frame in steady state, the
        # pre-roll's backlog after a start), and the last ones come after the last sample:
        # written whenever there are any. Readers count whole samples only.
        for name in buf.packets_written:
            buf.columns[name] += self._feeds[buf.spec.name, name].ready(wait_s)
            append_packets(g, name, buf.columns[name])
            buf.packets_written[name] += len(buf.columns[name])
            buf.columns[name].clear()
        if not n:
            buf.nbytes = 0
            return
        covered: dict[str, np.ndarray] = {}
        for name, column in buf.columns.items():
            if is_video(buf.encodings.get(name, "")):
                continue
            elif buf.encodings.get(name) == JPEG:
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
            elif name in buf.prepared and self._write_prepared(buf, name, g[name], start, column):
                if name in buf.crc_fields:
                    covered[name] = np.stack(column)
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

    def _write_prepared(self, buf: _StreamBuffer, name: str, dataset: h5py.Dataset, start: int,
                        frames: list[np.ndarray]) -> bool:
        """Write frames of which some were compressed ahead as direct chunks (the others are
        compressed here, by the same filters): whether they were. When none was, or the field's
        filters cannot be run outside HDF5, HDF5 writes them as usual."""
        chunks = buf.prepared[name]
        try:
            if not any(chunks):
                return False
            if name not in buf.chunk_encoders:
                encoder = chunk_encoder(dataset)
                buf.chunk_encoders[name] = encoder if encoder is not None and encoder.fits(dataset) else None
            encoder = buf.chunk_encoders[name]
            if encoder is None:
                return False
            try:
                stored = [c.data if isinstance(c, PreparedChunk) and c.pipeline == encoder.pipeline
                          else encoder(frame) for c, frame in zip(chunks, frames)]
            except (ValueError, RuntimeError) as exc:  # HDF5 compresses them instead
                log.warning("%s/%s: frames written plainly: %s", buf.spec.name, name, exc)
                return False
            write_chunks(dataset, start, stored)
            return True
        finally:
            chunks.clear()

    def flush(self, wait_s: float | None = None) -> None:
        """Write every buffered sample and event and flush the file: after this returns, a crash
        loses nothing appended before the call, except video frames the encoders had not
        encoded within ``wait_s`` (``None``: waits for all); they are written by a later flush
        (:attr:`counts` counts whole samples only)."""
        self._check_open()
        deadline = None if wait_s is None else time.monotonic() + wait_s
        # Streams with video packets last: their encoders get the others' write time to finish.
        for buf in sorted(self._buffers.values(), key=lambda buf: bool(buf.packets_written)):
            self._write_stream(buf, None if deadline is None else max(0.0, deadline - time.monotonic()))
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
        end_attrs = check_close(status, end_attrs, master_stream, self.specs)
        try:
            self._finish_encoders()
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

    def _finish_encoders(self) -> None:
        """Move the packets the video encoders still hold into the buffers (at the end only)."""
        for (stream, field), feed in self._feeds.items():
            self._buffers[stream].columns[field] += feed.finish()

    def _stop_encoders(self) -> None:
        for feed in self._feeds.values():
            feed.stop()

    @property
    def storage_folder(self) -> Path:
        return self.path.parent

    def discard(self) -> None:
        self.abort()
        marker_path(self.path).unlink(missing_ok=True)  # discarded, not to be recovered

    def abort(self) -> None:
        """Close without finalizing: buffered data is flushed if possible, the status stays
        ``"recording"`` (readers report the episode as interrupted). Never raises."""
        if self._closed:
            return
        try:
            self._finish_encoders()
            self.flush()
        except Exception as exc:  # the abort is often the reaction to a failing write
            log.warning("%s: flush on abort failed: %s", self.path, exc)
        self._stop_encoders()
        self._closed = True
        try:
            self._h5.close()
        except Exception as exc:
            log.warning("%s: close on abort failed: %s", self.path, exc)
        self._lock.release(remove=False)



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
        if name.endswith(BYTES_SUFFIXES):
            continue
        if name.endswith(OFFSETS_SUFFIX):
            field = name[:-len(OFFSETS_SUFFIX)]
            nbytes = group[field + bytes_suffix(group, field)].shape[0]
            lengths.append(int(np.searchsorted(ds[:], nbytes, side="right")))
        else:
            lengths.append(ds.shape[0])
    return min(lengths, default=0)


def truncate_stream(group: h5py.Group, count: int) -> None:
    """Cut every per-sample dataset of a stream group to its first ``count`` samples (JPEG and
    video byte datasets to the end of frame ``count``); the file must be open plainly."""
    for name, ds in group.items():
        if name.endswith(BYTES_SUFFIXES):
            offsets = group[name.rsplit(".", 1)[0] + OFFSETS_SUFFIX]
            ds.resize((int(offsets[count - 1]) if count else 0,))
        elif ds.shape and ds.shape[0] > count:
            ds.resize(count, axis=0)


def finalize_episode(f: h5py.File, *, status: str, end_attrs: dict[str, Any] | None = None,
                     master_stream: str | None = None,
                     counters: dict[str, dict[str, int]] | None = None,
                     stop_ns: int | None = None,
                     ledger: Callable[[dict[str, dict[str, int]]], dict] | None = None) -> None:
    """Write the closing attributes and ``/sync`` into an episode opened plainly for writing.

    Shared by :meth:`HDF5EpisodeWriter.close` and recovery. ``end_attrs`` values win; missing
    ``end_time_ns`` is now, ``end_time``/``duration_s`` follow from it. With ``stop_ns``,
    samples captured at or after it are cut from each stream's tail (they belong to no part of
    this episode). ``ledger(written)`` gets each stream's ``count``, ``first_t_ns``,
    ``last_t_ns`` and ``last_seq`` and returns the integrity ledger to store. The status is
    written last, so a failure here leaves ``"recording"`` and the file counts as interrupted.
    """
    end = dict(end_attrs or {})
    streams = stream_groups(f)
    times, written = {}, {}
    latencies = episode_latencies_ms(f.attrs)  # measured by `collector calibrate latency`
    for name, (spec, group) in streams.items():
        count = stream_length(group)
        if stop_ns is not None:
            kept = samples_before(group["t_host_ns"][:count], stop_ns)
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
        times[name] = (spec.rate_hz, stream_sync_time_ns(t_device, t_host, fit, latencies.get(name)))
    end = end_attrs_at(end, int(f.attrs["start_time_ns"]))
    if ledger is not None:
        end["ledger"] = json.dumps(ledger(written), separators=(",", ":"))
    f.attrs.update({k: _attr_value(v) for k, v in end.items() if k != "status"})
    master = master_stream or str(f.attrs.get("master_stream", "")) or default_master(
        s for s, _ in streams.values())
    f.attrs.update(master_stream=master, sync_method=SYNC_METHOD)
    write_sync_group(f, master, times)
    f.attrs["status"] = status
