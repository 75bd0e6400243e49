"""LeRobot export: a dataset folder in the LeRobot dataset format v3.0.

    collector export lerobot recordings/ -o pick_cube_lerobot --task pick-cube --image-size 320x240

Layout (what ``lerobot.datasets.LeRobotDataset(repo_id, root=...)`` loads)::

    meta/info.json                       codebase_version "v3.0", fps, totals, paths, features
    meta/stats.json                      per feature min/max/mean/std/count (images per channel, 0..1)
    meta/tasks.parquet                   pandas table: index "task" (the text), column task_index
    meta/episodes/chunk-000/file-000.parquet
                                         per episode: episode_index, tasks, length, data and video
                                         file indices, dataset_from/to_index, from/to_timestamp,
                                         meta/episodes indices, stats/<feature>/<stat>
    data/chunk-000/file-000.parquet      one row per frame: observation.state and action
                                         (fixed-size float32 lists), timestamp, frame_index,
                                         episode_index, index, task_index, frame_is_filled
    videos/observation.images.<cam>/chunk-000/file-000.mp4
                                         each camera's frames, episodes one after another

With ``mapping.depth`` (``--depth``) each camera's depth is an ``image`` feature
``observation.images.<cam>_depth``, shape ``[H, W, 1]``: 16-bit PNGs in the data parquet (the
Hugging Face ``Image`` struct of ``bytes`` and ``path``), values in depth units, the metres per
unit in the feature's ``info.depth_scale``; its stats are in depth units, shape ``(1, 1, 1)``.

Timestamps are ``frame_index / fps`` (LeRobot's convention), so every frame must sit on an
integer-fps grid. ``fps`` is the step rate, which must be an integer: any other rate is refused
naming the nearest valid ones (``--rate 7`` or ``--rate 8`` for 7.5 Hz). Each episode's steps
are placed on that grid by their capture times (slot ``round((t - t0) * fps)``), so a frame's
timestamp is its capture time (from the episode's first step) within half a step. A slot
without a step (a frame lost mid-episode) holds the previous sample, image included, and is
flagged ``frame_is_filled = True``: time is never compressed. When two steps fall in one slot
(a clock running fast) the nearer one is kept and the other counted in the summary.
An episode's frame ``k`` sits at ``from_timestamp + k / fps`` in its video. Data
files roll over past ``data_file_mb``, videos past ``video_file_mb``, 1000 files per chunk, as
LeRobot writes them. The task text is the episode's ``prompt``, else its ``task``.
Video: ``libsvtav1`` (AV1, LeRobot's default) or ``h264``, yuv420p, GOP 2, encoded with PyAV.
"""

from __future__ import annotations

import json
import math
import os
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from collector.storage.reader import open_episode
from collector.export.common import (ExportError, ExportResult, Stopwatch, atomic_output, batches,
                                     load_episodes, progress, tree_bytes)
from collector.export.selection import (EpisodeFilter, SignalMapping, camera_key)
from collector.export.frames import read_depth, read_images
from collector.storage.video import scheduling_kept

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DEFAULT_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
#: Per-frame flag: the frame repeats the previous sample because no step was captured in its
#: slot. Its name does not start with ``observation``/``action``, so policies do not take it
#: as an input.
FILLED_FEATURE = "frame_is_filled"
#: LeRobot decodes a 16-bit PNG as int16: larger depth values would wrap negative, so they are
#: clamped here (32.8 m at 1 mm units, 8.2 m at the L515's 0.25 mm) and counted in the summary.
LEROBOT_DEPTH_MAX = 32767
#: codec option -> (encoder, name in info.json, encoder options), as LeRobot encodes.
VIDEO_CODECS = {"libsvtav1": ("libsvtav1", "av1", {"g": "2", "crf": "30", "preset": "12"}),
                "h264": ("libx264", "h264", {"g": "2", "crf": "23"})}




def _depth_column(steps, cam: str, grid: np.ndarray, size, out: dict):
    """The depth frames of ``cam`` at ``grid`` as 16-bit PNGs in a HF Image struct column;
    ``out["stats"]`` gets their stats in depth units, ``out["clamped"]`` the pixels clamped to
    :data:`LEROBOT_DEPTH_MAX`."""
    import cv2
    import pyarrow as pa

    with open_episode(steps.path) as ep:
        depth = np.concatenate([read_depth(ep, steps, cam, grid[part], size)
                                for part in batches(len(grid))])
    far = depth > LEROBOT_DEPTH_MAX
    out["clamped"] = out.get("clamped", 0) + int(far.sum())
    depth[far] = LEROBOT_DEPTH_MAX
    pngs = []
    for frame in depth:
        ok, buf = cv2.imencode(".png", frame)
        if not ok:
            raise ExportError(f"{steps.path}: could not encode a depth frame of {cam} as PNG")
        pngs.append(buf.tobytes())
    x = depth.astype(np.float64).reshape(-1)
    one = lambda v: [[[float(v)]]]  # noqa: E731  (shape (1, 1, 1), channel first)
    out["stats"] = {"min": one(x.min()), "max": one(x.max()), "mean": one(x.mean()),
                    "std": one(x.std()), "count": [int(len(depth))]}
    return pa.StructArray.from_arrays([pa.array(pngs, pa.binary()),
                                       pa.array([None] * len(pngs), pa.string())],
                                      names=["bytes", "path"])


def integer_fps(rate_hz: float) -> int:
    """``rate_hz`` as LeRobot's integer fps; :class:`ExportError` naming the nearest integer
    rates when it is not one (within 1e-6 Hz)."""
    nearest = round(rate_hz)
    if abs(rate_hz - nearest) <= 1e-6 and nearest >= 1:
        return int(nearest)
    lower, upper = math.floor(rate_hz), math.ceil(rate_hz)
    options = " or ".join(f"--rate {r}" for r in dict.fromkeys((lower, upper)) if r >= 1)
    raise ExportError(f"LeRobot needs an integer fps (timestamps are frame_index / fps); the step "
                      f"rate {rate_hz:g} Hz is not one: choose {options}")


def grid_rows(t_s: np.ndarray, fps: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Steps placed on the ``fps`` grid from the first step: ``(rows, filled, collided)``.

    ``rows[k]`` is the step shown in slot ``k`` (slot of step ``i``: ``round((t_i - t_0) *
    fps)``); a slot no step fell in repeats the previous slot's step and is ``filled``; of two
    steps in one slot the one nearer the slot time is kept (``collided`` counts the others)."""
    t = np.asarray(t_s, np.float64) - float(t_s[0])
    slots = np.round(t * fps).astype(np.int64)
    error = np.abs(t - slots / fps)
    rows = np.full(int(slots[-1]) + 1, -1, np.int64)
    for i in np.argsort(-error, kind="stable"):  # nearest last: it wins its slot
        rows[slots[i]] = i
    filled = rows < 0
    collided = int(t.size - (~filled).sum())
    rows = np.maximum.accumulate(rows)  # hold the previous step (slot 0 always has step 0)
    return rows, filled, collided


def _next_file(chunk: int, file: int) -> tuple[int, int]:
    return (chunk + 1, 0) if file == CHUNKS_SIZE - 1 else (chunk, file + 1)


class _VideoFiles:
    """One camera's mp4 files: frames of successive episodes appended, rolled over by size."""

    def __init__(self, root: Path, key: str, fps: int, width: int, height: int, codec: str,
                 max_bytes: int) -> None:
        self.root, self.key, self.fps, self.size = root, key, fps, (width, height)
        self.encoder, _, self.options = VIDEO_CODECS[codec]
        self.max_bytes, self.chunk, self.file = max_bytes, 0, 0
        self.container = None
        self.frames = self.bytes = 0

    def start_episode(self) -> tuple[int, int, float]:
        """Open (or roll over to) the file for the next episode: ``(chunk, file, from_s)``."""
        import av

        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its banner unless told: errors only
        if self.container is not None and self.bytes >= self.max_bytes:
            self.close()
            self.chunk, self.file = _next_file(self.chunk, self.file)
        if self.container is None:
            path = self.root / VIDEO_PATH.format(video_key=self.key, chunk_index=self.chunk,
                                                 file_index=self.file)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.container = av.open(str(path), "w")
            self.stream = self.container.add_stream(self.encoder, rate=self.fps)
            self.stream.width, self.stream.height = self.size
            self.stream.pix_fmt = "yuv420p"
            self.stream.options = dict(self.options)
            self.frames = self.bytes = 0
        return self.chunk, self.file, self.frames / self.fps

    def write(self, images: np.ndarray) -> None:
        import av

        with scheduling_kept():
            for image in images:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                frame.pts, frame.time_base = self.frames, Fraction(1, self.fps)
                self._mux(self.stream.encode(frame))
                self.frames += 1

    def _mux(self, packets) -> None:
        for packet in packets:
            self.bytes += packet.size
            self.container.mux(packet)

    def close(self) -> None:
        if self.container is not None:
            with scheduling_kept():
                self._mux(self.stream.encode())
                self.container.close()
            self.container = None


class _ChannelStats:
    """Running per-channel min/max/sum/sum of squares of images scaled to 0..1."""

    def __init__(self) -> None:
        self.n, self.sum, self.sq = 0, np.zeros(3), np.zeros(3)
        self.min, self.max = np.full(3, np.inf), np.full(3, -np.inf)

    def add(self, images: np.ndarray) -> None:
        x = images.reshape(-1, 3).astype(np.float64) / 255.0
        self.n += x.shape[0]
        self.sum += x.sum(0)
        self.sq += (x * x).sum(0)
        self.min, self.max = np.minimum(self.min, x.min(0)), np.maximum(self.max, x.max(0))

    def result(self, frames: int) -> dict[str, list]:
        mean = self.sum / self.n
        std = np.sqrt(np.maximum(self.sq / self.n - mean ** 2, 0))
        as3 = lambda v: [[[float(c)]] for c in v]  # noqa: E731  (shape (3, 1, 1), channel first)
        return {"min": as3(self.min), "max": as3(self.max), "mean": as3(mean), "std": as3(std),
                "count": [int(frames)]}


def _vector_stats(x: np.ndarray) -> dict[str, list]:
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    return {"min": x.min(0).tolist(), "max": x.max(0).tolist(), "mean": x.mean(0).tolist(),
            "std": x.std(0).tolist(), "count": [int(len(x))]}


def _merge_stats(parts: list[dict[str, list]]) -> dict[str, list]:
    """Combine per-episode stats exactly (count-weighted means and variances)."""
    counts = np.array([p["count"][0] for p in parts], np.float64)
    shape = np.asarray(parts[0]["mean"]).shape
    means = np.stack([np.asarray(p["mean"]) for p in parts])
    var = np.stack([np.asarray(p["std"]) ** 2 for p in parts])
    w = (counts / counts.sum()).reshape(-1, *[1] * len(shape))
    mean = (w * means).sum(0)
    total_var = (w * (var + (means - mean) ** 2)).sum(0)
    return {"min": np.min([p["min"] for p in parts], axis=0).tolist(),
            "max": np.max([p["max"] for p in parts], axis=0).tolist(), "mean": mean.tolist(),
            "std": np.sqrt(total_var).tolist(), "count": [int(counts.sum())]}


def export_lerobot(paths: Sequence[str | Path], out: str | Path, *,
                   mapping: SignalMapping | None = None, episode_filter: EpisodeFilter | None = None,
                   vcodec: str = "libsvtav1", robot_type: str | None = None, force: bool = False,
                   show_progress: bool = True, data_file_mb: float = 100,
                   video_file_mb: float = 500) -> ExportResult:
    """Write the selected episodes as a LeRobot v3.0 dataset folder ``out`` (module docstring)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    if vcodec not in VIDEO_CODECS:
        raise ExportError(f"video codec must be one of {', '.join(VIDEO_CODECS)}, got {vcodec!r}")
    mapping = mapping or SignalMapping()
    clock = Stopwatch()
    damaged: dict[Path, list[str]] = {}
    episodes, skipped = load_episodes(paths, mapping, episode_filter, damaged)
    first = episodes[0]
    fps = integer_fps(first.rate_hz)
    for e in episodes[1:]:
        if integer_fps(e.rate_hz) != fps:
            raise ExportError(f"{e.path}: step rate {e.rate_hz:g} Hz differs from {first.path}'s "
                              f"{first.rate_hz:g} Hz; choose one with --rate")
    cams = {cam: f"observation.images.{camera_key(cam)}" for cam in first.frames}
    sizes = {}
    for cam in cams:
        h, w = (mapping.image_size[1], mapping.image_size[0]) if mapping.image_size \
            else first.image_shapes[cam][:2]
        if h % 2 or w % 2:
            raise ExportError(f"{cam}: {w}x{h} images cannot be stored as yuv420p video; "
                              "choose an even --image-size")
        sizes[cam] = (w, h)
    features: dict[str, Any] = {
        "observation.state": {"dtype": "float32", "shape": [len(first.state_names)],
                              "names": first.state_names},
        "action": {"dtype": "float32", "shape": [len(first.action_names)], "names": first.action_names}}
    for cam, key in cams.items():
        w, h = sizes[cam]
        features[key] = {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"],
                         "info": {"video.height": h, "video.width": w,
                                  "video.codec": VIDEO_CODECS[vcodec][1], "video.pix_fmt": "yuv420p",
                                  "video.is_depth_map": False, "video.fps": fps,
                                  "video.channels": 3, "has_audio": False}}
    depth_keys = {cam: f"observation.images.{camera_key(cam)}_depth" for cam in first.depth_frames}
    depth_sizes = {cam: (mapping.image_size if mapping.image_size
                         else (first.depth_shapes[cam][1], first.depth_shapes[cam][0]))
                   for cam in depth_keys}
    for cam, key in depth_keys.items():
        w, h = depth_sizes[cam]
        features[key] = {"dtype": "image", "shape": [h, w, 1], "names": ["height", "width", "channels"],
                         "info": {"depth_scale": first.depth_scales[cam], "unit": "depth units",
                                  "encoding": "png uint16", "stream": first.depth_streams[cam]}}
    features[FILLED_FEATURE] = {"dtype": "bool", "shape": [1], "names": None}
    features.update(DEFAULT_FEATURES)
    texts = [str(e.attrs.get("prompt") or e.task or "demonstration") for e in episodes]
    tasks = list(dict.fromkeys(texts))
    state_dim, action_dim = len(first.state_names), len(first.action_names)
    schema = pa.schema([("observation.state", pa.list_(pa.float32(), state_dim)),
                        ("action", pa.list_(pa.float32(), action_dim)),
                        ("timestamp", pa.float32()), ("frame_index", pa.int64()),
                        ("episode_index", pa.int64()), ("index", pa.int64()),
                        ("task_index", pa.int64()), (FILLED_FEATURE, pa.bool_())] +
                       [(key, pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
                        for key in depth_keys.values()])
    grids = [grid_rows(e.t_s, fps) for e in episodes]
    total = sum(len(g[0]) for g in grids)
    notes = []
    if sum(int(g[1].sum()) for g in grids):
        notes.append(f"{sum(int(g[1].sum()) for g in grids)} frames without a captured step "
                     f"filled with the previous sample (column {FILLED_FEATURE})")
    if sum(g[2] for g in grids):
        notes.append(f"{sum(g[2] for g in grids)} steps sharing a {fps} fps slot with a nearer "
                     "one left out")
    out = Path(out)
    with atomic_output(out, force=force, directory=True, inputs=paths,
                       kind="lerobot") as root, \
            progress(total * max(1, len(cams)), f"lerobot {out.name}", show_progress) as bar:
        videos = {cam: _VideoFiles(root, key, fps, *sizes[cam], vcodec, int(video_file_mb * 1e6))
                  for cam, key in cams.items()}
        data_chunk = data_file = 0
        writer, data_bytes = None, 0
        rows, ep_stats, index, clamped = [], [], 0, 0
        try:
            for e, steps in enumerate(episodes):
                grid, filled, _ = grids[e]
                n = len(grid)
                state, action = steps.state[grid], steps.action[grid].astype(np.float32)
                if writer is not None and data_bytes >= data_file_mb * 1e6:
                    writer.close()
                    writer, (data_chunk, data_file) = None, _next_file(data_chunk, data_file)
                if writer is None:
                    path = root / DATA_PATH.format(chunk_index=data_chunk, file_index=data_file)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    writer, data_bytes = pq.ParquetWriter(path, schema, compression="snappy"), 0
                frame_index = np.arange(n, dtype=np.int64)
                depth_stats: dict[str, dict] = {}
                table = pa.Table.from_arrays([
                    pa.FixedSizeListArray.from_arrays(pa.array(state.reshape(-1)), state_dim),
                    pa.FixedSizeListArray.from_arrays(pa.array(action.reshape(-1)), action_dim),
                    pa.array((frame_index / fps).astype(np.float32)), pa.array(frame_index),
                    pa.array(np.full(n, e, np.int64)), pa.array(index + frame_index),
                    pa.array(np.full(n, tasks.index(texts[e]), np.int64)), pa.array(filled)] +
                    [_depth_column(steps, cam, grid, mapping.image_size, depth_stats.setdefault(cam, {}))
                     for cam in depth_keys], schema=schema)
                writer.write_table(table)
                data_bytes += table.nbytes
                clamped += sum(s.get("clamped", 0) for s in depth_stats.values())
                row: dict[str, Any] = {
                    "episode_index": e, "tasks": [texts[e]], "length": n,
                    "data/chunk_index": data_chunk, "data/file_index": data_file,
                    "dataset_from_index": index, "dataset_to_index": index + n}
                stats = {"observation.state": _vector_stats(state),
                         "action": _vector_stats(action),
                         "timestamp": _vector_stats(frame_index / fps),
                         "frame_index": _vector_stats(frame_index),
                         "episode_index": _vector_stats(np.full(n, e)),
                         "index": _vector_stats(index + frame_index),
                         "task_index": _vector_stats(np.full(n, tasks.index(texts[e]))),
                         FILLED_FEATURE: _vector_stats(filled),
                         **{key: depth_stats[cam]["stats"] for cam, key in depth_keys.items()}}
                with open_episode(steps.path) as ep:
                    for cam, key in cams.items():
                        chunk, file, start = videos[cam].start_episode()
                        image_stats = _ChannelStats()
                        for part in batches(n):
                            images = read_images(ep, steps, cam, grid[part], mapping.image_size)
                            videos[cam].write(images)
                            image_stats.add(images[::4])  # a sample of the frames, as LeRobot does
                            bar.update(part.stop - part.start)
                        row.update({f"videos/{key}/chunk_index": chunk, f"videos/{key}/file_index": file,
                                    f"videos/{key}/from_timestamp": start,
                                    f"videos/{key}/to_timestamp": start + n / fps})
                        stats[key] = image_stats.result(n)
                if not cams:
                    bar.update(n)
                row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
                row.update({f"stats/{feat}/{name}": value for feat, s in stats.items()
                            for name, value in s.items()})
                rows.append(row)
                ep_stats.append(stats)
                index += n
        finally:
            if writer is not None:
                writer.close()
            for video in videos.values():
                video.close()
        episodes_path = root / EPISODES_PATH.format(chunk_index=0, file_index=0)
        episodes_path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), episodes_path, compression="snappy")
        pd.DataFrame({"task_index": np.arange(len(tasks), dtype=np.int64)},
                     index=pd.Index(tasks, name="task")).to_parquet(root / "meta/tasks.parquet")
        merged = {feat: _merge_stats([s[feat] for s in ep_stats]) for feat in ep_stats[0]}
        (root / "meta/stats.json").write_text(json.dumps(merged, indent=4))
        info = {"codebase_version": CODEBASE_VERSION, "robot_type": robot_type,
                "total_episodes": len(episodes), "total_frames": total, "total_tasks": len(tasks),
                "chunks_size": CHUNKS_SIZE, "data_files_size_in_mb": data_file_mb,
                "video_files_size_in_mb": video_file_mb, "fps": fps,
                "splits": {"train": f"0:{len(episodes)}"}, "data_path": DATA_PATH,
                "video_path": VIDEO_PATH if cams else None, "features": features}
        (root / "meta/info.json").write_text(json.dumps(info, indent=4))
    if clamped:
        notes.append(f"{clamped} depth pixels beyond {LEROBOT_DEPTH_MAX} units clamped to "
                     f"{LEROBOT_DEPTH_MAX} (LeRobot reads 16-bit PNGs as int16)")
    return ExportResult(out, len(episodes), total, tree_bytes(out), clock.seconds, skipped,
                        sum(e.dropped for e in episodes), damaged, notes)
