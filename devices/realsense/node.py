"""The ``realsense`` driver: an Intel RealSense RGB-D camera, live or from a recording.

Publishes ``<name>/color`` (``rgb``: RGB uint8 (H, W, 3)) and ``<name>/depth`` (``depth``:
uint16 (H, W) in depth units, ``meta["depth_scale"]`` metres each), the same streams and fields as
the simulated camera, plus per frame ``frame_number`` (the camera's counter, also the bus ``seq``,
so frames the camera dropped show as gaps), ``timestamp_domain`` (librealsense's enum:
0 hardware_clock, 1 system_time, 2 global_time) and ``t_arrival_ns`` (host time the frame reached
this process). ``t_device_ns`` is the camera's hardware timestamp; ``t_host_ns`` the capture time on
the host clock: librealsense's global time where the camera provides it, else an online estimate
from the arrival times (:mod:`devices.realsense.clock`). docs/realsense.md has the details.

Everything the streams declare (modes, intrinsics, depth scale, extrinsics) is read from the
camera or file before :meth:`RealSenseCamera.connect`, without starting a stream, so the node can
announce it up front.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from collector.wire.streams import FieldSpec, StreamSpec

from collector.wire.device import Device, DeviceDisconnected, DeviceError, Reading
from devices.realsense.clock import HostClockEstimate
from devices.realsense.config import RealSenseConfig
from devices.realsense.discover import attached_serials
from devices.realsense.profiles import (IDENTITY, camera_info, extrinsics_dict, intrinsics_dict, pick_profile, sdk,
                       sensor_for, video_profiles)

log = logging.getLogger(__name__)

#: How often playback checks that its file is still there.
FILE_CHECK_INTERVAL_S = 0.25
TIMESTAMP_DOMAINS = {0: "hardware_clock", 1: "system_time", 2: "global_time"}


@dataclass
class StreamPlan:
    """One stream as it will be opened: librealsense stream, format and mode, and its spec."""

    kind: str  # "color" | "depth"
    stream: Any
    format: Any
    width: int
    height: int
    fps: int
    intrinsics: dict
    out_shape: tuple[int, ...] = ()
    meta: dict = field(default_factory=dict)


class RealSenseCamera(Device):
    """One RealSense camera (or recording); see the module docstring."""

    Config = RealSenseConfig

    def __init__(self, name: str, config=None) -> None:
        super().__init__(name, config)
        self.rs = sdk()
        self.source = str(self.config.from_file) if self.config.from_file else "live"
        self._plans: dict[str, StreamPlan] | None = None
        self._info: dict[str, Any] = {}
        self._pipeline = None
        self._playback = None
        self._align = None
        self._clocks = {kind: HostClockEstimate() for kind in ("color", "depth")}
        self._numbering: dict[str, dict[str, int]] = {}
        #: Passes through a looping recording, and the device-time offset of the current one.
        self._pass = {"count": 0, "dev_offset": 0}
        self._span: dict[str, int] = {}  # the lowest and highest frame number in the file
        self._played: dict[str, int] = {}
        self._last_frame_at = 0.0
        self._next_file_check = 0.0
        #: Frames read since the last connect, and how many times it connected.
        self.frames_read = 0
        self.connects = 0

    # -- declaration ----------------------------------------------------------------------------

    def streams(self) -> list[StreamSpec]:
        plans = self._probe()
        specs = []
        for kind, plan in plans.items():
            if kind == "color":
                image = FieldSpec("rgb", "uint8", plan.out_shape)
            else:
                scale = plan.meta["depth_scale"]
                unit = "mm" if abs(scale - 0.001) < 1e-9 else f"{scale:.6g} m"
                image = FieldSpec("depth", "uint16", plan.out_shape, unit=unit)
            specs.append(StreamSpec(f"{self.name}/{kind}", kind, float(plan.fps), [
                image, FieldSpec("frame_number", "uint64", ()),
                FieldSpec("timestamp_domain", "uint8", ()),
                FieldSpec("t_arrival_ns", "int64", (), unit="ns")], meta=dict(plan.meta),
                image_field=image.name))
        return specs

    def info(self) -> dict:
        self._probe()
        return {**super().info(), "model": self._info.get("name", ""), **self._info,
                "source": self.source}

    def _probe(self) -> dict[str, StreamPlan]:
        if self._plans is None:
            device, keep = self._open_device()
            try:
                self._plans = self._plan(device)
            finally:
                del device, keep
        return self._plans

    def _open_device(self):
        """The rs.device to describe (and what must stay alive with it)."""
        rs = self.rs
        context = rs.context()
        if self.config.from_file is not None:
            path = Path(self.config.from_file)
            if not path.is_file():
                raise DeviceError(f"{self.name}: recording {path} does not exist")
            try:
                return context.load_device(str(path)), context
            except RuntimeError as exc:
                raise DeviceError(f"{self.name}: cannot play {path}: {exc}") from None
        devices = list(context.query_devices())
        serials = [camera_info(d).get("serial", "?") for d in devices]
        if not devices:
            raise DeviceError(f"{self.name}: no RealSense camera is attached "
                              "('collector devices' lists what is)")
        if self.config.serial:
            if self.config.serial not in serials:
                raise DeviceError(f"{self.name}: no RealSense camera with serial "
                                  f"{self.config.serial} (attached: {', '.join(serials)})")
            return devices[serials.index(self.config.serial)], context
        if len(devices) > 1:
            raise DeviceError(f"{self.name}: {len(devices)} cameras attached "
                              f"({', '.join(serials)}); set options.serial to choose one")
        return devices[0], context

    def _plan(self, device) -> dict[str, StreamPlan]:
        rs, c = self.rs, self.config
        self._info = camera_info(device)
        where = f"{self.name}: {self._info.get('name', 'RealSense')} {self._info.get('serial', '')}"
        sensors = {kind: sensor_for(device, getattr(rs.stream, kind)) for kind in ("color", "depth")}
        profiles = {}
        if c.from_file is None:
            for kind, fmt, mode in (("color", rs.format.rgb8, (c.width, c.height, c.fps)),
                                    ("depth", rs.format.z16, c.depth_mode)):
                if sensors[kind] is None:
                    raise DeviceError(f"{where}: this camera has no {kind} sensor")
                profiles[kind] = pick_profile(sensors[kind], getattr(rs.stream, kind), fmt, *mode,
                                              where=where, usb_type=self._info.get("usb_type", ""))
            apply_options(device, c, where)
        else:
            for kind, formats in (("color", COLOR_FORMATS), ("depth", ("z16",))):
                if sensors[kind] is None:
                    continue
                usable = [p for p in video_profiles(sensors[kind], getattr(rs.stream, kind))
                          if str(p.format()).rsplit(".", 1)[-1] in formats]
                if not usable:
                    raise DeviceError(f"{where}: the {kind} stream of {c.from_file} is in a "
                                      f"format this driver does not read (reads {', '.join(formats)})")
                profiles[kind] = usable[0]
            if not profiles:
                raise DeviceError(f"{where}: {c.from_file} holds no color or depth stream")
        plans = {}
        for kind, p in profiles.items():
            plans[kind] = StreamPlan(kind, p.stream_type(), p.format(), p.width(), p.height(),
                                     p.fps(), intrinsics_dict(p.get_intrinsics()))
        common = {"serial": self._info.get("serial", ""), "model": self._info.get("name", ""),
                  "firmware": self._info.get("firmware", ""),
                  "usb_type": self._info.get("usb_type", ""), "source": self.source,
                  "timestamp_domains": TIMESTAMP_DOMAINS,
                  "host_time": ("global_time where the camera provides it, else an online fit "
                                "of arrival times" if c.from_file is None else
                                "online fit of arrival times" if c.realtime else "arrival time")}
        if "depth" in plans:
            common["depth_scale"] = float(sensors["depth"].as_depth_sensor().get_depth_scale())
        for kind, plan in plans.items():
            plan.meta = dict(common, intrinsics=plan.intrinsics,
                             format=str(plan.format).rsplit(".", 1)[-1])
            plan.out_shape = ((plan.height, plan.width, 3) if kind == "color"
                              else (plan.height, plan.width))
        if "depth" in plans:
            depth = plans["depth"]
            if "color" in plans:
                depth.meta["depth_to_color"] = extrinsics_dict(
                    profiles["depth"].get_extrinsics_to(profiles["color"]))
            if c.align_depth_to_color:
                if "color" not in plans:
                    raise DeviceError(f"{where}: align_depth_to_color needs a color stream")
                color = plans["color"]
                depth.meta.update(aligned_to_color=True, intrinsics=color.intrinsics,
                                  unaligned_intrinsics=depth.intrinsics,
                                  unaligned_depth_to_color=depth.meta["depth_to_color"],
                                  depth_to_color=IDENTITY)
                depth.out_shape = (color.height, color.width)
        return plans

    # -- streaming ------------------------------------------------------------------------------

    def connect(self) -> None:
        rs, c = self.rs, self.config
        self.close()
        if c.from_file is not None and not Path(c.from_file).is_file():
            raise DeviceError(f"{self.name}: recording {c.from_file} does not exist")
        plans = self._probe()  # the first time: finds the camera or says why not
        serial = c.serial or self._info.get("serial", "")
        if c.from_file is None and serial not in attached_serials():
            # Checked first: rs.pipeline().start() waits 15 s for a camera that is not there.
            raise DeviceError(f"{self.name}: camera {serial} is not attached")
        config = rs.config()
        if c.from_file is not None:
            config.enable_device_from_file(str(c.from_file), repeat_playback=c.loop)
        else:
            config.enable_device(serial)
        for plan in plans.values():
            config.enable_stream(plan.stream, plan.width, plan.height, plan.format, plan.fps)
        pipeline = rs.pipeline()
        try:
            profile = pipeline.start(config)
        except RuntimeError as exc:
            raise DeviceError(f"{self.name}: cannot start {self.source}: {exc}") from None
        self._pipeline = pipeline
        device = profile.get_device()
        if c.from_file is not None:
            # Playback is already running: like a camera, the pipeline may miss the first
            # frame or two while it comes up (frame numbers show it). A paused rewind here
            # would race with frames already inside the pipeline's syncer.
            playback = device.as_playback()
            playback.set_real_time(c.realtime)
            self._playback = playback
        else:
            apply_options(device, c, f"{self.name}: {self._info.get('name', '')}")
        if c.align_depth_to_color and "depth" in plans:
            self._align = rs.align(rs.stream.color)
        for clock in self._clocks.values():
            clock.reset()
        self._numbering = {}
        self._pass = {"count": 0, "dev_offset": 0}
        self._span = {}
        self._played = {}
        self._last_frame_at = time.monotonic()
        self.frames_read = 0
        self.connects += 1

    def events(self) -> list[tuple[str, dict]]:
        """Clock faults (absurd rate, jumps) of the estimates that map device time to host."""
        return [(kind, {"message": message, "stream": f"{self.name}/{stream}"})
                for stream, clock in self._clocks.items() for kind, message in clock.notices()]

    def read(self, timeout_s: float) -> list[Reading]:
        if self._pipeline is None:
            raise DeviceError("read() before connect()")
        self._check_file()
        try:
            ok, frames = self._pipeline.try_wait_for_frames(max(1, int(timeout_s * 1000)))
        except RuntimeError as exc:
            raise DeviceDisconnected(f"{self.name}: {exc}") from None
        arrival_ns = time.time_ns()
        if not ok:
            self._on_timeout()
            return []
        self._last_frame_at = time.monotonic()
        color, depth = frames.get_color_frame(), frames.get_depth_frame()
        if self._align is not None and depth:
            # Aligning needs the colour frame of the same instant; a lone depth frame is
            # skipped, which shows as a gap in its frame numbers.
            # (The aligned frameset is kept in a variable: its depth frame lives only as long.)
            aligned = self._align.process(frames) if color else None
            depth = aligned.get_depth_frame() if aligned else None
        readings = []
        for kind, frame in (("color", color), ("depth", depth)):
            if frame and kind in self._plans:
                reading = self._reading(kind, frame, arrival_ns)
                if reading is not None:
                    readings.append(reading)
        for reading in readings:
            self._played[reading.stream] = self._played.get(reading.stream, 0) + 1
        # Frames of the camera, not images: colour and depth of one instant count once.
        self.frames_read = max(self._played.values(), default=0)
        return readings

    def _reading(self, kind: str, frame, arrival_ns: int) -> Reading | None:
        rs = self.rs
        number = int(frame.get_frame_number())
        state = self._numbering.setdefault(kind, {"raw": -1, "seq_offset": 0, "dev_offset": 0,
                                                  "seq": -1, "dev": 0, "host": arrival_ns,
                                                  "passes": 0})
        if number == state["raw"]:
            return None  # the same frame handed out twice
        if state["passes"] == 0:  # the file's frame numbers, from the first pass of any stream
            self._span = {"first": min(self._span.get("first", number), number),
                          "last": max(self._span.get("last", number), number)}
        timestamp_ms = frame.get_timestamp()
        domain = int(frame.get_frame_timestamp_domain())
        if frame.supports_frame_metadata(rs.frame_metadata_value.frame_timestamp):
            raw_device_ns = int(frame.get_frame_metadata(rs.frame_metadata_value.frame_timestamp)) * 1000
        else:
            raw_device_ns = round(timestamp_ms * 1e6)
        if self._playback is not None and number < state["raw"]:
            # The recording started over: number frames and time on, as one long recording.
            # Device time goes on by the host time the rewind took (from the last frame's
            # capture to this one's arrival: playback starts the next pass at once, well under
            # a frame period), so it keeps pace with host time and the episode's clock fit
            # holds across the loop. The first stream to start over sets the new pass's offset
            # for all: colour and depth frames with the same timestamp in the file keep the
            # same device time.
            state["passes"] += 1
            if state["passes"] > self._pass["count"]:
                rewind_ns = max(1, arrival_ns - state["host"])
                self._pass = {"count": state["passes"],
                              "dev_offset": state["dev"] + rewind_ns - raw_device_ns}
            # Pass p numbers its frames from p file lengths on, so a frame lost at the wrap
            # shows as a gap instead of shifting every later number; never backwards (a file
            # length learnt short, its last frames lost in the first pass, only grows).
            length = self._span["last"] - self._span["first"] + 1
            state["seq_offset"] = max(state["passes"] * length, state["seq"] + 1 - number)
            state["dev_offset"] = self._pass["dev_offset"]
        seq = number + state["seq_offset"]
        device_ns = raw_device_ns + state["dev_offset"]
        if self._playback is None and domain == int(rs.timestamp_domain.global_time):
            host_ns = round(timestamp_ms * 1e6)
        elif self._playback is not None and not self.config.realtime:
            host_ns = arrival_ns
        else:
            host_ns = self._clocks[kind].update(device_ns, arrival_ns)
        state.update(raw=number, seq=seq, dev=device_ns, host=host_ns)
        data = np.asanyarray(frame.get_data())
        image = to_rgb(data, self._plans[kind].format) if kind == "color" else data.copy()
        fields = {"rgb" if kind == "color" else "depth": image,
                  "frame_number": np.uint64(number), "timestamp_domain": np.uint8(domain),
                  "t_arrival_ns": np.int64(arrival_ns)}
        return Reading(f"{self.name}/{kind}", device_ns, host_ns,
                       {k: np.asarray(v) for k, v in fields.items()}, seq=seq)

    def _check_file(self) -> None:
        if self._playback is None or time.monotonic() < self._next_file_check:
            return
        self._next_file_check = time.monotonic() + FILE_CHECK_INTERVAL_S
        if not Path(self.config.from_file).is_file():
            raise DeviceDisconnected(f"{self.name}: recording {self.config.from_file} was removed")

    def _on_timeout(self) -> None:
        rs = self.rs
        if self._playback is not None:
            if self._playback.current_status() == rs.playback_status.stopped:
                raise DeviceDisconnected(f"{self.name}: end of recording {self.config.from_file} "
                                         f"({self.frames_read} frames played)")
            return
        silent_s = time.monotonic() - self._last_frame_at
        if silent_s < self.config.stall_timeout_s:
            return
        serial = self.config.serial or self._info.get("serial", "")
        if serial not in attached_serials():
            raise DeviceDisconnected(f"{self.name}: camera {serial} is gone (unplugged?)")
        raise DeviceDisconnected(f"{self.name}: camera {serial} sent no frames for "
                                 f"{silent_s:.1f} s; reopening it")

    def close(self) -> None:
        pipeline, self._pipeline = self._pipeline, None
        self._playback = self._align = None
        if pipeline is not None:
            try:
                pipeline.stop()
            except RuntimeError as exc:  # already stopped by a disconnect
                log.debug("%s: stopping the pipeline: %s", self.name, exc)


#: Colour formats a recording may hold, converted to RGB on reading.
COLOR_FORMATS = ("rgb8", "bgr8", "rgba8", "bgra8", "yuyv")
_TO_RGB = {"bgr8": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_RGBA2RGB, "bgra8": cv2.COLOR_BGRA2RGB,
           "yuyv": cv2.COLOR_YUV2RGB_YUYV}


def to_rgb(data: np.ndarray, fmt) -> np.ndarray:
    """A new RGB uint8 (H, W, 3) array from a colour frame's buffer in format ``fmt``."""
    name = str(fmt).rsplit(".", 1)[-1]
    if name == "rgb8":
        return data.copy()
    if name == "yuyv":
        data = data.reshape(data.shape[0], -1, 2)
    return cv2.cvtColor(data, _TO_RGB[name])


def apply_options(device, config: RealSenseConfig, where: str) -> None:
    """Set exposure, auto-exposure and laser power on a camera, checking each against its range."""
    rs = sdk()
    color = sensor_for(device, rs.stream.color)
    depth = sensor_for(device, rs.stream.depth)
    settings = []
    if config.auto_exposure is not None:
        settings += [(s, rs.option.enable_auto_exposure, float(config.auto_exposure), "auto_exposure")
                     for s in (color, depth)]
    for sensor, value, name in ((color, config.exposure_us, "exposure_us"),
                                (depth, config.depth_exposure_us, "depth_exposure_us")):
        if value is not None:
            settings += [(sensor, rs.option.enable_auto_exposure, 0.0, name),
                         (sensor, rs.option.exposure, float(value), name)]
    if config.laser_power_mw is not None:
        settings.append((depth, rs.option.laser_power, float(config.laser_power_mw), "laser_power_mw"))
    for sensor, option, value, name in settings:
        set_option(sensor, option, value, name, where)


def set_option(sensor, option, value: float, name: str, where: str) -> None:
    """Set one option, or raise a DeviceError that names the option and its valid range."""
    rs = sdk()
    label = sensor.get_info(rs.camera_info.name) if sensor is not None else "camera"
    if sensor is None or not sensor.supports(option):
        raise DeviceError(f"{where}: {name}: the {label} has no {str(option).rsplit('.', 1)[-1]} "
                          "option")
    r = sensor.get_option_range(option)
    if not r.min <= value <= r.max:
        raise DeviceError(f"{where}: {name} = {value:g} is outside {r.min:g}..{r.max:g} "
                          f"on the {label}")
    try:
        sensor.set_option(option, value)
    except RuntimeError as exc:
        raise DeviceError(f"{where}: {name} = {value:g} refused by the {label}: {exc}") from None
