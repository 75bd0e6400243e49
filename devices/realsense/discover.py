"""Lists the RealSense cameras attached to this machine (``collector devices realsense``)."""

from __future__ import annotations

from typing import Any

from devices.realsense.profiles import camera_info, sdk


def find_cameras() -> list[dict[str, Any]]:
    """One entry per attached camera: ``kind``, ``name``, ``id`` (the serial to put in a config
    as ``options.serial``), ``firmware``, ``usb_type`` and ``product_line``; ``[]`` when none."""
    rs = sdk()
    found = []
    for device in rs.context().query_devices():
        info = camera_info(device)
        found.append({"kind": "realsense", "name": info.get("name", "RealSense"),
                      "id": info.get("serial", ""), "firmware": info.get("firmware", ""),
                      "usb_type": info.get("usb_type", ""),
                      "product_line": info.get("product_line", "")})
    return found


def attached_serials() -> list[str]:
    """Serial numbers of the attached cameras (fast; never opens a stream)."""
    return [camera["id"] for camera in find_cameras()]
