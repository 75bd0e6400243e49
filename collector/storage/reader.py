"""Reading, checking, summarising and recovering episode files (docs/episode-format.md).

``open_episode`` reads finished files plainly and interrupted ones (still flagged as open by a
killed SWMR writer) with ``swmr=True``; JPEG-stored color frames are decoded transparently.
"""

from __future__ import annotations

import functools
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

import h5py
import hdf5plugin  # noqa: F401  (registers the LZ4/Zstd/Blosc2 filters for reading)
import numpy as np

from collector.storage.codecs import CodecError, decode_jpeg
from collector.storage.interface import EpisodeError, EpisodeReader
from collector.storage.layout import (JPEG_SUFFIX, KEY_SUFFIX, LIBVER, OFFSETS_SUFFIX, PTS_SUFFIX,
                                      VIDEO_ENCODINGS, VIDEO_SUFFIX)
from collector.storage.schema import (COUNTERS, EVENT_DATASETS, OUTCOMES, ROOT_ATTRS, SCHEMA_VERSION,  # noqa: F401
                                      SCHEMA_VERSIONS, STATUSES, TIME_DATASETS)
from collector.storage.writer import finalize_episode, stream_groups, stream_length, truncate_stream
from collector.wire.protocol import JPEG
from collector.wire.streams import StreamSpec
from collector.storage.sync import read_sync_group

__all__ = ["EpisodeError", "HDF5Episode", "open_episode", "validate_episode", "format_info",
           "format_ledger", "recover_episode", "read_root_attrs", "deep_problems", "deep_report"]


#: What h5py raises for damaged files (bad checksums, cut-off chunks, broken links).
_DAMAGE = (OSError, RuntimeError, AttributeError, TypeError, CodecError)


def _reads_file(method):
    """Turn h5py's errors on damaged data into an :class:`EpisodeError` naming the file."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (*_DAMAGE, KeyError) as exc:
            # h5py's KeyError for a damaged link reads "Unable to ..."; ours name the stream.
            if isinstance(exc, KeyError) and "Unable to" not in str(exc):
                raise
            raise EpisodeError(f"{self.path}: unreadable, truncated or corrupt episode "
                               f"({type(exc).__name__}: {exc})") from None
    return wrapper


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    return value.item() if isinstance(value, np.generic) else value


class HDF5Episode(EpisodeReader):
    """An open HDF5 episode file; use as a context manager or call :meth:`close`.

    ``interrupted`` is true when the recording never finished (status ``"recording"``, often a
    file only readable in SWMR mode); such files read up to the writer's last flush.
    """

    def __init__(self, path: Path, h5: h5py.File, swmr: bool) -> None:
        self.path, self.h5, self.swmr = path, h5, swmr
        self.attrs: dict[str, Any] = {k: _plain(v) for k, v in h5.attrs.items()}
        self.interrupted = swmr or self.attrs.get("status") == "recording"
        try:
            found = stream_groups(h5)
        except (KeyError, ValueError, TypeError) as exc:
            raise EpisodeError(f"{path}: malformed stream declaration: {exc}") from None
        self.streams: dict[str, StreamSpec] = {name: spec for name, (spec, _) in found.items()}
        self._groups = {name: group for name, (_, group) in found.items()}
        self._encodings: dict[str, dict[str, str]] = {}
        for name, spec in self.streams.items():
            missing = [k for k in _dataset_names(spec, self.encodings(name))
                       if not isinstance(self._groups[name].get(k), h5py.Dataset)]
            if missing:
                raise EpisodeError(f"{path}: stream '{name}': " + "; ".join(
                    f"dataset '{k}' is missing or unreadable" for k in missing))
        self._counts: dict[str, int] = {}
        self._offsets: dict[tuple[str, str], np.ndarray] = {}
        self._video: dict[tuple[str, str], Any] = {}

    def close(self) -> None:
        self.h5.close()

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size

    def stream_attrs(self, stream: str) -> dict[str, Any]:
        found = {k: _plain(v) for k, v in self._group(stream).attrs.items()
                 if k in COUNTERS or k == "clock_fit"}
        if "clock_fit" in found:
            found["clock_fit"] = json.loads(found["clock_fit"] or "null")
        return found

    def frame_problems(self, stream: str, field: str, frames: Sequence[int] | np.ndarray, *,
                       thorough: bool) -> dict[int, str]:
        from collector.storage.checksums import jpeg_frame_problems, raw_frame_problems

        group, count = self._group(stream), self.count(stream)
        if self.encodings(stream).get(field) in (JPEG, *VIDEO_ENCODINGS):
            return jpeg_frame_problems(group, field, count, frames, decode=thorough,
                                       shape=self.streams[stream].field(field).shape)
        return raw_frame_problems(group[field], frames) if thorough else {}

    def _group(self, stream: str) -> h5py.Group:
        if stream not in self._groups:
            raise KeyError(f"no stream '{stream}' (streams: {', '.join(self._groups) or 'none'})")
        return self._groups[stream]

    def encodings(self, stream: str) -> dict[str, str]:
        """How each field of ``stream`` is stored (``"raw"``, ``"jpeg"`` or a video codec)."""
        # Parsed once per stream, like count(): every frames() call asks (measured ~1 ms of
        # attribute read + JSON per call under load, a quarter of EpisodeDataset's time per sample).
        if stream not in self._encodings:
            self._encodings[stream] = json.loads(self._group(stream).attrs.get("encodings", "{}"))
        return dict(self._encodings[stream])

    @_reads_file
    def count(self, stream: str) -> int:
        """Samples of ``stream`` present in every one of its datasets."""
        if stream not in self._counts:
            self._counts[stream] = stream_length(self._group(stream))
        return self._counts[stream]

    @_reads_file
    def frames(self, stream: str, field: str, index: int | slice | Sequence[int] = slice(None)) -> np.ndarray:
        """Samples of one field: an int gives one sample, a slice or sequence stacks them along
        a new first axis. JPEG- and video-stored frames come back decoded, RGB (a video frame
        is decoded from the keyframe before it; see :mod:`collector.storage.video`)."""
        spec, count = self.streams[stream].field(field), self.count(stream)
        positions = np.arange(count)[index] if not isinstance(index, (int, np.integer)) \
            else np.arange(count)[[index]]
        if self.encodings(stream).get(field) in VIDEO_ENCODINGS:
            data = self.video_reader(stream, field).frames(positions)
        elif self.encodings(stream).get(field) == JPEG:
            data = self._jpeg_frames(stream, field, positions, spec.shape)
        elif isinstance(index, slice) and (index.step in (None, 1)) and positions.size:
            data = self._group(stream)[field][positions[0]:positions[-1] + 1]
        else:
            unique, inverse = np.unique(positions, return_inverse=True)
            ds = self._group(stream)[field]
            data = ds[unique][inverse] if unique.size else np.empty((0, *ds.shape[1:]), ds.dtype)
        return data[0] if isinstance(index, (int, np.integer)) else data

    def video_reader(self, stream: str, field: str):
        """The :class:`~collector.storage.video.VideoFrameReader` of a video-stored field (one per
        episode and field: its decoded-frame cache makes sequential reads cheap)."""
        from collector.storage.video_h5 import video_frame_reader

        if (stream, field) not in self._video:
            self._video[stream, field] = video_frame_reader(
                self._group(stream), field, self.count(stream), self.streams[stream].field(field).shape)
        return self._video[stream, field]

    @_reads_file
    def copy_video(self, stream: str, field: str, path: str | Path, start: int = 0,
                   stop: int | None = None) -> int:
        from collector.storage.video_h5 import remux_mp4

        if self.encodings(stream).get(field) not in VIDEO_ENCODINGS:
            return super().copy_video(stream, field, path, start, stop)
        return remux_mp4(self._group(stream), field, self.count(stream), path, start, stop)

    def _jpeg_frames(self, stream: str, field: str, positions: np.ndarray,
                     shape: tuple[int, ...]) -> np.ndarray:
        group = self._group(stream)
        if (stream, field) not in self._offsets:
            ends = group[field + OFFSETS_SUFFIX][:self.count(stream)].astype(np.int64)
            self._offsets[stream, field] = np.concatenate([[0], ends])
        bounds = self._offsets[stream, field]
        out = np.empty((positions.size, *shape), np.uint8)
        if not positions.size:
            return out
        data = group[field + JPEG_SUFFIX]
        lo, hi = int(bounds[positions.min()]), int(bounds[positions.max() + 1])
        needed = int((bounds[positions + 1] - bounds[positions]).sum())
        # Runs of frames (the usual request) come in one read; scattered ones frame by frame.
        blob = data[lo:hi] if hi - lo <= 2 * needed + (1 << 20) else None
        for k, i in enumerate(positions):
            a, b = int(bounds[i]), int(bounds[i + 1])
            frame = decode_jpeg(blob[a - lo:b - lo] if blob is not None else data[a:b])
            if frame.shape != tuple(shape):
                raise CodecError(f"'{stream}' '{field}' frame {i} decodes to {frame.shape}, "
                                 f"the spec says {tuple(shape)}")
            out[k] = frame
        return out

    @_reads_file
    def timestamps(self, stream: str) -> dict[str, np.ndarray]:
        """``seq``, ``t_device_ns``, ``t_host_ns`` and ``t_recv_ns`` of ``stream``."""
        group, count = self._group(stream), self.count(stream)
        return {name: group[name][:count] for name in TIME_DATASETS}

    @_reads_file
    def events(self) -> list[dict[str, Any]]:
        """Every event as ``{"t_ns", "kind", "stream", "detail"}``, in recording order."""
        if "events" not in self.h5:
            return []
        group = self.h5["events"]
        n = min((group[k].shape[0] for k in EVENT_DATASETS if k in group), default=0)
        columns = {k: group[k][:n] for k in EVENT_DATASETS if k in group}
        events = []
        for i in range(n):
            text = columns["detail"][i].decode(errors="replace") if "detail" in columns else "{}"
            try:
                detail = json.loads(text or "{}")
            except ValueError:
                detail = {"raw": text}
            events.append({"t_ns": int(columns["t_ns"][i]), "kind": _plain(columns["kind"][i]),
                           "stream": _plain(columns["stream"][i]), "detail": detail})
        return events

    @property
    @_reads_file
    def sync(self) -> dict[str, Any] | None:
        """The synchronized index (see :func:`collector.storage.sync.read_sync_group`), or ``None``:
        interrupted files have none until recovered."""
        return read_sync_group(self.h5)

    @_reads_file
    def summary(self) -> dict[str, Any]:
        """Episode facts and per-stream statistics, as plain data (see :func:`format_info`)."""
        return super().summary()


def _dataset_names(spec: StreamSpec, encodings: dict[str, str]) -> list[str]:
    names = []
    for fs in spec.fields:
        encoding = encodings.get(fs.name)
        if encoding in VIDEO_ENCODINGS:
            names += [fs.name + s for s in (VIDEO_SUFFIX, OFFSETS_SUFFIX, PTS_SUFFIX, KEY_SUFFIX)]
        else:
            names += [fs.name + JPEG_SUFFIX, fs.name + OFFSETS_SUFFIX] if encoding == JPEG else [fs.name]
    return names + list(TIME_DATASETS)


def open_episode(path: str | Path) -> HDF5Episode:
    """Open an episode for reading; raise :class:`EpisodeError` for anything that is not one."""
    path = Path(path)
    if not path.is_file():
        raise EpisodeError(f"{path}: no such file")
    if not h5py.is_hdf5(path):
        raise EpisodeError(f"{path}: not an HDF5 file")
    swmr = False
    try:
        h5 = h5py.File(path, "r")
    except Exception as plain_exc:  # h5py raises OSError or RuntimeError for damaged files
        damaged = EpisodeError(f"{path}: cannot be read, truncated or corrupt ({plain_exc})")
        # A killed (or live) SWMR writer leaves the file flagged as open for write; only then
        # read it in SWMR mode, which skips the end-of-file check that catches truncation.
        if "open for write" not in str(plain_exc) and "unable to lock" not in str(plain_exc):
            raise damaged from None
        try:
            h5, swmr = h5py.File(path, "r", swmr=True), True
        except Exception:
            raise damaged from None
    try:
        version = h5.attrs.get("schema_version")
        if version is None or "streams" not in h5:
            raise EpisodeError(f"{path}: an HDF5 file but not a collector episode "
                               "(no schema_version attribute or /streams group)")
        if int(version) not in SCHEMA_VERSIONS:
            raise EpisodeError(f"{path}: schema version {version} is not supported "
                               f"(this reader knows {', '.join(map(str, SCHEMA_VERSIONS))})")
        return HDF5Episode(path, h5, swmr)
    except EpisodeError:
        h5.close()
        raise
    except Exception as exc:  # corrupt metadata surfaces as anything from h5py
        h5.close()
        raise EpisodeError(f"{path}: unreadable, truncated or corrupt episode: {exc}") from None


def validate_episode(path: str | Path, *, allow_recovered: bool = True) -> list[str]:
    """Problems found in an episode file, one sentence each; an empty list means valid."""
    try:
        episode = open_episode(path)
    except EpisodeError as exc:
        return [str(exc)]
    with episode:
        try:
            return _problems(episode, allow_recovered)
        except Exception as exc:  # a broken file must yield a report, not a traceback
            return [f"unreadable: {type(exc).__name__}: {exc}"]


def _problems(ep: HDF5Episode, allow_recovered: bool) -> list[str]:
    a, problems = ep.attrs, []
    problems += [f"root attribute '{k}' is missing" for k in ROOT_ATTRS if k not in a]
    status = a.get("status")
    if status not in STATUSES:
        problems.append(f"status {status!r} is not one of {STATUSES}")
    elif status == "recording":
        problems.append("status is 'recording': the recording was interrupted (run collector recover)")
    elif status == "failed":
        pass  # said by integrity_problems()
    elif status == "recovered" and not allow_recovered:
        problems.append("status is 'recovered': the end of the recording may be lost")
    if a.get("outcome") not in OUTCOMES:
        problems.append(f"outcome {a.get('outcome')!r} is not one of {OUTCOMES}")
    try:
        tags = json.loads(a.get("tags", "[]"))
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ValueError
    except (ValueError, TypeError):
        problems.append(f"tags {a.get('tags')!r} is not a JSON list of strings")
    for key in ("start_time", "end_time") if status != "recording" else ("start_time",):
        try:
            datetime.fromisoformat(str(a.get(key)))
        except ValueError:
            problems.append(f"{key} {a.get(key)!r} is not an ISO 8601 time")
    if ep.streams and a.get("master_stream") not in ep.streams:
        problems.append(f"master_stream {a.get('master_stream')!r} is not one of the streams")
    for name, spec in ep.streams.items():
        problems += [f"stream '{name}': {p}" for p in _stream_problems(ep, name, spec)]
    events = ep.h5.get("events")
    if events is None or set(events) != set(EVENT_DATASETS):
        problems.append(f"/events must hold exactly {', '.join(EVENT_DATASETS)}")
    elif len({events[k].shape[0] for k in EVENT_DATASETS}) != 1:
        problems.append("/events datasets have different lengths")
    if status in ("complete", "recovered", "failed"):
        problems += _sync_problems(ep)
    problems += ep.integrity_problems(accounted=False)
    problems += _window_problems(ep)
    return problems


def _window_problems(ep: EpisodeReader) -> list[str]:
    """Samples captured outside the episode's window: they belong to another episode."""
    ledger = ep.ledger
    if not ledger or "start_ns" not in ledger:
        return []
    problems = []
    for name in ep.streams:
        t = ep.timestamps(name)["t_host_ns"]
        outside = int(np.count_nonzero((t < ledger["start_ns"]) | (t >= ledger["stop_ns"])))
        if outside:
            problems.append(f"stream '{name}': {outside} samples captured outside the episode")
    return problems


def _stream_problems(ep: HDF5Episode, name: str, spec: StreamSpec) -> list[str]:
    group, problems, lengths = ep._group(name), [], {}
    encodings = ep.encodings(name)
    for fs in spec.fields:
        encoding = encodings.get(fs.name)
        if encoding == JPEG or encoding in VIDEO_ENCODINGS:
            what, suffix = ("JPEG", JPEG_SUFFIX) if encoding == JPEG else (encoding, VIDEO_SUFFIX)
            data, offsets = group.get(fs.name + suffix), group.get(fs.name + OFFSETS_SUFFIX)
            if data is None or offsets is None:
                problems.append(f"field '{fs.name}' is stored as {what} but its datasets are missing")
                continue
            ends = offsets[:].astype(np.int64)
            lengths[offsets.name.rsplit("/", 1)[1]] = ends.size
            if np.any(np.diff(ends) <= 0) or (ends.size and ends[-1] > data.shape[0]):
                problems.append(f"field '{fs.name}': {what} offsets are not increasing within "
                                f"the {data.shape[0]} stored bytes")
            if encoding in VIDEO_ENCODINGS:
                problems += _video_problems(group, fs.name, ep.count(name))
            continue
        ds = group.get(fs.name)
        if ds is None:
            problems.append(f"dataset '{fs.name}' is missing")
            continue
        lengths[fs.name] = ds.shape[0]
        if ds.dtype.str != fs.dtype or ds.shape[1:] != fs.shape:
            problems.append(f"dataset '{fs.name}' is {ds.dtype.str} {ds.shape[1:]}, the spec "
                            f"says {fs.dtype} {fs.shape}")
    for key, dtype in TIME_DATASETS.items():
        ds = group.get(key)
        if ds is None:
            problems.append(f"dataset '{key}' is missing")
            continue
        lengths[key] = ds.shape[0]
        if ds.dtype != np.dtype(dtype) or ds.ndim != 1:
            problems.append(f"dataset '{key}' is {ds.dtype.str} {ds.shape}, expected "
                            f"{np.dtype(dtype).str} (N,)")
    if len(set(lengths.values())) > 1:
        problems.append("datasets have different lengths: " +
                        ", ".join(f"{k} {v}" for k, v in lengths.items()))
    count = ep.count(name)
    if not ep.interrupted and int(group.attrs.get("count", -1)) != count:
        problems.append(f"count attribute {group.attrs.get('count')} != {count} samples stored")
    if "seq" in group and "t_host_ns" in group:
        t = {key: group[key][:count] for key in ("seq", "t_host_ns")}
        backwards = int(np.count_nonzero(np.diff(t["seq"].astype(np.int64)) <= 0))
        restarts = int(group.attrs.get("restarts", 0))
        if backwards > restarts:
            problems.append(f"seq is not strictly increasing at {backwards} places "
                            f"({restarts} restarts recorded)")
        host_back = int(np.count_nonzero(np.diff(t["t_host_ns"]) < 0))
        if host_back:
            problems.append(f"t_host_ns goes backwards {host_back} times")
    missing = [c for c in COUNTERS if c not in group.attrs]
    if missing:
        problems.append(f"counter attributes missing: {', '.join(missing)}")
    return problems


def _video_problems(group: h5py.Group, field: str, count: int) -> list[str]:
    """A video field must start on a keyframe and number its packets 0, 1, 2, ..."""
    keys, pts = group[field + KEY_SUFFIX][:count], group[field + PTS_SUFFIX][:count]
    problems = []
    if count and not keys[0]:
        problems.append(f"field '{field}': the first packet is not a keyframe")
    if not np.array_equal(pts, np.arange(count)):
        problems.append(f"field '{field}': packet pts are not the frame indices 0..{count - 1}")
    return problems


def _sync_problems(ep: EpisodeReader) -> list[str]:
    sync = ep.sync
    if sync is None:
        return ["/sync is missing"]
    problems, master, t_ns = [], ep.attrs.get("master_stream"), sync["t_ns"]
    if sync["master"] != master:
        problems.append(f"/sync master {sync['master']!r} differs from master_stream {master!r}")
    if master in ep.streams and t_ns.size != ep.count(master):
        problems.append(f"/sync/t_ns has {t_ns.size} entries, master has {ep.count(master)}")
    for name in ep.streams:
        if name == sync["master"]:
            continue
        if name not in sync["streams"]:
            problems.append(f"/sync has no index for stream '{name}'")
            continue
        index, skew = sync["streams"][name]["index"], sync["streams"][name]["skew_ns"]
        if index.shape != t_ns.shape or skew.shape != t_ns.shape:
            problems.append(f"/sync/{name}: index/skew_ns length differs from t_ns")
        elif index.size and (index.min() < -1 or index.max() >= ep.count(name)):
            problems.append(f"/sync/{name}/index out of range [-1, {ep.count(name)})")
    return problems


def format_info(summary: dict[str, Any]) -> str:
    """``summary()`` as the human-readable text ``collector info`` prints."""
    s = summary
    state = f"{s['status']}" + (" (INTERRUPTED)" if s.get("interrupted") else "")
    lines = [f"{s['path']}",
             f"  uuid {s['uuid']}  task {s['task']!r}  operator {s['operator']!r}  station {s['station']!r}",
             f"  status {state}  outcome {s['outcome']}  started {s['start_time']}  "
             f"duration {float(s['duration_s'] or 0):.1f} s  {s['file_bytes'] / 1e6:.1f} MB",
             f"  master {s['master_stream']}  events: " +
             (", ".join(f"{k} {v}" for k, v in sorted(s["events"].items())) or "none"), ""]
    head = (f"  {'stream':<22}{'kind':<11}{'count':>8}{'rate Hz':>16}{'gaps':>6}{'missing':>8}"
            f"{'restarts':>9}{'overflow':>9}   skew ms p50/p99/max (unmatched)")
    lines.append(head)
    for name, st in s["streams"].items():
        rate = f"{st['measured_rate_hz']:.1f}/{st['rate_hz']:g}"
        skew = st["skew"]
        skew_text = "master" if name == s["master_stream"] else "-" if skew is None else (
            f"{skew['p50_ms']:.1f}/{skew['p99_ms']:.1f}/{skew['max_ms']:.1f} ({skew['unmatched']})")
        lines.append(f"  {name:<22}{st['kind']:<11}{st['count']:>8}{rate:>16}{st['gaps']:>6}"
                     f"{st['missing']:>8}{st['restarts']:>9}{st['overflow']:>9}   {skew_text}")
    lines += ["", *format_ledger(s.get("ledger"), s.get("integrity", []))]
    return "\n".join(lines)


def format_ledger(ledger: dict[str, Any] | None, problems: list[str]) -> list[str]:
    """The integrity ledger as the lines ``collector info`` prints."""
    if not ledger or not isinstance(ledger.get("streams"), dict):
        return ["  integrity: " + ("; ".join(problems) if problems else
                                   "no ledger (older, interrupted or recovered episode)")]
    lines = [f"  {'integrity ledger':<22}{'published':>10}{'written':>9}{'missing':>8}"
             f"{'head s':>8}{'tail s':>8}   reasons"]
    for name, st in ledger["streams"].items():
        missing = {k: v for k, v in st.get("missing", {}).items() if v}
        published = "?" if st.get("published") is None else str(st["published"])
        head = "-" if st.get("head_s") is None else f"{st['head_s']:.2f}"
        tail = "-" if st.get("tail_s") is None else f"{st['tail_s']:.2f}"
        reasons = ", ".join(f"{k} {v}" for k, v in missing.items()) or st.get("note") or "-"
        lines.append(f"  {name:<22}{published:>10}{st.get('written', 0):>9}"
                     f"{sum(missing.values()):>8}{head:>8}{tail:>8}   {reasons}")
    lines.append("  integrity: " + ("; ".join(problems) if problems else "OK: every published sample is in the file"))
    return lines


def recover_episode(path: str | Path, out: str | Path | None = None) -> Path:
    """Turn an interrupted episode into a finished one with status ``"recovered"``.

    Everything up to the writer's last flush is copied (cut to whole samples), counters and the
    synchronized index are rebuilt, and the copy replaces ``out`` (default: ``path`` itself)
    atomically. Only for files whose writer is gone: a live recording would be corrupted.
    """
    path = Path(path)
    target = Path(out) if out is not None else path
    with open_episode(path) as episode:
        if not episode.interrupted:
            raise EpisodeError(f"{path}: status {episode.attrs.get('status')!r}; nothing to recover")
        tmp = target.with_name(f".{target.name}.recovering")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with h5py.File(tmp, "w", libver=LIBVER) as dst:
                end_ns = _copy_truncated(episode, dst)
                finalize_episode(dst, status="recovered", end_attrs={"end_time_ns": end_ns})
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    os.replace(tmp, target)
    return target


def _copy_truncated(episode: HDF5Episode, dst: h5py.File) -> int:
    src = episode.h5
    dst.attrs.update(dict(src.attrs))
    src.copy(src["streams"], dst, "streams")
    end_ns = int(src.attrs.get("start_time_ns", 0))
    for name in episode.streams:
        group, count = dst["streams"][name], episode.count(name)
        truncate_stream(group, count)
        if count:
            end_ns = max(end_ns, int(group["t_recv_ns"][count - 1]))
    events = dst.create_group("events")
    n = min((src["events"][k].shape[0] for k in EVENT_DATASETS), default=0) if "events" in src else 0
    for key, dtype in EVENT_DATASETS.items():
        data = src["events"][key][:n] if n else np.zeros(0, dtype)
        events.create_dataset(key, data=data, dtype=dtype, maxshape=(None,), chunks=(256,))
    if n:
        end_ns = max(end_ns, int(events["t_ns"][:].max()))
    return end_ns


def read_root_attrs(path: str | Path) -> dict[str, Any]:
    """The root attributes of an episode file as plain values, without reading its streams
    (listing a thousand files stays fast). Raises :class:`EpisodeError` for a file that cannot
    be read; an interrupted one is read in SWMR mode."""
    path = Path(path)
    try:
        try:
            f = h5py.File(path, "r")
        except OSError as exc:
            if "open for write" not in str(exc) and "unable to lock" not in str(exc):
                raise
            f = h5py.File(path, "r", swmr=True)
        with f:
            return {k: _plain(v) for k, v in f.attrs.items()}
    except (*_DAMAGE, KeyError, ValueError) as exc:
        raise EpisodeError(f"{path}: cannot be read ({exc})") from None


def deep_problems(path: str | Path) -> list[str]:
    """What ``collector validate --deep`` adds (checks in :mod:`collector.storage.checksums`): every chunk of every dataset read (Fletcher-32
    verified where present) and every JPEG frame checked (CRC32, or decoded in older files);
    one sentence per damaged run of samples, naming the stream. ``[]``: no damage found."""
    return deep_report(path)[0]


def deep_report(path: str | Path) -> tuple[list[str], bool]:
    """``deep_problems`` and whether the file carries checksums at all."""
    from collector.storage.checksums import describe_damage, stream_damage, unreadable_rows

    try:
        episode = open_episode(path)
    except EpisodeError as exc:
        return [str(exc)], False
    problems, checked = [], False
    with episode:
        for stream in episode.streams:
            group = episode.h5[f"streams/{stream}"]
            try:
                count = episode.count(stream)
            except EpisodeError:
                count = None
            damaged, has = stream_damage(group, count)
            checked |= has
            past = damaged.pop(-1, None)
            problems += describe_damage(stream, damaged)
            if past:
                problems.append(f"{stream}: {past}")
        for top in ("events", "sync"):
            if top not in episode.h5:
                continue
            datasets = []
            episode.h5[top].visititems(lambda name, obj: datasets.append((name, obj))
                                       if isinstance(obj, h5py.Dataset) else None)
            for name, ds in datasets:
                checked |= bool(ds.fletcher32)
                for lo, hi in unreadable_rows(ds):
                    problems.append(f"/{top}/{name}: rows {lo}-{hi - 1} damaged (checksum mismatch)"
                                    if ds.fletcher32 else f"/{top}/{name}: rows {lo}-{hi - 1} unreadable")
    return problems, checked
