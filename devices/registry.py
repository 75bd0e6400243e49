"""Driver names used in config files, mapped lazily to their classes (no SDK import until used)."""

from __future__ import annotations

import importlib

from collector.wire.device import Device

DRIVERS: dict[str, str] = {
    "sim_camera": "devices.sim_camera.node:SimCamera",
    "sim_glove": "devices.sim_glove.node:SimGlove",
    "glove": "devices.glove.node:Glove",
    "glove_sim_tty": "devices.glove.sim_tty:GloveSimTty",
    "teleop": "devices.teleop.node:TeleopNode",
    "realsense": "devices.realsense.node:RealSenseCamera",
}


def driver_class(driver: str) -> type[Device]:
    try:
        target = DRIVERS[driver]
    except KeyError:
        raise ValueError(f"unknown driver '{driver}' (known: {', '.join(sorted(DRIVERS))})") from None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
