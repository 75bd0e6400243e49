"""Review commands: list, judge, curate and report on a folder of episodes, headless.

    collector ls recordings/                           table of every episode (cached summaries)
    collector ls recordings/ --flagged --task pick-cube
    collector ls recordings/ --stats                   hours, episodes, success rate per task/operator/day
    collector report recordings/ --html report.html    static report with thumbnails and plots
    collector curate FILE --outcome success --tag clean --notes "good grasp" --trim 0.8 11.5
    collector trash FILE                               move to recordings/.trash (recoverable)
    collector trash --restore FILE                     put it back (its original or .trash path)
    collector review recordings/                       open the review window
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from collector.review.quality import FLAGS


def _catalog(path: str, no_cache: bool = False):
    from collector.review.catalog import EpisodeCatalog

    return EpisodeCatalog(path, use_cache=not no_cache)


def _matches(s: Any, args: argparse.Namespace) -> bool:
    return ((not args.task or s.task == args.task) and (not args.outcome or s.outcome == args.outcome)
            and (not args.flagged or bool(s.flags)) and (not args.damaged or not s.ok))


def format_table(summaries: list) -> str:
    """Summaries as the aligned text table ``collector ls`` prints; an episode with integrity
    problems has one ``! sentence`` line per problem under its row."""
    rows = [("started", "task", "operator", "station", "dur s", "outcome", "tags", "flags", "MB", "file")]
    notes: dict[int, list[str]] = {}
    for s in summaries:
        if not s.ok:
            rows.append(("-", "-", "-", "-", "-", "DAMAGED", "", "damaged", f"{s.file_bytes / 1e6:.1f}",
                         f"{s.name}: {s.error}"))
            continue
        started = s.start_time[:19].replace("T", " ")
        duration = f"{s.duration_s:.1f}" + ("*" if s.trim else "")
        flags = ",".join(f.upper() if f == "failed" else f for f in s.flags)
        rows.append((started, s.task, s.operator, s.station, duration, s.outcome, ",".join(s.tags),
                     flags, f"{s.file_bytes / 1e6:.1f}", s.name))
        notes[len(rows) - 1] = s.integrity
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for i, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
        # What the integrity ledger says is missing, under its episode's row, in words.
        lines += [f"    ! {problem}" for problem in notes.get(i, [])]
    return "\n".join(lines)


def format_stats(board: Any) -> str:
    """A dashboard as text: totals, then one table per grouping."""
    t = board.total
    rate = "-" if t.success_rate is None else f"{t.success_rate:.0%}"
    lines = [f"{t.episodes} episodes, {t.hours:.2f} h ({t.kept_seconds / 3600:.2f} h after trims), "
             f"success rate of labelled episodes {rate} ({t.labelled} of {t.episodes - t.damaged} "
             f"labelled), {t.flagged_share:.0%} flagged, {t.damaged} damaged, "
             f"{t.bytes / 1e9:.2f} GB"]
    for title, groups in (("task", board.by_task), ("operator", board.by_operator), ("day", board.by_day)):
        lines += ["", f"  {title:<20}{'episodes':>9}{'hours':>8}{'success':>9}{'flagged':>9}"]
        for key, g in groups.items():
            rate = "-" if g.success_rate is None else f"{g.success_rate:.0%}"
            lines.append(f"  {key:<20}{g.episodes:>9}{g.hours:>8.2f}{rate:>9}{g.flagged_share:>9.0%}")
    if board.flag_counts:
        lines += ["", "  flags: " + ", ".join(f"{k} {v}" for k, v in board.flag_counts.items())]
    return "\n".join(lines)


def cmd_ls(args: argparse.Namespace) -> int:
    from collector.review.dashboard import build_dashboard

    if not Path(args.dir).exists():
        print(f"error: {args.dir}: no such folder", file=sys.stderr)
        return 1
    summaries = [s for s in _catalog(args.dir, args.no_cache).scan() if _matches(s, args)]
    if args.json:
        print(json.dumps([{**s.to_dict(), "ok": s.ok} for s in summaries], indent=1))
    elif args.stats:
        print(format_stats(build_dashboard(summaries)))
    else:
        print(format_table(summaries))
        if args.flagged or any(s.flags for s in summaries):
            used = sorted({f for s in summaries for f in s.flags})
            print("\nflags: " + "; ".join(f"{f} = {FLAGS.get(f, f)}" for f in used), file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from collector.review.report import write_html_report

    if not Path(args.dir).exists():
        print(f"error: {args.dir}: no such folder", file=sys.stderr)
        return 1
    catalog = _catalog(args.dir, args.no_cache)
    catalog.scan()
    out = write_html_report(catalog, Path(args.html))
    print(out)
    return 0


def cmd_curate(args: argparse.Namespace) -> int:
    from collector.storage import EpisodeError, read_attrs
    from collector.storage.library import check_trim_inside, update_episode_attrs

    from collector.review.summary import curation_fields

    path = Path(args.file)
    changes: dict[str, Any] = {}
    if args.outcome:
        changes["outcome"] = args.outcome
    if args.notes is not None:
        changes["notes"] = args.notes
    if args.trim:
        changes["trim"] = args.trim
    if args.no_trim:
        changes["trim"] = None
    try:
        if args.tag or args.untag:
            current = curation_fields(read_attrs(path))["tags"]
            tags = [t for t in current if t not in set(args.untag or [])]
            changes["tags"] = tags + [t for t in args.tag or [] if t not in tags]
        if not changes:
            print("nothing to change (give --outcome, --tag, --untag, --notes, --trim or --no-trim)",
                  file=sys.stderr)
            return 2
        if args.trim:
            try:
                check_trim_inside(args.trim, float(read_attrs(path).get("duration_s") or 0))
            except ValueError as exc:
                print(f"error: {path}: {exc}", file=sys.stderr)
                return 2
        update_episode_attrs(path, **changes)
        now = curation_fields(read_attrs(path))
    except (ValueError, OSError, EpisodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    trim = f"  trim {now['trim'][0]:g}-{now['trim'][1]:g} s" if now["trim"] else ""
    print(f"{path}: outcome {now['outcome']}  tags {','.join(now['tags']) or '-'}{trim}")
    return 0


def cmd_trash(args: argparse.Namespace) -> int:
    from collector.storage.library import TRASH_DIR, find_in_trash, move_to_trash, restore_from_trash

    path = Path(args.file)
    if args.restore and path.parent.name != TRASH_DIR:  # its original path: find it in the trash
        root = Path(args.root) if args.root else _recordings_root(path)
        trashed = find_in_trash(path, root)
        if trashed is None:
            print(f"error: {path} is not in the trash of {root}", file=sys.stderr)
            return 1
        print(restore_from_trash(trashed, root))
        return 0
    if not path.is_file():
        print(f"error: {path}: no such file", file=sys.stderr)
        return 1
    if args.restore:
        print(restore_from_trash(path, path.parent.parent))
        return 0
    root = Path(args.root) if args.root else _recordings_root(path)
    print(move_to_trash(path, root))
    return 0


def _recordings_root(path: Path) -> Path:
    # Episodes live at <root>/<task>/<date>/<file> (the default path pattern): trash beside them.
    parents = path.resolve().parents
    return parents[2] if len(parents) > 2 and parents[0].name[:4].isdigit() else path.resolve().parent


def cmd_review(args: argparse.Namespace) -> int:
    # The core never imports the GUI: the window runs as its own program.
    command = [sys.executable, "-m", "ui.review", *([args.dir] if args.dir else [])]
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 130


def add_commands(sub: Any) -> None:
    """Add ``ls``, ``report``, ``curate``, ``trash`` and ``review`` to the ``collector`` parser."""
    def filters(p: argparse.ArgumentParser) -> None:
        p.add_argument("--task", help="only this task")
        p.add_argument("--outcome", choices=["success", "failure", "unknown"])
        p.add_argument("--flagged", action="store_true", help="only episodes with quality flags")
        p.add_argument("--damaged", action="store_true", help="only damaged files")
        p.add_argument("--no-cache", action="store_true", help="recompute every summary, write no cache")

    ls = sub.add_parser("ls", help="list the episodes under a folder")
    ls.add_argument("dir", nargs="?", default="recordings")
    filters(ls)
    ls.add_argument("--json", action="store_true", help="print the summaries as JSON")
    ls.add_argument("--stats", action="store_true", help="hours, episodes and success rate per task/operator/day")
    ls.set_defaults(func=cmd_ls)

    report = sub.add_parser("report", help="write a static HTML report of a folder")
    report.add_argument("dir", nargs="?", default="recordings")
    report.add_argument("--html", required=True, help="output file, e.g. report.html")
    report.add_argument("--no-cache", action="store_true")
    report.set_defaults(func=cmd_report)

    curate = sub.add_parser("curate", help="set outcome, tags, notes or trim of an episode")
    curate.add_argument("file")
    curate.add_argument("--outcome", choices=["success", "failure", "unknown"])
    curate.add_argument("--tag", action="append", help="add a tag (repeatable)")
    curate.add_argument("--untag", action="append", help="remove a tag (repeatable)")
    curate.add_argument("--notes")
    curate.add_argument("--trim", nargs=2, type=float, metavar=("START_S", "END_S"),
                        help="keep only this range (seconds from the episode start)")
    curate.add_argument("--no-trim", action="store_true", help="remove the trim")
    curate.set_defaults(func=cmd_curate)

    trash = sub.add_parser("trash", help="move an episode to the trash, or --restore it")
    trash.add_argument("file")
    trash.add_argument("--restore", action="store_true", help="put a trashed file back (give its original path or its path in .trash)")
    trash.add_argument("--root", help="recordings folder holding .trash (default: found from the path)")
    trash.set_defaults(func=cmd_trash)

    review = sub.add_parser("review", help="open the review window")
    review.add_argument("dir", nargs="?", default=None)
    review.set_defaults(func=cmd_review)
