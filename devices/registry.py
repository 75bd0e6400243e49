"""The one table of drivers: the name a config file uses -> where the driver lives, which SDKs it
needs and how to find attached devices. Nothing here imports a driver or an SDK until it is used.

A driver whose SDK is missing or broken is *unavailable*: :func:`driver_class` raises
:class:`DriverUnavailable` with a one-line reason naming the SDK, and every other driver, the
discovery of other families and ``collector devices`` keep working.

To add a driver, add one :class:`Driver` line to :data:`DRIVERS` (see docs/adding-a-device.md).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from collector.wire.device import Device, DeviceError


@dataclass(frozen=True)
class Driver:
    """Where a driver lives and what it needs; nothing is imported until asked."""

    #: The driver's ``Device`` subclass, ``"module:Class"``.
    target: str
    #: Third-party modules the driver cannot work without (imported, and so checked, on load).
    sdks: tuple[str, ...] = ()
    #: A finder of attached devices, ``"module:function"`` returning ``list[dict]``, if any.
    finder: str = ""
    #: The family its finder reports under (``collector devices FAMILY``); default the driver name.
    family: str = ""


#: Driver name (as in ``driver = "..."`` of a config file) -> its :class:`Driver`.
DRIVERS: dict[str, Driver] = {
    "sim_camera": Driver("devices.sim_camera.node:SimCamera"),
    "sim_glove": Driver("devices.sim_glove.node:SimGlove"),
    "glove": Driver("devices.glove.node:Glove", sdks=("serial",),
                    finder="devices.glove.discover:find_gloves", family="serial"),
    "glove_sim_tty": Driver("devices.glove.sim_tty:GloveSimTty", sdks=("serial",)),
    "teleop": Driver("devices.teleop.node:TeleopNode"),
    "realsense": Driver("devices.realsense.node:RealSenseCamera", sdks=("pyrealsense2",),
                        finder="devices.realsense.discover:find_cameras"),
    "uvc": Driver("devices.uvc.node:UvcCamera", sdks=("cv2",),
                  finder="devices.uvc.discover:find_cameras"),
    "template": Driver("devices.template.node:TemplateCamera"),
}


class DriverUnavailable(DeviceError):
    """A known driver that cannot be loaded here (its SDK is missing or broken); says which."""


def _load(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")


def check_sdks(driver: str) -> None:
    """Import the SDKs ``driver`` needs; :class:`DriverUnavailable` naming the first that fails."""
    for sdk in lookup(driver).sdks:
        try:
            importlib.import_module(sdk)
        except Exception as exc:  # a broken SDK raises anything (OSError from its .so, ...)
            raise DriverUnavailable(f"driver '{driver}' is unavailable: its SDK {sdk} cannot be "
                                    f"imported ({_reason(exc)})") from None


def lookup(driver: str) -> Driver:
    """The table entry of ``driver``; ``ValueError`` listing the known names otherwise."""
    try:
        return DRIVERS[driver]
    except KeyError:
        raise ValueError(f"unknown driver '{driver}' (known: {', '.join(sorted(DRIVERS))})") from None


def driver_class(driver: str) -> type[Device]:
    """The ``Device`` subclass of ``driver``, imported now, with its SDKs checked.

    Raises:
        ValueError: for a name not in the table.
        DriverUnavailable: when its SDK (or the driver module itself) cannot be imported.
    """
    entry = lookup(driver)
    check_sdks(driver)
    try:
        return _load(entry.target)
    except Exception as exc:
        raise DriverUnavailable(f"driver '{driver}' is unavailable: {entry.target} cannot be "
                                f"imported ({_reason(exc)})") from None


def families() -> dict[str, str]:
    """``{family: driver}`` of every driver that can enumerate attached devices."""
    return {entry.family or name: name for name, entry in DRIVERS.items() if entry.finder}


def load_finder(driver: str) -> Callable[[], list[dict]]:
    """The finder function of ``driver`` (its SDKs checked first, as for :func:`driver_class`)."""
    check_sdks(driver)
    return _load(lookup(driver).finder)
