"""The storage seam: what the recorder writes through and what everything else reads through.

:class:`EpisodeWriter` and :class:`EpisodeReader` are the only episode types the rest of the
app needs; :mod:`collector.storage.writer` / :mod:`collector.storage.reader` implement them on
HDF5 files (docs/episode-format.md), :mod:`collector.storage.memory` in memory for fast tests.
Pick a backend with :func:`collector.storage.create_episode` and
:func:`collector.storage.open_episode` rather than naming a class.

Both backends keep the same semantics: samples reach the episode at :meth:`EpisodeWriter.flush`
(what was flushed survives an abort), ``close`` cuts samples captured at or after ``stop_ns``,
stores the counters, the integrity ledger and the synchronized index and writes the status
last; an aborted episode reads as ``interrupted`` with status ``"recording"``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from collector.storage.ledger import ledger_problems, read_ledger
from collector.storage.schema import seq_counters
from collector.storage.sync import skew_stats_ms
from collector.wire.protocol import Sample
from collector.wire.streams import StreamSpec

#: ``ledger(written)`` at close: each stream's ``count``, ``first_t_ns``, ``last_t_ns`` and
#: ``last_seq`` in, the integrity ledger to store out (see :mod:`collector.storage.ledger`).
LedgerBuilder = Callable[[dict[str, dict[str, Any]]], dict]


class EpisodeError(Exception):
    """An episode that cannot be read; the text says why."""


class EpisodeWriter(ABC):
    """Writes one episode; used from one thread (the recorder's writer thread).

    Attributes: ``path`` (where the episode is: a file path, or ``memory://name``) and
    ``specs`` (``{stream name: StreamSpec}``, the streams it holds).
    """

    path: Path
    specs: dict[str, StreamSpec]

    @abstractmethod
    def append(self, sample: Sample, t_recv_ns: int, prepared: dict[str, Any] | None = None) -> None:
        """Buffer one sample; it reaches the episode at the next :meth:`flush`. Raises
        ``ValueError`` (keeping nothing of it) for an unknown stream or a field that does not
        match the stream's spec. ``prepared``: work done on its fields before it was routed
        (collector.storage.preparing), used where the backend stores them that way."""

    @abstractmethod
    def add_event(self, t_ns: int, kind: str, stream: str = "", detail: dict | None = None) -> None:
        """Record an event (gap, restart, disconnected, stalled, overflow, marker, ...); ``kind``
        and ``stream`` are cut to 32 and 64 bytes, ``detail``'s JSON to 512."""

    @abstractmethod
    def set_counters(self, stream: str, **counters: int | None) -> None:
        """Counters stored with the stream at close (``gaps``, ``missing``, ``restarts``,
        ``late``, ``overflow``); they replace the counts derived from ``seq``."""

    @abstractmethod
    def flush(self, wait_s: float | None = None) -> None:
        """Make every buffered sample and event durable: an abort or crash after this returns
        loses nothing appended before the call. A writer that encodes on threads of its own
        may leave what they had not encoded within ``wait_s`` seconds (``None``: wait for all)
        to a later flush; :attr:`counts` says what is durable."""

    @abstractmethod
    def close(self, status: str = "complete", end_attrs: dict[str, Any] | None = None,
              master_stream: str | None = None, *, stop_ns: int | None = None,
              ledger: LedgerBuilder | None = None) -> Path:
        """Flush and finalize: ``status`` (complete, recovered, failed), ``end_attrs`` (root
        attributes such as outcome, notes, tags, end_time_ns), the master stream, samples
        captured at or after ``stop_ns`` cut from each stream's tail, the ledger built by
        ``ledger(written)``, counters and the synchronized index. Returns ``path``."""

    @abstractmethod
    def abort(self) -> None:
        """Stop without finalizing: what can be flushed is, the status stays ``"recording"``
        (readers report the episode as interrupted). Never raises."""

    def discard(self) -> None:
        """Abort an episode nobody wants: like :meth:`abort`, but start-up recovery must not
        finish it (the recorder moves it to the trash). Never raises."""
        self.abort()

    @property
    def storage_folder(self) -> Path | None:
        """The folder whose free space the episode uses, or ``None`` when it is not on a disk
        (the recorder checks the free space of this folder before each flush)."""
        return None

    @property
    @abstractmethod
    def counts(self) -> dict[str, int]:
        """Samples per stream written so far (buffered ones not included)."""

    @property
    @abstractmethod
    def buffered(self) -> dict[str, int]:
        """Samples per stream waiting for the next flush."""

    @property
    @abstractmethod
    def buffered_bytes(self) -> int:
        """Bytes appended but not yet written: what the next flush writes."""

    def __enter__(self) -> "EpisodeWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class EpisodeReader(ABC):
    """An open episode; use as a context manager or call :meth:`close`.

    Attributes: ``path``, ``attrs`` (root attributes as plain values), ``streams``
    (``{name: StreamSpec}`` in recording order) and ``interrupted`` (the recording never
    finished: status ``"recording"``; such episodes read up to the writer's last flush).
    """

    path: Path
    attrs: dict[str, Any]
    streams: dict[str, StreamSpec]
    interrupted: bool

    @abstractmethod
    def count(self, stream: str) -> int:
        """Samples of ``stream`` present (whole samples only)."""

    @abstractmethod
    def frames(self, stream: str, field: str,
               index: int | slice | Sequence[int] = slice(None)) -> np.ndarray:
        """Samples of one field: an int gives one sample, a slice or sequence stacks them along
        a new first axis. JPEG-stored frames come back decoded, RGB."""

    @abstractmethod
    def timestamps(self, stream: str) -> dict[str, np.ndarray]:
        """``seq``, ``t_device_ns``, ``t_host_ns`` and ``t_recv_ns`` of ``stream``."""

    @abstractmethod
    def events(self) -> list[dict[str, Any]]:
        """Every event as ``{"t_ns", "kind", "stream", "detail"}``, in recording order."""

    @property
    @abstractmethod
    def sync(self) -> dict[str, Any] | None:
        """The synchronized index (``master``, ``method``, ``t_ns``, ``max_skew_ns`` and per
        stream ``index``/``skew_ns``/``max_skew_ns``), or ``None`` before finalizing."""

    @abstractmethod
    def encodings(self, stream: str) -> dict[str, str]:
        """How each field of ``stream`` is stored (``"raw"`` or ``"jpeg"``)."""

    @abstractmethod
    def stream_attrs(self, stream: str) -> dict[str, Any]:
        """The stream's stored facts: counters (``count``, ``gaps``, ``missing``, ``restarts``,
        ``late``, ``overflow``, from close) and ``clock_fit`` (the device clock fit as a dict, or
        ``None``) where present."""

    def frame_problems(self, stream: str, field: str, frames: Sequence[int] | np.ndarray, *,
                       thorough: bool) -> dict[int, str]:
        """Damaged samples among ``frames`` of one field: ``{frame: why}``. JPEG frames are
        checked against their checksums (or decoded when ``thorough``), raw ones only when
        ``thorough``. A backend without stored bytes to damage finds none."""
        return {}

    def copy_video(self, stream: str, field: str, path: str | Path, start: int = 0,
                   stop: int | None = None) -> int:
        """Write frames ``start..stop-1`` of a video-stored field to an mp4 at ``path`` by copying
        its packets, without re-encoding; returns the frames written. ``start`` must be a
        keyframe. ``EpisodeError`` where the field is not stored as video (re-encode instead)."""
        raise EpisodeError(f"'{stream}' '{field}' is not stored as video in this backend")

    @property
    @abstractmethod
    def size_bytes(self) -> int:
        """How many bytes the episode takes where it is stored."""

    @abstractmethod
    def close(self) -> None:
        """Release the episode; reading after this fails."""

    def __enter__(self) -> "EpisodeReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def ledger(self) -> dict[str, Any] | None:
        """The integrity ledger (:mod:`collector.storage.ledger`), or ``None`` for episodes
        without one (schema 1, interrupted or recovered episodes)."""
        return read_ledger(self.attrs)

    def integrity_problems(self, *, accounted: bool = True) -> list[str]:
        """What is missing from this episode and why, in words ("cam0: last 5.5 s missing");
        empty when every published sample is in the file. Without ``accounted``, only what
        makes the episode invalid: a failed recording, books that do not balance, a stream
        whose first or last seconds are missing."""
        problems = ledger_problems(self.ledger, accounted=accounted)
        if self.attrs.get("status") == "failed":
            problems.insert(0, f"the recording failed: {self.attrs.get('end_reason') or 'see the log'}")
        return problems

    def summary(self) -> dict[str, Any]:
        """Episode facts and per-stream statistics, as plain data (see
        :func:`collector.storage.reader.format_info`)."""
        sync, events = self.sync, self.events()
        kinds: dict[str, int] = {}
        for event in events:
            kinds[event["kind"]] = kinds.get(event["kind"], 0) + 1
        streams = {}
        for name, spec in self.streams.items():
            t = self.timestamps(name)
            count, host = self.count(name), t["t_host_ns"]
            duration = float(host[-1] - host[0]) / 1e9 if count > 1 else 0.0
            pair = (sync or {}).get("streams", {}).get(name)
            stats = skew_stats_ms(pair["skew_ns"], pair["index"]) if pair else None
            stored = self.stream_attrs(name)
            streams[name] = {
                "kind": spec.kind, "rate_hz": spec.rate_hz, "count": count, "duration_s": duration,
                "measured_rate_hz": (count - 1) / duration if duration > 0 else 0.0,
                **seq_counters(t["seq"]), "late": int(stored.get("late", 0)),
                "overflow": int(stored.get("overflow", 0)), "skew": stats,
                "encodings": self.encodings(name)}
        keys = ("uuid", "task", "operator", "station", "prompt", "outcome", "status", "start_time",
                "end_time", "duration_s", "master_stream", "schema_version", "tags", "notes")
        return {"path": str(self.path), **{k: self.attrs.get(k) for k in keys},
                "interrupted": self.interrupted, "file_bytes": self.size_bytes,
                "events": kinds, "streams": streams, "ledger": self.ledger,
                "integrity": self.integrity_problems()}
