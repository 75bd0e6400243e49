"""``collector export FORMAT``: episodes to robomimic, ACT/ALOHA or LeRobot datasets.

    collector export lerobot recordings/ -o datasets/pick_lerobot --task pick-cube --outcome success
    collector export robomimic recordings/ -o datasets/pick.hdf5 --image-size 84x84 --val-fraction 0.1
    collector export aloha recordings/ -o datasets/pick_act --depth
    collector export lerobot rec/ -o out --camera cam0/color --state glove/hand:wrist_pos,grip \\
        --action next:glove/hand:wrist_pos,grip --rate 15

The recordings are only read. Default action: the teleop command stream when the episode has
one, else the next step's glove state; a model's output (wam/*) is never default state or action.
ALOHA defaults to ACT's 14 dimensions (layout aloha14) and one episode length; robomimic to
actions in [-1, 1] (see docs/exports.md).
"""

from __future__ import annotations

import argparse
import sys

from collector.export.selection import EpisodeFilter, SelectionError, SignalMapping


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"image size must be WIDTHxHEIGHT, e.g. 224x224, got {text!r}")
    if w < 2 or h < 2:
        raise argparse.ArgumentTypeError(f"image size must be at least 2x2, got {text!r}")
    return w, h


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("paths", nargs="+", help="episode files or folders (searched recursively)")
    p.add_argument("-o", "--output", required=True, help="where to write the dataset")
    p.add_argument("--force", action="store_true", help="replace an existing output")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sel = p.add_argument_group("episodes")
    sel.add_argument("--task", action="append", help="only this task (repeatable)")
    sel.add_argument("--outcome", action="append", choices=["success", "failure", "unknown"],
                     help="only this outcome (repeatable)")
    sel.add_argument("--tag", action="append", default=[], help="only episodes with this tag")
    sel.add_argument("--exclude-tag", action="append", default=[], help="skip episodes with this tag")
    sel.add_argument("--no-recovered", action="store_true", help="skip recovered episodes")
    sel.add_argument("--no-gaps", action="store_true", help="skip episodes that lost samples")
    sig = p.add_argument_group("signals")
    sig.add_argument("--camera", action="append", help="color stream to export, e.g. cam0/color "
                     "(repeatable; default: every color stream)")
    sig.add_argument("--state", action="append", help="state signal NODE/STREAM[:field,...] "
                     "(repeatable; default: every float field of every state stream)")
    sig.add_argument("--action", default="auto", help="auto | next | next:NODE/STREAM[:fields] | "
                     "NODE/STREAM[:fields] (default auto: teleop command, else next glove state)")
    sig.add_argument("--rate", type=float, help="step rate in Hz (default: the first camera's frames)")
    sig.add_argument("--image-size", type=_size, help="resize images to WIDTHxHEIGHT")
    sig.add_argument("--depth", action="store_true", help="also export each camera's depth stream "
                     "(uint16, depth scale in the metadata)")
    return p


def _selection(args: argparse.Namespace) -> tuple[SignalMapping, EpisodeFilter]:
    mapping = SignalMapping(cameras=args.camera, state=args.state, action=args.action,
                            rate_hz=args.rate, image_size=args.image_size, depth=args.depth)
    episode_filter = EpisodeFilter(tasks=args.task, outcomes=args.outcome, tags=args.tag,
                                   exclude_tags=args.exclude_tag,
                                   allow_recovered=not args.no_recovered, allow_gaps=not args.no_gaps)
    return mapping, episode_filter


def cmd_export(args: argparse.Namespace) -> int:
    from collector.export.common import ExportError

    mapping, episode_filter = _selection(args)
    common = dict(mapping=mapping, episode_filter=episode_filter, force=args.force,
                  show_progress=not args.quiet)
    try:
        if args.format == "robomimic":
            from collector.export.robomimic import export_robomimic
            result = export_robomimic(args.paths, args.output, val_fraction=args.val_fraction,
                                      seed=args.seed, normalize_actions=not args.raw_actions,
                                      **common)
        elif args.format == "aloha":
            from collector.export.aloha import export_aloha
            result = export_aloha(args.paths, args.output, episode_len=args.episode_len,
                                  layout=args.layout, act_lookback=not args.no_act_lookback, **common)
        else:
            from collector.export.lerobot import export_lerobot
            result = export_lerobot(args.paths, args.output, vcodec=args.vcodec,
                                    robot_type=args.robot_type, **common)
    except (ExportError, SelectionError, KeyError, FileNotFoundError) as exc:
        print(f"error: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``export robomimic|aloha|lerobot`` to the ``collector`` command."""
    export = subparsers.add_parser("export", help="write a training dataset (robomimic, aloha, lerobot)",
                                   description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    formats = export.add_subparsers(dest="format", required=True, metavar="FORMAT")
    common = _common()
    rm = formats.add_parser("robomimic", parents=[common], help="one robomimic HDF5 file")
    rm.add_argument("--val-fraction", type=float, default=0.1, help="episodes in mask/valid")
    rm.add_argument("--seed", type=int, default=0, help="seeds the train/valid split")
    rm.add_argument("--raw-actions", action="store_true",
                    help="keep recorded action values (default: scaled to [-1, 1], scale and "
                         "offset stored in the file)")
    al = formats.add_parser("aloha", parents=[common], help="ACT/ALOHA episode_N.hdf5 files")
    al.add_argument("--episode-len", default="max",
                    help="max (default) | min | N | none: pad (repeat the last step) or cut every "
                         "episode to one length, as ACT's get_norm_stats needs")
    al.add_argument("--layout", choices=["auto", "aloha14", "state"], default="auto",
                    help="aloha14: ACT's 14 dims from one or two gloves (per hand wrist pos, "
                         "axis-angle, grip; left then right); state: the selection as is; "
                         "auto (default): aloha14 when it fits the default mapping")
    al.add_argument("--no-act-lookback", action="store_true",
                    help="store /action as selected, not one step earlier for ACT's look-back")
    lr = formats.add_parser("lerobot", parents=[common], help="LeRobot dataset v3.0 folder")
    lr.add_argument("--vcodec", choices=["libsvtav1", "h264"], default="libsvtav1")
    lr.add_argument("--robot-type", help="robot_type in meta/info.json")
    for parser in (rm, al, lr):
        parser.set_defaults(func=cmd_export)
