"""``teleop`` driver: runs :class:`devices.teleop.logic.Teleop` as a node on the bus.

Subscribes to the glove node's data endpoint (``glove_endpoint``, its base endpoint as in the
config) and to any ``estop_endpoints``; publishes, at ``rate_hz``:

``<name>/command`` (kind ``command``): only while commands flow (deadman held, no e-stop):
    ``ee_pos`` (3,) m, ``ee_quat`` (4,) w x y z, ``gripper`` (1,) m, ``glove_seq`` and
    ``glove_t_ns`` (the glove sample it came from), ``clamped`` (4,) which limits acted.
``<name>/state`` (kind ``state``): every step: ``mode`` (0 idle, 1 active, 2 hold, 3 estop),
    ``glove_age_us`` (int64, -1 before the first glove sample; an integer so that exports
    taking every float field as state leave it out).

An ``event`` with kind ``estop`` from any subscribed node latches the e-stop; kind
``estop_reset`` clears it, but only while the deadman is released (:mod:`devices.teleop.estop`
sends both). The recorder records both streams like any other: ``<name>/command`` is the
episode's action stream.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from collector.wire import protocol
from collector.wire.bus import Subscriber, node_endpoints
from collector.wire.options import ConfigError
from collector.wire.protocol import Event, Sample
from collector.wire.streams import FieldSpec, StreamSpec
from devices.teleop.logic import MODE_NAMES, GloveInput, Teleop, TeleopConfig

from collector.wire.device import Device, DeviceError, Reading

log = logging.getLogger(__name__)


@dataclass
class TeleopNodeConfig(TeleopConfig):
    """Options of ``teleop``: where the glove is, e-stop sources, and :class:`TeleopConfig`."""

    glove_endpoint: str = ""
    #: The glove's stream; "" = the first stream with wrist_pos, wrist_quat, grip and buttons.
    glove_stream: str = ""
    estop_endpoints: list[str] = field(default_factory=list)
    #: Index of the deadman in the glove's ``buttons`` field.
    deadman_button: int = 1

    def validate(self) -> None:
        super().validate()
        if not self.glove_endpoint:
            raise ConfigError("glove_endpoint must name the glove node's endpoint, e.g. "
                              "'ipc:///tmp/collector/glove' (give that node the same endpoint)")
        for endpoint in [self.glove_endpoint, *self.estop_endpoints]:
            try:
                node_endpoints(endpoint)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None


_NEEDED = ("wrist_pos", "wrist_quat", "grip", "buttons")


class TeleopNode(Device):
    """The teleop node's device; see the module docstring."""

    Config = TeleopNodeConfig

    def __init__(self, name: str, config=None) -> None:
        super().__init__(name, config)
        self.teleop = Teleop(self.config)
        self._sub: Subscriber | None = None
        self._period_ns = round(1e9 / self.config.rate_hz)
        self._next_ns = 0
        self._glove_stream = self.config.glove_stream
        self.last_mode = -1

    def streams(self) -> list[StreamSpec]:
        c: TeleopNodeConfig = self.config
        meta = {"glove_endpoint": c.glove_endpoint, "glove_stream": c.glove_stream,
                "mapping": c.mapping, "scale": c.scale, "frame": "table (z up), metres",
                "quaternion": "w, x, y, z", "limits": {
                    "stale_after_s": c.stale_after_s, "max_speed": c.max_speed,
                    "max_angular_speed": c.max_angular_speed,
                    "max_gripper_speed": c.max_gripper_speed,
                    "workspace_min": c.workspace_min, "workspace_max": c.workspace_max}}
        command = [
            FieldSpec("ee_pos", "float32", (3,), "m", ["x", "y", "z"]),
            FieldSpec("ee_quat", "float32", (4,), "", ["w", "x", "y", "z"]),
            FieldSpec("gripper", "float32", (1,), "m", ["opening"]),
            FieldSpec("glove_seq", "int64", ()),
            FieldSpec("glove_t_ns", "int64", (), "ns"),
            FieldSpec("clamped", "uint8", (4,), "",
                      ["workspace", "speed", "angular_speed", "gripper_speed"]),
        ]
        state = [FieldSpec("mode", "uint8", ()), FieldSpec("glove_age_us", "int64", (), "us")]
        return [StreamSpec(f"{self.name}/command", "command", c.rate_hz, command, meta=meta),
                StreamSpec(f"{self.name}/state", "state", c.rate_hz, state,
                           meta={"mode_names": list(MODE_NAMES)})]

    def info(self) -> dict:
        return {**super().info(), "model": "glove teleop"}

    def connect(self) -> None:
        c: TeleopNodeConfig = self.config
        if self._sub is None:
            endpoints = [node_endpoints(e).data for e in [c.glove_endpoint, *c.estop_endpoints]]
            self._sub = Subscriber(endpoints, topics=(b"sample/", b"event/"))
        self._next_ns = time.time_ns() + self._period_ns

    def _handle(self, message) -> None:
        c: TeleopNodeConfig = self.config
        if isinstance(message, Event):
            if message.kind == "estop":
                self.teleop.estop(str(message.detail.get("reason", f"e-stop from {message.node}")))
                log.warning("%s: e-stop latched by %s", self.name, message.node)
            elif message.kind == "estop_reset" and self.teleop.estopped:
                if not self.teleop.reset_estop():
                    log.warning("%s: e-stop reset refused: release the deadman first", self.name)
            return
        if not isinstance(message, Sample):
            return
        if not self._glove_stream:
            if not all(k in message.fields for k in _NEEDED):
                return
            self._glove_stream = message.stream
        if message.stream == self._glove_stream:
            self.teleop.update(GloveInput.from_fields(message.fields, message.t_host_ns,
                                                      message.seq, c.deadman_button))

    def read(self, timeout_s: float) -> list[Reading]:
        if self._sub is None:
            raise DeviceError("read() before connect()")
        give_up = time.time_ns() + round(timeout_s * 1e9)
        while True:
            now = time.time_ns()
            if now >= self._next_ns:
                break
            if now >= give_up:
                return []
            wait_ms = max(0, min(self._next_ns, give_up) - now) / 1e6
            message = self._sub.receive(max(1, int(wait_ms)) if wait_ms >= 1 else 0)
            if message is not None:
                self._handle(message)
        # Take everything already queued, so the step sees the newest glove sample.
        while (message := self._sub.receive(0)) is not None:
            self._handle(message)
        self._next_ns += self._period_ns
        if now - self._next_ns > 10 * self._period_ns:
            self._next_ns = now + self._period_ns  # fell far behind: skip, do not burst
        result = self.teleop.step(now)
        if result.mode != self.last_mode:
            log.info("%s: %s %s", self.name, MODE_NAMES[result.mode], result.reason)
            self.last_mode = result.mode
        device_ns = time.monotonic_ns()  # this node has no device clock: the host's monotonic one
        age = -1 if result.glove_age_s is None else round(result.glove_age_s * 1e6)
        readings = [Reading(f"{self.name}/state", device_ns, now,
                            {"mode": np.array(result.mode, np.uint8),
                             "glove_age_us": np.array(age, np.int64)})]
        cmd = result.command
        if cmd is not None:
            readings.append(Reading(f"{self.name}/command", device_ns, now, {
                "ee_pos": cmd.ee_pos.astype(np.float32), "ee_quat": cmd.ee_quat.astype(np.float32),
                "gripper": np.array([cmd.gripper], np.float32),
                "glove_seq": np.array(cmd.glove_seq, np.int64),
                "glove_t_ns": np.array(cmd.glove_t_ns, np.int64), "clamped": cmd.clamped}))
        return readings

    def close(self) -> None:
        if self._sub is not None:
            self._sub.close()
            self._sub = None


def estop_event(node: str, kind: str = "estop", reason: str = "") -> Event:
    """The event that latches (``estop``) or clears (``estop_reset``) a teleop node's e-stop."""
    return Event(node=node, kind=kind, t_host_ns=protocol.now_ns(),
                 detail={"reason": reason} if reason else {})
