"""How fast the simulated camera renders, on one core.

    python benchmarks/sim_camera_fps.py [--width 640 --height 480 --frames 300 --views 0 1 2 3]

Prints, per viewpoint, the frames per second of world evaluation + colour + depth + sensor noise,
and of the whole driver (``SimCamera.read`` with ``realtime=False``), with the ratio to the
camera's 30 fps. Two cameras share two cores in the ``--sim`` setup, so >= 60 fps per core is the
target.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402

from devices.sim_camera.node import SimCamera  # noqa: E402
from devices.sim_camera.render import Renderer, camera_for_view  # noqa: E402
from devices.sim_world import CYCLE_S, World  # noqa: E402

TARGET_FPS = 30.0


def pin_to_one_core() -> str:
    cv2.setNumThreads(1)
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"pinned to core {core}"
    return "not pinned (no sched_setaffinity)"


def render_fps(view: int, width: int, height: int, frames: int) -> float:
    world = World(seed=0)
    renderer = Renderer(world, camera_for_view(view, width, height), 0, view)
    # Spread the frames over a whole cycle so every phase (and a held cube) is included.
    times = [1000.0 + CYCLE_S * i / frames for i in range(frames)]
    renderer.render(world.state_at(times[0]), 0)
    start = time.perf_counter()
    for i, t in enumerate(times):
        renderer.render(world.state_at(t), i)
    return frames / (time.perf_counter() - start)


def driver_fps(view: int, width: int, height: int, frames: int) -> float:
    camera = SimCamera("cam0", {"view": view, "width": width, "height": height,
                                "realtime": False})
    camera.connect()
    camera.read(1.0)
    start = time.perf_counter()
    for _ in range(frames):
        camera.read(1.0)
    return frames / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--views", type=int, nargs="+", default=[0, 1, 2, 3])
    args = parser.parse_args()
    print(f"sim camera render benchmark, {args.width}x{args.height}, {args.frames} frames, "
          f"{pin_to_one_core()}, load average {os.getloadavg()[0]:.2f}")
    worst = float("inf")
    for view in args.views:
        fps = render_fps(view, args.width, args.height, args.frames)
        driver = driver_fps(view, args.width, args.height, args.frames)
        worst = min(worst, fps, driver)
        print(f"view {view}: render {fps:7.1f} fps ({fps / TARGET_FPS:5.2f}x 30 fps), "
              f"driver read {driver:7.1f} fps ({driver / TARGET_FPS:5.2f}x 30 fps)")
    print(f"slowest: {worst:.1f} fps per core = {worst / TARGET_FPS:.2f}x the 30 fps a camera needs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
