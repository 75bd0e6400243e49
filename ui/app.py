"""The desktop app: ``collector`` with no arguments opens the collect window on simulated devices.

    collector                          # simulated camera and glove
    collector --config station.toml    # the devices of a config file
    collector gui --cameras 2          # two simulated cameras
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from collector.config import load_config, station_sim_config
from collector.wire.options import ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="collector gui", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="TOML config naming the devices (default: simulated)")
    parser.add_argument("--cameras", type=int, default=1, help="simulated cameras (without --config)")
    parser.add_argument("--seed", type=int, default=0, help="simulated scene seed")
    parser.add_argument("--output", help="recordings folder")
    parser.add_argument("--no-wam", action="store_true",
                        help="without the live World Action Model preview (on by default for the "
                             "simulated devices; a config file runs it as a [[services]] entry, "
                             "see docs/wam.md)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config) if args.config else station_sim_config(seed=args.seed,
                                                                                         cameras=args.cameras)
        if args.config:  # unknown drivers and options: refused before any process starts
            from collector.recording.supervisor import check_drivers

            check_drivers(config)
    except (ConfigError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.output:
        config.recording.output = Path(args.output)
    if not args.config and not args.no_wam:
        # The shipped checkpoint was trained on the simulator: the preview works out of the box.
        from collector.wam.node import service_config

        config.services.append(service_config())
    elif args.no_wam:
        config.services = [s for s in config.services if s.module != "collector.wam.node"]
    if (sys.platform.startswith("linux") and not os.environ.get("QT_QPA_PLATFORM")
            and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")):
        print("error: no display to open the window on (DISPLAY is not set). Run it under a "
              "virtual screen, e.g. 'xvfb-run -a collector', or record headless with "
              "'collector record --sim --duration 10'.", file=sys.stderr)
        return 2

    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if sys.platform.startswith("linux") and (platform.startswith("xcb") or not platform and
                                             os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")):
        from collector.doctor import qt_platform_check

        check = qt_platform_check()
        if not check.ok:  # Qt would abort (exit 134) with a message that names the wrong library
            return cannot_start(config, f"Qt's platform plugin cannot load ({check.detail})")
    from collector.recording.collect import CollectModel

    try:
        from ui.collect.window import QtCollectWindow
    except ImportError as exc:
        return cannot_start(config, f"{type(exc).__name__}: {exc}")

    app = application("collector")
    window = QtCollectWindow(CollectModel(config, config_path=args.config))
    return run_window(app, window)


def cannot_start(config, reason: str) -> int:
    """The window cannot open: say why, then what ``collector doctor`` finds (and how to fix it)."""
    from collector.doctor import format_report, run_checks

    print(f"error: the window cannot start: {reason}. What `collector doctor` finds:", file=sys.stderr)
    print(format_report(run_checks(config, gui=True, write_mb=16)), file=sys.stderr)
    return 2


def application(name: str):
    """The QApplication, styled (created on first use)."""
    from PySide6 import QtWidgets

    from ui import theme

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName(name)
    theme.apply(app)
    return app


def run_window(app, window) -> int:
    """Show ``window`` and run Qt's loop until it closes; Ctrl-C or SIGTERM close it first (the
    collect window then finishes a running episode)."""
    from PySide6 import QtCore

    window.show()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: window.close())
    keepalive = QtCore.QTimer()
    keepalive.start(200)  # lets Python run its signal handlers while Qt's loop runs
    keepalive.timeout.connect(lambda: None)
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
