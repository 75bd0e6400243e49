"""robomimic export: one HDF5 file in robomimic's dataset layout.

    collector export robomimic recordings/ -o pick.hdf5 --outcome success --image-size 84x84

Layout (https://robomimic.github.io/docs/datasets/overview.html)::

    data                    attrs: total (steps), env_args (JSON: env_name, type, env_kwargs)
    data/demo_N             attrs: num_samples, plus source file, uuid, task, outcome
    data/demo_N/obs/<key>   (T, ...) per observation: "<camera>_image" uint8 (T, H, W, 3),
                            "<node>_<field>" float32 (T, D) per state field
    data/demo_N/next_obs/<key>  the observation one step later (the last step repeats)
    data/demo_N/actions     float32 (T, A)
    data/demo_N/rewards     float32 (T,): 1 at the last step of a successful episode, else 0
    data/demo_N/dones       uint8 (T,): 1 at the last step
    mask/train, mask/valid  demo names (bytes), split by episode

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
from collector.export.selection import (EpisodeFilter, SignalMapping, camera_key, read_images,
                                        split_by_episode)

ROBOMIMIC_GYM_TYPE = 2


def obs_key(field_name: str) -> str:
    """``"glove/hand/wrist_pos"`` -> ``"glove_wrist_pos"`` (robomimic keys are flat names)."""
    stream, fieldname = field_name.rsplit("/", 1)
    return f"{stream.split('/')[0]}_{fieldname}"


def export_robomimic(paths: Sequence[str | Path], out: str | Path, *,
                     mapping: SignalMapping | None = None,
                     episode_filter: EpisodeFilter | None = None, val_fraction: float = 0.1,
                     seed: int = 0, force: bool = False, show_progress: bool = True) -> ExportResult:
    """Write the selected episodes to ``out`` (one ``.hdf5``); see the module docstring."""
    mapping = mapping or SignalMapping()
    clock = Stopwatch()
    damaged: dict[Path, list[str]] = {}
    episodes, skipped = load_episodes(paths, mapping, episode_filter, damaged)
    first = episodes[0]
    groups = field_groups(first.state_names)
    val = split_by_episode([e.uuid for e in episodes], val_fraction, seed)
    total = sum(len(e) for e in episodes)
    out = Path(out)
    frames = total * max(1, len(first.frames))
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
            if not steps.frames:
                bar.update(n)
            demo.create_dataset("actions", data=steps.action.astype(np.float32))
            rewards = np.zeros(n, np.float32)
            rewards[-1] = 1.0 if steps.outcome == "success" else 0.0
            dones = np.zeros(n, np.uint8)
            dones[-1] = 1
            demo.create_dataset("rewards", data=rewards)
            demo.create_dataset("dones", data=dones)
        data.attrs["total"] = total
        data.attrs["env_args"] = json.dumps({
            "env_name": first.task or "collector", "type": ROBOMIMIC_GYM_TYPE,
            "env_kwargs": {"source": "collector", "fps": first.rate_hz,
                           "mapping": mapping.to_dict(), "action_source": first.action_source,
                           "action_names": first.action_names, "state_names": first.state_names}})
        mask = f.create_group("mask")
        train = [n for n, e in zip(names, episodes) if e.uuid not in val]
        valid = [n for n, e in zip(names, episodes) if e.uuid in val]
        mask.create_dataset("train", data=np.array(train, dtype="S"))
        mask.create_dataset("valid", data=np.array(valid, dtype="S"))
    return ExportResult(out, len(episodes), total, tree_bytes(out), clock.seconds, skipped,
                        sum(e.dropped for e in episodes), damaged)


def _image_hw(shape: tuple[int, ...], size: tuple[int, int] | None) -> tuple[int, int]:
    return (size[1], size[0]) if size else (shape[0], shape[1])
