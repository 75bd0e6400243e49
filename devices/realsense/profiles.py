"""pyrealsense2 helpers: import it, find sensors and stream modes, describe them as plain data."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from collector.wire.device import DeviceError


def sdk():
    """The pyrealsense2 module, or a DeviceError that says how to get it."""
    try:
        import pyrealsense2 as rs
    except Exception as exc:  # absent (ImportError) or broken (OSError from its library, ...)
        raise DeviceError(f"pyrealsense2 cannot be imported ({exc}); install it with "
                          "'pip install pyrealsense2' and the system library libusb-1.0-0") from None
    return rs


def camera_info(device) -> dict[str, str]:
    """Name, serial, firmware, USB type and product line of a device (what it reports)."""
    rs = sdk()
    keys = {"name": rs.camera_info.name, "serial": rs.camera_info.serial_number,
            "firmware": rs.camera_info.firmware_version,
            "usb_type": rs.camera_info.usb_type_descriptor,
            "product_line": rs.camera_info.product_line}
    return {key: device.get_info(info) for key, info in keys.items() if device.supports(info)}


def sensor_for(device, stream) -> Any | None:
    """The sensor of ``device`` that offers ``stream`` (``rs.stream.color`` / ``.depth``)."""
    for sensor in device.query_sensors():
        if any(p.stream_type() == stream for p in sensor.get_stream_profiles()):
            return sensor
    return None


def video_profiles(sensor, stream) -> list:
    return [p.as_video_stream_profile() for p in sensor.get_stream_profiles()
            if p.stream_type() == stream and p.is_video_stream_profile()]


def supported_modes(sensor, stream, fmt) -> str:
    """``"1280x720@6/15/30, 640x480@30"``: the modes of ``stream`` in ``fmt``, largest first."""
    modes: dict[tuple[int, int], set[int]] = defaultdict(set)
    for p in video_profiles(sensor, stream):
        if p.format() == fmt:
            modes[(p.width(), p.height())].add(p.fps())
    return ", ".join(f"{w}x{h}@{'/'.join(str(f) for f in sorted(fps))}"
                     for (w, h), fps in sorted(modes.items(), reverse=True)) or "none"


def pick_profile(sensor, stream, fmt, width: int, height: int, fps: int, *, where: str,
                 usb_type: str = ""):
    """The profile of exactly this mode, or a DeviceError naming the modes there are."""
    for p in video_profiles(sensor, stream):
        if (p.format(), p.width(), p.height(), p.fps()) == (fmt, width, height, fps):
            return p
    kind = str(stream).rsplit(".", 1)[-1]
    fmt_name = str(fmt).rsplit(".", 1)[-1]
    usb = (f" over this USB {usb_type} link (USB 3 offers more)"
           if usb_type.startswith("2") else "")
    raise DeviceError(f"{where}: {kind} {width}x{height} {fmt_name} at {fps} fps is not "
                      f"supported{usb}; supported {kind} modes: "
                      f"{supported_modes(sensor, stream, fmt)}")


def intrinsics_dict(intr) -> dict[str, Any]:
    """``rs.intrinsics`` as the plain dict every camera stream's metadata uses."""
    return {"width": intr.width, "height": intr.height, "fx": intr.fx, "fy": intr.fy,
            "ppx": intr.ppx, "ppy": intr.ppy, "model": str(intr.model).rsplit(".", 1)[-1],
            "coeffs": [float(c) for c in intr.coeffs]}


def extrinsics_dict(ext) -> dict[str, list[float]]:
    """``rs.extrinsics``: ``rotation`` (3x3, column-major as librealsense stores it) and
    ``translation`` in metres."""
    return {"rotation": [float(v) for v in ext.rotation],
            "translation": [float(v) for v in ext.translation]}


IDENTITY = {"rotation": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
            "translation": [0.0, 0.0, 0.0]}
