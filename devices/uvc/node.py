"""The ``uvc`` driver: any UVC camera (webcam, head or wrist camera) through OpenCV's VideoCapture.

    python -m devices uvc --name head --endpoint ipc:///tmp/x/head --options '{"source": "/dev/video2", "fourcc": "MJPG", "width": 1280, "height": 720, "fps": 30}'
    python -m devices uvc --name head --endpoint ipc:///tmp/x/head --options '{"source": "walk.mp4"}'

``source`` is a camera (``/dev/video2`` or an index, opened with V4L2), a video file or an image
sequence (``frames/%04d.png``); files are played in real time, as a camera would deliver them
(``realtime = false``: as fast as the recorder takes them). Publishes ``<name>/color``: ``rgb``
(H, W, 3) uint8, ``frame_number`` (the frame's index since the node started, also the bus
``seq``, so frames lost in the driver show as gaps) and ``t_arrival_ns`` (host time the frame
reached this process).

Timestamps: a camera's ``t_device_ns`` is the driver's buffer timestamp (V4L2, read through
``CAP_PROP_POS_MSEC``) mapped to the host clock by the same online lower-envelope fit as the
RealSense driver (:class:`devices.realsense.clock.HostClockEstimate`); without one it is the
arrival time. A file's ``t_device_ns`` is the frame's media time and ``t_host_ns`` the instant
it was due.

The end of a file is an unplug (``DeviceDisconnected``; the node reconnects, so the file plays
again unless it was removed); a source that delivers nothing for ``reopen_after_s`` is
disconnected and reopened, a shorter silence is reported as a stall by the node.
``calibration_file`` names a file with intrinsics and distortion (pinhole or fisheye,
:mod:`devices.uvc.calibration`), written into the stream's ``meta["intrinsics"]``.
"""

from __future__ import annotations

import threading
import time
import typing
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from collector.wire.device import Device, DeviceDisconnected, DeviceError, Reading
from collector.wire.options import ConfigError
from collector.wire.protocol import JPEG
from collector.wire.streams import FieldSpec, StreamSpec
from devices.realsense.clock import HostClockEstimate
from devices.uvc.calibration import load_calibration
from devices.uvc.source import DEVICE, FILE, cv2_module, open_capture, parse_source, probe

#: A camera whose size the config leaves open is asked for this mode.
DEFAULT_CAMERA_SIZE = (640, 480)
DEFAULT_FPS = 30.0
#: Frames kept for read() at most, in seconds of the nominal rate (older ones are dropped).
QUEUE_S = 2.0
#: A file frame this late (the source stalled) moves the playback clock on: a camera does not
#: deliver the frames of a stall afterwards at their old instants.
STALL_SLACK_NS = 100_000_000


@dataclass
class UvcCameraConfig:
    """Options of the ``uvc`` driver (the ``options`` table of its ``[[nodes]]`` entry)."""

    #: ``/dev/videoN`` or an index (a camera), a video file, or an image sequence ``dir/%04d.png``.
    source: str = "0"
    #: Frame size; 0 = the file's own, or 640x480 asked of a camera. A camera that delivers
    #: another size is resized to this (reported once).
    width: int = 0
    height: int = 0
    #: Frame rate; 0 = the file's own (30 for an image sequence or a camera).
    fps: float = 0.0
    #: Camera pixel format asked for: ``MJPG`` (compressed, high resolutions at full rate) or
    #: ``YUYV``; "" leaves the camera's default.
    fourcc: typing.Literal["", "MJPG", "YUYV"] = ""
    #: With ``fourcc = "MJPG"``: publish the JPEG frames of a camera (or of an MJPG video file)
    #: as they come, not decoded (stored as they are with ``recording.color_encoding = "jpeg"``).
    store_jpeg: bool = False
    #: Camera controls, applied where the camera offers them (None leaves its setting).
    auto_exposure: bool | None = None
    exposure: float | None = None
    autofocus: bool | None = None
    focus: float | None = None
    #: Intrinsics and distortion file (collector JSON, UMI JSON, OpenCV YAML/XML).
    calibration_file: str = ""
    #: Files: follow the media clock (True) or deliver frames as fast as they are taken.
    realtime: bool = True
    #: Files: start over at the end without a disconnect, numbering frames on.
    loop: bool = False
    #: No frame for this long: close and reopen the source (a hung camera); 0 = never.
    reopen_after_s: float = 5.0

    def validate(self) -> None:
        if (self.width == 0) != (self.height == 0):
            raise ConfigError(f"give both width and height or neither, got {self.width}x{self.height}")
        if self.width and not (16 <= self.width <= 8192 and 16 <= self.height <= 8192):
            raise ConfigError(f"width and height must be 16..8192, got {self.width}x{self.height}")
        if not 0 <= self.fps <= 1000:
            raise ConfigError(f"fps must be in [0, 1000] (0: the source's own), got {self.fps}")
        if self.store_jpeg and self.fourcc != "MJPG":
            raise ConfigError("store_jpeg needs fourcc = \"MJPG\" (the camera's JPEG frames)")
        if self.reopen_after_s < 0:
            raise ConfigError(f"reopen_after_s must be >= 0, got {self.reopen_after_s}")
        if not self.source:
            raise ConfigError("source is empty: give /dev/videoN, an index, a video file or a pattern")
        kind = parse_source(self.source).kind
        if self.store_jpeg and kind not in (DEVICE, FILE):
            raise ConfigError(f"store_jpeg is for cameras and MJPG video files, not {kind} sources "
                              "(their frames come decoded; recording.color_encoding = \"jpeg\" "
                              "encodes them)")


_END = object()


class UvcCamera(Device):
    """One UVC camera, video file or image sequence; see the module docstring."""

    Config = UvcCameraConfig

    def __init__(self, name: str, config=None) -> None:
        super().__init__(name, config)
        self.source = parse_source(self.config.source)
        self.stream_name = f"{name}/color"
        self._size: tuple[int, int] | None = None
        self._fps = 0.0
        self._intrinsics: dict | None = None
        self._cond = threading.Condition()
        self._frames: deque = deque()
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._events: list[tuple[str, dict[str, Any]]] = []
        self._next_index = 0
        self._t0_ns = 0
        self._last_frame = 0.0
        self.connects = 0
        self.frames_read = 0
        self.dropped = 0
        self.mode: dict[str, Any] = {}

    # ---- declarations ------------------------------------------------------------------------
    def _resolve(self) -> None:
        """Size and rate from the options, else from the file (probed once, not streamed)."""
        if self._size is not None:
            return
        c: UvcCameraConfig = self.config
        width, height, fps = c.width, c.height, c.fps
        if not self.source.is_live and (not width or not fps):
            try:
                fw, fh, ffps = probe(self.source)
            except DeviceError as exc:
                raise DeviceError(f"{self.name}: {exc}; give width, height and fps to declare the "
                                  "stream without the file") from None
            width, height = (width, height) if width else (fw, fh)
            fps = fps or ffps
        self._size = (width, height) if width else DEFAULT_CAMERA_SIZE
        self._fps = fps or DEFAULT_FPS
        if c.calibration_file:
            self._intrinsics = load_calibration(c.calibration_file, *self._size)

    def streams(self) -> list[StreamSpec]:
        self._resolve()
        width, height = self._size
        meta: dict[str, Any] = {"source": self.source.text, "source_kind": self.source.kind}
        if self._intrinsics is not None:
            meta["intrinsics"] = self._intrinsics
        if self.config.fourcc:
            meta["fourcc"] = self.config.fourcc
        return [StreamSpec(self.stream_name, "color", self._fps,
                           [FieldSpec("rgb", "uint8", (height, width, 3)),
                            FieldSpec("frame_number", "uint64", ()),
                            FieldSpec("t_arrival_ns", "int64", (), unit="ns")],
                           meta=meta, image_field="rgb")]

    def info(self) -> dict:
        return {**super().info(), "model": "UVC camera" if self.source.is_live else "video source",
                "source": self.source.text, **{k: v for k, v in self.mode.items() if k != "size"}}

    # ---- connection --------------------------------------------------------------------------
    def connect(self) -> None:
        self._resolve()
        self.close()
        try:
            cap = open_capture(self.source)
        except DeviceError as exc:
            raise DeviceError(f"{self.name}: {exc}") from None
        try:
            if self.source.is_live:
                self._configure(cap)
            elif self.config.store_jpeg:
                self._pass_jpeg_through(cap)
        except Exception:
            cap.release()
            raise
        self._closing = threading.Event()
        with self._cond:
            self._frames.clear()
        self._t0_ns = time.time_ns()
        self._last_frame = time.monotonic()
        self.connects += 1
        self._thread = threading.Thread(target=self._capture, args=(cap, self._closing),
                                        name=f"{self.name}-capture", daemon=True)
        self._thread.start()

    def _configure(self, cap) -> None:
        """Ask the camera for the mode and controls of the options; note what it gave."""
        cv2 = cv2_module()
        c: UvcCameraConfig = self.config
        if c.fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*c.fourcc))
        width, height = self._size
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        cap.set(cv2.CAP_PROP_FPS, self._fps)
        if c.store_jpeg:
            cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)
        controls = [(cv2.CAP_PROP_AUTO_EXPOSURE, "auto_exposure",
                     None if c.auto_exposure is None else (3 if c.auto_exposure else 1)),
                    (cv2.CAP_PROP_EXPOSURE, "exposure", c.exposure),
                    (cv2.CAP_PROP_AUTOFOCUS, "autofocus", None if c.autofocus is None else int(c.autofocus)),
                    (cv2.CAP_PROP_FOCUS, "focus", c.focus)]
        for prop, name, value in controls:
            if value is not None and not cap.set(prop, value):
                self._events.append(("notice", {"message": f"{self.name}: the camera does not offer "
                                                           f"{name}; left as it is",
                                                "stream": self.stream_name}))
        code = int(cap.get(cv2.CAP_PROP_FOURCC))
        got = {"fourcc": "".join(chr((code >> 8 * i) & 0xFF) for i in range(4)).strip("\0"),
               "size": (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))),
               "fps": float(cap.get(cv2.CAP_PROP_FPS))}
        self.mode = got
        asked = {"fourcc": c.fourcc or got["fourcc"], "size": self._size, "fps": self._fps}
        if any(got[k] != asked[k] and not (k == "fps" and abs(got[k] - asked[k]) < 0.5) for k in got):
            self._events.append(("notice", {
                "message": f"{self.name}: asked {asked['fourcc']} {width}x{height} at {self._fps:g} fps, "
                           f"the camera gives {got['fourcc']} {got['size'][0]}x{got['size'][1]} at "
                           f"{got['fps']:g} fps" + ("; frames are resized" if got["size"] != self._size
                                                    and not c.store_jpeg else ""),
                "stream": self.stream_name}))
            if c.store_jpeg and got["size"] != self._size:
                raise DeviceError(f"{self.name}: store_jpeg needs the camera to give {width}x{height}; "
                                  f"it gives {got['size'][0]}x{got['size'][1]}")

    def _pass_jpeg_through(self, cap) -> None:
        """An MJPG video file's frames as stored (each one a JPEG), not decoded: what a camera
        in MJPG mode delivers with ``store_jpeg``, and no decode and re-encode in the recorder."""
        cv2 = cv2_module()
        code = int(cap.get(cv2.CAP_PROP_FOURCC))
        codec = "".join(chr((code >> 8 * i) & 0xFF) for i in range(4)).strip("\0")
        if codec.upper() not in ("MJPG", "MJPEG") or not cap.set(cv2.CAP_PROP_FORMAT, -1):
            raise DeviceError(f"{self.name}: store_jpeg needs an MJPG video; {self.source.text} "
                              f"is {codec or 'of an unknown codec'}")
        self.mode = {"fourcc": "MJPG", "size": self._size, "fps": self._fps}

    # ---- the capture thread ------------------------------------------------------------------
    def _capture(self, cap, closing: threading.Event) -> None:
        """Take frames as the source delivers them; the end of the source ends the thread."""
        cv2 = cv2_module()
        live, c = self.source.is_live, self.config
        period_ns = 1e9 / self._fps
        clock = HostClockEstimate(label=f"{self.name} camera clock") if live else None
        width, height = self._size
        media_base_ns = 0.0  # files that loop keep their media clock going
        last_media_ns = -1.0
        index = 0  # frames since the source (or its current pass) began
        try:
            while not closing.is_set():
                if not cap.grab():
                    if live or not c.loop or index == 0:
                        self._put(_END, closing)
                        return
                    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    media_base_ns = last_media_ns + period_ns
                    index = 0
                    continue
                arrival = time.time_ns()
                pos_ms = cap.get(cv2.CAP_PROP_POS_MSEC)
                ok, image = cap.retrieve()
                if not ok or image is None:
                    self._put(_END, closing)
                    return
                encodings: dict[str, str] = {}
                if c.store_jpeg:
                    rgb = np.frombuffer(image.tobytes(), np.uint8)
                    encodings["rgb"] = JPEG
                else:
                    if image.ndim == 2:
                        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
                    if image.shape[:2] != (height, width):
                        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
                    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
                seq = self._next_index
                self._next_index += 1
                if live:
                    if pos_ms > 0:
                        t_device = int(pos_ms * 1e6)
                        t_host = clock.update(t_device, arrival)
                    else:
                        t_device = t_host = arrival
                else:
                    # A file's own timestamps when they advance, else its nominal rate.
                    media = media_base_ns + pos_ms * 1e6 if pos_ms > 0 else media_base_ns + index * period_ns
                    if media <= last_media_ns:
                        media = last_media_ns + period_ns
                    last_media_ns = media
                    t_device = int(media)
                    t_host = arrival
                    if c.realtime:
                        due = self._t0_ns + t_device
                        late = time.time_ns() - due
                        if late > STALL_SLACK_NS:  # the source stalled: resume now, as a camera would
                            self._t0_ns += late
                            due += late
                        while not closing.is_set() and time.time_ns() < due:
                            closing.wait(min(0.05, (due - time.time_ns()) / 1e9))
                        t_host = due
                index += 1
                self._put(Reading(self.stream_name, t_device, t_host,
                                  {"rgb": rgb, "frame_number": np.uint64(seq),
                                   "t_arrival_ns": np.int64(max(arrival, t_host))},
                                  seq=seq, encodings=encodings), closing)
        except Exception as exc:  # reported by read() as a disconnect, with the reason
            self._put(exc, closing)
        finally:
            cap.release()

    def _put(self, item: Any, closing: threading.Event) -> None:
        with self._cond:
            if closing.is_set():
                return  # a capture thread outlived its connection (a hung grab): not its frames
            limit = max(2, int(QUEUE_S * self._fps))
            if not self.source.is_live and not self.config.realtime:
                # A file as fast as it is taken: wait for the reader, lose nothing.
                while len(self._frames) >= limit and not closing.is_set():
                    self._cond.wait(0.1)
            while len(self._frames) >= limit and isinstance(self._frames[0], Reading):
                self._frames.popleft()  # the node fell behind: lose the oldest (a seq gap)
                self.dropped += 1
            self._frames.append(item)
            self._cond.notify_all()

    # ---- reading -----------------------------------------------------------------------------
    def read(self, timeout_s: float) -> list[Reading]:
        if self._thread is None:
            raise DeviceError(f"{self.name}: read() before connect()")
        with self._cond:
            if not self._frames:
                self._cond.wait(timeout_s)
            items = list(self._frames)
            self._frames.clear()
            self._cond.notify_all()  # a capture thread waiting for room
        readings = [item for item in items if isinstance(item, Reading)]
        now = time.monotonic()
        if readings:
            self._last_frame = now
            self.frames_read += len(readings)
        ends = [item for item in items if not isinstance(item, Reading)]
        if ends and readings:  # the frames first; the end is reported by the next call
            with self._cond:
                self._frames.extendleft(reversed(ends))
        elif ends:
            raise DeviceDisconnected(self._end_message(ends[0]))
        reopen = self.config.reopen_after_s
        if not readings and reopen and now - self._last_frame > reopen:
            raise DeviceDisconnected(f"{self.name}: no frame from {self.source.text} for "
                                     f"{now - self._last_frame:.1f} s; reopening")
        return readings

    def _end_message(self, end: Any) -> str:
        what = {"device": "camera", "file": "video file", "sequence": "image sequence"}[self.source.kind]
        if isinstance(end, Exception):
            return f"{self.name}: {what} {self.source.text} failed ({type(end).__name__}: {end})"
        if self.source.is_live:
            return f"{self.name}: camera {self.source.text} stopped delivering frames (unplugged?)"
        return f"{self.name}: end of {what} {self.source.text} ({self._next_index} frames so far)"

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        events, self._events = self._events, []
        return events

    def close(self) -> None:
        self._closing.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            # A hung camera may keep grab() from returning: the thread releases it when it does.
            thread.join(2.0)
