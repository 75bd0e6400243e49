"""Training windows from recorded episodes: small frames, action vectors, past and future.

An episode becomes a :class:`Clip`: every frame of one color stream resized to the model's size,
and for each frame the action vector (glove fields) nearest in time. A window is a "now" frame
plus ``context`` past and ``horizon`` future steps ``dt_s`` apart, each step taking the frame
nearest its time; windows whose steps miss a frame by more than half a step are skipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from collector.storage import EpisodeError, open_episode, read_attrs
from collector.storage.library import split_by_episode as held_out_uuids

log = logging.getLogger(__name__)

#: Glove fields that make the action vector when a checkpoint does not say otherwise.
DEFAULT_ACTION_FIELDS = ("wrist_pos", "wrist_quat", "grip")


class DatasetError(ValueError):
    """Episodes that cannot give training windows; the message says which and why."""


def resize_frame(rgb: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8, area-averaged (the whole view, squeezed)."""
    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)


def nearest_index(times: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Index into sorted ``times`` of the entry nearest each of ``wanted`` (ties: the earlier)."""
    if len(times) == 1:
        return np.zeros(np.shape(wanted), np.int64)
    idx = np.clip(np.searchsorted(times, wanted), 1, len(times) - 1)
    return np.where(wanted - times[idx - 1] <= times[idx] - wanted, idx - 1, idx)


@dataclass
class Clip:
    """One episode's frames and actions on the camera's timeline."""

    path: str
    frames: np.ndarray        # (N, S, S, 3) uint8
    actions: np.ndarray       # (N, A) float32, raw units
    t_ns: np.ndarray          # (N,) int64, the frames' times
    #: The color stream's metadata (intrinsics, camera pose), for drawing the hand trajectory.
    camera_meta: dict = field(default_factory=dict)

    def window_indices(self, context: int, horizon: int, dt_s: float) -> np.ndarray:
        """(W, context + horizon) frame indices of every complete window, oldest first."""
        if len(self.t_ns) < 2:
            return np.empty((0, context + horizon), np.int64)
        offsets = (np.arange(-context + 1, horizon + 1) * dt_s * 1e9).astype(np.int64)
        wanted = self.t_ns[:, None] + offsets[None, :]
        idx = nearest_index(self.t_ns, wanted)
        error = np.abs(self.t_ns[idx] - wanted)
        ok = (error <= dt_s * 0.5e9).all(axis=1)
        ok &= (wanted[:, 0] >= self.t_ns[0] - dt_s * 0.5e9) & (wanted[:, -1] <= self.t_ns[-1] + dt_s * 0.5e9)
        return idx[ok]


def find_episodes(root: str | Path) -> list[Path]:
    """Episode files under ``root`` (or ``root`` itself), skipping the trash, sorted."""
    root = Path(root)
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*.h5") if ".trash" not in p.parts)


def _pick_streams(streams: dict, camera: str | None, action_fields: Sequence[str]) -> tuple[str, str]:
    colors = [n for n, s in streams.items() if s.kind == "color"]
    if camera is None:
        if not colors:
            raise DatasetError("no color stream")
        camera = colors[0]
    elif camera not in streams:
        raise DatasetError(f"no stream '{camera}' (color streams: {', '.join(colors) or 'none'})")
    for name, spec in streams.items():
        names = {f.name for f in spec.fields}
        if spec.kind == "state" and all(f in names for f in action_fields):
            return camera, name
    raise DatasetError(f"no state stream has the action fields {', '.join(action_fields)}")


def load_clip(path: str | Path, size: int, *, camera: str | None = None,
              action_fields: Sequence[str] = DEFAULT_ACTION_FIELDS, field_name: str = "rgb") -> Clip:
    """Read one episode into a :class:`Clip` (frames resized to ``size``)."""
    with open_episode(path) as episode:
        camera, action_stream = _pick_streams(episode.streams, camera, action_fields)
        n = episode.count(camera)
        if n < 2:
            raise DatasetError(f"{path}: stream '{camera}' has {n} frames")
        t_cam = episode.timestamps(camera)["t_host_ns"].astype(np.int64)
        t_act = episode.timestamps(action_stream)["t_host_ns"].astype(np.int64)
        if len(t_act) == 0:
            raise DatasetError(f"{path}: stream '{action_stream}' has no samples")
        parts = [np.asarray(episode.frames(action_stream, f), np.float32).reshape(len(t_act), -1)
                 for f in action_fields]
        actions_all = np.concatenate(parts, axis=1)
        idx = nearest_index(t_act, t_cam)  # the glove sample nearest each frame
        frames = np.empty((n, size, size, 3), np.uint8)
        step = 64
        for start in range(0, n, step):
            chunk = episode.frames(camera, field_name, slice(start, min(n, start + step)))
            for i, rgb in enumerate(chunk):
                frames[start + i] = resize_frame(rgb, size)
        meta = dict(episode.streams[camera].meta)
    return Clip(str(path), frames, actions_all[idx], t_cam, meta)


def load_clips(paths: Iterable[str | Path], size: int, *, camera: str | None = None,
               action_fields: Sequence[str] = DEFAULT_ACTION_FIELDS,
               progress=None) -> list[Clip]:
    """Load every episode that can be read; unreadable ones are logged and skipped."""
    clips = []
    paths = list(paths)
    for i, path in enumerate(paths):
        try:
            clips.append(load_clip(path, size, camera=camera, action_fields=action_fields))
        except (EpisodeError, DatasetError, KeyError, OSError) as exc:
            log.warning("skipping %s: %s", path, exc)
        if progress:
            progress(i + 1, len(paths))
    return clips


def episode_uuid(path: str | Path) -> str:
    """The episode's uuid (its file name when the file cannot be read: it is skipped later)."""
    try:
        return str(read_attrs(path, ("uuid",))["uuid"] or Path(path).name)
    except EpisodeError:
        return Path(path).name


def split_by_episode(paths: Sequence[Path], val_fraction: float, seed: int = 0) -> tuple[list[Path], list[Path]]:
    """Hold out whole episodes (never windows of a training episode) for validation, with the
    app's one split rule (:func:`collector.storage.library.split_by_episode`, by uuid): the
    episodes held out here are the ones an export with the same seed holds out."""
    paths = list(paths)
    if len(paths) < 2:
        raise DatasetError(f"need at least 2 episodes to hold one out, found {len(paths)}")
    uuids = {path: episode_uuid(path) for path in paths}
    held_out = held_out_uuids(list(uuids.values()), val_fraction, seed)
    val = sorted(p for p in paths if uuids[p] in held_out)
    train = sorted(p for p in paths if uuids[p] not in held_out)
    if not val or not train:
        raise DatasetError(f"val_fraction {val_fraction} of {len(paths)} episodes leaves "
                           f"{len(train)} for training and {len(val)} for validation")
    return train, val


@dataclass
class Normalizer:
    """Per-channel mean and std of the action vectors (from the training episodes)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, clips: Sequence[Clip]) -> "Normalizer":
        actions = np.concatenate([c.actions for c in clips])
        return cls(actions.mean(0).astype(np.float32),
                   np.maximum(actions.std(0), 1e-3).astype(np.float32))

    def __call__(self, actions: np.ndarray) -> np.ndarray:
        return ((actions - self.mean) / self.std).astype(np.float32)

    def inverse(self, actions: np.ndarray) -> np.ndarray:
        return (actions * self.std + self.mean).astype(np.float32)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> "Normalizer":
        return cls(np.asarray(data["mean"], np.float32), np.asarray(data["std"], np.float32))


class WindowSet:
    """Every window of a list of clips, as batches of numpy arrays.

    A batch is ``(frames (B, C+K, S, S, 3) uint8, actions (B, C+K, A) float32 normalized)``.
    """

    def __init__(self, clips: Sequence[Clip], context: int, horizon: int, dt_s: float,
                 normalizer: Normalizer) -> None:
        self.clips = list(clips)
        self.context, self.horizon = context, horizon
        self.normalizer = normalizer
        self.windows = []
        for ci, clip in enumerate(self.clips):
            for row in clip.window_indices(context, horizon, dt_s):
                self.windows.append((ci, row))
        self._actions = [normalizer(c.actions) for c in self.clips]

    def __len__(self) -> int:
        return len(self.windows)

    def batch(self, items: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        frames = np.stack([self.clips[self.windows[i][0]].frames[self.windows[i][1]] for i in items])
        actions = np.stack([self._actions[self.windows[i][0]][self.windows[i][1]] for i in items])
        return frames, actions

    def clip_of(self, items: Sequence[int]) -> np.ndarray:
        return np.array([self.windows[i][0] for i in items])
