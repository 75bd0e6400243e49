"""Train the shipped WAM preview across every simulator view and scene variation, then score it on
views it never saw. Writes the checkpoint, the evaluation tables and a JSON report.

    PYTHONPATH=. python scripts/train_sim_wam.py --minutes 1 --seconds 4 --variations 2 \\
        --train-views 0 1 --held-out-views 3 --out /tmp/wam-sim

It renders clips in memory (devices/sim_camera/clips.py: no nodes, no HDF5), holds out whole
views (and fresh seeds and scene variations for those), picks the saved weights by validation on
trained views with unseen seeds and variations (never on the held-out views), and reports
``collector wam eval``'s tables and verdicts for the held-out views and for fresh footage of the
trained ones, plus inference p50 on the training device and on the CPU.

It needs only torch, numpy, opencv and h5py (no ZeroMQ, no Qt), so it runs on a bare GPU box
with ``PYTHONPATH=.``. Several loss variants can train side by side on the same batches
(``--moving-weights 1 3``); the one with the best validation is saved.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collector.wam.augment import AugmentOptions, augment_windows  # noqa: E402
from collector.wam.checkpoint import Checkpoint, Predictor  # noqa: E402
from collector.wam.data import Clip, Normalizer, WindowSet  # noqa: E402
from collector.wam.evaluate import evaluate_clips, format_report  # noqa: E402
from collector.wam.model import LossWeights, WamConfig, WorldActionModel, parameter_count, preview_loss  # noqa: E402
from collector.wam.train import validate  # noqa: E402
from devices.sim_camera.clips import ACTION_DIM, ACTION_FIELDS, ClipSpec, render_clips  # noqa: E402

#: Scene variations used only for evaluation (training uses 0 .. --variations - 1).
FRESH_VARIATIONS = (1000, 1001)


def say(text: str) -> None:
    print(text, flush=True)


def clip_specs(views, variations, seeds, seconds: float, size: int) -> list[ClipSpec]:
    # Each clip starts somewhere else in the world's script, so clips of one seed still differ.
    return [ClipSpec(seed, view, variation, seconds, start_s=37.0 * (seed % 7) + 11.0 * view, size=size)
            for view in views for variation in variations for seed in seeds]


class GpuWindows:
    """All windows of a clip list with the frames on the device, batches gathered there."""

    def __init__(self, windows: WindowSet, device: torch.device) -> None:
        offsets = np.cumsum([0] + [len(c.frames) for c in windows.clips])
        self.frames = torch.from_numpy(np.concatenate([c.frames for c in windows.clips])).to(device)
        self.actions = torch.from_numpy(np.concatenate(windows._actions)).to(device)
        rows = np.stack([offsets[ci] + row for ci, row in windows.windows])
        self.rows = torch.from_numpy(rows).to(device)

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(frames (B, T, 3, S, S) float in [0, 1], normalized actions (B, T, A))."""
        rows = self.rows[items]
        x = self.frames[rows].permute(0, 1, 4, 2, 3).float().div_(255)
        a = self.actions[rows]
        return x, a


def inference_p50_ms(checkpoint: Checkpoint, device: str, calls: int = 60, threads: int | None = None) -> float:
    if threads:
        torch.set_num_threads(threads)
    predictor = Predictor(checkpoint, device)
    c = checkpoint.config
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (c.context, c.image_size, c.image_size, 3), np.uint8)
    actions = np.tile(checkpoint.normalizer.mean, (c.context, 1))
    times = []
    for i in range(calls + 5):
        started = time.perf_counter()
        predictor.predict(frames, actions)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i >= 5:
            times.append((time.perf_counter() - started) * 1e3)
    return float(np.median(times))


def add_to_report(path: Path, **entries) -> None:
    """Add ``entries`` to a saved checkpoint's report, leaving its int8 weights bit for bit."""
    data = torch.load(path, map_location="cpu", weights_only=True)
    data["report"].update(entries)
    torch.save(data, path)


def held_out_validation(results: dict, views, horizon_s: float = 1.0) -> dict:
    """Mean whole-frame PSNR at ``horizon_s`` of the preview and of copy-last over ``views``."""
    model, still = [], []
    for view in views:
        report = results[f"view {view}"]
        i = report["horizons_s"].index(horizon_s)
        model.append(report["frames"]["psnr"]["model (preview)"][i])
        still.append(report["frames"]["psnr"]["copy-last"][i])
    return {"psnr_1s": float(np.mean(model)), "psnr_1s_copy_last": float(np.mean(still)),
            "on": f"held-out views {', '.join(map(str, views))}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for sim.pt, report.json, eval.txt")
    parser.add_argument("--train-views", type=int, nargs="+", default=[0, 1, 2, 4, 5, 6, 8, 9, 10, 11])
    parser.add_argument("--held-out-views", type=int, nargs="+", default=[3, 7])
    parser.add_argument("--variations", type=int, default=12, help="scene variations 0..N-1 to train on")
    parser.add_argument("--seeds", type=int, default=1, help="world seeds per (view, variation)")
    parser.add_argument("--seconds", type=float, default=40.0, help="seconds per training clip")
    parser.add_argument("--eval-seconds", type=float, default=30.0)
    parser.add_argument("--minutes", type=float, default=4.0, help="training time")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--moving-weights", type=float, nargs="+", default=[1.0],
                        help="one model per value, trained side by side")
    parser.add_argument("--mask-penalty", type=float, default=LossWeights.mask)
    parser.add_argument("--init", help="start from this checkpoint")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--eval-windows", type=int, default=600)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    torch.manual_seed(0)
    started = time.monotonic()

    config = WamConfig(action_dim=ACTION_DIM)
    train_seeds = range(100, 100 + args.seeds)
    train_specs = clip_specs(args.train_views, range(args.variations), train_seeds, args.seconds,
                             config.image_size)
    # Validation (picks the saved weights): trained views, unseen seeds and variations.
    val_specs = clip_specs(args.train_views[::3], [args.variations + 7], [900], args.eval_seconds,
                           config.image_size)
    held_specs = clip_specs(args.held_out_views, [0, *FRESH_VARIATIONS], [500, 501], args.eval_seconds,
                            config.image_size)
    fresh_specs = clip_specs(args.train_views[::2], [0, FRESH_VARIATIONS[0]], [502], args.eval_seconds,
                             config.image_size)
    all_specs = train_specs + val_specs + held_specs + fresh_specs
    clips = [Clip(**vars(footage)) for footage in render_clips(all_specs, args.workers)]
    n1, n2, n3 = len(train_specs), len(train_specs) + len(val_specs), len(train_specs) + len(val_specs) + len(held_specs)
    train_clips, val_clips, held_clips, fresh_clips = clips[:n1], clips[n1:n2], clips[n2:n3], clips[n3:]
    say(f"rendered {len(clips)} clips ({sum(len(c.frames) for c in clips)} frames) in "
        f"{time.monotonic() - started:.0f} s on {args.workers} processes")

    start = Checkpoint.load(args.init) if args.init else None
    if start is not None:
        config = start.config
    normalizer = start.normalizer if start is not None else Normalizer.fit(train_clips)
    train_set = WindowSet(train_clips, config.context, config.horizon, config.dt_s, normalizer)
    val_set = WindowSet(val_clips, config.context, config.horizon, config.dt_s, normalizer)
    gpu_train = GpuWindows(train_set, device)
    val_items = np.linspace(0, len(val_set) - 1, min(256, len(val_set))).astype(int)
    say(f"{len(train_set)} training windows from {len(train_clips)} clips "
        f"(views {args.train_views}, variations 0..{args.variations - 1}); {len(val_set)} validation windows")

    runs = []
    for weight in args.moving_weights:
        model = (start.build_model() if start is not None else WorldActionModel(config)).to(device)
        runs.append({"moving_weight": weight, "model": model, "best": -math.inf, "state": None,
                     "optimizer": torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)})
    say(f"model: {parameter_count(runs[0]['model']) / 1e6:.2f} M parameters on {device}, "
        f"{len(runs)} variant(s): moving weight {args.moving_weights}")
    limit_s = args.minutes * 60
    generator = torch.Generator(device=device).manual_seed(0)
    loop_started = time.monotonic()
    step, warmup = 0, 200
    augment = AugmentOptions()
    while True:
        step += 1
        elapsed = time.monotonic() - loop_started
        progress = min(1.0, elapsed / limit_s)
        items = torch.randint(0, len(gpu_train), (args.batch_size,), device=device, generator=generator)
        x, a = gpu_train.batch(items)
        x = augment_windows(x, augment, generator)
        past, past_a, future, future_a = x[:, :config.context], a[:, :config.context], x[:, config.context:], a[:, config.context:]
        known = torch.rand(args.batch_size, device=device, generator=generator) >= config.action_mask_p
        steps = torch.randperm(config.horizon, device=device, generator=generator)[:4]
        lr = args.lr * min(1.0, step / warmup) * 0.5 * (1 + math.cos(math.pi * progress))
        for run in runs:
            model = run["model"]
            model.train()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                pred, pred_a, masks = model(past, past_a, future_a, known, steps)
            pred, pred_a, masks = pred.float(), pred_a.float(), masks.float()
            target = future[:, steps]
            loss = preview_loss(pred, target, past[:, -1], pred_a, future_a, masks,
                                LossWeights(moving=run["moving_weight"], mask=args.mask_penalty))
            run["optimizer"].zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            for group in run["optimizer"].param_groups:
                group["lr"] = lr
            run["optimizer"].step()
            run["loss"] = loss.item() if step % 50 == 0 else run.get("loss", 0.0)
        done = elapsed > limit_s
        if step % 500 == 0 or done:
            for run in runs:
                report = validate(run["model"], val_set, val_items, config, device)
                gain = report["psnr_1s"] - report["psnr_1s_copy_last"]
                if gain > run["best"]:
                    run["best"] = gain
                    run["state"] = {k: v.detach().clone() for k, v in run["model"].state_dict().items()}
                    run["best_step"] = step
                say(f"step {step} ({elapsed:.0f} s, {elapsed / step * 1e3:.0f} ms/step) moving weight "
                    f"{run['moving_weight']:g}: loss {run['loss']:.4f}, validation +1 s "
                    f"{report['psnr_1s']:.2f} dB vs copy-last {report['psnr_1s_copy_last']:.2f} ({gain:+.2f})")
        if done:
            break

    best = max(runs, key=lambda r: r["best"])
    say(f"keeping moving weight {best['moving_weight']:g} from step {best['best_step']} "
        f"({best['best']:+.2f} dB over copy-last at +1 s on validation)")
    checkpoint = Checkpoint(config, best["state"], normalizer, ACTION_FIELDS, None, {
        "steps": step, "best_step": best["best_step"], "minutes": round(args.minutes, 1),
        "trained_on": {"views": args.train_views, "variations": list(range(args.variations)),
                       "seeds": list(train_seeds), "seconds_per_clip": args.seconds,
                       "clips": len(train_clips), "windows": len(train_set)},
        "held_out_views": args.held_out_views, "moving_weight": best["moving_weight"],
        # What a fine-tune must optimise to stay on this model's objective (LossWeights.of).
        "loss": asdict(LossWeights(moving=best["moving_weight"], mask=args.mask_penalty)), "lr": args.lr,
        "augmentation": vars(augment), "device": str(device),
        "initialized_from": args.init,
        "previous_steps": int(start.report.get("steps", 0)) if start is not None else 0})
    path = out / "sim.pt"
    checkpoint.save(path)
    shipped = Checkpoint.load(path)  # the int8 weights, as users get them

    results = {"checkpoint_bytes": path.stat().st_size, "train": checkpoint.report}
    text = []
    for title, clips_ in (("held-out views " + ", ".join(map(str, args.held_out_views)), held_clips),
                          ("trained views, fresh seeds and variations", fresh_clips)):
        for view in sorted({c.camera_meta["view"] for c in clips_}):
            part = [c for c in clips_ if c.camera_meta["view"] == view]
            report = evaluate_clips(shipped, part, max_windows=args.eval_windows, device=str(device))
            results[f"view {view}"] = report
            block = f"== {title}: view {view} ({len(part)} clips) ==\n{format_report(report)}"
            text.append(block)
            say(block)
    results["inference_p50_ms"] = {str(device): inference_p50_ms(shipped, str(device))}
    if device.type != "cpu":
        for threads in (1, 2):
            results["inference_p50_ms"][f"cpu, {threads} thread(s)"] = inference_p50_ms(shipped, "cpu", threads=threads)
    say(f"inference p50: {json.dumps(results['inference_p50_ms'])}")
    # The skill users see ("+0.6 dB over still frame at +1 s") is the held-out views'.
    add_to_report(path, validation=held_out_validation(results, args.held_out_views))
    (out / "eval.txt").write_text("\n\n".join(text) + "\n")
    (out / "report.json").write_text(json.dumps(results, indent=1))
    say(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
