"""Capture-to-screen latency, redraw rate and CPU of the collect window while it records.

    python benchmarks/gui_latency.py --cameras 2 --seconds 20
    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/gui_latency.py   # a real X window

Each simulated camera draws its frames' host capture time as a barcode into the pixels
(``timestamp_barcode``); when pyqtgraph paints a camera image, the barcode is read back from the
very array being painted and compared with the clock: that is the capture-to-screen latency.
Also printed: distinct frames painted per second per camera (against the camera's 30 fps) and
the GUI process's CPU (the device nodes and the recorder are other processes).
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

import numpy as np  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--glove-rate", type=float, default=200.0)
    parser.add_argument("--wam", action="store_true", help="with the WAM preview node, as the GUI runs by default")
    args = parser.parse_args()

    import psutil
    import pyqtgraph as pg
    from PySide6 import QtWidgets

    from collector.recording.collect import CollectModel
    from collector.config import sim_config
    from devices.sim_camera.node import read_barcode
    from ui import theme
    from ui.collect.window import QtCollectWindow

    painted: dict[int, list[tuple[int, int]]] = {}  # id(item) -> [(capture ns, paint ns)]
    original_paint = pg.ImageItem.paint

    def timed_paint(item, painter, *rest):
        original_paint(item, painter, *rest)
        image = item.image
        if getattr(item, "is_color", False) and image is not None and image.ndim == 3:
            stamp = read_barcode(image)
            frames = painted.setdefault(id(item), [])
            if not frames or frames[-1][0] != stamp:
                frames.append((stamp, time.time_ns()))

    pg.ImageItem.paint = timed_paint

    app = QtWidgets.QApplication(sys.argv[:1])
    theme.apply(app)
    config = sim_config(cameras=args.cameras, glove_rate_hz=args.glove_rate)
    for node in config.nodes[:args.cameras]:
        node.options["timestamp_barcode"] = True
    config.recording.output = Path(tempfile.mkdtemp(prefix="collector-bench-"))
    config.session.sounds = False
    if args.wam:
        from collector.wam.node import service_config
        config.services.append(service_config())
    model = CollectModel(config)
    window = QtCollectWindow(model)
    window.resize(1500, 940)
    window.show()

    def pump(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.002)

    while not model.opened:
        pump(0.05)
    for pane in window.cameras.panes.values():
        pane.color_item.is_color = True
    pump(2.0)
    model.start_episode().result(30)
    pump(1.0)
    painted.clear()
    process = psutil.Process()
    cpu0, wall0, wall0_ns = process.cpu_times(), time.monotonic(), time.time_ns()
    pump(args.seconds)
    cpu1, wall = process.cpu_times(), time.monotonic() - wall0
    model.stop_episode().result(60)
    window.close()

    # The GUI's own share: from the frame's arrival in the GUI process to the moment it is drawn.
    in_gui = np.array([(shown - received) / 1e6 for _, _, shown, received in window.cameras.shown
                       if received and shown >= wall0_ns])
    latencies = np.array([(shown - stamp) / 1e6 for frames in painted.values() for stamp, shown in frames])
    cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / wall
    platform = QtWidgets.QApplication.platformName()
    print(f"collect window, {args.cameras} cameras 640x480 RGB-D 30 fps + {args.glove_rate:g} Hz glove "
          f"plots{' + WAM preview' if args.wam else ''}, recording, {args.seconds:g} s, Qt platform '{platform}', {os.cpu_count()} cores")
    if not len(latencies):
        print("no camera frames were painted")
        return 1
    p50, p99 = np.percentile(latencies, [50, 99])
    print(f"capture-to-screen latency: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {latencies.max():.1f} ms "
          f"({len(latencies)} frames); p99 is {p99 / 100:.2f}x the 100 ms target")
    if len(in_gui):
        g50, g99 = np.percentile(in_gui, [50, 99])
        print(f"  of which inside the GUI (arrival in the GUI process to setImage): p50 {g50:.1f} ms, "
              f"p99 {g99:.1f} ms; the rest is the simulated camera, the bus and paint scheduling")
    for i, frames in enumerate(painted.values()):
        rate = len(frames) / wall
        print(f"camera pane {i}: {rate:.1f} distinct frames painted per second "
              f"({rate / 30:.2f}x the camera's 30 fps)")
    print(f"GUI process CPU: {100 * cpu:.0f} % of one core")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
