"""``collector calibrate``: measure each device's capture latency, store it for the station.

    collector calibrate latency                        simulated station: film the screen, tap, done
    collector calibrate latency --config station.toml  the devices of a config
    collector calibrate latency --from FILE            analyse an existing calibration recording
    collector calibrate show                           the station's calibration, its age, its devices

The procedure (docs/time-sync.md): point every camera at the time-code screen (the window's
calibration wizard shows it; simulated cameras film a virtual one), keep the glove hand in view
of the first camera and tap the table firmly every second or so until it says done
(:data:`~collector.calibration.procedure.DEFAULT_SECONDS`). The result goes to the station's
calibration file (``--output`` to choose) and into every episode recorded afterwards.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from collector.calibration.procedure import (DEFAULT_DISPLAY_DELAY_MS, DEFAULT_SECONDS,
                                             CalibrationError, analyse_recording, report_lines)
from collector.calibration.station import (calibration_lines, load_calibration, save_calibration,
                                           station_calibration_path)
from collector.config import AppConfig, NodeConfig, load_config, sim_config
from collector.wire.options import ConfigError

#: Options that put a simulated node into the calibration scene: the hand taps the table and
#: the camera films a screen showing the host clock (devices/sim_camera/screen.py).
SIM_CALIBRATION_OPTIONS = {"sim_camera": {"scene": "taps", "timecode_screen": True},
                           "sim_glove": {"scene": "taps"}}
#: Unless the config says otherwise, the virtual screen refreshes at 59.94 Hz like many real
#: ones: a 30 fps camera then meets every phase of its refresh within 17 s (at 60.000 Hz the
#: two would run in lock-step and the estimate stay bracketed within half a refresh).
SIM_SCREEN_DEFAULTS = {"sim_camera": {"screen_refresh_hz": 59.94}}
#: The built-in simulated station calibrates a 1 kHz glove (the issue's setting).
SIM_GLOVE_RATE_HZ = 1000.0


def calibration_config(config: AppConfig, output: Path) -> AppConfig:
    """``config`` set up for a calibration recording into ``output``: simulated nodes in the
    calibration scene, real ones as they are (the operator shows them the screen and taps)."""
    nodes = [NodeConfig(**{**vars(n), "options": {**SIM_SCREEN_DEFAULTS.get(n.driver, {}), **n.options,
                                                **SIM_CALIBRATION_OPTIONS.get(n.driver, {})}})
             for n in config.nodes]
    recording = type(config.recording)(**{**vars(config.recording), "output": output})
    return AppConfig(nodes=nodes, recording=recording, session=config.session,
                     services=[], security=config.security)


def simulated_outside_the_scene(config: AppConfig) -> bool:
    """Whether every node of ``config`` is simulated and some is not in the calibration scene
    (the built-in simulated station as the collect window runs it)."""
    twin = calibration_config(config, config.recording.output)
    return (all(n.driver.startswith("sim_") for n in config.nodes)
            and any(a.options != b.options for a, b in zip(config.nodes, twin.nodes)))


def node_devices(config: AppConfig) -> dict[str, dict[str, str]]:
    """Each node's driver and configured serial (what a later check compares against)."""
    return {n.name: {"driver": n.driver, "serial": str(n.options.get("serial", ""))} for n in config.nodes}


def film_calibration(session, seconds: float, progress: Callable[[str], None] = lambda text: None) -> Path:
    """Record one calibration episode through an open ``session`` (its devices already filming
    the time code, the operator tapping); the closed episode's path."""
    started = session.start_episode(task="latency-calibration")
    progress(f"filming the time code and the taps for {seconds:g} s: tap the table firmly "
             "every second or so")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        progress(f"{max(0.0, deadline - time.monotonic()):4.0f} s left")
    session.stop_episode()
    return Path(session.wait_closed(started["uuid"])["path"])


def record_calibration(config: AppConfig, seconds: float, output: Path,
                       progress: Callable[[str], None] = lambda text: None) -> Path:
    """Record one calibration episode of ``config``'s devices into ``output``; its path."""
    from collector.recording.session import Session

    with Session(calibration_config(config, output)) as session:
        return film_calibration(session, seconds, progress)


def calibrate_in_session(session, seconds: float = DEFAULT_SECONDS,
                         progress: Callable[[str], None] = lambda text: None, *,
                         output: Path | None = None,
                         display_delay_ms: float = DEFAULT_DISPLAY_DELAY_MS) -> tuple[dict[str, Any], Path]:
    """:func:`calibrate` with the devices of a running ``session`` (the collect window's): no
    second process opens a camera. Its nodes run as configured, so real cameras must face the
    wizard's screen; a simulated station outside the calibration scene is calibrated with a
    twin of its nodes in that scene (:func:`calibration_config`).
    The calibration episode goes to the session's trash folder once analysed: it is no
    demonstration."""
    config = session.config
    if simulated_outside_the_scene(config):
        # Simulated devices are no exclusive hardware, and the running ones film the work
        # scene, not the screen: a twin of them in the calibration scene measures the same
        # simulated latencies.
        progress("simulated devices: calibrating a twin of them in the calibration scene")
        return calibrate(config, seconds, progress, output=output, display_delay_ms=display_delay_ms)
    path = film_calibration(session, seconds, progress)
    try:
        result = calibrate(config, seconds, progress, output=output,
                           display_delay_ms=display_delay_ms, from_file=path)
    finally:
        session.discard_episode()
    return result


def calibrate(config: AppConfig, seconds: float = DEFAULT_SECONDS,
              progress: Callable[[str], None] = lambda text: None, *, output: Path | None = None,
              display_delay_ms: float = DEFAULT_DISPLAY_DELAY_MS,
              from_file: Path | None = None) -> tuple[dict[str, Any], Path]:
    """The whole procedure: record (or read ``from_file``), analyse, save to ``output`` (default:
    the station's file). Returns the calibration and where it was saved; raises
    :class:`CalibrationError` (or the session's errors) with a message for the operator."""
    from collector.storage.reader import open_episode

    with tempfile.TemporaryDirectory(prefix="collector-calibration-") as scratch:
        path = Path(from_file) if from_file else record_calibration(config, seconds, Path(scratch), progress)
        with open_episode(path) as episode:
            calibration = analyse_recording(episode, devices=node_devices(config),
                                            display_delay_ms=display_delay_ms,
                                            station=config.session.station, progress=progress)
    saved = save_calibration(calibration, output or station_calibration_path(config.session.station))
    return calibration, saved


def _load(args: argparse.Namespace) -> AppConfig:
    if args.config:
        return load_config(args.config)
    return sim_config(seed=args.seed, glove_rate_hz=SIM_GLOVE_RATE_HZ)


def _calibration_path(args: argparse.Namespace, config: AppConfig) -> Path:
    return Path(args.output) if args.output else station_calibration_path(config.session.station)


def cmd_calibrate_latency(args: argparse.Namespace) -> int:
    from collector.recording.session import SessionError
    from collector.recording.supervisor import StartupError
    from collector.storage.reader import EpisodeError

    if not 2 <= args.seconds <= 60:
        print(f"error: --seconds must be 2..60 (the operator's time), got {args.seconds:g}", file=sys.stderr)
        return 2
    try:
        config = _load(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        calibration, saved = calibrate(
            config, args.seconds, lambda text: print(f"  {text}", file=sys.stderr),
            output=_calibration_path(args, config), display_delay_ms=args.display_delay_ms,
            from_file=args.from_file)
    except (CalibrationError, EpisodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (SessionError, StartupError) as exc:
        print(f"error: could not record the calibration: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(calibration, indent=2, sort_keys=True))
    else:
        for line in report_lines(calibration):
            print(line)
    print(f"saved {saved} (applied to every episode recorded from now on)", file=sys.stderr)
    return 0


def cmd_calibrate_show(args: argparse.Namespace) -> int:
    try:
        config = _load(args)
        calibration = load_calibration(_calibration_path(args, config))
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if calibration is None:
        print(f"no calibration for station '{config.session.station}' "
              f"({_calibration_path(args, config)}): run 'collector calibrate latency'")
        return 1
    current = node_devices(config)
    changed = [f"{s}: {e.get('driver')} {e.get('serial') or ''} -> "
               f"{current.get(e.get('node', ''), {}).get('driver', 'absent')} "
               f"{current.get(e.get('node', ''), {}).get('serial', '')}".rstrip()
               for s, e in sorted(calibration["streams"].items())
               if _device_differs(e, current.get(e.get("node", "")))]
    for line in calibration_lines(calibration):
        print(line)
    for line in changed:
        print(f"  device changed since calibration: {line}")
    return 3 if changed else 0


def _device_differs(entry: dict[str, Any], node: dict[str, str] | None) -> bool:
    if node is None:
        return True
    if entry.get("driver") and entry["driver"] != node["driver"]:
        return True
    # A configured serial that differs; an unconfigured one (the first found) cannot be checked here.
    return bool(node["serial"] and entry.get("serial") and node["serial"] != entry["serial"])


def add_commands(sub) -> None:
    """Add ``calibrate latency`` and ``calibrate show`` to the ``collector`` parser."""
    calibrate = sub.add_parser("calibrate", help="measure capture latencies (time-code screen + "
                               "table taps) and store them for the station",
                               description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = calibrate.add_subparsers(dest="what", required=True)
    for name, func, text in (("latency", cmd_calibrate_latency, "run the procedure and save the result"),
                             ("show", cmd_calibrate_show, "print the station's calibration; exit 3 "
                              "if its devices changed since")):
        p = what.add_parser(name, help=text)
        p.add_argument("--config", help="station config (default: the simulated station)")
        p.add_argument("--seed", type=int, default=0, help="simulated station's seed")
        p.add_argument("--output", help="calibration file (default: the station's, "
                       "$XDG_DATA_HOME/collector/calibration/<station>.json)")
        p.set_defaults(func=func)
        if name == "latency":
            p.add_argument("--seconds", type=float, default=DEFAULT_SECONDS,
                           help=f"how long to film and tap (default {DEFAULT_SECONDS:g})")
            p.add_argument("--display-delay-ms", type=float, default=DEFAULT_DISPLAY_DELAY_MS,
                           help="the screen's render + scan-out + pixel delay, if measured "
                           f"(default {DEFAULT_DISPLAY_DELAY_MS:g}, a typical 60 Hz LCD)")
            p.add_argument("--from", dest="from_file", metavar="FILE",
                           help="analyse this calibration recording instead of recording one")
            p.add_argument("--json", action="store_true", help="print the result as JSON")
