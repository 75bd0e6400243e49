"""robomimic export: one HDF5 file in robomimic's dataset layout.

    collector export robomimic recordings/ -o pick.hdf5 --outcome success --image-size 84x84

Layout (https://robomimic.github.io/docs/datasets/overview.html)::

    data                    attrs: total (steps), env_args (JSON: env_name, type, env_kwargs),
                            action_normalization (JSON: scale, offset), action_scale, action_offset
    data/demo_N             attrs: num_samples, plus source file, uuid, task, outcome
    data/demo_N/obs/<key>   (T, ...) per observation: "<camera>_image" uint8 (T, H, W, 3),
                            "<node>_<field>" float32 (T, D) per state field,
                            "<camera>_depth" uint16 (T, H, W, 1) with --depth (attr depth_scale)
    data/demo_N/next_obs/<key>  the observation one step later (the last step repeats)
    data/demo_N/actions     float32 (T, A) in [-1, 1] (see below)
    data/demo_N/rewards     float32 (T,): 1 at the last step of a successful episode, else 0
    data/demo_N/dones       uint8 (T,): 1 at the last step
    mask/train, mask/valid  demo names (bytes), split by episode: with two or more episodes
                            and val_fraction > 0 each holds at least one; with one episode
                            mask/valid is empty and the summary says to set
                            experiment.validate = false

**Actions in [-1, 1].** robomimic 0.3.0 refuses other datasets ("Dataset should have actions in
[-1., 1.]") and its BC policy ends in tanh. By default each action channel is scaled over all
exported steps: ``actions = (action - offset) / scale`` with ``offset = (max + min) / 2``,
``scale = (max - min) / 2`` (1 for a constant channel); the inverse, for a policy's output, is
``action = actions * scale + offset``. ``normalize_actions=False`` keeps the recorded values.

``env_args.type`` is 2 (robomimic's ``EnvType.GYM_TYPE``): there is no simulator behind these
demonstrations, so rollouts need an env of your own; ``env_kwargs`` records where the data came
from and what each action and state channel means.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np

from collector.storage.reader import open_episode
from collector.export.common import (ExportResult, Stopwatch, atomic_output, batches,
                                     field_groups, load_episodes, progress, tree_bytes)
from collector.export.selection import (EpisodeFilter, SignalMapping, camera_key,
                                        split_by_episode)
from collector.export.frames import read_depth, read_images

ROBOMIMIC_GYM_TYPE = 2


def obs_key(field_name: str) -> str:
    """``"glove/hand/wrist_pos"`` -> ``"glove_wrist_pos"`` (robomimic keys are flat names)."""
    stream, fieldname = field_name.rsplit("/", 1)
    return f"{stream.split('/')[0]}_{fieldname}"


def export_robomimic(paths: Sequence[str | Path], out: str | Path, *,
                     mapping: SignalMapping | None = None,
                     episode_filter: EpisodeFilter | None = None, val_fraction: float = 0.1,
                     seed: int = 0, normalize_actions: bool = True, force: bool = False,
                     show_progress: bool = True) -> ExportResult:
    """Write the selected episodes to ``out`` (one ``.hdf5``); see the module docstring."""
    mapping = mapping or SignalMapping()
    clock = Stopwatch()
    damaged: dict[Path, list[str]] = {}
    episodes, skipped = load_episodes(paths, mapping, episode_filter, damaged)
    first = episodes[0]
    groups = field_groups(first.state_names)
    val, notes = validation_episodes([e.uuid for e in episodes], val_fraction, seed)
    norm = action_normalization([e.action for e in episodes]) if normalize_actions else None
    total = sum(len(e) for e in episodes)
    out = Path(out)
    frames = total * max(1, len(first.frames) + len(first.depth_frames))
    with atomic_output(out, force=force, directory=False, inputs=paths,
                       kind="robomimic") as tmp, h5py.File(tmp, "w") as f, \
            progress(frames, f"robomimic {out.name}", show_progress) as bar:
        data = f.create_group("data")
        names = []
        for i, steps in enumerate(episodes):
            name, n = f"demo_{i}", len(steps)
            names.append(name)
            demo = data.create_group(name)
            demo.attrs.update(num_samples=n, source=str(steps.path), uuid=steps.uuid,
                              task=steps.task, outcome=steps.outcome)
            obs, next_obs = demo.create_group("obs"), demo.create_group("next_obs")
            nxt = np.minimum(np.arange(n) + 1, n - 1)
            for key, cols in groups.items():
                values = steps.state[:, cols]
                obs.create_dataset(obs_key(key), data=values)
                next_obs.create_dataset(obs_key(key), data=values[nxt])
            with open_episode(steps.path) as ep:
                for cam in steps.frames:
                    key = f"{camera_key(cam)}_image"
                    h, w = _image_hw(steps.image_shapes[cam], mapping.image_size)
                    ds = obs.create_dataset(key, (n, h, w, 3), np.uint8, chunks=(1, h, w, 3))
                    nds = next_obs.create_dataset(key, (n, h, w, 3), np.uint8, chunks=(1, h, w, 3))
                    for rows in batches(n):
                        images = read_images(ep, steps, cam, rows, mapping.image_size)
                        ds[rows] = images
                        # next_obs[k] = obs[k + 1]: shift by one within the batch and across.
                        if rows.start:
                            nds[rows.start - 1] = images[0]
                        nds[rows.start:rows.stop - 1] = images[1:]
                        bar.update(rows.stop - rows.start)
                    nds[n - 1] = ds[n - 1]
                for cam in steps.depth_frames:
                    key = f"{camera_key(cam)}_depth"
                    h, w = _image_hw(steps.depth_shapes[cam], mapping.image_size)
                    depth = np.concatenate([read_depth(ep, steps, cam, rows, mapping.image_size)
                                            for rows in batches(n)])[..., None]
                    obs.create_dataset(key, data=depth, chunks=(1, h, w, 1))
                    next_obs.create_dataset(key, data=depth[nxt], chunks=(1, h, w, 1))
                    for group in (obs, next_obs):
                        group[key].attrs.update(depth_scale=steps.depth_scales[cam],
                                                stream=steps.depth_streams[cam])
                    bar.update(n)
            if not steps.frames:
                bar.update(n)
            actions = steps.action if norm is None else normalize(steps.action, *norm)
            demo.create_dataset("actions", data=actions.astype(np.float32))
            rewards = np.zeros(n, np.float32)
            rewards[-1] = 1.0 if steps.outcome == "success" else 0.0
            dones = np.zeros(n, np.uint8)
            dones[-1] = 1
            demo.create_dataset("rewards", data=rewards)
            demo.create_dataset("dones", data=dones)
        data.attrs["total"] = total
        kwargs_norm = {}
        if norm is not None:
            scale, offset = norm
            kwargs_norm = {"action_normalization": {
                "scale": scale.tolist(), "offset": offset.tolist(),
                "inverse": "action = actions * scale + offset"}}
            data.attrs["action_normalization"] = json.dumps(kwargs_norm["action_normalization"])
            data.attrs["action_scale"], data.attrs["action_offset"] = scale, offset
        data.attrs["env_args"] = json.dumps({
            "env_name": first.task or "collector", "type": ROBOMIMIC_GYM_TYPE,
            "env_kwargs": {"source": "collector", "fps": first.rate_hz,
                           "mapping": mapping.to_dict(), "action_source": first.action_source,
                           "action_names": first.action_names, "state_names": first.state_names,
                           "depth_scale": {f"{camera_key(c)}_depth": v
                                           for c, v in first.depth_scales.items()},
                           **kwargs_norm}})
        mask = f.create_group("mask")
        train = [n for n, e in zip(names, episodes) if e.uuid not in val]
        valid = [n for n, e in zip(names, episodes) if e.uuid in val]
        mask.create_dataset("train", data=np.array(train, dtype="S"))
        mask.create_dataset("valid", data=np.array(valid, dtype="S"))
    return ExportResult(out, len(episodes), total, tree_bytes(out), clock.seconds, skipped,
                        sum(e.dropped for e in episodes), damaged, notes)


def validation_episodes(uuids: Sequence[str], val_fraction: float, seed: int
                        ) -> tuple[set[str], list[str]]:
    """The uuids for ``mask/valid`` (the app's one split rule, :func:`split_by_episode`) and
    notes: with two or more episodes and ``val_fraction > 0`` both masks hold at least one
    (robomimic's validation loader raises StopIteration on an empty one); with one episode the
    validation mask is empty and a note says to turn validation off."""
    val = split_by_episode(list(uuids), val_fraction, seed)
    if len(uuids) >= 2 and val_fraction > 0:
        ranked = [u for u in uuids if u in val] or [sorted(uuids)[0]]
        val = set(ranked[:len(uuids) - 1])  # at least one, never all
    notes = []
    if len(uuids) == 1:
        notes.append("one episode: mask/valid is empty, so robomimic's validation loader has "
                     "nothing to read; train with experiment.validate = false (or export two or "
                     "more episodes)")
    elif not val:
        notes.append("val_fraction 0: mask/valid is empty; train with experiment.validate = false")
    return val, notes


def action_normalization(actions: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(scale, offset)`` per channel mapping every row of ``actions`` into [-1, 1]."""
    data = np.concatenate([np.asarray(a, np.float64) for a in actions])
    lo, hi = data.min(0), data.max(0)
    offset = (hi + lo) / 2
    scale = (hi - lo) / 2
    scale[scale <= 1e-12 * np.maximum(1.0, np.abs(offset))] = 1.0
    return scale, offset


def normalize(action: np.ndarray, scale: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """``(action - offset) / scale`` clipped to [-1, 1] (float rounding only), float32."""
    return np.clip((np.asarray(action, np.float64) - offset) / scale, -1.0, 1.0).astype(np.float32)


def denormalize(actions: np.ndarray, scale: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """The inverse of :func:`normalize`: a policy's output in recorded units."""
    return np.asarray(actions, np.float64) * scale + offset


def _image_hw(shape: tuple[int, ...], size: tuple[int, int] | None) -> tuple[int, int]:
    return (size[1], size[0]) if size else (shape[0], shape[1])
