"""A simulated camera, the smallest complete driver: copy this folder to start a new one.

    python -m devices template --name cam9 --endpoint ipc:///tmp/cam9 --options '{"fps": 15}'

Publishes ``<name>/color``: a moving colour gradient (``rgb``, (height, width, 3) uint8) and the
camera's own frame counter (``frame_number``), ``fps`` times a second. See
docs/adding-a-device.md for what each part is for and how to register a copy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from collector.wire.device import Device, DeviceError, Reading
from collector.wire.options import ConfigError
from collector.wire.streams import FieldSpec, StreamSpec


@dataclass
class TemplateCameraConfig:
    """Options of the ``template`` driver (the ``options`` table of its ``[[nodes]]`` entry).

    Every option has a type and a default; :func:`collector.wire.options.from_mapping` fills it
    from the config file, refuses unknown keys and wrong types, then calls :meth:`validate`.
    """

    width: int = 64
    height: int = 48
    fps: float = 30.0
    #: Serial number a real camera would report; here it only names the simulated one.
    serial: str = "TEMPLATE-0"

    def validate(self) -> None:
        """Checks the types cannot express; each message says exactly what is wrong."""
        if not (16 <= self.width <= 4096 and 16 <= self.height <= 4096):
            raise ConfigError(f"width and height must be 16..4096, got {self.width}x{self.height}")
        if not 0 < self.fps <= 1000:
            raise ConfigError(f"fps must be in (0, 1000], got {self.fps}")


def _sdk():
    """The vendor SDK, imported here, when the device is opened, and nowhere at module level.

    A real driver does this so that an absent or broken SDK disables only its own driver; it
    also names the SDK in its registry entry (``sdks=("vendor_sdk",)``) so that
    ``python -m devices DRIVER`` says which SDK is missing in one line. For example::

        try:
            import vendor_sdk
        except Exception as exc:  # absent (ImportError) or broken (OSError from its library)
            raise DeviceError(f"vendor_sdk cannot be imported ({exc}); pip install vendor-sdk")
        return vendor_sdk

    The simulated camera needs no SDK.
    """
    return None


class TemplateCamera(Device):
    """A simulated colour camera; see the module docstring."""

    Config = TemplateCameraConfig

    def __init__(self, name: str, config=None) -> None:
        super().__init__(name, config)  # fills and validates self.config; opens nothing
        self.stream_name = f"{name}/color"
        self._frame = 0
        self._t0_ns = 0
        self._next_due_ns: int | None = None  # None: closed

    def streams(self) -> list[StreamSpec]:
        # Known before connect(): the recorder creates the datasets from these declarations
        # before the first frame, and the GUI shows ``image_field`` as this camera's picture.
        c: TemplateCameraConfig = self.config
        return [StreamSpec(self.stream_name, "color", c.fps,
                           [FieldSpec("rgb", "uint8", (c.height, c.width, 3)),
                            FieldSpec("frame_number", "uint64", ())],
                           meta={"serial": c.serial}, image_field="rgb")]

    def info(self) -> dict:
        return {**super().info(), "model": "TemplateCamera", "serial": self.config.serial}

    def connect(self) -> None:
        _sdk()  # a real driver opens its device here, and raises DeviceError saying why it cannot
        self._t0_ns = time.monotonic_ns()
        self._next_due_ns = self._t0_ns

    def read(self, timeout_s: float) -> list[Reading]:
        if self._next_due_ns is None:
            raise DeviceError("read() before connect()")
        wait_ns = self._next_due_ns - time.monotonic_ns()
        if wait_ns > timeout_s * 1e9:
            time.sleep(timeout_s)
            return []
        if wait_ns > 0:
            time.sleep(wait_ns / 1e9)
        c: TemplateCameraConfig = self.config
        t_device_ns = self._next_due_ns - self._t0_ns  # the camera's own clock: ns since open
        self._next_due_ns += int(1e9 / c.fps)
        frame = self._frame
        self._frame += 1
        return [Reading(self.stream_name, t_device_ns, time.time_ns(),
                        {"rgb": self._picture(frame), "frame_number": np.uint64(frame)},
                        seq=frame)]

    def _picture(self, frame: int) -> np.ndarray:
        c: TemplateCameraConfig = self.config
        x = (np.arange(c.width, dtype=np.uint16) + 4 * frame) % 256
        y = np.arange(c.height, dtype=np.uint16) * 255 // max(1, c.height - 1)
        rgb = np.empty((c.height, c.width, 3), np.uint8)
        rgb[..., 0] = x[None, :]
        rgb[..., 1] = y[:, None]
        rgb[..., 2] = 128
        return rgb

    def close(self) -> None:
        self._next_due_ns = None
