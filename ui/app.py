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

from collector.config import load_config, sim_config
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
        config = load_config(args.config) if args.config else sim_config(seed=args.seed, cameras=args.cameras)
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

    from collector.recording.collect import CollectModel

    from ui.collect.window import QtCollectWindow

    app = application("collector")
    window = QtCollectWindow(CollectModel(config, config_path=args.config))
    return run_window(app, window)


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
