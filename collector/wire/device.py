"""The small interface every driver implements, real or simulated (after LeRobot's ``Camera``).

A driver declares its streams before connecting, then ``connect``/``read``/``close``. Its options
are a dataclass (``Config``) validated by :func:`collector.config.from_mapping`, so a typo in a
config file gets an exact message. Optional SDKs (pyrealsense2, pyserial) are imported inside the
driver's module functions, never at package import.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from collector.wire.options import from_mapping
from collector.wire.streams import StreamSpec


class DeviceError(RuntimeError):
    """The device cannot be used; the message says why and what to do."""


class DeviceDisconnected(DeviceError):
    """The device went away (unplugged, stalled, crashed); the node will try to reconnect."""


@dataclass
class Reading:
    """One sample of one stream as the driver captured it.

    ``seq`` is the device's own frame counter when it has one (so the bus shows frames the device
    dropped as gaps); ``None`` lets the node number the samples.
    """

    stream: str
    t_device_ns: int
    t_host_ns: int
    fields: dict[str, np.ndarray]
    seq: int | None = None
    encodings: dict[str, str] = field(default_factory=dict)


class Device(ABC):
    """Base class of every driver; ``name`` is the node name, the prefix of its stream names."""

    #: The driver's options dataclass.
    Config: ClassVar[type]

    def __init__(self, name: str, config: Any = None) -> None:
        self.name = name
        self.config = from_mapping(self.Config, config if config is not None else {},
                                   where=f"{name}.options")

    @abstractmethod
    def streams(self) -> list[StreamSpec]:
        """The streams this device will publish; known before :meth:`connect`."""

    @abstractmethod
    def connect(self) -> None:
        """Open the device; raise :class:`DeviceError` with a clear reason if it cannot."""

    @abstractmethod
    def read(self, timeout_s: float) -> list[Reading]:
        """Block until the next sample(s), at most ``timeout_s``; ``[]`` on timeout.

        Raise :class:`DeviceDisconnected` when the device is gone.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the device; safe to call twice."""

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        """``(kind, detail)`` of what happened since the last call, for the node to publish
        (a clock fault, counted line noise, a reader failure); ``detail["stream"]``, if set,
        names the stream concerned. Called by the node after every :meth:`read`."""
        return []

    def info(self) -> dict[str, Any]:
        """Identity for the describe message (model, serial, firmware, ...)."""
        return {"driver": type(self).__module__.rsplit(".", 1)[0].rsplit(".", 1)[-1]}
