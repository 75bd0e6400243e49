"""The RealSense driver through the real pyrealsense2, on recordings written by its own recorder.

No camera is attached here: files come from a ``software_device`` recorded with ``rs.recorder``
(``devices.realsense.synthetic``) and play back through ``rs.pipeline`` as a camera would.
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from collector.wire.options import ConfigError
from collector.wire.device import DeviceDisconnected, DeviceError
from devices.realsense.discover import find_cameras
from devices.realsense.node import RealSenseCamera, apply_options
from devices.realsense.profiles import pick_profile
from devices.realsense.config import RealSenseConfig
from devices.sim_camera.node import SimCamera

rs = pytest.importorskip("pyrealsense2")


def play(recording, **options) -> RealSenseCamera:
    camera = RealSenseCamera("cam0", {"from_file": str(recording.path), **options})
    camera.connect()
    return camera


def read_all(camera: RealSenseCamera, limit: int = 1000) -> tuple[list, str]:
    """Every reading until the driver reports the end (or ``limit`` readings)."""
    readings = []
    while len(readings) < limit:
        try:
            readings += camera.read(0.3)
        except DeviceDisconnected as exc:
            return readings, str(exc)
    return readings, ""


def by_stream(readings) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in readings:
        out.setdefault(r.stream.split("/")[1], []).append(r)
    return out


def assert_close_dict(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for key, value in want.items():
        if isinstance(value, str):
            assert got[key] == value, key
        else:
            np.testing.assert_allclose(got[key], value, rtol=1e-6, err_msg=key)


def test_streams_match_the_sim_camera_and_carry_the_recorded_calibration(rs_recording):
    camera = RealSenseCamera("cam0", {"from_file": str(rs_recording.path)})
    color, depth = camera.streams()
    sim_color, sim_depth = SimCamera("cam0", {"width": 64, "height": 48}).streams()
    for ours, sim in ((color, sim_color), (depth, sim_depth)):
        assert (ours.name, ours.kind, ours.rate_hz) == (sim.name, sim.kind, sim.rate_hz)
        image = sim.fields[0]
        assert ours.field(image.name).dtype == image.dtype
        assert ours.field(image.name).shape == image.shape
        assert ours.field("frame_number").dtype == "<u8"
        assert ours.field("timestamp_domain").dtype == "|u1"
        assert ours.field("t_arrival_ns").unit == "ns"
    assert_close_dict(color.meta["intrinsics"], rs_recording.color_intrinsics)
    assert_close_dict(depth.meta["intrinsics"], rs_recording.depth_intrinsics)
    assert_close_dict(depth.meta["depth_to_color"], rs_recording.depth_to_color)
    assert depth.meta["depth_scale"] == pytest.approx(0.00025, rel=1e-6)
    assert depth.field("depth").unit == "0.00025 m"
    assert color.meta["serial"] == rs_recording.serial == camera.info()["serial"]
    assert camera.info()["driver"] == "realsense"
    assert camera.info()["model"] == "Intel RealSense D435"


#: Frames a playback may miss while its pipeline comes up (before the first read).
STARTUP_LOSS = 5


def assert_frames_are_the_recorded_ones(recording, kind: str, frames: list,
                                       contiguous: bool = True) -> None:
    """Every frame is exactly the recorded one with its number and timestamp, none missing after
    the first; only the first few may be lost (the pipeline coming up, as with a camera: 3 were,
    once, on a quiet machine; :data:`STARTUP_LOSS` allows ~170 ms of it).

    In real time, playback drops frames when its reader falls behind (a loaded machine): then
    ``contiguous=False`` only asks that gaps show in the numbers."""
    numbers = [r.seq for r in frames]
    first = recording.first_frame_number
    if contiguous:
        assert numbers == list(range(numbers[0], first + recording.frames)), (kind, numbers)
    else:
        assert np.all(np.diff(numbers) >= 1) and len(numbers) >= recording.frames // 2, numbers
    assert numbers[0] <= first + STARTUP_LOSS, (kind, numbers)
    for r in frames:
        k = r.seq - first
        assert int(r.fields["frame_number"]) == r.seq
        assert r.t_device_ns == round(recording.timestamp_ms(k) * 1e6)
        assert int(r.fields["timestamp_domain"]) == int(rs.timestamp_domain.hardware_clock)
        want = recording.color(k) if kind == "color" else recording.depth(k)
        got = r.fields["rgb" if kind == "color" else "depth"]
        assert got.dtype == want.dtype and np.array_equal(got, want), (kind, k)


def test_fast_playback_delivers_every_frame_with_its_number_and_timestamp(rs_recording):
    camera = play(rs_recording, realtime=False, loop=False)
    readings, end = read_all(camera)
    camera.close()
    frames = len({r.seq for r in readings})  # a frame is its colour and depth images
    assert end == f"cam0: end of recording {rs_recording.path} ({frames} frames played)"
    streams = by_stream(readings)
    assert set(streams) == {"color", "depth"}
    for kind, frames in streams.items():
        assert_frames_are_the_recorded_ones(rs_recording, kind, frames)
        # As fast as possible, the frames' host time is when they arrived.
        assert all(r.t_host_ns == int(r.fields["t_arrival_ns"]) for r in frames)


def test_realtime_playback_keeps_the_recorded_pace(rs_recording):
    camera = play(rs_recording, realtime=True, loop=False)
    readings, _ = read_all(camera)
    camera.close()
    color = by_stream(readings)["color"]
    assert_frames_are_the_recorded_ones(rs_recording, "color", color, contiguous=False)
    host = np.array([r.t_host_ns for r in color])
    arrival = np.array([int(r.fields["t_arrival_ns"]) for r in color])
    assert np.all(host <= arrival) and np.all(np.diff(host) > 0)
    # Host times follow the device clock (33.3 ms apart) rather than the arrival jitter; early
    # frames may sit closer while the estimate learns the smallest transport delay.
    assert np.median(np.diff(host)) / 1e6 == pytest.approx(1000 / 30, abs=1.0)
    # Paced by the recording, not as fast as possible (a loaded machine may only be slower).
    span_s = (arrival[-1] - arrival[0]) / 1e9
    assert span_s > 0.8 * (color[-1].seq - color[0].seq) / 30


def test_looping_numbers_frames_and_time_on_as_one_recording(rs_recording):
    camera = play(rs_recording, realtime=False, loop=True)
    readings = []
    while len(by_stream(readings).get("color", [])) < 2.5 * rs_recording.frames:
        readings += camera.read(1.0)
    camera.close()
    n = rs_recording.frames
    for kind, frames in by_stream(readings).items():
        seq = np.array([r.seq for r in frames])
        t_device = np.array([r.t_device_ns for r in frames])
        assert np.all(np.diff(seq) >= 1) and np.all(np.diff(t_device) > 0), kind
        # Frames lost at a wrap show as gaps, never as a restart; pixels follow the file.
        for r in frames:
            k = int(r.fields["frame_number"]) - rs_recording.first_frame_number
            assert (r.seq - rs_recording.first_frame_number) % n == k
            want = rs_recording.color(k) if kind == "color" else rs_recording.depth(k)
            assert np.array_equal(r.fields["rgb" if kind == "color" else "depth"], want)
        assert seq[-1] - seq[0] + 1 - len(seq) <= 4, "at most two frames lost per wrap"


def test_depth_aligned_to_color_takes_the_color_geometry(rs_recording):
    camera = RealSenseCamera("cam0", {"from_file": str(rs_recording.path),
                                      "align_depth_to_color": True, "realtime": False,
                                      "loop": False})
    _, depth = camera.streams()
    assert depth.meta["aligned_to_color"] is True
    assert depth.meta["intrinsics"] == depth.meta["intrinsics"] | {"fx": pytest.approx(57.6)}
    assert depth.meta["depth_to_color"]["translation"] == [0.0, 0.0, 0.0]
    assert depth.meta["unaligned_depth_to_color"]["translation"][0] == pytest.approx(0.015)
    camera.connect()
    readings, _ = read_all(camera)
    camera.close()
    frames = by_stream(readings)["depth"]
    # Playback runs in real time until connect() switches it off, so a busy machine misses the
    # first frames (3 of 12 in one suite run, as a camera would); once running, none.
    assert len(frames) >= rs_recording.frames - STARTUP_LOSS
    assert all(r.fields["depth"].shape == (48, 64) for r in frames)
    assert [r.seq for r in frames] == list(range(frames[0].seq, 112))
    # A flat ramp seen 15 mm to the side: mostly valid, and not the unaligned image.
    middle = frames[0].fields["depth"][10:38, 10:54]
    assert (middle > 0).mean() > 0.9 and not np.array_equal(middle, rs_recording.depth(0)[10:38, 10:54])


def test_config_errors_name_the_option():
    with pytest.raises(ConfigError, match=r"^cam0\.options: from_file plays the recorded camera "
                                          r"settings; remove serial, exposure_us$"):
        RealSenseCamera("cam0", {"from_file": "x.db3", "serial": "123", "exposure_us": 100.0})
    with pytest.raises(ConfigError, match=r"^cam0\.options: auto_exposure = true contradicts"):
        RealSenseCamera("cam0", {"auto_exposure": True, "exposure_us": 100.0})
    with pytest.raises(ConfigError, match=r"^cam0\.options: unknown option 'fsp' \(known: "):
        RealSenseCamera("cam0", {"fsp": 30})
    with pytest.raises(ConfigError, match=r"^cam0\.options\.fps: expected int, got str '30'$"):
        RealSenseCamera("cam0", {"fps": "30"})


def test_a_missing_recording_is_a_clear_error(tmp_path):
    with pytest.raises(DeviceError, match=f"^cam0: recording {tmp_path}/none.db3 does not exist$"):
        RealSenseCamera("cam0", {"from_file": str(tmp_path / "none.db3")}).streams()
    bad = tmp_path / "bad.db3"
    bad.write_bytes(b"not a recording")
    with pytest.raises(DeviceError, match=f"^cam0: cannot play {bad}: "):
        RealSenseCamera("cam0", {"from_file": str(bad)}).streams()


def test_no_camera_attached_fails_at_once_and_says_so():
    started = time.monotonic()
    with pytest.raises(DeviceError, match=r"^cam0: no RealSense camera is attached"):
        RealSenseCamera("cam0", {"serial": "123"}).streams()
    assert time.monotonic() - started < 5  # not the 15 s rs.pipeline().start() would wait
    assert find_cameras() == []


def test_collector_devices_says_when_there_is_no_camera():
    out = subprocess.run([sys.executable, "-m", "collector.cli", "devices", "realsense"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "realsense: none found"


def software_camera(usb: str = "3.2"):
    """A software device with the sensors and modes of a small RealSense, for mode and option
    checks that need a device but no stream."""
    device = rs.software_device()
    device.register_info(rs.camera_info.name, "Intel RealSense D415")
    device.register_info(rs.camera_info.usb_type_descriptor, usb)
    color = device.add_sensor("RGB Camera")
    depth = device.add_sensor("Stereo Module")
    for uid, (sensor, stream, fmt, bpp, w, h, fps) in enumerate((
            (color, rs.stream.color, rs.format.rgb8, 3, 1280, 720, 15),
            (color, rs.stream.color, rs.format.rgb8, 3, 1280, 720, 30),
            (color, rs.stream.color, rs.format.rgb8, 3, 640, 480, 30),
            (depth, rs.stream.depth, rs.format.z16, 2, 640, 480, 30))):
        vs = rs.video_stream()
        vs.type, vs.index, vs.uid, vs.width, vs.height, vs.fps = stream, 0, uid, w, h, fps
        vs.bpp, vs.fmt = bpp, fmt
        intr = rs.intrinsics()
        intr.width, intr.height, intr.fx, intr.fy, intr.ppx, intr.ppy = w, h, w, w, w / 2, h / 2
        vs.intrinsics = intr
        sensor.add_video_stream(vs)
    # option_range(min, max, step, default) as pyrealsense2 2.59 binds it (step and default
    # arrive swapped, so both are 1 here).
    color.add_option(rs.option.enable_auto_exposure, rs.option_range(0, 1, 1, 1), True)
    color.add_option(rs.option.exposure, rs.option_range(1, 10000, 1, 1), True)
    depth.add_option(rs.option.enable_auto_exposure, rs.option_range(0, 1, 1, 1), True)
    depth.add_option(rs.option.exposure, rs.option_range(1, 165000, 1, 1), True)
    return device, color, depth


def test_an_unsupported_mode_names_the_supported_ones():
    device, color, _ = software_camera(usb="2.1")
    with pytest.raises(DeviceError) as err:
        pick_profile(color, rs.stream.color, rs.format.rgb8, 1920, 1080, 30, where="cam0: D415",
                     usb_type="2.1")
    assert str(err.value) == ("cam0: D415: color 1920x1080 rgb8 at 30 fps is not supported over "
                              "this USB 2.1 link (USB 3 offers more); supported color modes: "
                              "1280x720@15/30, 640x480@30")
    profile = pick_profile(color, rs.stream.color, rs.format.rgb8, 1280, 720, 15, where="x")
    assert (profile.width(), profile.height(), profile.fps()) == (1280, 720, 15)


def test_exposure_options_are_set_and_checked_against_the_camera_range():
    device, color, depth = software_camera()
    config = RealSenseConfig(exposure_us=200.0, depth_exposure_us=8500.0)
    apply_options(device, config, "cam0")
    assert color.get_option(rs.option.exposure) == 200.0
    assert color.get_option(rs.option.enable_auto_exposure) == 0.0
    assert depth.get_option(rs.option.exposure) == 8500.0
    with pytest.raises(DeviceError, match=r"^cam0: exposure_us = 20000 is outside 1\.\.10000 "
                                          r"on the RGB Camera$"):
        apply_options(device, RealSenseConfig(exposure_us=20000.0), "cam0")
    with pytest.raises(DeviceError, match=r"^cam0: laser_power_mw: the Stereo Module has no "
                                          r"Laser Power option$"):
        apply_options(device, RealSenseConfig(laser_power_mw=150.0), "cam0")
