"""The ``collector`` command: everything the GUI does, headless.

    collector                                                 open the collect window (simulated devices)
    collector --config station.toml                           open it on the devices of a config
    collector gui --cameras 2                                 open it on two simulated cameras
    collector record --sim --duration 10 --task pick-cube     record one simulated episode
    collector record --config station.toml                    record from the devices in a config
    collector info FILE                                       streams, counts, rates, gaps, skew
    collector validate FILE|DIR                               check against the schema (exit 1 if not)
    collector validate --deep FILE                            also verify every checksum, name damaged samples
    collector recover FILE|DIR                                complete interrupted episodes
    collector keys keys/ --name station                       CurveZMQ keypair for remote nodes
    collector config PATH                                     write a starting config file
    collector devices                                         list attached cameras and gloves
    collector doctor                                          check this machine (OK, or the fixing command)
    collector calibrate latency [--config FILE]               measure camera/glove latencies for the station
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from collector import __version__
from collector.config import (AppConfig, load_config, load_entry_point, save_config,
                              station_sim_config)
from collector.wire.options import ConfigError

log = logging.getLogger("collector")

#: Packages that add subcommands, each ``module:add_commands(subparsers)``, loaded by name so the
#: core imports none of them (the WAM is a service beside the core: ``[[services]]``).
COMMAND_MODULES = (
    "collector.review.cli:add_commands",     # ls, report, curate, trash, review
    "collector.wam.cli:add_commands",        # wam train, wam eval, wam info
    "collector.export.cli:add_commands",     # export robomimic|aloha|lerobot
    "collector.wire.security:add_commands",  # keys
    "collector.doctor:add_commands",         # doctor
    "collector.calibration.cli:add_commands",  # calibrate latency|show
)


def _app_config(args: argparse.Namespace) -> AppConfig:
    if args.config:
        config = load_config(args.config)
        from collector.recording.supervisor import check_drivers
        check_drivers(config)  # unknown drivers and options: refused before any process starts
    else:
        config = station_sim_config(seed=args.seed, cameras=args.cameras, glove_rate_hz=args.glove_rate)
    rec, info = config.recording, config.session
    if args.output:
        rec.output = Path(args.output)
    for key in ("compression", "color_encoding"):
        if getattr(args, key):
            setattr(rec, key, getattr(args, key))
    if getattr(args, "hands_free", None):
        rec.hands_free.mode = args.hands_free
    for key in ("task", "operator", "station", "prompt"):
        if getattr(args, key) is not None:
            setattr(info, key, getattr(args, key))
    return config


def _status_line(status: dict) -> str:
    parts = []
    for name, s in status["streams"].items():
        nominal = f"/{s['nominal_hz']:g}" if s["nominal_hz"] else ""
        gaps = f" gaps {s['gaps']}" if s["gaps"] else ""
        parts.append(f"{name} {s['rate_hz']:.0f}{nominal} Hz{gaps}")
    episode = status.get("episode")
    elapsed = f"{episode['elapsed_s']:5.1f} s  " if episode else ""
    held = status.get("pre_roll")
    if not episode and held:  # between episodes: what the next one's pre-roll holds
        parts.append(f"pre-roll {held['held_s']:.1f} s {held['held_mb']:.0f}/{held['limit_mb']:g} MB")
    return elapsed + "  ".join(parts)


def cmd_record(args: argparse.Namespace) -> int:
    from collector.recording.session import Session, SessionError
    from collector.recording.supervisor import StartupError

    if args.duration < 0:
        print(f"error: --duration must be > 0 s (or 0: until Ctrl-C), got {args.duration:g}", file=sys.stderr)
        return 2
    if args.episodes < 1:
        print(f"error: --episodes must be >= 1, got {args.episodes}", file=sys.stderr)
        return 2
    config = _app_config(args)
    from collector.storage.recovery import recover_interrupted
    for result in recover_interrupted(config.recording.output):  # left by a crash last time
        print(("" if result.ok else "error: ") + result.message, file=sys.stderr)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    session = Session(config)
    try:
        session.open()
    except StartupError as exc:
        print(f"error: could not start the devices: {exc}", file=sys.stderr)
        return 2
    pending: list[str] = []
    failed = False
    if config.recording.hands_free.mode != "off":
        try:
            return _record_hands_free(session, args, stop)
        finally:
            session.close()
    try:
        for _ in range(args.episodes):
            if stop.is_set():
                break
            started = session.start_episode(notes=args.notes)
            print(f"recording {started['path']}" + (f" for {args.duration:g} s" if args.duration else
                                                      " (Ctrl-C to stop)"), file=sys.stderr)
            deadline = time.monotonic() + args.duration if args.duration else float("inf")
            while not stop.is_set() and time.monotonic() < deadline:
                stop.wait(min(1.0, max(0.0, deadline - time.monotonic())))
                status = session.status()  # also lets the supervisor restart a crashed node
                if not status["recording"]:
                    print(f"error: recording stopped: {status['error']}", file=sys.stderr)
                    if status.get("last_path"):
                        print(status["last_path"])
                    return 1
                if not args.quiet:
                    print("  " + _status_line(status), file=sys.stderr)
            stopped = session.stop_episode()
            if args.outcome:
                session.tag_episode(args.outcome)
            pending.append(stopped["uuid"])
            # The next episode starts at once; this one drains and closes meanwhile.
            while len(pending) > 1:
                failed |= _report_closed(session, pending.pop(0), args.quiet)
        while pending:
            failed |= _report_closed(session, pending.pop(0), args.quiet)
    except SessionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        session.close()
    return 1 if failed else 0


def _record_hands_free(session, args: argparse.Namespace, stop: threading.Event) -> int:
    """The glove starts and stops the episodes (recording.hands_free): report each once closed,
    until Ctrl-C, ``--duration`` seconds in all, or ``--episodes`` stopped."""
    from collector.storage.library import update_episode_attrs

    mode = session.config.recording.hands_free.mode
    print(f"hands-free ({mode}): the glove starts and stops episodes; Ctrl-C to end", file=sys.stderr)
    deadline = time.monotonic() + args.duration if args.duration else float("inf")
    earlier = set(session.status().get("finished", {}))
    stopped: list[str] = []  # in the order the glove stopped them
    reported: set[str] = set()
    failed = False

    def note_stopped(status: dict) -> None:
        finished = status.get("finished", {})
        for uuid in [*finished, *(w["uuid"] for w in status.get("draining", []))]:
            if uuid not in earlier and uuid not in stopped and not finished.get(uuid, {}).get("discarded"):
                stopped.append(uuid)

    def report(status: dict, wait: bool = False) -> None:
        nonlocal failed
        for uuid in stopped:
            if uuid in reported or not (wait or uuid in status.get("finished", {})):
                continue
            reported.add(uuid)
            if args.outcome:  # by path: the recorder's "last" episode may already be a newer one
                path = session.wait_closed(uuid).get("path")
                if path:
                    update_episode_attrs(path, outcome=args.outcome)
            failed |= _report_closed(session, uuid, args.quiet)

    while not stop.is_set() and time.monotonic() < deadline and len(stopped) < args.episodes:
        stop.wait(min(0.5, max(0.0, deadline - time.monotonic())))
        status = session.status()  # also lets the supervisor restart a crashed node
        if not args.quiet:
            print("  " + _status_line(status), file=sys.stderr)
        note_stopped(status)
        report(status)
    # Ending on Ctrl-C or --duration: the running episode is kept, as Space would stop it; with
    # --episodes reached, one begun since is not one of them (it goes to the trash folder,
    # recoverable). Every episode stopped is reported once closed, and none starts meanwhile.
    session.set_hands_free(False)
    if session.status().get("recording"):
        if len(stopped) >= args.episodes:
            session.discard_episode()
            print(f"{args.episodes} episode{'s' if args.episodes != 1 else ''} recorded; the one "
                  "begun since went to the trash folder", file=sys.stderr)
        else:
            stopped.append(session.stop_episode()["uuid"])
    report(session.status(), wait=True)
    return 1 if failed else 0


def _report_closed(session, uuid: str, quiet: bool) -> bool:
    """Print a closed episode's path (stdout) and what it lacks; True if it failed."""
    from collector.storage.reader import format_info, open_episode

    result = session.wait_closed(uuid)
    if result.get("path"):
        print(result["path"])
    for problem in result.get("problems", []):
        print(f"warning: {problem}", file=sys.stderr)
    if result.get("error") or result.get("status") == "failed":
        print(f"error during recording: {result.get('error') or 'the recording failed'}", file=sys.stderr)
        return True
    if not quiet and result.get("path"):
        with open_episode(result["path"]) as episode:
            print(format_info(episode.summary()), file=sys.stderr)
    return False


def cmd_info(args: argparse.Namespace) -> int:
    from collector.storage.reader import EpisodeError, format_info, open_episode

    try:
        with open_episode(args.file) as episode:
            print(format_info(episode.summary()))
            from collector.calibration.station import calibration_lines, read_episode_calibration
            for line in calibration_lines(read_episode_calibration(episode.attrs),
                                          recorded_ns=int(episode.attrs.get("start_time_ns") or 0) or None):
                print(line)
    except EpisodeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_dir():
        return 0 if _validate_one(path, args.deep) else 1
    files = sorted(p for p in path.rglob("*.h5") if ".trash" not in p.relative_to(path).parts)
    if not files:
        print(f"error: {path}: no episodes (*.h5) in this folder", file=sys.stderr)
        return 2
    valid = sum(_validate_one(p, args.deep) for p in files)
    invalid = len(files) - valid
    print(f"{len(files)} episodes: {valid} valid" + (f", {invalid} invalid" if invalid else ""))
    return 1 if invalid else 0


def _validate_one(path: Path, deep: bool) -> bool:
    """Print ``path``'s verdict (and what is wrong on stderr); True if it is valid."""
    from collector.storage.reader import validate_episode

    problems = validate_episode(path)
    checked = True
    if deep:  # every chunk and every JPEG frame (collector.storage.checksums)
        from collector.storage.reader import deep_report
        damage, checked = deep_report(path)
        problems += [p for p in damage if p not in problems]
    if problems:
        print(f"{path}: INVALID", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return False
    print(f"{path}: valid" + ("" if checked else " (no checksums in this file: older "
                                                  "recorder; JPEG frames decoded instead)"))
    return True


def cmd_recover(args: argparse.Namespace) -> int:
    from collector.storage.recovery import recover_tree

    results = recover_tree(args.path)
    for result in results:
        if result.action == "skipped" and "being recorded" not in result.message and not args.verbose:
            continue
        print(result.message, file=sys.stdout if result.ok else sys.stderr)
    if not any(r.action == "recovered" for r in results) and all(r.ok for r in results):
        print(f"{args.path}: no interrupted episodes")
    return 0 if all(r.ok for r in results) else 1


def cmd_config(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if path.exists() and not args.force:
        print(f"error: {path} exists (use --force to overwrite)", file=sys.stderr)
        return 1
    config = station_sim_config(seed=0, cameras=args.cameras, epoch_ns=0)
    save_config(config, path)
    print(f"wrote {path}: edit [[nodes]] to name your devices")
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    import json
    import subprocess

    # The core may not import hardware SDKs: the drivers' finders run in a child process.
    proc = subprocess.run([sys.executable, "-m", "devices.discover", *args.family],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        print(f"error: device discovery failed:\n{proc.stderr.strip()}", file=sys.stderr)
        return 1
    found = json.loads(proc.stdout)
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    if not found:
        print("no device finders are installed")
    for family, result in found.items():
        if "error" in result:
            print(f"{family}: cannot search ({result['error']})")
        elif not result["devices"]:
            print(f"{family}: none found")
        else:
            print(f"{family}:")
            for device in result["devices"]:
                extra = "  ".join(f"{k}={v}" for k, v in device.items() if k not in ("kind", "name", "id"))
                print(f"  {device.get('name', '?')}  [{device.get('id', '?')}]  {extra}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="collector", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"collector {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command")
    # Run by the entry point (ui/launcher.py), listed here so that --help names it.
    sub.add_parser("gui", help="open the collect window (the default; collector gui --help)")

    rec = sub.add_parser("record", help="record episodes headless")
    source = rec.add_mutually_exclusive_group()
    source.add_argument("--sim", action="store_true", help="simulated camera and glove (default)")
    source.add_argument("--config", help="TOML config naming the device nodes")
    rec.add_argument("--duration", type=float, default=0, help="seconds per episode (0: until Ctrl-C)")
    rec.add_argument("--episodes", type=int, default=1, help="number of episodes to record")
    rec.add_argument("--hands-free", choices=["off", "gesture", "always_on"],
                     help="the glove starts and stops episodes (recording.hands_free.mode): "
                          "--episodes counts them, --duration is the whole session")
    rec.add_argument("--task")
    rec.add_argument("--operator")
    rec.add_argument("--station")
    rec.add_argument("--prompt")
    rec.add_argument("--notes")
    rec.add_argument("--outcome", choices=["success", "failure", "unknown"])
    rec.add_argument("--output", help="recordings folder (default: recordings/)")
    rec.add_argument("--seed", type=int, default=0, help="simulated operator and scene seed")
    rec.add_argument("--cameras", type=int, default=1, help="simulated cameras")
    rec.add_argument("--glove-rate", type=float, default=200.0, help="simulated glove rate (Hz)")
    rec.add_argument("--compression", choices=["none", "lz4", "zstd"])
    rec.add_argument("--color-encoding", choices=["raw", "jpeg", "h264", "hevc", "av1"],
                     help="how colour frames are stored (video: encoded while recording)")
    rec.add_argument("-q", "--quiet", action="store_true")
    rec.set_defaults(func=cmd_record)

    info = sub.add_parser("info", help="describe an episode file")
    info.add_argument("file")
    info.set_defaults(func=cmd_info)

    val = sub.add_parser("validate", help="check an episode file (or every episode in a folder)")
    val.add_argument("file", help="an episode, or a folder: every episode under it, with a summary")
    val.add_argument("--deep", action="store_true",
                     help="also read every chunk and check every checksum (names damaged samples)")
    val.set_defaults(func=cmd_validate)

    recover = sub.add_parser("recover", help="complete interrupted episodes")
    recover.add_argument("path")
    recover.set_defaults(func=cmd_recover)

    cfg = sub.add_parser("config", help="write a starting config file")
    cfg.add_argument("path")
    cfg.add_argument("--cameras", type=int, default=1)
    cfg.add_argument("--force", action="store_true")
    cfg.set_defaults(func=cmd_config)

    devices = sub.add_parser("devices", help="list attached cameras and gloves")
    devices.add_argument("family", nargs="*", help="only these families (e.g. serial realsense)")
    devices.add_argument("--json", action="store_true", help="print the raw JSON")
    devices.set_defaults(func=cmd_devices)

    for spec in COMMAND_MODULES:
        try:
            add_commands = load_entry_point(spec)
        except ConfigError as exc:  # a broken optional package costs only its own commands
            log.warning("commands of %s unavailable: %s", spec, exc)
            continue
        add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.command:
        parser.print_help()
        return 0
    if args.command == "gui":  # only when called as collector.cli; ui/launcher.py runs the window
        print("error: the window is started by the 'collector' command (ui/launcher.py)", file=sys.stderr)
        return 2
    try:
        rc = args.func(args)
        sys.stdout.flush()  # here, so that a closed pipe is caught below, not at exit
        return rc
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `collector info FILE | head`: the reader has gone, and that is fine
        quiet_closed_pipe()
        return 0


def quiet_closed_pipe() -> None:
    """After a closed stdout, stop Python's exit-time flush from printing a traceback."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    raise SystemExit(main())
