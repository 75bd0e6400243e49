"""``collector wam``: train, evaluate and inspect World Action Model checkpoints.

    collector wam train recordings/ --out wam.pt --minutes 20      train on recorded episodes
    collector wam eval wam.pt recordings/                          table on held-out episodes
    collector wam info wam.pt                                      config and training report
    collector wam status --folder recordings/.wam                  what the station's preview learned

``eval`` skips the episodes the checkpoint was trained on (matched by file name) unless
``--include-training`` is given.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from collector.wam.data import DatasetError
    from collector.wam.model import WamConfig
    from collector.wam.train import TrainOptions, train

    torch.set_num_threads(args.threads)
    config = WamConfig(image_size=args.image_size, context=args.context, horizon=args.horizon,
                       dt_s=args.dt, latent=args.latent, layers=args.layers)
    options = TrainOptions(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                           val_fraction=args.val_fraction, val_every=args.val_every,
                           max_minutes=args.minutes, seed=args.seed, device=args.device,
                           camera=args.camera, action_fields=tuple(args.action_fields.split(",")),
                           init=args.init, moving_weight=args.moving_weight)
    try:
        checkpoint = train(args.data, args.out, config, options, say=_say)
    except (DatasetError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(args.out)
    _say(f"trained {checkpoint.report.get('steps')} steps; held-out validation: "
         f"{json.dumps(checkpoint.report.get('validation'))}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from collector.wam.checkpoint import Checkpoint, CheckpointError
    from collector.wam.data import find_episodes
    from collector.wam.evaluate import evaluate, format_report

    torch.set_num_threads(args.threads)
    try:
        trained_on = {Path(p).name for p in Checkpoint.load(args.checkpoint).report.get("train_episodes", [])}
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    paths = find_episodes(args.data)
    if not args.include_training:
        kept = [p for p in paths if p.name not in trained_on]
        if len(kept) < len(paths):
            _say(f"skipping {len(paths) - len(kept)} episodes the checkpoint was trained on")
        paths = kept
    if not paths:
        print(f"error: no held-out episodes under {args.data}", file=sys.stderr)
        return 1
    try:
        report = evaluate(args.checkpoint, paths, max_windows=args.max_windows, device=args.device)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from collector.wam.checkpoint import Checkpoint, CheckpointError
    from collector.wam.model import parameter_count

    try:
        checkpoint = Checkpoint.load(args.checkpoint)
        model = checkpoint.build_model()
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    report = {k: v for k, v in checkpoint.report.items() if not k.endswith("_episodes")}
    print(json.dumps({"config": checkpoint.config.to_dict(), "parameters": parameter_count(model),
                      "action_fields": list(checkpoint.action_fields), "camera": checkpoint.camera,
                      "train_episodes": len(checkpoint.report.get("train_episodes", [])),
                      "val_episodes": len(checkpoint.report.get("val_episodes", [])),
                      "report": report}, indent=1))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from collector.wam.registry import HELD_OUT, SELECT, TRAIN, Registry, format_db

    if args.node:
        return _node_status(args.node, args.json)
    folder = Path(args.folder) if args.folder else None
    if folder is None:
        from collector.config import load_config
        from collector.wire.options import ConfigError

        try:
            output = load_config(args.config).recording.output if args.config else Path("recordings")
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        folder = Path(output) / ".wam"
    try:
        registry = Registry.load(folder)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    active = registry.active_entry()
    if args.json:
        print(json.dumps({"folder": str(folder), "active": active, "episodes": registry.episodes,
                          "checkpoints": registry.checkpoints}, indent=1))
        return 0
    if active is not None:
        print(f"{Path(active['path']).name}: {active['summary']}")
    else:
        print(f"no station-trained checkpoint in {folder} yet: the preview runs the one it started with")
    print(f"episodes seen: {len(registry.episodes)} ({len(registry.uuids(TRAIN))} for training, "
          f"{len(registry.uuids(SELECT))} for selection, {len(registry.uuids(HELD_OUT))} held out)")
    for entry in registry.checkpoints[-args.last:]:
        skill = entry.get("skill_db")
        running = entry.get("running_skill_db")
        verdict = "swapped in" if entry.get("kept") else f"not kept ({entry.get('reason') or entry.get('swap')})"
        print(f"  {Path(entry['path']).name}: {entry['episodes']} episodes, {entry.get('steps')} steps in "
              f"{entry.get('seconds')} s, held-out skill {format_db(skill)} (running {format_db(running)}): {verdict}")
    return 0


def _node_status(endpoint: str, as_json: bool) -> int:
    from collector.wire.bus import node_endpoints, request

    try:
        status = request(node_endpoints(endpoint).ctl, "status", timeout_s=3.0)
    except TimeoutError:
        print(f"error: no WAM node answers at {endpoint}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(status, indent=1))
        return 0
    model = Path(status["checkpoint"]).name if status.get("checkpoint") else status.get("predictor")
    print(f"{model}: {status.get('trained_on') or 'no training report'}")
    p50 = status.get("inference_ms_p50")
    print(f"state {status.get('state')}, {status.get('predictions')} predictions, inference p50 "
          f"{'n/a' if p50 is None else f'{p50:.1f} ms'}, last swap: {status.get('swap', {}).get('state')}")
    if status.get("skill"):  # live, on this station's frames (collector/wam/skill.py)
        print(f"live skill: {status['skill']}")
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``collector wam ...`` to the main parser's subcommands."""
    wam = subparsers.add_parser("wam", help="World Action Model: train, eval, info, status",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = wam.add_subparsers(dest="wam_command", required=True)

    train = sub.add_parser("train", help="train a checkpoint on recorded episodes")
    train.add_argument("data", help="folder of episodes (searched recursively)")
    train.add_argument("--out", required=True, help="checkpoint file to write")
    train.add_argument("--steps", type=int, default=3000)
    train.add_argument("--minutes", type=float, default=0, help="stop after this long (0: no limit)")
    train.add_argument("--batch-size", type=int, default=16)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--val-fraction", type=float, default=0.2, help="share of episodes held out")
    train.add_argument("--val-every", type=int, default=250, help="validate and save every N steps")
    train.add_argument("--image-size", type=int, default=64)
    train.add_argument("--context", type=int, default=4, help="past frames")
    train.add_argument("--horizon", type=int, default=16, help="future steps")
    train.add_argument("--dt", type=float, default=0.125, help="seconds between steps")
    train.add_argument("--latent", type=int, default=256)
    train.add_argument("--layers", type=int, default=4, help="transformer layers")
    train.add_argument("--camera", help="color stream (default: the first)")
    train.add_argument("--action-fields", default="wrist_pos,wrist_quat,grip",
                       help="glove fields that make the action vector")
    train.add_argument("--moving-weight", type=float, default=1.0,
                       help="extra loss weight on pixels that change (0: plain L1)")
    train.add_argument("--init", help="start from this checkpoint (its config and normalizer; "
                                       "the model-shape options are ignored)")
    train.add_argument("--seed", type=int, default=0, help="seeds the episode split and sampling")
    train.add_argument("--device", default="auto", help="auto | cpu | cuda")
    train.add_argument("--threads", type=int, default=2, help="CPU threads")
    train.set_defaults(func=cmd_train)

    ev = sub.add_parser("eval", help="score a checkpoint on held-out episodes")
    ev.add_argument("checkpoint")
    ev.add_argument("data", help="folder of episodes or one episode file")
    ev.add_argument("--include-training", action="store_true",
                    help="also score episodes the checkpoint was trained on")
    ev.add_argument("--max-windows", type=int, default=2000)
    ev.add_argument("--json", action="store_true", help="print the full report as JSON")
    ev.add_argument("--device", default="auto")
    ev.add_argument("--threads", type=int, default=2)
    ev.set_defaults(func=cmd_eval)

    info = sub.add_parser("info", help="print a checkpoint's config and training report")
    info.add_argument("checkpoint")
    info.set_defaults(func=cmd_info)

    status = sub.add_parser("status", help="what the station's preview was trained on, and its skill")
    where = status.add_mutually_exclusive_group()
    where.add_argument("--folder", help="the trainer's folder (default: .wam in the recordings folder)")
    where.add_argument("--config", help="app config: its recordings folder's .wam")
    where.add_argument("--node", help="ask the running WAM node at this base endpoint instead")
    status.add_argument("--last", type=int, default=5, help="list this many recent fine-tunes")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
