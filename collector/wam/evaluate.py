"""Evaluation on held-out episodes: the model against simple baselines, per horizon.

Methods compared on the same windows:

* ``model (preview)``: future actions unknown, the model predicts them (what the live preview shows);
* ``model (true actions)``: the recorded future actions given;
* ``model (shuffled actions)``: another window's future actions given; the gap to the row above
  shows how much the model uses its action input;
* ``copy-last``: the last frame repeated; ``linear``: the last frame-to-frame change extrapolated;
  for actions ``hold-last`` (the last action repeated) and ``linear`` extrapolation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from collector.wam.checkpoint import Checkpoint
from collector.wam.data import WindowSet, find_episodes, load_clips
from collector.wam.metrics import masked_mse, moving_mask, psnr, ssim
from collector.wam.model import WorldActionModel
from collector.wam.train import pick_device, to_tensors

#: Horizons (seconds) shown in the table; the JSON report has every step.
TABLE_HORIZONS = (0.25, 0.5, 1.0, 1.5, 2.0)

MODEL_PREVIEW = "model (preview)"
MODEL_TRUE = "model (true actions)"
MODEL_SHUFFLED = "model (shuffled actions)"
COPY_LAST = "copy-last"
LINEAR = "linear"
HOLD_LAST = "hold-last"
FRAME_METHODS = (MODEL_PREVIEW, MODEL_TRUE, MODEL_SHUFFLED, COPY_LAST, LINEAR)
ACTION_METHODS = (MODEL_PREVIEW, HOLD_LAST, LINEAR)


@dataclass
class _Sums:
    """Running sums per (metric, method), each a (K,) tensor over horizons."""

    values: dict = field(default_factory=dict)

    def add(self, key: tuple, per_step: torch.Tensor) -> None:
        """``per_step`` (K,) summed over the batch."""
        current = self.values.get(key)
        self.values[key] = per_step.double() if current is None else current + per_step.double()


def evaluate(checkpoint_path: str | Path, data: str | Path | Sequence[str | Path], *,
             max_windows: int = 2000, batch_size: int = 32, device: str = "auto", seed: int = 0,
             progress: Callable[[int, int], None] | None = None) -> dict:
    """Score a checkpoint on the episodes under ``data`` (a folder, a file or a list of files).

    Returns a report: ``{"horizons_s", "windows", "episodes", "frames": {metric: {method:
    [per step]}}, "actions": {method: [per step]}, "shuffle_gap_db": {...}}``. Action errors are
    mean squared errors in normalized units (the training set's per-channel std).
    """
    checkpoint = Checkpoint.load(checkpoint_path)
    config = checkpoint.config
    torch_device = pick_device(device)
    model: WorldActionModel = checkpoint.build_model().to(torch_device)
    paths = find_episodes(data) if isinstance(data, (str, Path)) else [Path(p) for p in data]
    clips = load_clips(paths, config.image_size, camera=checkpoint.camera,
                       action_fields=checkpoint.action_fields)
    if not clips:
        raise ValueError(f"no readable episodes in {data}")
    windows = WindowSet(clips, config.context, config.horizon, config.dt_s, checkpoint.normalizer)
    if not len(windows):
        raise ValueError("the episodes are too short for one window")
    items = np.linspace(0, len(windows) - 1, min(max_windows, len(windows))).astype(int)
    # Shuffled actions come from a window of another episode where there is one.
    rng = np.random.default_rng(seed)
    clip_ids = windows.clip_of(range(len(windows)))
    donors = np.array([_donor(rng, clip_ids, clip_ids[i]) for i in items])

    k = config.horizon
    sums = _Sums()
    n = 0
    with torch.no_grad():
        for start in range(0, len(items), batch_size):
            chunk, donor_chunk = items[start:start + batch_size], donors[start:start + batch_size]
            past, past_a, future, future_a = to_tensors(*windows.batch(chunk), config.context, torch_device)
            _, _, _, other_a = to_tensors(*windows.batch(donor_chunk), config.context, torch_device)
            preds = {MODEL_PREVIEW: model(past, past_a), MODEL_TRUE: model(past, past_a, future_a),
                     MODEL_SHUFFLED: model(past, past_a, other_a)}
            last, before = past[:, -1], past[:, -2]
            steps = torch.arange(1, k + 1, device=torch_device, dtype=torch.float32).view(1, k, 1, 1, 1)
            frames = {name: p[0] for name, p in preds.items()}
            frames[COPY_LAST] = last.unsqueeze(1).expand_as(future)
            frames[LINEAR] = (last.unsqueeze(1) + steps * (last - before).unsqueeze(1)).clamp(0, 1)
            _score_frames(sums, frames, future, last)
            steps_a = steps.view(1, k, 1)
            actions = {MODEL_PREVIEW: preds[MODEL_PREVIEW][1],
                       HOLD_LAST: past_a[:, -1:].expand_as(future_a),
                       LINEAR: past_a[:, -1:] + steps_a * (past_a[:, -1:] - past_a[:, -2:-1])}
            for name, pred in actions.items():
                sums.add(("action", name), (pred - future_a).pow(2).mean(2).sum(0))
            n += len(chunk)
            if progress:
                progress(n, len(items))
    return _report(sums, n, config.horizons_s, len(clips))


def _donor(rng: np.random.Generator, clip_ids: np.ndarray, own: int) -> int:
    others = np.flatnonzero(clip_ids != own)
    pool = others if others.size else np.arange(clip_ids.size)
    return int(rng.choice(pool))


def _score_frames(sums: _Sums, frames: dict[str, torch.Tensor], future: torch.Tensor,
                  last: torch.Tensor) -> None:
    b, k = future.shape[:2]
    flat_target = future.reshape(b * k, *future.shape[2:])
    flat_last = last.unsqueeze(1).expand_as(future).reshape(b * k, *future.shape[2:])
    mask = moving_mask(flat_target, flat_last)
    for name, pred in frames.items():
        flat = pred.reshape(b * k, *pred.shape[2:])
        sums.add(("psnr", name), psnr(flat, flat_target).view(b, k).sum(0))
        sums.add(("ssim", name), ssim(flat, flat_target).view(b, k).sum(0))
        # Moving-pixel PSNR pools the squared error of all moving pixels at a horizon.
        sse, count = masked_mse(flat, flat_target, mask)
        sums.add(("moving_sse", name), sse.view(b, k).sum(0))
        sums.add(("moving_count", name), count.view(b, k).sum(0))


def _report(sums: _Sums, n: int, horizons: list[float], episodes: int) -> dict:
    v = sums.values
    frames: dict[str, dict[str, list[float]]] = {"psnr": {}, "ssim": {}, "moving_psnr": {}}
    for name in FRAME_METHODS:
        frames["psnr"][name] = (v["psnr", name] / n).tolist()
        frames["ssim"][name] = (v["ssim", name] / n).tolist()
        mse = v["moving_sse", name] / v["moving_count", name].clamp(min=1)
        frames["moving_psnr"][name] = (10 * torch.log10(1 / (mse + 1e-10))).tolist()
    actions = {name: (v["action", name] / n).tolist() for name in ACTION_METHODS}
    gap = {metric: [t - s for t, s in zip(frames[metric][MODEL_TRUE], frames[metric][MODEL_SHUFFLED])]
           for metric in ("psnr", "moving_psnr")}
    return {"horizons_s": horizons, "windows": n, "episodes": episodes, "frames": frames,
            "actions": actions, "shuffle_gap_db": gap}


def format_report(report: dict, horizons: Sequence[float] = TABLE_HORIZONS) -> str:
    """The report as fixed-width tables, one block per metric, a column per horizon."""
    all_h = report["horizons_s"]
    cols = [min(range(len(all_h)), key=lambda i: abs(all_h[i] - h)) for h in horizons]
    cols = list(dict.fromkeys(cols))
    head = f"{'':26}" + "".join(f"{'+' + format(all_h[i], 'g') + ' s':>9}" for i in cols)
    lines = [f"{report['windows']} windows from {report['episodes']} held-out episodes"]

    def block(title: str, rows: dict[str, list[float]], fmt: str) -> None:
        lines.extend(["", title, head])
        for name, values in rows.items():
            lines.append(f"{name:26}" + "".join(format(values[i], fmt) for i in cols))

    f = report["frames"]
    block("PSNR, whole frame (dB, higher is better)", f["psnr"], ">9.2f")
    block("PSNR, moving pixels only (dB)", f["moving_psnr"], ">9.2f")
    block("SSIM", f["ssim"], ">9.4f")
    block("action MSE (normalized units, lower is better)", report["actions"], ">9.4f")
    block("true minus shuffled actions (dB)", {"PSNR": report["shuffle_gap_db"]["psnr"],
                                               "moving-pixel PSNR": report["shuffle_gap_db"]["moving_psnr"]},
          ">+9.2f")
    return "\n".join(lines)
