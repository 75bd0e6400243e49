"""``glove_sim_tty`` driver: the real ``glove`` driver reading the firmware simulator over a pty.

Starts ``python -m devices.glove.firmware`` as a child process on a fresh pseudo-terminal and
reads it through real pyserial with :class:`devices.glove.node.Glove`, so a recording made with
it exercises the whole serial path. Shares ``seed``/``epoch_ns`` with ``sim_camera`` like
``sim_glove`` does, so the camera shows the hand the glove reports.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from collector.wire.options import ConfigError

from collector.wire.device import Device, Reading
from devices.glove.firmware import FirmwareProcess
from devices.glove.node import Glove


@dataclass
class GloveSimTtyConfig:
    """Options of ``glove_sim_tty``: the firmware's, a fault schedule, and ``glove`` options."""

    seed: int = 0
    epoch_ns: int = 0
    rate_hz: float = 1000.0
    num_joints: int = 15
    hand: Literal["right", "left"] = "right"
    mode: Literal["binary", "csv"] = "binary"
    clock_drift_ppm: float = 0.0
    #: Unplug the simulated glove this many seconds after the node starts, for ``unplug_s``.
    unplug_at_s: float | None = None
    unplug_s: float = 1.0
    #: Firmware faults to inject, each ``{"at_s": seconds after the first connect, "cmd": ...,
    #: params}`` with a command of ``FirmwareProcess.send`` (``garbage``, ``bad_crc``,
    #: ``truncate``, ``burst``, ``unplug``, ``baud``), e.g. ``{"at_s": 2, "cmd": "garbage",
    #: "n": 6000}``.
    faults: list[dict[str, Any]] = field(default_factory=list)
    #: More options for the ``glove`` driver (operator, calibration, transport_latency_us ...).
    glove: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.rate_hz <= 0:
            raise ConfigError(f"rate_hz must be > 0, got {self.rate_hz}")
        if not 1 <= self.num_joints <= 20:
            raise ConfigError(f"num_joints must be 1..20, got {self.num_joints}")
        if "port" in self.glove:
            raise ConfigError("glove.port is set by the simulator; leave it out")
        commands = ("garbage", "bad_crc", "truncate", "burst", "unplug", "baud")
        for i, fault in enumerate(self.faults):
            at = fault.get("at_s") if isinstance(fault, dict) else None
            if not isinstance(at, (int, float)) or isinstance(at, bool) or at < 0:
                raise ConfigError(f"faults[{i}] needs at_s, seconds >= 0, e.g. "
                                  '{"at_s": 2, "cmd": "garbage", "n": 6000}')
            if fault.get("cmd") not in commands:
                raise ConfigError(f"faults[{i}].cmd must be one of {', '.join(commands)}, "
                                  f"got {fault.get('cmd')!r}")


class GloveSimTty(Device):
    """The firmware simulator plus the real serial driver; see the module docstring."""

    Config = GloveSimTtyConfig

    def __init__(self, name: str, config=None) -> None:
        super().__init__(name, config)
        c: GloveSimTtyConfig = self.config
        self._dir = tempfile.mkdtemp(prefix="glove-tty-")
        self.firmware = FirmwareProcess(
            os.path.join(self._dir, name), rate_hz=c.rate_hz, seed=c.seed, epoch_ns=c.epoch_ns,
            num_joints=c.num_joints, hand=c.hand, mode=c.mode, drift_ppm=c.clock_drift_ppm)
        atexit.register(self.shutdown)
        self.glove = Glove(name, {**c.glove, "port": self.firmware.link, "mode": c.mode,
                                  "hand": c.hand})
        self._fault_timer: threading.Timer | None = None
        self._fault_timers: list[threading.Timer] = []
        self._send_lock = threading.Lock()  # one command at a time: each waits for its reply

    def streams(self):
        return self.glove.streams()

    def info(self) -> dict:
        return {**self.glove.info(), "driver": "glove_sim_tty"}

    def connect(self) -> None:
        c: GloveSimTtyConfig = self.config
        self.glove.connect()
        if c.unplug_at_s is not None and self._fault_timer is None:
            self._fault_timer = threading.Timer(
                c.unplug_at_s, self._inject, ("unplug", {"s": c.unplug_s}))
            self._fault_timer.daemon = True
            self._fault_timer.start()
        if c.faults and not self._fault_timers:
            for fault in c.faults:
                params = {k: v for k, v in fault.items() if k not in ("at_s", "cmd")}
                timer = threading.Timer(fault["at_s"], self._inject, (fault["cmd"], params))
                timer.daemon = True
                timer.start()
                self._fault_timers.append(timer)

    def _inject(self, cmd: str, params: dict) -> None:
        try:
            with self._send_lock:
                self.firmware.send(cmd, **params)
        except (RuntimeError, OSError, ValueError):
            pass  # the simulator is gone (the node is stopping)

    def read(self, timeout_s: float) -> list[Reading]:
        return self.glove.read(timeout_s)

    def events(self) -> list[tuple[str, dict]]:
        return self.glove.events()

    def close(self) -> None:
        self.glove.close()

    def shutdown(self) -> None:
        """Stop the simulator (at exit)."""
        for timer in [self._fault_timer, *self._fault_timers]:
            if timer is not None:
                timer.cancel()
        self.glove.close()
        self.firmware.close()
        shutil.rmtree(self._dir, ignore_errors=True)
