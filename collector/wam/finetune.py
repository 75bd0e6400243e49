"""Fine-tuning the running preview on one station's episodes, without making it worse.

The background trainer (:mod:`collector.wam.trainer_service`) calls :func:`fine_tune` after each
saved episode. Three lessons from a fine-tune that lowered the shipped model's skill on a station
(+1.75 -> +0.68 dB at +1 s over the still frame) are built in:

* **The same objective.** It optimises the loss the starting checkpoint was trained with
  (:class:`~collector.wam.model.LossWeights` from its report) on the same windows, frame size,
  action normalizer and horizons; the old loop weighted moving pixels 4x with no squared-error
  term, which trades whole-frame PSNR (the skill) for sharper moving parts.
* **Small steps on few parameters.** A model that converged at a low learning rate on batches of
  64 is knocked out of its basin by ``3e-4`` on batches of 16. The default here is ``1e-4`` with
  the encoder frozen (``trainable = "decoder"``: the transformer, the decoder and the action
  paths learn the station; the frame features stay those learned across every view).
* **Early stopping on its own episodes.** Every ``select_every`` steps the model is scored on the
  *selection* episodes (neither trained on nor held out); the best state, the starting one
  included, is kept. The *held-out* episodes are used once, at the end, to score the kept state
  and the running model for the swap: picking the state on them would make the swap's comparison
  optimistic.

The kept state is saved (int8, as every checkpoint) and scored **as it will run**, after the
int8 round trip.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from collector.wam.registry import skill_db

if TYPE_CHECKING:  # torch is imported when a fine-tune runs: the trainer's options need none
    import torch

    from collector.wam.checkpoint import Checkpoint

#: What ``trainable`` may name: every parameter, or all but the frame encoder.
TRAINABLE = ("all", "decoder")


@dataclass
class FineTuneOptions:
    """How one fine-tune runs (the trainer's options pass through)."""

    #: At most this many steps of ``batch_size`` windows...
    steps: int = 300
    batch_size: int = 16
    #: ...or fewer when this many minutes have passed (0: no limit).
    max_minutes: float = 10.0
    lr: float = 1e-4
    weight_decay: float = 0.01
    #: ``decoder``: the frame encoder stays frozen; ``all``: every weight learns.
    trainable: str = "decoder"
    #: Score on the selection episodes every this many steps...
    select_every: int = 25
    #: ...and stop after this many scores in a row without a better one.
    patience: int = 4
    #: Windows scored per selection (evenly spaced over the selection episodes) and at the end
    #: on the held-out episodes.
    select_windows: int = 128
    val_windows: int = 256
    #: ``auto``: CUDA when torch sees it.
    device: str = "auto"

    def validate(self) -> None:
        if self.trainable not in TRAINABLE:
            raise ValueError(f"trainable must be one of {', '.join(TRAINABLE)}, got {self.trainable!r}")
        if min(self.steps, self.batch_size, self.select_every, self.patience) < 1:
            raise ValueError("steps, batch_size, select_every and patience must be >= 1")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


def fine_tune_options(options: FineTuneOptions) -> FineTuneOptions:
    """Just the fine-tune's fields of ``options`` (e.g. of the trainer's options, which extend them)."""
    return FineTuneOptions(**{f.name: getattr(options, f.name) for f in fields(FineTuneOptions)})


class FineTuneStopped(Exception):
    """:func:`fine_tune` was asked to stop (its ``stop`` event): nothing was kept."""


@dataclass
class FineTuneResult:
    """What one fine-tune did; ``checkpoint`` is the kept state as it runs (after the int8 round
    trip), its report holding the figures below (``None`` from a worker process, which saved it:
    :mod:`collector.wam.finetune_worker`)."""

    checkpoint: Checkpoint | None
    #: Held-out +1 s PSNRs (``psnr_1s``, ``psnr_1s_copy_last``) of the starting model as it
    #: runs, and of the kept state after the int8 round trip, on the same windows.
    running: dict[str, float]
    tuned: dict[str, float]
    #: The step whose state was kept (0: no step beat the starting model on selection).
    best_step: int
    steps: int
    #: ``(step, skill dB)`` of every selection score, step 0 the starting model's.
    selection: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0
    #: CPU seconds of this process (all threads) the fine-tune took.
    cpu_seconds: float = 0.0
    #: Minutes of footage in the training episodes.
    trained_minutes: float = 0.0
    #: Seconds spent waiting while the station recorded (``pause``), or frozen (``held_s``).
    paused_s: float = 0.0

    @property
    def running_skill(self) -> float | None:
        return skill_db(self.running)

    @property
    def tuned_skill(self) -> float | None:
        return skill_db(self.tuned)

    def beats_running(self, min_gain_db: float) -> bool:
        """The swap rule: the kept state's held-out skill is above the running model's by more
        than ``min_gain_db`` (any known skill beats an unknown one)."""
        new, old = self.tuned_skill, self.running_skill
        return new is not None and (old is None or new > old + min_gain_db)

    @property
    def cpu_seconds_per_recorded_minute(self) -> float:
        return self.cpu_seconds / max(self.trained_minutes, 1e-9)


def fine_tune(init: str | Path, train_paths: Sequence[str | Path], select_paths: Sequence[str | Path],
              held_out_paths: Sequence[str | Path], out: str | Path | None = None,
              options: FineTuneOptions | None = None, say: Callable[[str], None] = print, *,
              camera: str | None = None, seed: int = 0,
              stop: threading.Event | None = None, pause: threading.Event | None = None,
              held_s: Callable[[], float] | None = None) -> FineTuneResult:
    """Fine-tune checkpoint ``init`` on ``train_paths``, keep the state that scores best on
    ``select_paths``, score it and ``init`` on ``held_out_paths`` (see the module docstring) and
    save it to ``out`` when given (else the caller saves ``result.checkpoint`` if it keeps it).
    ``camera``: the color stream to learn (default: the checkpoint's, else the first). ``stop``
    set: finish the step and raise :class:`FineTuneStopped` (shutting down: nothing is scored or
    saved). ``pause`` set (the station is recording): wait until it clears before the next episode
    load, step or validation batch; paused time does not count against ``max_minutes``, nor do
    the seconds ``held_s()`` says this process was frozen from outside (the trainer's worker).
    Raises ``ValueError`` when a set of episodes gives no window."""
    import torch

    from collector.wam.checkpoint import Checkpoint, dequantize, quantize
    from collector.wam.data import WindowSet, load_clips
    from collector.wam.model import LossWeights
    from collector.wam.train import pick_device, train_step, validate

    o = options or FineTuneOptions()
    o.validate()
    started, cpu_started = time.monotonic(), time.process_time()
    hold = _Hold(pause, stop, say, held_s)
    start = Checkpoint.load(init)
    config = start.config
    device = pick_device(o.device)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    sets = {}
    for name, paths in (("training", train_paths), ("selection", select_paths), ("held-out", held_out_paths)):
        hold()
        clips = load_clips(paths, config.image_size, camera=camera or start.camera,
                           action_fields=start.action_fields)
        windows = WindowSet(clips, config.context, config.horizon, config.dt_s, start.normalizer)
        if not len(windows):
            raise ValueError(f"the {name} episodes ({len(paths)}) give no window of {config.context} past "
                             f"and {config.horizon} future steps of {config.dt_s} s")
        sets[name] = windows
    train_set, select_set, held_set = sets["training"], sets["selection"], sets["held-out"]
    trained_minutes = sum(float(c.t_ns[-1] - c.t_ns[0]) for c in train_set.clips) / 60e9
    select_items = _spread(len(select_set), o.select_windows)
    held_items = _spread(len(held_set), o.val_windows)
    say(f"{len(train_set)} training windows ({len(train_set.clips)} episodes, {trained_minutes:.1f} min), "
        f"{len(select_set)} selection, {len(held_set)} held out")

    model = start.build_model().to(device)
    running = validate(model, held_set, held_items, config, device, between_batches=hold)
    if o.trainable == "decoder":
        model.encoder.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
    weights = LossWeights.of(start.report)
    best_state = _copy(model.state_dict())
    best = skill_db(validate(model, select_set, select_items, config, device, between_batches=hold))
    selection, best_step, since_best, step = [(0, best)], 0, 0, 0
    warmup = max(1, min(20, o.steps // 10))
    limit_s = o.max_minutes * 60 if o.max_minutes else math.inf
    for step in range(1, o.steps + 1):
        hold()
        for group in optimizer.param_groups:
            group["lr"] = o.lr * min(1.0, step / warmup)
        loss = train_step(model, optimizer, train_set, rng.integers(0, len(train_set), o.batch_size), device,
                          weights)
        if stop is not None and stop.is_set():
            # Shutting down: no more scoring or saving (seconds at nice 15); the next run starts over.
            raise FineTuneStopped(f"stopped at step {step} of {o.steps}")
        out_of_time = time.monotonic() - started - hold.paused_s > limit_s
        if step % o.select_every == 0 or step == o.steps or out_of_time:
            skill = skill_db(validate(model, select_set, select_items, config, device, between_batches=hold))
            selection.append((step, skill))
            if skill > best:
                best, best_step, since_best = skill, step, 0
                best_state = _copy(model.state_dict())
            else:
                since_best += 1
            say(f"step {step}: loss {loss.item():.4f}, selection skill {skill:+.2f} dB "
                f"(best {best:+.2f} at step {best_step})")
            if since_best >= o.patience or out_of_time:
                break
    # Scored as it will run: through the int8 round trip every saved checkpoint takes.
    checkpoint = Checkpoint(config, dequantize(*quantize(best_state)), start.normalizer, start.action_fields,
                            start.camera, {
        "initialized_from": str(init), "steps": step, "fine_tune": {
            "best_step": best_step, "lr": o.lr, "trainable": o.trainable, "batch_size": o.batch_size,
            "selection": selection},
        "loss": vars(weights), "train_episodes": [str(p) for p in train_paths],
        "selection_episodes": [str(p) for p in select_paths],
        "val_episodes": [str(p) for p in held_out_paths],
        "previous_steps": int(start.report.get("steps", 0)) + int(start.report.get("previous_steps", 0))})
    tuned = validate(checkpoint.build_model().to(device), held_set, held_items, config, device,
                     between_batches=hold)
    checkpoint.report.update(validation=tuned, initial_validation=running)
    if out is not None:
        checkpoint.save(out)
    result = FineTuneResult(checkpoint, running, tuned, best_step, step, selection,
                            time.monotonic() - started, time.process_time() - cpu_started, trained_minutes,
                            hold.paused_s)
    say(f"kept step {best_step} of {step}: held-out skill {result.tuned_skill:+.2f} dB "
        f"(running model {result.running_skill:+.2f} dB) in {result.seconds:.0f} s")
    return result


class _Hold:
    """Called between pieces of work: waits while ``pause`` is set (the station records) and
    counts the seconds waited; returns at once when ``stop`` is set."""

    def __init__(self, pause: threading.Event | None, stop: threading.Event | None,
                 say: Callable[[str], None], held_s: Callable[[], float] | None = None) -> None:
        self.pause, self.stop, self.say, self.held_s = pause, stop, say, held_s
        self.seconds = 0.0

    @property
    def paused_s(self) -> float:
        """Seconds waited here and frozen from outside: not training time."""
        return self.seconds + (self.held_s() if self.held_s is not None else 0.0)

    def __call__(self) -> None:
        if self.pause is None or not self.pause.is_set():
            return
        began = time.monotonic()
        self.say("paused while the station records")
        while self.pause.is_set() and not (self.stop is not None and self.stop.is_set()):
            time.sleep(0.1)
        self.say("resumed")
        self.seconds += time.monotonic() - began


def _spread(n: int, wanted: int) -> np.ndarray:
    return np.linspace(0, n - 1, min(wanted, n)).astype(int)


def _copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in state.items()}
