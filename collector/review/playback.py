"""Playback model of one episode: the timeline, every camera's frame at a step, plot series, and
the places worth jumping to (gaps, events, surprise peaks). Qt-free; the review window's player
is a view over it.

    with EpisodePlayback(path) as playback:
        for i in range(playback.frame_count):
            images = playback.frame(i)          # {"cam0/color": (H, W, 3) uint8, "cam0/depth": ...}
        t = playback.times_s                    # seconds since start_time_ns, one per step
        glove = playback.series("glove/hand")   # {"t_s": (N,), "wrist_pos": (N, 3), ...}

The timeline is the master stream's ``/sync/t_ns``: one step per master frame. Other cameras show
their synchronized sample (``-1`` in the index: no frame within the skew bound, shown as missing).
Interrupted files have no ``/sync`` yet; their streams are paired by host time instead.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from collector.storage.reader import open_episode

CAMERA_KINDS = ("color", "depth")
#: Event kinds shown as jump targets (the others are bookkeeping).
MARKER_EVENTS = ("disconnected", "connected", "stalled", "resumed", "restart", "overflow", "rejected",
                 "marker", "error")
#: At most this many surprise peaks are offered as jump targets.
MAX_SURPRISE_PEAKS = 12


@dataclass(frozen=True)
class Marker:
    """A place on the timeline: ``kind`` is ``gap``, ``surprise`` or an event kind."""

    t_s: float
    kind: str
    label: str


class EpisodePlayback:
    """An episode opened for playback; use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | Path, cache_frames: int = 64) -> None:
        self.path = Path(path)
        self.episode = open_episode(self.path)
        ep = self.episode
        self.t0_ns = int(ep.attrs.get("start_time_ns") or 0)
        self.cameras = [n for n, s in ep.streams.items() if s.kind in CAMERA_KINDS and ep.count(n)]
        self.plot_streams = [n for n, s in ep.streams.items() if s.kind not in CAMERA_KINDS and ep.count(n)]
        master = str(ep.attrs.get("master_stream", ""))
        if master not in ep.streams or not ep.count(master):
            master = self.cameras[0] if self.cameras else next(
                (n for n in ep.streams if ep.count(n)), "")
        self.master = master
        sync = ep.sync
        if sync is not None and sync["master"] == master and sync["t_ns"].size:
            t_ns = sync["t_ns"]
            self._index = {name: pair["index"] for name, pair in sync["streams"].items()}
        else:
            t_ns = ep.timestamps(master)["t_host_ns"] if master else np.zeros(0, np.int64)
            self._index = {name: self._nearest(name, t_ns) for name in self.cameras if name != master}
        self._index[master] = np.arange(t_ns.size)
        #: Seconds since the episode's ``start_time_ns``, one per step.
        self.times_s = (t_ns.astype(np.int64) - self.t0_ns) / 1e9
        self._frames: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._cache_frames = cache_frames

    def _nearest(self, name: str, t_ns: np.ndarray) -> np.ndarray:
        other = self.episode.timestamps(name)["t_host_ns"]
        if not other.size or not t_ns.size:
            return np.full(t_ns.size, -1, np.int64)
        right = np.clip(np.searchsorted(other, t_ns), 1, other.size - 1) if other.size > 1 else \
            np.zeros(t_ns.size, np.int64)
        left = np.maximum(right - 1, 0)
        return np.where(np.abs(other[left] - t_ns) <= np.abs(other[right] - t_ns), left, right)

    @property
    def frame_count(self) -> int:
        return int(self.times_s.size)

    @property
    def duration_s(self) -> float:
        return float(self.times_s[-1]) if self.frame_count else 0.0

    def sample_index(self, stream: str, step: int) -> int:
        """The sample of ``stream`` shown at ``step`` (``-1``: none within the skew bound)."""
        index = self._index.get(stream)
        return -1 if index is None or not 0 <= step < index.size else int(index[step])

    def frame(self, step: int) -> dict[str, np.ndarray | None]:
        """Every camera's image at ``step`` (``None`` for a camera without a synchronized frame)."""
        out: dict[str, np.ndarray | None] = {}
        for name in self.cameras:
            i = self.sample_index(name, step)
            if i < 0:
                out[name] = None
                continue
            key = (name, i)
            if key not in self._frames:
                field = self.episode.streams[name].fields[0].name
                self._frames[key] = self.episode.frames(name, field, i)
                if len(self._frames) > self._cache_frames:
                    self._frames.popitem(last=False)
            out[name] = self._frames[key]
        return out

    def index_at(self, t_s: float) -> int:
        """The step nearest to ``t_s`` seconds."""
        if not self.frame_count:
            return 0
        return int(np.argmin(np.abs(self.times_s - t_s)))

    def series(self, stream: str) -> dict[str, np.ndarray]:
        """Every numeric field of a non-camera stream as ``(N, k)`` float arrays, plus ``t_s``."""
        ep = self.episode
        out = {"t_s": (ep.timestamps(stream)["t_host_ns"] - self.t0_ns) / 1e9}
        for field in ep.streams[stream].fields:
            values = ep.frames(stream, field.name)
            out[field.name] = values.reshape(values.shape[0], -1).astype(np.float64)
        return out

    def channel_names(self, stream: str, field: str) -> list[str]:
        spec = self.episode.streams[stream].field(field)
        return list(spec.channel_names) or [str(i) for i in range(int(np.prod(spec.shape or (1,))))]

    def surprise_stream(self) -> str:
        return next((n for n in self.plot_streams if n.split("/")[-1].endswith("surprise")), "")

    def markers(self) -> list[Marker]:
        """Gaps (from each stream's seq), notable events and surprise peaks, by time."""
        ep, marks = self.episode, []
        for name in ep.streams:
            t = ep.timestamps(name)
            step = np.diff(t["seq"].astype(np.int64))
            for i in np.flatnonzero(step > 1):
                marks.append(Marker((int(t["t_host_ns"][i + 1]) - self.t0_ns) / 1e9, "gap",
                                    f"{name}: {int(step[i]) - 1} samples lost"))
        for event in ep.events():
            if event["kind"] in MARKER_EVENTS:
                detail = event["detail"] if isinstance(event["detail"], dict) else {}
                who = event["stream"] or detail.get("node", "")
                marks.append(Marker((event["t_ns"] - self.t0_ns) / 1e9, event["kind"],
                                    f"{event['kind']} {who}".strip()))
        surprise = self.surprise_stream()
        if surprise:
            marks += self._surprise_peaks(surprise)
        return sorted(marks, key=lambda m: m.t_s)

    def _surprise_peaks(self, stream: str) -> list[Marker]:
        series = self.series(stream)
        field = next(k for k in series if k != "t_s")
        values, t = series[field][:, 0], series["t_s"]
        if values.size < 3:
            return []
        inner = (values[1:-1] > values[:-2]) & (values[1:-1] >= values[2:])
        threshold = float(np.mean(values) + np.std(values))
        peaks = np.flatnonzero(inner & (values[1:-1] > threshold)) + 1
        peaks = peaks[np.argsort(values[peaks])[::-1][:MAX_SURPRISE_PEAKS]]
        return [Marker(float(t[i]), "surprise", f"surprise {values[i]:.2f}") for i in sorted(peaks)]

    def close(self) -> None:
        self.episode.close()

    def __enter__(self) -> "EpisodePlayback":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
