"""Write a small RealSense recording with known contents, through pyrealsense2 itself.

    python -m devices.realsense.synthetic demo.db3 --frames 90 --width 640 --height 480

A ``pyrealsense2.software_device`` with a depth and a colour sensor gets known frames (a pattern
that changes every frame), known frame numbers and timestamps, intrinsics, depth scale and
depth-to-colour extrinsics; ``pyrealsense2.recorder`` writes them to a file that plays back
through ``rs.pipeline`` like a real camera (the ``realsense`` driver's ``from_file``). Tests use it
to check the driver end to end without a camera; users can demo the app with it.

The recorder silently drops frames that come faster than it compresses, and frames sent right
after it starts: frames are paced at ``fps`` after a short warm-up, the file is read back, and
the write is retried if any frame is missing.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from collector.wire.device import DeviceError
from devices.realsense.profiles import sdk

#: Seconds between starting the sensors and the first frame (the recorder's warm-up).
WARMUP_S = 0.3


@dataclass
class SyntheticRecording:
    """What :func:`write_synthetic_recording` put in the file: the ground truth for tests."""

    path: Path
    frames: int
    width: int
    height: int
    fps: int
    depth_scale: float
    first_frame_number: int
    start_ms: float
    serial: str
    name: str
    color_intrinsics: dict = field(default_factory=dict)
    depth_intrinsics: dict = field(default_factory=dict)
    depth_to_color: dict = field(default_factory=dict)

    def frame_number(self, k: int) -> int:
        return self.first_frame_number + k

    def timestamp_ms(self, k: int) -> float:
        """The hardware timestamp of frame ``k`` (both streams), in ms."""
        return self.start_ms + k * 1000.0 / self.fps

    def color(self, k: int) -> np.ndarray:
        """RGB uint8 (H, W, 3) of frame ``k``: gradients shifted by the frame index."""
        y, x = np.mgrid[0:self.height, 0:self.width]
        return np.stack([(x * 3 + k * 7) % 256, (y * 5 + k * 11) % 256,
                         (x + y + k * 13) % 256], axis=-1).astype(np.uint8)

    def depth(self, k: int) -> np.ndarray:
        """uint16 (H, W) depth units of frame ``k``."""
        y, x = np.mgrid[0:self.height, 0:self.width]
        return (400 + 4 * x + 2 * y + 10 * k).astype(np.uint16)


def write_synthetic_recording(path: str | Path, *, frames: int = 10, width: int = 64,
                              height: int = 48, fps: int = 30, depth_scale: float = 0.001,
                              first_frame_number: int = 100, start_ms: float = 10_000.0,
                              serial: str = "000000000042", name: str = "Intel RealSense D435",
                              attempts: int = 3) -> SyntheticRecording:
    """Record ``frames`` colour and depth frames to ``path`` (``.db3``); see the module docstring.

    Raises:
        DeviceError: pyrealsense2 kept dropping frames after ``attempts`` tries.
    """
    path = Path(path)
    truth = SyntheticRecording(
        path, frames, width, height, fps, depth_scale, first_frame_number, start_ms, serial, name,
        color_intrinsics={"width": width, "height": height, "fx": width * 0.9,
                          "fy": width * 0.9 + 0.5, "ppx": (width - 1) / 2 + 1.25,
                          "ppy": (height - 1) / 2 - 0.75, "model": "brown_conrady",
                          "coeffs": [0.125, -0.25, 0.0, 0.0, 0.0625]},
        depth_intrinsics={"width": width, "height": height, "fx": width * 0.7,
                          "fy": width * 0.7, "ppx": (width - 1) / 2, "ppy": (height - 1) / 2,
                          "model": "brown_conrady", "coeffs": [0.0] * 5},
        depth_to_color={"rotation": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                        "translation": [0.015, 0.0, 0.0]})
    for _ in range(attempts):
        path.unlink(missing_ok=True)
        _record(truth)
        counts = count_frames(path)
        if counts == {"color": frames, "depth": frames}:
            return truth
    raise DeviceError(f"pyrealsense2's recorder kept dropping frames writing {path}: "
                      f"{counts} of {frames} each")


def _intrinsics(rs, values: dict):
    intr = rs.intrinsics()
    for key in ("width", "height", "fx", "fy", "ppx", "ppy", "coeffs"):
        setattr(intr, key, values[key])
    intr.model = rs.distortion.brown_conrady
    return intr


def _record(truth: SyntheticRecording) -> None:
    rs = sdk()
    device = rs.software_device()
    device.register_info(rs.camera_info.name, truth.name)
    device.register_info(rs.camera_info.serial_number, truth.serial)
    device.register_info(rs.camera_info.firmware_version, "5.16.0.1")
    device.register_info(rs.camera_info.usb_type_descriptor, "3.2")
    sensors, profiles = {}, {}
    for uid, (kind, sensor_name, fmt, bpp, intr) in enumerate((
            ("depth", "Stereo Module", rs.format.z16, 2, truth.depth_intrinsics),
            ("color", "RGB Camera", rs.format.rgb8, 3, truth.color_intrinsics))):
        sensors[kind] = device.add_sensor(sensor_name)
        stream = rs.video_stream()
        stream.type, stream.index, stream.uid = getattr(rs.stream, kind), 0, uid
        stream.width, stream.height, stream.fps = truth.width, truth.height, truth.fps
        stream.bpp, stream.fmt, stream.intrinsics = bpp, fmt, _intrinsics(rs, intr)
        profiles[kind] = sensors[kind].add_video_stream(stream)
    sensors["depth"].add_read_only_option(rs.option.depth_units, truth.depth_scale)
    extrinsics = rs.extrinsics()
    extrinsics.rotation = truth.depth_to_color["rotation"]
    extrinsics.translation = truth.depth_to_color["translation"]
    profiles["depth"].register_extrinsics_to(profiles["color"], extrinsics)
    recorder = rs.recorder(str(truth.path), device)
    sink = rs.syncer()
    for kind in ("depth", "color"):
        sensors[kind].open(profiles[kind])
        sensors[kind].start(sink)
    time.sleep(WARMUP_S)
    start = time.monotonic()
    for k in range(truth.frames):
        for kind, image, bpp in (("depth", truth.depth(k), 2), ("color", truth.color(k), 3)):
            frame = rs.software_video_frame()
            frame.pixels = image
            frame.bpp, frame.stride = bpp, truth.width * bpp
            frame.timestamp = truth.timestamp_ms(k)
            frame.domain = rs.timestamp_domain.hardware_clock
            frame.frame_number = truth.frame_number(k)
            frame.profile = profiles[kind].as_video_stream_profile()
            sensors[kind].on_video_frame(frame)
        # Paced at the nominal rate: the recorder drops what comes faster than it compresses.
        time.sleep(max(0.0, start + (k + 1) / truth.fps - time.monotonic()))
    for kind in ("depth", "color"):
        sensors[kind].stop()
        sensors[kind].close()
    del recorder  # writes and closes the file


def count_frames(path: str | Path, timeout_s: float = 60.0) -> dict[str, int]:
    """Frames per stream in a recording, read straight from pyrealsense2's playback."""
    rs = sdk()
    device = rs.context().load_device(str(path))
    # Not in real time: then playback waits for its reader instead of dropping frames.
    playback = device.as_playback()
    playback.set_real_time(False)
    seen: dict[str, set[int]] = {}
    sensors = device.query_sensors()

    def on_frame(frame) -> None:
        kind = str(frame.profile.stream_type()).rsplit(".", 1)[-1]
        seen.setdefault(kind, set()).add(frame.get_frame_number())

    # Playback starts with the first sensor; the second would miss frames sent before it starts.
    playback.pause()
    for sensor in sensors:
        sensor.open(sensor.get_stream_profiles())
        sensor.start(on_frame)
    playback.seek(datetime.timedelta(0))
    playback.resume()
    # The status reads "stopped" for a moment before playback starts, and frames are still being
    # delivered when it turns "stopped" at the end: done once stopped and quiet for a while.
    deadline = time.monotonic() + timeout_s
    last_total, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.02)
        total = sum(len(numbers) for numbers in seen.values())
        if total != last_total:
            last_total, quiet_since = total, time.monotonic()
        elif (total and playback.current_status() == rs.playback_status.stopped
              and time.monotonic() - quiet_since > 0.3):
            break
    for sensor in sensors:
        sensor.stop()
        sensor.close()
    return {kind: len(numbers) for kind, numbers in seen.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devices.realsense.synthetic",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", help="file to write (.db3)")
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--depth-scale", type=float, default=0.001)
    args = parser.parse_args(argv)
    try:
        truth = write_synthetic_recording(args.path, frames=args.frames, width=args.width,
                                          height=args.height, fps=args.fps,
                                          depth_scale=args.depth_scale)
    except DeviceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {truth.path}: {truth.frames} frames of {truth.width}x{truth.height} colour "
          f"and depth at {truth.fps} fps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
