"""Evaluation on held-out episodes: the model against simple baselines, per horizon.

Methods compared on the same windows:

* ``model (preview)``: future actions unknown, the model predicts them (what the live preview shows);
* ``model (true actions)``: the recorded future actions given;
* ``model (shuffled actions)``: another window's future actions given; the gap to the row above
  shows how much the model uses its action input;
* ``copy-last``: the last frame repeated (the still frame); ``constant velocity``: the last
  frame-to-frame change extrapolated, clipped to the pixel range; for actions ``hold-last`` (the
  last action repeated) and ``linear`` extrapolation.

Frames are scored on the whole frame (PSNR, SSIM) and on two masks: *moving* pixels (where the
truth differs from the last frame) and *changed* pixels (where the truth **or the prediction**
differs from it). The moving mask alone never sees damage a model does to the static scene; the
changed mask and the whole frame do. Each horizon gets a verdict: is the preview better than the
still frame on the whole frame? (``better than the still frame at +1 s: no, -5.0 dB``.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from collector.wam.checkpoint import Checkpoint
from collector.wam.data import Clip, WindowSet, find_episodes, load_clips
from collector.wam.metrics import changed_mask, masked_mse, moving_mask, psnr, ssim
from collector.wam.model import WorldActionModel
from collector.wam.train import pick_device, to_tensors

#: Horizons (seconds) shown in the table; the JSON report has every step.
TABLE_HORIZONS = (0.25, 0.5, 1.0, 1.5, 2.0)

MODEL_PREVIEW = "model (preview)"
MODEL_TRUE = "model (true actions)"
MODEL_SHUFFLED = "model (shuffled actions)"
COPY_LAST = "copy-last"
CONSTANT_VELOCITY = "constant velocity"
LINEAR = "linear"
HOLD_LAST = "hold-last"
FRAME_METHODS = (MODEL_PREVIEW, MODEL_TRUE, MODEL_SHUFFLED, COPY_LAST, CONSTANT_VELOCITY)
ACTION_METHODS = (MODEL_PREVIEW, HOLD_LAST, LINEAR)
#: The preview counts as better than the still frame only by at least this much (the verdict
#: prints one decimal: "+0.0 dB" is never a "yes").
VERDICT_MARGIN_DB = 0.05
#: Masked PSNRs in the report: pixels where the truth moves, where truth or prediction changes.
MASKS = ("moving", "changed")


@dataclass
class ScoreSums:
    """Running sums per (metric, method), each a (K,) tensor over horizons (what
    :func:`score_frames` adds to and :func:`report_from_sums` reads)."""

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
    [per step]}}, "actions": {method: [per step]}, "share_better_than_still": {method: [per
    step]}, "shuffle_gap_db": {...}, "verdicts": [...]}`` (metrics ``psnr``, ``ssim``,
    ``moving_psnr``, ``changed_psnr``; verdicts as :func:`verdicts`). Action errors are mean
    squared errors in normalized units (the training set's per-channel std).
    """
    checkpoint = Checkpoint.load(checkpoint_path)
    paths = find_episodes(data) if isinstance(data, (str, Path)) else [Path(p) for p in data]
    clips = load_clips(paths, checkpoint.config.image_size, camera=checkpoint.camera,
                       action_fields=checkpoint.action_fields)
    if not clips:
        raise ValueError(f"no readable episodes in {data}")
    return evaluate_clips(checkpoint, clips, max_windows=max_windows, batch_size=batch_size,
                          device=device, seed=seed, progress=progress)


def evaluate_clips(checkpoint: Checkpoint, clips: Sequence[Clip], *, max_windows: int = 2000,
                   batch_size: int = 32, device: str = "auto", seed: int = 0,
                   progress: Callable[[int, int], None] | None = None) -> dict:
    """:func:`evaluate` on clips already in memory (e.g. rendered by the simulator)."""
    config = checkpoint.config
    torch_device = pick_device(device)
    model: WorldActionModel = checkpoint.build_model().to(torch_device)
    windows = WindowSet(clips, config.context, config.horizon, config.dt_s, checkpoint.normalizer)
    if not len(windows):
        raise ValueError("the episodes are too short for one window")
    items = np.linspace(0, len(windows) - 1, min(max_windows, len(windows))).astype(int)
    # Shuffled actions come from a window of another episode where there is one.
    rng = np.random.default_rng(seed)
    clip_ids = windows.clip_of(range(len(windows)))
    donors = np.array([_donor(rng, clip_ids, clip_ids[i]) for i in items])

    k = config.horizon
    sums = ScoreSums()
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
            frames[CONSTANT_VELOCITY] = (last.unsqueeze(1) + steps * (last - before).unsqueeze(1)).clamp(0, 1)
            score_frames(sums, frames, future, last)
            steps_a = steps.view(1, k, 1)
            actions = {MODEL_PREVIEW: preds[MODEL_PREVIEW][1],
                       HOLD_LAST: past_a[:, -1:].expand_as(future_a),
                       LINEAR: past_a[:, -1:] + steps_a * (past_a[:, -1:] - past_a[:, -2:-1])}
            for name, pred in actions.items():
                sums.add(("action", name), (pred - future_a).pow(2).mean(2).sum(0))
            n += len(chunk)
            if progress:
                progress(n, len(items))
    return report_from_sums(sums, n, config.horizons_s, len(clips))


def _donor(rng: np.random.Generator, clip_ids: np.ndarray, own: int) -> int:
    others = np.flatnonzero(clip_ids != own)
    pool = others if others.size else np.arange(clip_ids.size)
    return int(rng.choice(pool))


def score_frames(sums: ScoreSums, frames: dict[str, torch.Tensor], future: torch.Tensor,
                 last: torch.Tensor) -> None:
    """Add one batch's frame scores to ``sums``: ``frames`` maps a method to its predictions
    (B, K, 3, S, S), ``future`` is the truth, ``last`` (B, 3, S, S) the last past frame. The
    verdicts need ``COPY_LAST`` and ``MODEL_PREVIEW`` among them.

    The *changed* mask is the same for every method: pixels where the truth or the preview
    (``MODEL_PREVIEW``) changes, so copy-last is scored on the pixels the preview repainted too."""
    for name, pred in frames.items():
        if pred.shape != future.shape:
            raise ValueError(f"{name}: predictions of shape {tuple(pred.shape)}, the truth is {tuple(future.shape)}")
        if not torch.isfinite(pred).all():
            raise ValueError(f"{name}: predictions are not finite (NaN or inf)")
    b, k = future.shape[:2]
    flat_target = future.reshape(b * k, *future.shape[2:])
    flat_last = last.unsqueeze(1).expand_as(future).reshape(b * k, *future.shape[2:])
    moving = moving_mask(flat_target, flat_last)
    preview = frames.get(MODEL_PREVIEW)
    changed = moving if preview is None else \
        changed_mask(preview.reshape(b * k, *preview.shape[2:]), flat_target, flat_last)
    still_psnr = psnr(flat_last, flat_target)
    for name, pred in frames.items():
        flat = pred.reshape(b * k, *pred.shape[2:])
        whole = psnr(flat, flat_target)
        sums.add(("psnr", name), whole.view(b, k).sum(0))
        sums.add(("ssim", name), ssim(flat, flat_target).view(b, k).sum(0))
        sums.add(("wins", name), (whole > still_psnr).view(b, k).sum(0))
        # Masked PSNRs pool the squared error of all masked pixels at a horizon.
        for mask_name, mask in (("moving", moving), ("changed", changed)):
            sse, count = masked_mse(flat, flat_target, mask)
            sums.add((f"{mask_name}_sse", name), sse.view(b, k).sum(0))
            sums.add((f"{mask_name}_count", name), count.view(b, k).sum(0))


def report_from_sums(sums: ScoreSums, n: int, horizons: list[float], episodes: int,
                     verdict_horizons: Sequence[float] = TABLE_HORIZONS) -> dict:
    """The report :func:`evaluate` returns, from the sums of ``n`` windows."""
    v = sums.values
    methods = [name for name in FRAME_METHODS if ("psnr", name) in v]
    frames: dict[str, dict[str, list[float]]] = {"psnr": {}, "ssim": {}, "moving_psnr": {},
                                                 "changed_psnr": {}}
    wins = {}
    for name in methods:
        frames["psnr"][name] = (v["psnr", name] / n).tolist()
        frames["ssim"][name] = (v["ssim", name] / n).tolist()
        for mask_name in MASKS:
            mse = v[f"{mask_name}_sse", name] / v[f"{mask_name}_count", name].clamp(min=1)
            frames[f"{mask_name}_psnr"][name] = (10 * torch.log10(1 / (mse + 1e-10))).tolist()
        wins[name] = (v["wins", name] / n).tolist()
    actions = {name: (v["action", name] / n).tolist() for name in ACTION_METHODS if ("action", name) in v}
    report = {"horizons_s": list(horizons), "windows": n, "episodes": episodes, "frames": frames,
              "actions": actions, "share_better_than_still": wins}
    if MODEL_TRUE in methods and MODEL_SHUFFLED in methods:
        report["shuffle_gap_db"] = {
            metric: [t - s for t, s in zip(frames[metric][MODEL_TRUE], frames[metric][MODEL_SHUFFLED])]
            for metric in ("psnr", "moving_psnr", "changed_psnr")}
    report["verdicts"] = verdicts(report, verdict_horizons)
    return report


def _columns(all_h: Sequence[float], horizons: Sequence[float]) -> list[int]:
    cols = [min(range(len(all_h)), key=lambda i: abs(all_h[i] - h)) for h in horizons]
    return list(dict.fromkeys(cols))


def verdicts(report: dict, horizons: Sequence[float] = TABLE_HORIZONS,
             method: str = MODEL_PREVIEW) -> list[dict]:
    """Per horizon: is ``method`` better than the still frame (copy-last) on the whole frame?

    Each entry: ``horizon_s``, ``better`` (bool), ``db`` (whole-frame PSNR over copy-last),
    ``changed_db`` (the same where truth or prediction changes), ``share`` (of windows better).
    """
    f = report["frames"]
    out = []
    for i in _columns(report["horizons_s"], horizons):
        db = f["psnr"][method][i] - f["psnr"][COPY_LAST][i]
        out.append({"horizon_s": report["horizons_s"][i], "better": bool(db >= VERDICT_MARGIN_DB), "db": db,
                    "changed_db": f["changed_psnr"][method][i] - f["changed_psnr"][COPY_LAST][i],
                    "share": report["share_better_than_still"][method][i]})
    return out


def verdict_line(verdict: dict) -> str:
    """``better than the still frame at +1 s: no, -5.0 dB (...)``."""
    return (f"better than the still frame at +{verdict['horizon_s']:g} s: "
            f"{'yes' if verdict['better'] else 'no'}, {verdict['db']:+.1f} dB "
            f"(where anything changes {verdict['changed_db']:+.1f} dB; "
            f"better in {100 * verdict['share']:.0f} % of windows)")


def format_report(report: dict, horizons: Sequence[float] = TABLE_HORIZONS) -> str:
    """The report as fixed-width tables, one block per metric, a column per horizon."""
    all_h = report["horizons_s"]
    cols = _columns(all_h, horizons)
    head = f"{'':26}" + "".join(f"{'+' + format(all_h[i], 'g') + ' s':>9}" for i in cols)
    lines = [f"{report['windows']} windows from {report['episodes']} held-out episodes"]

    def block(title: str, rows: dict[str, list[float]], fmt: str) -> None:
        lines.extend(["", title, head])
        for name, values in rows.items():
            lines.append(f"{name:26}" + "".join(format(values[i], fmt) for i in cols))

    f = report["frames"]
    block("PSNR, whole frame (dB, higher is better)", f["psnr"], ">9.2f")
    block("PSNR where the truth or the preview changes (dB)", f["changed_psnr"], ">9.2f")
    block("PSNR, moving pixels only (dB; blind to damage to the still scene)", f["moving_psnr"], ">9.2f")
    block("SSIM", f["ssim"], ">9.4f")
    block("share of windows better than the still frame (whole-frame PSNR)",
          report["share_better_than_still"], ">9.0%")
    if report["actions"]:
        block("action MSE (normalized units, lower is better)", report["actions"], ">9.4f")
    if "shuffle_gap_db" in report:
        gap = report["shuffle_gap_db"]
        block("true minus shuffled actions (dB)", {"PSNR": gap["psnr"], "changed-pixel PSNR": gap["changed_psnr"],
                                                   "moving-pixel PSNR": gap["moving_psnr"]}, ">+9.2f")
    lines.append("")
    lines.extend(verdict_line(v) for v in verdicts(report, horizons))
    return "\n".join(lines)
