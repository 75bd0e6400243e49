"""ACT/ALOHA export: one ``episode_{i}.hdf5`` per episode, as ACT's ``EpisodicDataset`` reads.

    collector export aloha recordings/ -o act_data/ --image-size 640x480

Layout of each file (i contiguous from 0)::

    attrs: sim = False, layout, act_lookback_shift, hands, missing_hands, plus source file,
           uuid, task, outcome, original_length
    /observations/qpos              float32 (T, D)   the state vector (D = 14 in layout aloha14)
    /observations/qvel              float32 (T, D)   its time derivative (per second)
    /observations/images/{camera}   uint8 (T, H, W, 3) RGB, one chunk per frame
    /observations/depth/{camera}    uint16 (T, H, W) depth units (``--depth``; attr depth_scale)
    /action                         float32 (T, A)

**Layout.** ACT's model hard-codes 14-dimensional state and action (two 7-joint arms). Layout
``aloha14`` maps one or two gloves onto them: per hand wrist position (3, m), wrist rotation as an
axis-angle vector (3, rad; from ``wrist_quat``), grip aperture (1); left hand then right. A hand
without a glove is zero-filled and named in the ``missing_hands`` attribute. The action is the
next step's 14-vector (where the hand went). ``layout="auto"`` (default) uses ``aloha14`` when
the mapping is the default one and the episodes carry one or two gloves (``state`` streams with
``wrist_pos`` (3), ``wrist_quat`` (4) and ``grip`` (1), one per ``meta["hand"]``); otherwise,
and with ``layout="state"``, qpos and action are the selection's state and action as they are.

**Action timing.** For real-robot data (``sim = False``) ACT reads an action chunk from one step
*before* the observation (``/action[start_ts - 1:]``, its "hack, to make timesteps more
aligned"). With next-state actions that first action would be the current state, so the files
store the selection's action one step earlier: ``/action[t] = action[t + 1]`` (the last repeats;
attribute ``act_lookback_shift = 1``). ACT's chunk for the observation at step ``s`` then starts
at ``action[s]``, the next command. ``act_lookback=False`` stores the action as selected.

**Lengths.** ACT's ``get_norm_stats`` stacks every episode's ``qpos`` and ``action``, so all
episodes must have one length: ``episode_len`` (default ``"max"``) pads shorter episodes by
repeating their last step (the hand holds still; its images repeat too) and cuts longer ones;
``"min"`` trims to the shortest; ``"none"`` keeps each length (ACT's ``get_norm_stats`` then
fails; the summary says so). The summary reports what was padded or cut. A ``steps.json``
beside the files lists each channel's name and each file's source.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np

from collector.storage.reader import open_episode
from collector.export.common import (ExportError, ExportResult, Stopwatch, atomic_output, batches,
                                     field_groups, load_episodes, progress, tree_bytes, velocity)
from collector.export.selection import (EpisodeFilter, EpisodeSteps, SignalMapping, camera_key,
                                        measured_state_streams, select_episodes)
from collector.export.frames import read_depth, read_images

LAYOUTS = ("auto", "aloha14", "state")
HANDS = ("left", "right")
#: Glove fields aloha14 reads, with the shape each must have.
GLOVE_FIELDS = {"wrist_pos": (3,), "wrist_quat": (4,), "grip": (1,)}
ALOHA14_NAMES = [f"{hand}/{name}" for hand in HANDS for name in (
    "wrist_pos.x", "wrist_pos.y", "wrist_pos.z", "wrist_rotvec.x", "wrist_rotvec.y",
    "wrist_rotvec.z", "grip")]


def target_length(lengths: Sequence[int], episode_len: str | int | None) -> int | None:
    """The common length for ``episode_len`` (``None``/``"none"``: keep each episode's own)."""
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


def glove_hands(path: Path) -> dict[str, str] | str:
    """``{"left"|"right": stream}`` of the gloves in one episode, or why aloha14 does not fit."""
    hands: dict[str, str] = {}
    with open_episode(path) as ep:
        for name in measured_state_streams(ep):
            spec = ep.streams[name]
            shapes = {f.name: tuple(f.shape) for f in spec.fields}
            if any(shapes.get(k) != v for k, v in GLOVE_FIELDS.items()):
                continue
            hand = str(spec.meta.get("hand") or "right")
            if hand not in HANDS:
                return f"{name}: hand {hand!r} is neither left nor right"
            if hand in hands:
                return f"two {hand} gloves ({hands[hand]}, {name})"
            hands[hand] = name
    if not hands:
        return ("no glove stream with wrist_pos (3), wrist_quat (4) and grip (1) in "
                f"{path.name}")
    return hands


def quat_to_rotvec(quat: np.ndarray) -> np.ndarray:
    """``(T, 4)`` quaternions ``(w, x, y, z)`` -> ``(T, 3)`` axis-angle vectors (angle in [0, pi],
    the quaternion's sign chosen with ``w >= 0``); a zero quaternion gives zeros."""
    q = np.asarray(quat, np.float64)
    norm = np.linalg.norm(q, axis=1, keepdims=True)
    q = np.divide(q, norm, out=np.zeros_like(q), where=norm > 0)
    q *= np.where(q[:, :1] < 0, -1.0, 1.0)
    v = q[:, 1:]
    s = np.linalg.norm(v, axis=1, keepdims=True)
    angle = 2 * np.arctan2(s, q[:, :1])
    scale = np.divide(angle, s, out=np.full_like(s, 2.0), where=s > 1e-12)
    return v * scale


def to_aloha14(values: np.ndarray, names: list[str], hands: dict[str, str]) -> np.ndarray:
    """Rows of glove fields (``names`` as the selection writes them) -> ``(T, 14)`` aloha14."""
    groups = field_groups(names)
    out = np.zeros((values.shape[0], 14), np.float64)
    for i, hand in enumerate(HANDS):
        stream = hands.get(hand)
        if stream is None:
            continue
        col = 7 * i
        out[:, col:col + 3] = values[:, groups[f"{stream}/wrist_pos"]]
        out[:, col + 3:col + 6] = quat_to_rotvec(values[:, groups[f"{stream}/wrist_quat"]])
        out[:, col + 6] = values[:, groups[f"{stream}/grip"]][:, 0]
    return out.astype(np.float32)


def _choose_layout(paths, mapping: SignalMapping, episode_filter, layout: str
                   ) -> tuple[str, SignalMapping, dict[str, str]]:
    if layout not in LAYOUTS:
        raise ExportError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if layout == "state":
        return "state", mapping, {}
    default = mapping.state is None and mapping.action == "auto"
    if layout == "auto" and not default:
        return "state", mapping, {}
    if not default:
        raise ExportError("layout aloha14 chooses the state and action itself (the gloves' wrist "
                          "pose and grip); drop --state/--action, or use --layout state")
    files, _ = select_episodes(paths, episode_filter)
    hands = glove_hands(files[0]) if files else "no episodes"
    if isinstance(hands, str):
        if layout == "auto":
            return "state", mapping, {}
        raise ExportError(f"layout aloha14 does not fit: {hands}")
    streams = [hands[h] for h in HANDS if h in hands]
    fields = ",".join(GLOVE_FIELDS)
    return "aloha14", replace(mapping, state=[f"{s}:{fields}" for s in streams],
                              action="next"), hands


def export_aloha(paths: Sequence[str | Path], out: str | Path, *,
                 mapping: SignalMapping | None = None, episode_filter: EpisodeFilter | None = None,
                 episode_len: str | int | None = "max", layout: str = "auto",
                 act_lookback: bool = True, force: bool = False,
                 show_progress: bool = True) -> ExportResult:
    """Write the selected episodes into the folder ``out``; see the module docstring."""
    mapping = mapping or SignalMapping()
    clock = Stopwatch()
    layout, mapping, hands = _choose_layout(paths, mapping, episode_filter, layout)
    damaged: dict[Path, list[str]] = {}
    episodes, skipped = load_episodes(paths, mapping, episode_filter, damaged)
    if layout == "aloha14":
        episodes = [replace(e, state=to_aloha14(e.state, e.state_names, hands),
                            action=to_aloha14(e.action, e.action_names, hands),
                            state_names=list(ALOHA14_NAMES), action_names=list(ALOHA14_NAMES))
                    for e in episodes]
    lengths = [len(e) for e in episodes]
    length = target_length(lengths, episode_len)
    notes = _length_notes(lengths, length)
    missing = [h for h in HANDS if h not in hands] if layout == "aloha14" else []
    if missing:
        notes.append(f"aloha14: no {' or '.join(missing)} glove, its 7 dimensions are zeros "
                     "(attribute missing_hands)")
    total = sum(length or len(e) for e in episodes)
    out = Path(out)
    depth = getattr(mapping, "depth", False)
    per_step = max(1, len(episodes[0].frames) * (2 if depth else 1))
    with atomic_output(out, force=force, directory=True, inputs=paths,
                       kind="aloha") as tmp, \
            progress(total * per_step, f"aloha {out.name}", show_progress) as bar:
        manifest = {"layout": layout, "hands": hands, "act_lookback_shift": int(act_lookback),
                    "state_names": episodes[0].state_names, "action_names": episodes[0].action_names,
                    "action_source": episodes[0].action_source, "fps": episodes[0].rate_hz,
                    "cameras": {camera_key(c): c for c in episodes[0].frames},
                    "depth_scale": {camera_key(c): v for c, v in episodes[0].depth_scales.items()},
                    "episodes": []}
        for i, steps in enumerate(episodes):
            _write_episode(tmp / f"episode_{i}.hdf5", steps, length, mapping, layout, hands,
                           act_lookback, bar)
            manifest["episodes"].append({"file": f"episode_{i}.hdf5", "source": str(steps.path),
                                         "uuid": steps.uuid, "length": len(steps)})
        (tmp / "steps.json").write_text(json.dumps(manifest, indent=2))
    return ExportResult(out, len(episodes), total, tree_bytes(out), clock.seconds, skipped,
                        sum(e.dropped for e in episodes), damaged, notes)


def _length_notes(lengths: list[int], length: int | None) -> list[str]:
    if length is None:
        if len(set(lengths)) > 1:
            return [f"episode lengths differ ({min(lengths)}..{max(lengths)} steps): ACT's "
                    "get_norm_stats needs one length (--episode-len max or min)"]
        return []
    padded = [n for n in lengths if n < length]
    cut = [n for n in lengths if n > length]
    notes = []
    if padded:
        notes.append(f"{len(padded)} episode{'s' if len(padded) > 1 else ''} padded to {length} "
                     f"steps by repeating the last step ({sum(length - n for n in padded)} steps "
                     "added; attribute original_length)")
    if cut:
        notes.append(f"{len(cut)} episode{'s' if len(cut) > 1 else ''} cut to {length} steps "
                     f"({sum(n - length for n in cut)} steps left out)")
    return notes


def _write_episode(path: Path, steps: EpisodeSteps, length: int | None, mapping: SignalMapping,
                   layout: str, hands: dict[str, str], act_lookback: bool, bar) -> None:
    n = len(steps)
    t = length or n
    rows = np.minimum(np.arange(t), n - 1)  # pad: repeat the last step; cut: drop the rest
    action = steps.action[np.minimum(np.arange(n) + 1, n - 1)] if act_lookback else steps.action
    with h5py.File(path, "w") as f, open_episode(steps.path) as ep:
        f.attrs.update(sim=False, compress=False, source=str(steps.path), uuid=steps.uuid,
                       task=steps.task, outcome=steps.outcome, original_length=n, layout=layout,
                       act_lookback_shift=int(act_lookback), hands=json.dumps(hands),
                       missing_hands=json.dumps([h for h in HANDS if h not in hands]
                                                if layout == "aloha14" else []))
        obs = f.create_group("observations")
        obs.create_dataset("qpos", data=steps.state[rows])
        obs.create_dataset("qvel", data=velocity(steps.state, steps.t_s)[rows])
        f.create_dataset("action", data=action[rows].astype(np.float32))
        images = obs.create_group("images")
        for cam in steps.frames:
            h, w = (mapping.image_size[1], mapping.image_size[0]) if mapping.image_size \
                else steps.image_shapes[cam][:2]
            ds = images.create_dataset(camera_key(cam), (t, h, w, 3), np.uint8, chunks=(1, h, w, 3))
            for part in batches(t):
                ds[part] = read_images(ep, steps, cam, rows[part], mapping.image_size)
                bar.update(part.stop - part.start)
        if steps.depth_frames:
            group = obs.create_group("depth")
            for cam in steps.depth_frames:
                h, w = (mapping.image_size[1], mapping.image_size[0]) if mapping.image_size \
                    else steps.depth_shapes[cam][:2]
                ds = group.create_dataset(camera_key(cam), (t, h, w), np.uint16, chunks=(1, h, w))
                ds.attrs.update(depth_scale=steps.depth_scales[cam], stream=steps.depth_streams[cam])
                for part in batches(t):
                    ds[part] = read_depth(ep, steps, cam, rows[part], mapping.image_size)
                    bar.update(part.stop - part.start)
        if not steps.frames:
            bar.update(t)
