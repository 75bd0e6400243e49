"""Render the collect window on live simulated streams to a PNG, as an operator would see it.

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot.py shot.png --cameras 2

Without a display it falls back to Qt's offscreen platform. The window records a short episode
first (so the REC state, counters and health are live), then the picture is taken mid-recording.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
if not os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="PNG path")
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--record-s", type=float, default=6.0, help="seconds recorded before the shot")
    parser.add_argument("--size", help="WxH (default: what the window picks for the screen)")
    parser.add_argument("--settings", help="also save the settings dialog to this PNG")
    parser.add_argument("--no-wam", action="store_true", help="without the WAM preview node")
    args = parser.parse_args()

    from PySide6 import QtWidgets

    from collector.recording.collect import CollectModel
    from collector.config import sim_config
    from ui import theme
    from ui.collect.window import QtCollectWindow

    app = QtWidgets.QApplication(sys.argv[:1])
    theme.apply(app)
    config = sim_config(cameras=args.cameras)
    config.recording.output = Path(tempfile.mkdtemp(prefix="collector-shot-"))
    config.session.operator, config.session.station = "ana", "bench-1"
    config.session.task = "pick-cube"
    config.session.prompt = "Pick up the red cube and place it in the bin"
    config.session.sounds = False
    if not args.no_wam:
        from collector.wam.node import service_config
        config.services.append(service_config())
    model = CollectModel(config)
    window = QtCollectWindow(model)
    if args.size:
        width, height = (int(v) for v in args.size.split("x"))
        window.resize(width, height)
    window.show()

    def pump(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.005)

    deadline = time.monotonic() + 60
    while not model.opened and time.monotonic() < deadline:
        pump(0.1)
    pump(2.0)
    model.start_episode()
    pump(args.record_s)
    window.grab().save(args.out)
    print(f"wrote {args.out}")
    if args.settings:
        from ui.settings_dialog import QtSettingsDialog

        dialog = QtSettingsDialog(model, window)
        dialog.show()
        pump(0.3)
        dialog.grab().save(args.settings)
        dialog.close()
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
