"""Playback of a RealSense recording through the driver and the recorder, against pyrealsense2's
own playback of the same file, side by side in one run.

    python benchmarks/realsense_playback.py --frames 150 --width 640 --height 480

Writes a synthetic recording (``devices.realsense.synthetic``), then plays it as fast as possible
three ways and prints frames/s (colour + depth frames) for each:

1. pyrealsense2 alone: ``rs.pipeline`` reading every frame's buffer (the ceiling);
2. the driver: ``RealSenseCamera.read`` (copies, colour conversion, timestamps);
3. driver -> node -> ZeroMQ -> recorder -> HDF5 episode (frames found in the file).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from collector.config import RecordingConfig  # noqa: E402
from collector.storage.reader import open_episode  # noqa: E402
from collector.recording.recorder import Recorder  # noqa: E402
from collector.wire.device import DeviceDisconnected  # noqa: E402
from collector.wire.node import Node  # noqa: E402
from devices.realsense.node import RealSenseCamera  # noqa: E402
from devices.realsense.synthetic import write_synthetic_recording  # noqa: E402


def sdk_rate(path: Path) -> tuple[int, float]:
    import pyrealsense2 as rs

    pipeline, config = rs.pipeline(), rs.config()
    config.enable_device_from_file(str(path), repeat_playback=False)
    profile = pipeline.start(config)
    profile.get_device().as_playback().set_real_time(False)
    seen, first = set(), None
    while True:
        ok, frames = pipeline.try_wait_for_frames(500)
        if not ok:
            break
        first = first or time.perf_counter()
        for frame in frames:
            key = (frame.profile.stream_type(), frame.get_frame_number())
            if key not in seen:  # the syncer hands a frame out again in the next set
                seen.add(key)
                np.asanyarray(frame.get_data()).sum(dtype=np.uint64)  # touch every byte
        last = time.perf_counter()
    pipeline.stop()
    return len(seen), last - first


def driver_rate(path: Path) -> tuple[int, float]:
    camera = RealSenseCamera("cam0", {"from_file": str(path), "realtime": False, "loop": False})
    camera.connect()
    count, first, last = 0, None, 0.0
    try:
        while True:
            readings = camera.read(0.5)
            if readings:
                first = first or time.perf_counter()
                count += len(readings)
                last = time.perf_counter()
    except DeviceDisconnected:
        pass
    camera.close()
    return count, last - first


def recorded_rate(path: Path, out: Path) -> tuple[int, float, int]:
    camera = RealSenseCamera("cam0", {"from_file": str(path), "realtime": False, "loop": False})
    out.mkdir(parents=True, exist_ok=True)
    endpoint = f"ipc://{out}/cam0"
    node = Node(camera, endpoint)
    recorder = Recorder({"cam0": endpoint}, RecordingConfig(output=out, min_free_gb=0.0))
    recorder.start({"task": "bench"})
    time.sleep(0.3)
    thread = threading.Thread(target=node.run, daemon=True)
    started = time.perf_counter()
    thread.start()
    while camera.connects < 2:  # the end of the file is a disconnect; stop at the reconnect
        time.sleep(0.005)
    node.stop()
    thread.join()
    elapsed = time.perf_counter() - started
    result = recorder.stop()
    node.close()
    recorder.close()
    with open_episode(result["path"]) as ep:
        counts = [ep.count(s) for s in ep.streams]
        frame_numbers = [len(set(ep.frames(s, "frame_number").tolist())) for s in ep.streams]
    return sum(counts), elapsed, sum(frame_numbers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"writing {args.frames} frames of {args.width}x{args.height} colour + depth ...")
        truth = write_synthetic_recording(tmp / "bench.db3", frames=args.frames, width=args.width,
                                          height=args.height)
        total = 2 * truth.frames
        n_sdk, t_sdk = sdk_rate(truth.path)
        n_drv, t_drv = driver_rate(truth.path)
        n_rec, t_rec, distinct = recorded_rate(truth.path, tmp / "rec")
        # The recorder's time includes the node coming up; the others start at the first frame.
        print(f"file: {total} frames ({truth.path.stat().st_size / 1e6:.1f} MB)")
        print(f"pyrealsense2 pipeline alone : {n_sdk:4d} frames in {t_sdk:6.3f} s = "
              f"{n_sdk / t_sdk:7.1f} frames/s")
        print(f"driver read()               : {n_drv:4d} frames in {t_drv:6.3f} s = "
              f"{n_drv / t_drv:7.1f} frames/s ({n_drv / t_drv / (n_sdk / t_sdk):.2f}x the SDK)")
        print(f"driver -> node -> recorder  : {n_rec:4d} frames in {t_rec:6.3f} s = "
              f"{n_rec / t_rec:7.1f} frames/s ({n_rec / t_rec / (n_sdk / t_sdk):.2f}x the SDK); "
              f"{distinct} distinct frames in the episode")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
