"""What every episode backend shares: schema constants, root attributes, sample checks.

The HDF5 writer (:mod:`collector.storage.writer`) and the in-memory one
(:mod:`collector.storage.memory`) both build their root attributes, check incoming samples,
cut events and finalize counters with these functions, so the two backends cannot drift apart.
Nothing here knows a file format.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable
from uuid import uuid4

import numpy as np

from collector import __version__
from collector.storage.codecs import CodecError, decode_jpeg, encode_jpeg, is_color_image, jpeg_shape
from collector.storage.layout import VIDEO_ENCODINGS
from collector.wire.protocol import JPEG, RAW, Sample
from collector.wire.streams import StreamSpec
from collector.storage.sync import SYNC_METHOD

#: 2: the integrity ledger (root attribute ``ledger``), episodes cut on the capture clock and
#: the ``failed`` status. 3: video-stored color fields (collector.storage.video); a file without
#: any stays version 2, so readers that predate video still open it. Readers accept every
#: version in SCHEMA_VERSIONS.
SCHEMA_VERSION = 2
VIDEO_SCHEMA_VERSION = 3
SCHEMA_VERSIONS = (1, 2, 3)
#: ``failed``: closed after a recorder thread died; what it holds is sound, but not all of it.
STATUSES = ("recording", "complete", "recovered", "failed")
OUTCOMES = ("success", "failure", "unknown")
COMPRESSIONS = ("none", "lz4", "zstd")
COLOR_ENCODINGS = ("raw", "jpeg", *VIDEO_ENCODINGS)
#: Root attributes every episode has, with their defaults (``None``: filled in when created).
ROOT_ATTRS: dict[str, Any] = {
    "schema_version": SCHEMA_VERSION, "uuid": None, "task": "", "operator": "", "station": "",
    "prompt": "", "notes": "", "tags": "[]", "outcome": "unknown", "status": "recording",
    "start_time": None, "start_time_ns": None, "end_time": "", "end_time_ns": 0,
    "duration_s": 0.0, "app_version": __version__, "master_stream": "",
    "sync_method": SYNC_METHOD, "compression": "none", "color_encoding": "raw", "jpeg_quality": 90,
}
#: Per-sample bookkeeping columns of every stream, with their dtypes.
TIME_DATASETS = {"seq": np.uint64, "t_device_ns": np.int64, "t_host_ns": np.int64,
                 "t_recv_ns": np.int64}
#: Per-stream counters stored at close.
COUNTERS = ("count", "gaps", "missing", "restarts", "late", "overflow")
#: Event columns; fixed-length strings because vlen types are unsafe in SWMR.
EVENT_DATASETS = {"t_ns": np.dtype("<i8"), "kind": np.dtype("S32"), "stream": np.dtype("S64"),
                  "detail": np.dtype("S512")}


def iso_utc(t_ns: int) -> str:
    """``t_ns`` (ns since the epoch) as ISO 8601 UTC with microseconds, e.g. ``...T07:35:25.123456Z``."""
    t = datetime.fromtimestamp(t_ns // 10**9, timezone.utc) + timedelta(microseconds=t_ns % 10**9 // 1000)
    return t.isoformat(timespec="microseconds").replace("+00:00", "Z")


def default_master(specs: Iterable[StreamSpec]) -> str:
    """The first color stream, else the first stream, else ``""``."""
    specs = list(specs)
    color = [s.name for s in specs if s.kind == "color"]
    return color[0] if color else (specs[0].name if specs else "")


def field_encodings(spec: StreamSpec, color_encoding: str,
                    stream_encodings: dict[str, str] | None = None) -> dict[str, str]:
    """How each field of ``spec`` is stored: RGB fields of color streams as ``color_encoding``
    (JPEG or a video codec), or as ``stream_encodings[spec.name]`` where that names the stream."""
    chosen = (stream_encodings or {}).get(spec.name, color_encoding)
    encoded = chosen != RAW and spec.kind == "color"
    return {f.name: chosen if encoded and is_color_image(f.dtype, f.shape) else RAW
            for f in spec.fields}


def schema_version(encodings: Iterable[dict[str, str]]) -> int:
    """The schema version a file with these per-stream field encodings is written as."""
    video = any(e in VIDEO_ENCODINGS for fields in encodings for e in fields.values())
    return VIDEO_SCHEMA_VERSION if video else SCHEMA_VERSION


def to_json(value: Any) -> str:
    """JSON text of ``value``; driver metadata often holds numpy values (intrinsics, scales)."""
    return json.dumps(value, default=lambda v: v.tolist() if isinstance(v, (np.ndarray, np.generic))
                      else str(v))


def attr_value(value: Any) -> Any:
    """``value`` as an attribute stores it: scalars as they are, ``None`` as ``""``, else JSON."""
    if value is None:
        return ""
    return value if isinstance(value, (str, bool, int, float, np.generic)) else to_json(value)


def fit_json(detail: dict, limit: int) -> bytes:
    """``detail`` as JSON of at most ``limit`` bytes (``{"truncated": <its start>}`` if longer)."""
    text = out = json.dumps(detail, separators=(",", ":"), default=str).encode()
    while len(out) > limit:  # keep it valid JSON rather than cutting it mid-token
        text = text[:len(text) - (len(out) - limit)]
        out = json.dumps({"truncated": text.decode(errors="ignore")}, separators=(",", ":")).encode()
    return out


def event_row(t_ns: int, kind: str, stream: str = "", detail: dict | None = None
              ) -> tuple[int, bytes, bytes, bytes]:
    """One event as stored: ``kind`` and ``stream`` cut to 32 and 64 bytes, ``detail`` to 512."""
    return (int(t_ns), kind.encode()[:32], (stream or "").encode()[:64], fit_json(detail or {}, 512))


def check_options(compression: str, color_encoding: str, jpeg_quality: int,
                  stream_encodings: dict[str, str] | None = None) -> None:
    """Raise ``ValueError`` for an unknown compression or color encoding (also per stream in
    ``stream_encodings``) or a bad JPEG quality."""
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
    for where, encoding in [("color_encoding", color_encoding),
                            *((f"stream_encodings[{k!r}]", v) for k, v in (stream_encodings or {}).items())]:
        if encoding not in COLOR_ENCODINGS:
            raise ValueError(f"{where} must be one of {COLOR_ENCODINGS}, got {encoding!r}")
    if not 1 <= int(jpeg_quality) <= 100:
        raise ValueError(f"jpeg_quality must be 1..100, got {jpeg_quality}")


def check_root_values(attrs: dict[str, Any]) -> None:
    """Check ``outcome`` and turn a ``tags`` list into its JSON text, in place."""
    if "outcome" in attrs and attrs["outcome"] not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {attrs['outcome']!r}")
    if "tags" in attrs and not isinstance(attrs["tags"], str):
        attrs["tags"] = json.dumps(list(attrs["tags"]))


def root_attrs(attrs: dict[str, Any], specs: dict[str, StreamSpec], *, compression: str,
               color_encoding: str, jpeg_quality: int, version: int = SCHEMA_VERSION) -> dict[str, Any]:
    """The root attributes of a new episode: defaults, ``attrs``, start time, uuid, master."""
    root = {**ROOT_ATTRS, **attrs, "schema_version": version, "status": "recording",
            "compression": compression, "color_encoding": color_encoding,
            "jpeg_quality": int(jpeg_quality)}
    start_ns = int(root["start_time_ns"] or time.time_ns())
    root.update(start_time_ns=start_ns, start_time=root["start_time"] or iso_utc(start_ns),
                uuid=root["uuid"] or uuid4().hex)
    check_root_values(root)
    master = root["master_stream"] or default_master(specs.values())
    if master and master not in specs:
        raise ValueError(f"master stream '{master}' is not one of the episode's streams")
    root["master_stream"] = master
    return root


def check_close(status: str, end_attrs: dict[str, Any] | None, master_stream: str | None,
                specs: dict[str, StreamSpec]) -> dict[str, Any]:
    """The checked ``end_attrs`` of a close; raises ``ValueError`` for a bad status or master."""
    if status not in STATUSES[1:]:
        raise ValueError(f"close status must be one of {STATUSES[1:]}, got {status!r}")
    end_attrs = dict(end_attrs or {})
    check_root_values(end_attrs)
    if master_stream and master_stream not in specs:
        raise ValueError(f"master stream '{master_stream}' is not one of the episode's streams")
    return end_attrs


def sample_stream(sample: Sample, specs: dict[str, Any]) -> str:
    """The episode stream ``sample`` belongs to; ``ValueError`` if it is none of ``specs``, has
    other fields than the spec or a negative ``seq``."""
    name = sample.stream if sample.stream in specs else f"{sample.node}/{sample.stream}"
    spec = specs.get(name)
    if spec is None:
        raise ValueError(f"unknown stream '{sample.stream}' (episode streams: "
                         f"{', '.join(specs) or 'none'})")
    names = {f.name for f in spec.fields}
    if sample.fields.keys() != names:
        raise ValueError(f"stream '{name}': fields {sorted(sample.fields)} do not match "
                         f"the spec's {sorted(names)}")
    if sample.seq < 0:
        raise ValueError(f"stream '{name}': seq must be >= 0, got {sample.seq}")
    return name


def prepare_field(stream: str, fs: Any, sample: Sample, stored: str, jpeg_quality: int) -> np.ndarray:
    """One field of ``sample`` checked against its spec ``fs`` and converted to how it is
    ``stored`` (JPEG bytes or a raw array); ``ValueError`` if it does not match."""
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
    # Video fields come back raw: the writer's encoder takes them in order (collector.storage.video).
    return encode_jpeg(array, jpeg_quality) if stored == JPEG else array


def check_counters(stream: str, known: Iterable[str], counters: dict[str, int | None]) -> dict[str, int]:
    """``set_counters`` arguments checked: the stream is known and so is every counter."""
    if stream not in known:
        raise ValueError(f"unknown stream '{stream}'")
    unknown = set(counters) - set(COUNTERS[1:])
    if unknown:
        raise ValueError(f"unknown counters {sorted(unknown)} (known: {', '.join(COUNTERS[1:])})")
    return {k: int(v) for k, v in counters.items() if v is not None}


def seq_counters(seq: np.ndarray) -> dict[str, int]:
    """Gaps (jumps), missing samples inside them and restarts (seq going back) from ``seq``."""
    step = np.diff(np.asarray(seq).astype(np.int64))
    jumps = step[step > 1]
    return {"gaps": int(jumps.size), "missing": int((jumps - 1).sum()),
            "restarts": int(np.count_nonzero(step <= 0))}


def samples_before(t_host: np.ndarray, stop_ns: int) -> int:
    """How many samples of a stream were captured before ``stop_ns``.

    A stream arrives in capture order, so what was captured at or after the stop instant
    (routed to the episode before the stop was known) is its tail."""
    count = t_host.size
    while count and t_host[count - 1] >= stop_ns:
        count -= 1
    return count


def end_attrs_at(end: dict[str, Any], start_time_ns: int) -> dict[str, Any]:
    """``end`` completed: ``end_time_ns`` (now if missing), ``end_time`` and ``duration_s``."""
    end = dict(end)
    end_ns = int(end.get("end_time_ns") or time.time_ns())
    end.setdefault("end_time", iso_utc(end_ns))
    end.setdefault("duration_s", (end_ns - int(start_time_ns)) / 1e9)
    end["end_time_ns"] = end_ns
    return end
