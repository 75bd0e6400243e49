"""Training loop: random windows of the training episodes, validation on held-out episodes.

The loop saves the checkpoint at every validation and at the end, so a run stopped by its time
limit (or by Ctrl-C) still leaves a usable model.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from collector.wam.checkpoint import Checkpoint
from collector.wam.data import DEFAULT_ACTION_FIELDS, Normalizer, WindowSet, find_episodes, load_clips, split_by_episode
from collector.wam.metrics import psnr
from collector.wam.model import LossWeights, WamConfig, WorldActionModel, parameter_count, preview_loss

log = logging.getLogger(__name__)


@dataclass
class TrainOptions:
    steps: int = 3000
    batch_size: int = 16
    #: Future steps decoded into frames per batch (a random subset; all steps are trained over time).
    decoded_steps: int = 4
    lr: float = 1e-3
    weight_decay: float = 0.01
    val_fraction: float = 0.2
    val_every: int = 250
    #: Validation windows (a fixed, evenly spaced subset of the held-out episodes').
    val_windows: int = 256
    #: Stop after this many minutes (0: no limit), saving what was learned.
    max_minutes: float = 0.0
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    camera: str | None = None
    action_fields: tuple[str, ...] = DEFAULT_ACTION_FIELDS
    #: The loss terms (:class:`~collector.wam.model.LossWeights`; the defaults are the shipped
    #: checkpoint's): weight of the mean composite mask (keeps the static scene an exact copy)...
    mask_penalty: float = 0.005
    #: ...extra L1 weight on pixels that change (sharper moving parts, but halos where the
    #: model is unsure, which whole-frame PSNR punishes; 0 for plain L1)...
    moving_weight: float = 1.0
    #: ...and squared error, what PSNR scores.
    squared_weight: float = 2.0
    #: Start from this checkpoint's weights, config and normalizer (fine-tuning, longer runs).
    init: str | None = None


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def to_tensors(frames: np.ndarray, actions: np.ndarray, context: int, device: torch.device):
    """A numpy batch -> (past frames, past actions, future frames, future actions) tensors."""
    x = torch.from_numpy(frames).to(device).permute(0, 1, 4, 2, 3).float().div_(255)
    a = torch.from_numpy(actions).to(device)
    return x[:, :context], a[:, :context], x[:, context:], a[:, context:]


def train(data_dir: str | Path, out: str | Path, config: WamConfig | None = None,
          options: TrainOptions | None = None,
          say: Callable[[str], None] = print) -> Checkpoint:
    """Train on the episodes under ``data_dir`` and write the checkpoint to ``out``."""
    options = options or TrainOptions()
    paths = find_episodes(data_dir)
    train_paths, val_paths = split_by_episode(paths, options.val_fraction, options.seed)
    say(f"{len(paths)} episodes: {len(train_paths)} for training, {len(val_paths)} held out")
    return train_on(train_paths, val_paths, out, config, options, say, where=str(data_dir))


def train_on(train_paths: Sequence[str | Path], val_paths: Sequence[str | Path], out: str | Path,
             config: WamConfig | None = None, options: TrainOptions | None = None,
             say: Callable[[str], None] = print, *, stop: threading.Event | None = None,
             where: str = "the given episodes") -> Checkpoint:
    """Train on ``train_paths``, validate on ``val_paths`` (whole episodes held out) and write
    the checkpoint to ``out``. Starting from ``options.init``, the starting model is validated
    first on the same windows (``report["initial_validation"]``), so the two compare fairly.
    ``stop`` set: finish the step, validate, save and return."""
    options = options or TrainOptions()
    config = config or WamConfig()
    start = Checkpoint.load(options.init) if options.init else None
    if start is not None:  # its weights fix the shapes: its config and action fields
        config = start.config
        options = replace(options, action_fields=tuple(start.action_fields))
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    if options.threads:
        torch.set_num_threads(options.threads)
    device = pick_device(options.device)
    started = time.monotonic()
    clips = load_clips([*train_paths, *val_paths], config.image_size, camera=options.camera,
                       action_fields=options.action_fields)
    by_path = {c.path: c for c in clips}
    train_clips = [by_path[str(p)] for p in train_paths if str(p) in by_path]
    val_clips = [by_path[str(p)] for p in val_paths if str(p) in by_path]
    if not train_clips or not val_clips:
        raise ValueError(f"need readable training and held-out episodes in {where}")
    config.action_dim = train_clips[0].actions.shape[1]
    normalizer = start.normalizer if start is not None else Normalizer.fit(train_clips)
    train_set = WindowSet(train_clips, config.context, config.horizon, config.dt_s, normalizer)
    val_set = WindowSet(val_clips, config.context, config.horizon, config.dt_s, normalizer)
    if not len(train_set) or not len(val_set):
        raise ValueError(f"episodes too short for {config.context} past and {config.horizon} "
                         f"future steps of {config.dt_s} s")
    say(f"loaded in {time.monotonic() - started:.0f} s: {len(train_set)} training windows, "
        f"{len(val_set)} held-out windows")
    val_items = np.linspace(0, len(val_set) - 1, min(options.val_windows, len(val_set))).astype(int)

    model = (start.build_model() if start is not None else WorldActionModel(config)).to(device)
    initial = None
    if start is not None:
        say(f"starting from {options.init} ({start.report.get('steps', '?')} steps)")
        initial = validate(model, val_set, val_items, config, device)
    say(f"model: {parameter_count(model) / 1e6:.2f} M parameters on {device}")
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.lr,
                                  weight_decay=options.weight_decay)
    warmup = min(200, options.steps // 10 + 1)
    limit_s = options.max_minutes * 60 if options.max_minutes else float("inf")
    # Steps of every earlier run this one continues (the chain of --init checkpoints).
    previous_steps = (int(start.report.get("steps", 0)) + int(start.report.get("previous_steps", 0))
                      if start is not None else 0)
    checkpoint = Checkpoint(config, model.state_dict(), normalizer, tuple(options.action_fields),
                            options.camera, {"train_episodes": [str(p) for p in train_paths],
                                             "val_episodes": [str(p) for p in val_paths],
                                             "initialized_from": options.init,
                                             "previous_steps": previous_steps})
    if initial is not None:
        checkpoint.report["initial_validation"] = initial
    weights = LossWeights(moving=options.moving_weight, squared=options.squared_weight, mask=options.mask_penalty)
    loop_started = time.monotonic()
    recent: list[float] = []
    step = 0
    try:
        for step in range(1, options.steps + 1):
            # Cosine decay over the run's progress: steps done or time used, whichever is further,
            # so a run cut by --minutes still ends at a low learning rate.
            progress = min(1.0, max(step / options.steps, (time.monotonic() - loop_started) / limit_s))
            for group in optimizer.param_groups:
                group["lr"] = options.lr * min(1.0, step / warmup) * 0.5 * (1 + math.cos(math.pi * progress))
            loss = train_step(model, optimizer, train_set, rng.integers(0, len(train_set), options.batch_size),
                              device, weights, options.decoded_steps)
            recent.append(loss.item())
            elapsed = time.monotonic() - loop_started
            over_time = (options.max_minutes and elapsed > options.max_minutes * 60) or \
                (stop is not None and stop.is_set())
            if step % options.val_every == 0 or step == options.steps or over_time:
                report = validate(model, val_set, val_items, config, device)
                say(f"step {step}/{options.steps}  loss {np.mean(recent):.4f}  "
                    f"{elapsed / step:.2f} s/step  held-out PSNR +1 s: model {report['psnr_1s']:.2f} dB "
                    f"(copy-last {report['psnr_1s_copy_last']:.2f} dB)")
                recent.clear()
                checkpoint.report.update(steps=step, minutes=round(elapsed / 60, 1), validation=report)
                checkpoint.state_dict = model.state_dict()
                checkpoint.save(out)
            if over_time:
                say("stopping on request" if stop is not None and stop.is_set()
                    else f"stopping at the {options.max_minutes:g} min limit")
                break
    except KeyboardInterrupt:
        say(f"interrupted at step {step}; saving")
        checkpoint.report.update(steps=step, interrupted=True)
        checkpoint.state_dict = model.state_dict()
        checkpoint.save(out)
    return checkpoint


def train_step(model: WorldActionModel, optimizer: torch.optim.Optimizer, windows: WindowSet,
               items: Sequence[int], device: torch.device, weights: LossWeights,
               decoded_steps: int = 4) -> torch.Tensor:
    """One optimisation step on the windows ``items``: future actions hidden from a random share
    of them (``action_mask_p``), ``decoded_steps`` random future steps decoded, the gradient of
    :func:`~collector.wam.model.preview_loss` clipped to norm 1. Returns the loss."""
    config = model.config
    model.train()
    past, past_a, future, future_a = to_tensors(*windows.batch(items), config.context, device)
    known = torch.rand(len(items), device=device) >= config.action_mask_p
    steps = torch.randperm(config.horizon, device=device)[:decoded_steps]
    pred, pred_a, masks = model(past, past_a, future_a, known, steps)
    loss = preview_loss(pred, future[:, steps], past[:, -1], pred_a, future_a, masks, weights)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    optimizer.step()
    return loss.detach()


@torch.no_grad()
def validate(model: WorldActionModel, windows: WindowSet, items: Sequence[int], config: WamConfig,
             device: torch.device, batch_size: int = 32,
             between_batches: Callable[[], None] | None = None) -> dict[str, float]:
    """PSNR at +1 s of the preview mode (future actions unknown) against copy-last.
    ``between_batches`` is called before each batch (the station fine-tune waits there while an
    episode records)."""
    model.eval()
    k1 = min(config.horizon, max(1, round(1.0 / config.dt_s))) - 1
    model_psnr, copy_psnr = [], []
    for start in range(0, len(items), batch_size):
        if between_batches is not None:
            between_batches()
        chunk = items[start:start + batch_size]
        past, past_a, future, _ = to_tensors(*windows.batch(chunk), config.context, device)
        pred, _, _ = model(past, past_a)
        model_psnr.append(psnr(pred[:, k1], future[:, k1]))
        copy_psnr.append(psnr(past[:, -1], future[:, k1]))
    return {"psnr_1s": float(torch.cat(model_psnr).mean()),
            "psnr_1s_copy_last": float(torch.cat(copy_psnr).mean())}
