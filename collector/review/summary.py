"""One line of the review table: an episode's facts, curation and quality, as plain data.

:func:`summarize_episode` opens a file once and returns an :class:`EpisodeSummary` (a damaged
file gives one too, with ``error`` saying why), so a folder always lists whole.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from collector.calibration.station import calibration_lines, read_episode_calibration
from collector.storage.codecs import encode_jpeg
from collector.storage import EpisodeError, open_episode
from collector.storage.library import parse_trim

from collector.review.quality import quality_report

#: Width of the thumbnails stored beside the cache (pixels).
THUMBNAIL_WIDTH = 192


@dataclass
class EpisodeSummary:
    """What the review table, ``collector ls`` and the dashboard know about one episode file.

    ``error`` is empty for a readable episode, else the reason it is damaged (then only
    ``path``, ``file_bytes`` and ``flags == ["damaged"]`` are meaningful).
    """

    path: str
    file_bytes: int = 0
    error: str = ""
    uuid: str = ""
    task: str = ""
    operator: str = ""
    station: str = ""
    prompt: str = ""
    status: str = ""
    start_time: str = ""
    start_time_ns: int = 0
    duration_s: float = 0.0
    outcome: str = "unknown"
    tags: list[str] = field(default_factory=list)
    notes: str = ""
    trim: list[float] | None = None
    master_stream: str = ""
    streams: dict[str, str] = field(default_factory=dict)  # name -> kind
    surprise_stream: str = ""
    quality: dict[str, Any] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    #: What is missing and why, one sentence each ("cam0/color: last 5.5 s missing", "the
    #: recording failed: ..."); empty for a clean episode or a file without a ledger.
    integrity: list[str] = field(default_factory=list)
    thumbnail: str = ""  # file name of the JPEG thumbnail in the cache folder, or ""
    #: What `collector info` says of the latency calibration applied to the episode (calibrated
    #: latencies and skew with their uncertainty, its age, changed devices; docs/time-sync.md).
    calibration: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def day(self) -> str:
        """Local calendar day the recording started, ``YYYY-MM-DD`` (``""`` if unknown)."""
        if not self.start_time_ns:
            return ""
        return datetime.fromtimestamp(self.start_time_ns / 1e9).astimezone().strftime("%Y-%m-%d")

    @property
    def kept_duration_s(self) -> float:
        """Duration after the trim (the whole duration without one)."""
        if not self.trim:
            return self.duration_s
        return max(0.0, min(self.trim[1], self.duration_s) - self.trim[0])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EpisodeSummary":
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


def _tags(value: Any) -> list[str]:
    try:
        tags = json.loads(value) if isinstance(value, str) and value else []
    except ValueError:
        return [str(value)]
    return [str(t) for t in tags] if isinstance(tags, list) else [str(tags)]


def _trim(value: Any) -> list[float] | None:
    try:
        bounds = parse_trim(value)
    except ValueError:
        return None
    return list(bounds) if bounds else None


def curation_fields(attrs: dict[str, Any]) -> dict[str, Any]:
    """The curated attributes of a file as summary fields (outcome, tags, notes, trim)."""
    return {"outcome": str(attrs.get("outcome") or "unknown"), "tags": _tags(attrs.get("tags")),
            "notes": str(attrs.get("notes") or ""), "trim": _trim(attrs.get("trim"))}


def surprise_stream(streams: dict[str, Any]) -> str:
    """The WAM surprise trace among ``streams`` (a name ending in ``surprise``), or ``""``."""
    return next((name for name in streams if name.split("/")[-1].endswith("surprise")), "")


def thumbnail_frame(episode: Any) -> np.ndarray | None:
    """The master color stream's middle frame scaled to :data:`THUMBNAIL_WIDTH`, or ``None``."""
    import cv2

    master = episode.attrs.get("master_stream", "")
    spec = episode.streams.get(master)
    if spec is None or spec.kind != "color" or not episode.count(master):
        return None
    field_name = spec.fields[0].name
    frame = episode.frames(master, field_name, episode.count(master) // 2)
    height = max(1, round(frame.shape[0] * THUMBNAIL_WIDTH / frame.shape[1]))
    return cv2.resize(frame, (THUMBNAIL_WIDTH, height), interpolation=cv2.INTER_AREA)


def summarize_episode(path: str | Path, thumbnail_dir: Path | None = None) -> EpisodeSummary:
    """Open ``path`` once: its facts, curation and quality report. Never raises for a bad file:
    the summary's ``error`` says what is wrong. With ``thumbnail_dir``, a JPEG thumbnail is
    written there and named in ``thumbnail``."""
    path = Path(path)
    size = path.stat().st_size if path.exists() else 0
    try:
        episode = open_episode(path)
    except EpisodeError as exc:
        return EpisodeSummary(str(path), size, error=str(exc).replace(f"{path}: ", ""), flags=["damaged"])
    with episode:
        a = episode.attrs
        try:
            quality = quality_report(episode)
            summary = EpisodeSummary(
                str(path), size, uuid=str(a.get("uuid", "")), task=str(a.get("task", "")),
                operator=str(a.get("operator", "")), station=str(a.get("station", "")),
                prompt=str(a.get("prompt", "")), status=str(a.get("status", "")),
                start_time=str(a.get("start_time", "")), start_time_ns=int(a.get("start_time_ns") or 0),
                duration_s=_duration(episode), master_stream=str(a.get("master_stream", "")),
                streams={n: s.kind for n, s in episode.streams.items()},
                surprise_stream=surprise_stream(episode.streams), quality=quality,
                flags=list(quality["flags"]), integrity=list(quality["integrity"]),
                calibration=calibration_lines(read_episode_calibration(a),
                                              recorded_ns=int(a.get("start_time_ns") or 0) or None),
                **curation_fields(a))
            if thumbnail_dir is not None:
                summary.thumbnail = _write_thumbnail(episode, summary, thumbnail_dir)
        except Exception as exc:  # a damaged dataset must list as damaged, not break the listing
            return EpisodeSummary(str(path), size, error=f"unreadable: {type(exc).__name__}: {exc}",
                                  flags=["damaged"])
    return summary


def _duration(episode: Any) -> float:
    duration = float(episode.attrs.get("duration_s") or 0.0)
    if duration > 0 or not episode.streams:
        return duration
    # An interrupted file has no end time yet: its samples tell how long it ran.
    t0, last = int(episode.attrs.get("start_time_ns") or 0), 0
    for name in episode.streams:
        if episode.count(name):
            last = max(last, int(episode.timestamps(name)["t_host_ns"][-1]))
    return max(0.0, (last - t0) / 1e9) if t0 and last else 0.0


def _write_thumbnail(episode: Any, summary: EpisodeSummary, folder: Path) -> str:
    frame = thumbnail_frame(episode)
    if frame is None:
        return ""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{summary.uuid or Path(summary.path).stem}.jpg"
    (folder / name).write_bytes(encode_jpeg(np.ascontiguousarray(frame), 80).tobytes())
    return name
