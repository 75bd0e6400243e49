"""A PyTorch dataset of observation windows and action chunks over episode files.

    from torch.utils.data import DataLoader
    from collector.dataset import EpisodeDataset
    from collector.export.selection import EpisodeFilter, SignalMapping

    train = EpisodeDataset(["recordings/"], horizon=16, split="train", val_fraction=0.1,
                           mapping=SignalMapping(cameras=["cam0/color"], image_size=(224, 224)),
                           episode_filter=EpisodeFilter(tasks=["pick-cube"], outcomes=["success"]),
                           normalize=True)
    val = EpisodeDataset(["recordings/"], horizon=16, split="val", val_fraction=0.1,
                         mapping=train.mapping, stats=train.stats, normalize=True)
    for batch in DataLoader(train, batch_size=32, shuffle=True, num_workers=2):
        batch["observation.images.cam0"]   # (32, n_obs, 3, 224, 224) float32 in [0, 1]
                                           # (uint8 with uint8_images=True)
        batch["observation.state"]         # (32, n_obs, D) float32
        batch["action"]                    # (32, 16, A) float32
        batch["action_is_pad"]             # (32, 16) bool: steps past the episode's end

One sample per step of every selected episode (steps, observations and actions as defined in
:mod:`collector.export.selection`). The observation window holds the ``n_obs_steps`` steps up to
and including the sample's step (repeating the first step near the start); the action chunk the
``horizon`` steps from it (repeating the last action past the end, flagged in ``action_is_pad``,
as ACT and Diffusion Policy train). Files are opened lazily in each process, so the dataset works
with ``DataLoader(num_workers > 0)``.

A DataLoader fetches a whole batch at once (``__getitems__``): each episode's frames for the
batch are read once, by runs of consecutive frames, each distinct frame resized once, and the
batch's images converted to float in one pass; ``dataset[i]`` is the same path for one sample.
OpenCV's thread count is left alone in DataLoader workers: a forked worker that changes it
(``cv2.setNumThreads``) after the parent has used OpenCV's thread pool hangs for good inside
OpenCV (seen here: ``pthread_cond_destroy`` on the parent's pool); set it in the training script
before the DataLoader starts its workers if the cores are few.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from collector.storage import EpisodeError, EpisodeReader, open_episode
from collector.export.common import check_consistent
from collector.export.frames import read_frames
from collector.export.selection import (EpisodeFilter, EpisodeSteps, SignalMapping, camera_key,
                                        drop_damaged_steps, load_steps, select_episodes,
                                        split_by_episode)

log = logging.getLogger(__name__)

#: Normalization never divides by less than this (constant channels, e.g. a fixed quaternion).
MIN_STD = 1e-6


def compute_stats(arrays: Iterable[np.ndarray]) -> dict[str, np.ndarray]:
    """``mean``, ``std``, ``min``, ``max`` (per channel, float32) and ``count`` over the rows of
    every array, computed in float64."""
    rows = [np.asarray(a, np.float64) for a in arrays if len(a)]
    if not rows:
        raise ValueError("no samples to compute statistics from")
    data = np.concatenate(rows)
    return {"mean": data.mean(0).astype(np.float32), "std": data.std(0).astype(np.float32),
            "min": data.min(0).astype(np.float32), "max": data.max(0).astype(np.float32),
            "count": np.array([data.shape[0]], np.int64)}


def _damage_text(reasons: list[str]) -> str:
    shown = "; ".join(reasons[:5]) + (f"; {len(reasons) - 5} more" if len(reasons) > 5 else "")
    return f"{len(reasons)} damaged frame{'s' if len(reasons) > 1 else ''} left out ({shown})"


class EpisodeDataset(Dataset):
    """Windows of observations and chunks of actions from episode files (see the module doc).

    Args:
        paths: episode files and/or folders (searched recursively).
        mapping: cameras, state, action, step rate and image size; default :class:`SignalMapping`.
        horizon: actions per sample (the chunk length H).
        n_obs_steps: observation steps per sample.
        episode_filter: which episodes to use (task, outcome, tags, quality).
        split: ``"train"``, ``"val"`` or ``None`` (every selected episode). The split is by
            episode, stable per episode uuid and ``seed``.
        val_fraction: share of episodes for validation.
        seed: seeds the split.
        normalize: return ``(x - mean) / std`` for state and action.
        stats: statistics to normalize with (e.g. the training set's); default: this dataset's.
        uint8_images: return images as uint8 in [0, 255] (same layout) instead of float32 in
            [0, 1]: a quarter of the bytes through the DataLoader's worker queues and to the GPU,
            where ``images.float() / 255`` is one cheap kernel (how robomimic and DROID's loaders
            hand images over).
    """

    def __init__(self, paths: Sequence[str | Path], *, mapping: SignalMapping | None = None,
                 horizon: int = 1, n_obs_steps: int = 1, episode_filter: EpisodeFilter | None = None,
                 split: str | None = None, val_fraction: float = 0.1, seed: int = 0,
                 normalize: bool = False, stats: dict[str, dict[str, np.ndarray]] | None = None,
                 uint8_images: bool = False) -> None:
        if horizon < 1 or n_obs_steps < 1:
            raise ValueError(f"horizon and n_obs_steps must be >= 1, got {horizon}, {n_obs_steps}")
        if split not in (None, "train", "val"):
            raise ValueError(f"split must be 'train', 'val' or None, got {split!r}")
        self.mapping = mapping or SignalMapping()
        self.horizon, self.n_obs_steps = int(horizon), int(n_obs_steps)
        files, self.skipped = select_episodes(paths, episode_filter)
        episodes = []
        for path in files:
            try:
                # JPEG frames are checked against their CRC here (cheap, no decoding); raw
                # frames' chunks are checked by HDF5 when read (see __getitem__).
                steps, reasons = drop_damaged_steps(load_steps(path, self.mapping), thorough=False)
            except EpisodeError as exc:
                self.skipped[path] = str(exc)
                continue
            if reasons:
                self.skipped[path] = _damage_text(reasons)
            if not len(steps):
                self.skipped[path] = "no usable steps"
            else:
                episodes.append(steps)
        check_consistent(episodes)
        if split is not None:
            val = split_by_episode([e.uuid for e in episodes], val_fraction, seed)
            episodes = [e for e in episodes if (e.uuid in val) == (split == "val")]
        self.episodes: list[EpisodeSteps] = episodes
        self._ends = np.cumsum([len(e) for e in episodes]).astype(np.int64)
        self.normalize = normalize
        self.uint8_images = bool(uint8_images)
        self.stats = stats if stats is not None else (self._compute_stats() if episodes else {})
        self._handles: dict[Path, EpisodeReader] = {}
        self._pid = os.getpid()
        #: Steps whose data failed to read in this process: path -> steps (also in ``skipped``).
        self.failed: dict[Path, list[int]] = {}

    def _compute_stats(self) -> dict[str, dict[str, np.ndarray]]:
        return {"observation.state": compute_stats(e.state for e in self.episodes),
                "action": compute_stats(e.action for e in self.episodes)}

    # -- pickling for DataLoader workers: every process opens its own files --------------------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_handles"] = {}
        return state

    def _episode_file(self, path: Path) -> EpisodeReader:
        if self._pid != os.getpid():  # a forked worker: never share the parent's HDF5 handles
            self._handles, self._pid = {}, os.getpid()
        if path not in self._handles:
            self._handles[path] = open_episode(path)
        return self._handles[path]

    def close(self) -> None:
        """Close the files this process opened (they reopen on the next access)."""
        for episode in self._handles.values():
            episode.close()
        self._handles = {}

    # -- access ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self._ends[-1]) if self._ends.size else 0

    def locate(self, index: int) -> tuple[int, int]:
        """``(episode number, step)`` of sample ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        e = int(np.searchsorted(self._ends, index, side="right"))
        return e, int(index - (self._ends[e - 1] if e else 0))

    @property
    def cameras(self) -> list[str]:
        return list(self.episodes[0].frames) if self.episodes else []

    def _normalized(self, key: str, x: np.ndarray) -> np.ndarray:
        if not self.normalize:
            return x
        s = self.stats[key]
        return (x - s["mean"]) / np.maximum(s["std"], MIN_STD)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        index = int(index)
        for attempt in range(len(self)):
            try:
                return self._items([(index + attempt) % len(self)])[0]
            except EpisodeError as exc:
                # A frame damaged in a way the CRC scan cannot see (a raw frame's chunk, a JPEG
                # without CRC that does not decode): serve the next sample, say which one failed.
                e, k = self.locate((index + attempt) % len(self))
                path = self.episodes[e].path
                if path not in self.failed:
                    log.warning("%s: step %d skipped: %s", path, k, exc)
                self.failed.setdefault(path, []).append(k)
                self.skipped[path] = f"damaged data at step(s) {self.failed[path]}: {exc}"
        raise IndexError(f"no readable sample in {len(self)} samples")

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, torch.Tensor]]:
        """Samples ``indices`` at once, as a DataLoader fetches a batch (see the module doc); a
        batch with a damaged frame falls back to :meth:`__getitem__` per sample, which serves
        the next readable sample in place of the damaged one and names it."""
        try:
            return self._items([int(i) for i in indices])
        except EpisodeError:
            return [self[int(i)] for i in indices]

    def _items(self, indices: list[int]) -> list[dict[str, torch.Tensor]]:
        located = [self.locate(i) for i in indices]
        items: list[dict[str, torch.Tensor]] = [{} for _ in indices]
        by_episode: dict[int, list[int]] = {}
        for j, (e, _) in enumerate(located):
            by_episode.setdefault(e, []).append(j)
        for e, members in by_episode.items():
            steps = self.episodes[e]
            n = len(steps)
            ks = np.array([located[j][1] for j in members], np.int64)
            obs_rows = np.clip(ks[:, None] + np.arange(1 - self.n_obs_steps, 1), 0, n - 1)
            act_rows = ks[:, None] + np.arange(self.horizon)
            is_pad = act_rows >= n
            act_rows = np.minimum(act_rows, n - 1)
            for cam in steps.frames:
                images = self._images(steps, cam, obs_rows)
                for row, j in enumerate(members):
                    items[j][f"observation.images.{camera_key(cam)}"] = images[row]
            state = torch.from_numpy(
                self._normalized("observation.state", steps.state[obs_rows]).astype(np.float32))
            action = torch.from_numpy(self._normalized("action", steps.action[act_rows]).astype(np.float32))
            pads = torch.from_numpy(is_pad)
            for row, j in enumerate(members):
                k = int(ks[row])
                items[j].update({"observation.state": state[row], "action": action[row],
                                 "action_is_pad": pads[row],
                                 "timestamp": torch.tensor(steps.t_s[k], dtype=torch.float64),
                                 "episode_index": torch.tensor(e), "frame_index": torch.tensor(k)})
        return items

    def _images(self, steps: EpisodeSteps, camera: str, obs_rows: np.ndarray) -> torch.Tensor:
        """``(samples, n_obs, 3, H, W)`` float32 in [0, 1] (uint8 with ``uint8_images``): the
        frames at ``obs_rows``, each distinct frame read and resized once."""
        ep = self._episode_file(steps.path)
        frames, where = np.unique(steps.frames[camera][obs_rows], return_inverse=True)
        images = read_frames(ep, camera, steps.image_fields[camera], frames, self.mapping.image_size)
        chosen = images[where.reshape(obs_rows.shape)].transpose(0, 1, 4, 2, 3)
        if self.uint8_images:
            return torch.from_numpy(np.ascontiguousarray(chosen))
        h, w = images.shape[1:3]
        out = np.empty((*obs_rows.shape, 3, h, w), np.float32)
        # One pass from uint8 (N, H, W, 3) to float (N, 3, H, W), in numpy: single-threaded
        # whatever torch's thread setting in this process.
        np.multiply(chosen, np.float32(1 / 255), out=out)
        return torch.from_numpy(out)

    def __repr__(self) -> str:
        first = self.episodes[0] if self.episodes else None
        return (f"EpisodeDataset({len(self.episodes)} episodes, {len(self)} samples, cameras "
                f"{self.cameras}, state {len(first.state_names) if first else 0}, action "
                f"{len(first.action_names) if first else 0} from {first.action_source if first else '-'}"
                f", horizon {self.horizon}, {len(self.skipped)} episodes skipped)")
