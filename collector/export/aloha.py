"""ACT/ALOHA export: one ``episode_{i}.hdf5`` per episode, as ACT's ``EpisodicDataset`` reads.

    collector export aloha recordings/ -o act_data/ --episode-len max --image-size 640x480

Layout of each file (i contiguous from 0)::

    attrs: sim = False, plus source file, uuid, task, outcome, original_length
    /observations/qpos              float32 (T, D)   the state vector
    /observations/qvel              float32 (T, D)   its time derivative (per second)
    /observations/images/{camera}   uint8 (T, H, W, 3) RGB, one chunk per frame
    /action                         float32 (T, A)

ACT's ``get_norm_stats`` stacks every episode's ``qpos`` and ``action``, so all episodes must
have one length: ``episode_len`` pads shorter episodes by repeating their last step (the hand
holds still) and cuts longer ones; ``"max"``/``"min"`` use the longest/shortest episode.
A ``steps.json`` beside the files lists each channel's name and each file's source.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np

from collector.storage.reader import open_episode
from collector.export.common import (ExportError, ExportResult, Stopwatch, atomic_output, batches,
                                     load_episodes, progress, tree_bytes, velocity)
from collector.export.selection import EpisodeFilter, SignalMapping, camera_key, read_images


def target_length(lengths: Sequence[int], episode_len: str | int | None) -> int | None:
    """The common length for ``episode_len`` (``None``: keep each episode's own)."""
    if episode_len in (None, "none"):
        return None
    if episode_len == "max":
        return max(lengths)
    if episode_len == "min":
        return min(lengths)
    try:
        value = int(episode_len)
    except ValueError:
        raise ExportError(f"episode length must be none, max, min or a number, got {episode_len!r}")
    if value < 1:
        raise ExportError(f"episode length must be >= 1, got {value}")
    return value


def export_aloha(paths: Sequence[str | Path], out: str | Path, *,
                 mapping: SignalMapping | None = None, episode_filter: EpisodeFilter | None = None,
                 episode_len: str | int | None = None, force: bool = False,
                 show_progress: bool = True) -> ExportResult:
    """Write the selected episodes into the folder ``out``; see the module docstring."""
    mapping = mapping or SignalMapping()
    clock = Stopwatch()
    damaged: dict[Path, list[str]] = {}
    episodes, skipped = load_episodes(paths, mapping, episode_filter, damaged)
    length = target_length([len(e) for e in episodes], episode_len)
    total = sum(length or len(e) for e in episodes)
    out = Path(out)
    with atomic_output(out, force=force, directory=True, inputs=paths,
                       kind="aloha") as tmp, \
            progress(total * max(1, len(episodes[0].frames)), f"aloha {out.name}",
                     show_progress) as bar:
        manifest = {"state_names": episodes[0].state_names, "action_names": episodes[0].action_names,
                    "action_source": episodes[0].action_source, "fps": episodes[0].rate_hz,
                    "cameras": {camera_key(c): c for c in episodes[0].frames}, "episodes": []}
        for i, steps in enumerate(episodes):
            n = len(steps)
            t = length or n
            rows = np.minimum(np.arange(t), n - 1)  # pad: repeat the last step; cut: drop the rest
            with h5py.File(tmp / f"episode_{i}.hdf5", "w") as f, open_episode(steps.path) as ep:
                f.attrs.update(sim=False, compress=False, source=str(steps.path), uuid=steps.uuid,
                               task=steps.task, outcome=steps.outcome, original_length=n)
                obs = f.create_group("observations")
                obs.create_dataset("qpos", data=steps.state[rows])
                obs.create_dataset("qvel", data=velocity(steps.state, steps.t_s)[rows])
                f.create_dataset("action", data=steps.action[rows].astype(np.float32))
                images = obs.create_group("images")
                for cam in steps.frames:
                    h, w = (mapping.image_size[1], mapping.image_size[0]) if mapping.image_size \
                        else steps.image_shapes[cam][:2]
                    ds = images.create_dataset(camera_key(cam), (t, h, w, 3), np.uint8,
                                               chunks=(1, h, w, 3))
                    for part in batches(t):
                        ds[part] = read_images(ep, steps, cam, rows[part], mapping.image_size)
                        bar.update(part.stop - part.start)
                if not steps.frames:
                    bar.update(t)
            manifest["episodes"].append({"file": f"episode_{i}.hdf5", "source": str(steps.path),
                                         "uuid": steps.uuid, "length": n})
        (tmp / "steps.json").write_text(json.dumps(manifest, indent=2))
    return ExportResult(out, len(episodes), total, tree_bytes(out), clock.seconds, skipped,
                        sum(e.dropped for e in episodes), damaged)
