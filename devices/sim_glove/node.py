"""A simulated sensor glove worn by the scripted operator of the shared world.

Publishes one ``<name>/hand`` state stream at ``rate_hz``: wrist pose, finger joint angles, grip
aperture, fingertip pressures, the record / deadman buttons and the wrist IMU, all read from the
world at each sample's true time (so a camera with the same seed and epoch shows this motion).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from collector.wire.options import ConfigError
from collector.wire.streams import FieldSpec, StreamSpec

from collector.wire.device import Device, DeviceError, Reading
from devices.sim_clock import SimTicker, SimTimingOptions
from devices.sim_world import FINGER_NAMES, JOINT_NAMES, World
from devices.sim_world.operator import OperatorStep, check_script, state_source
from devices.sim_world.world import SCENES

#: Separates the glove's random streams (drops, latency, sensor noise) from the cameras'.
_TAG = 7
#: Most samples one read() returns after falling behind; the rest come with the next call.
MAX_BATCH = 1000
GYRO_NOISE = 0.004   # rad/s, 1 sigma
ACCEL_NOISE = 0.03   # m/s^2, 1 sigma


@dataclass
class SimGloveConfig(SimTimingOptions):
    """Options of ``sim_glove`` (plus the clock, fault and pacing options it inherits)."""

    seed: int = 0
    rate_hz: float = 200.0
    #: Which hand wears the glove: a label for the metadata, the scripted motion is the same.
    hand: Literal["right", "left"] = "right"
    #: The first ``num_joints`` of the 20 modelled joints (15 flexions, then 5 abductions).
    num_joints: int = 15
    #: Like a USB glove, hand samples to the host in small batches (their timestamps unchanged).
    batch_interval_ms: float = 4.0
    #: "cubes" (the pick-and-place script) or "taps" (the latency calibration scene).
    scene: str = "cubes"
    #: A scripted operator (devices/sim_world/operator.py): steps ``{do = "work"|"idle"|"fist",
    #: s = seconds}`` or ``{do = "press"}``, played in a loop from ``epoch_ns``; empty: the
    #: world's pick-and-place without pause. Give a sim_camera the same script (and epoch) to
    #: see the same hand.
    script: list[OperatorStep] = field(default_factory=list)

    def validate(self) -> None:
        super().validate()
        check_script(self.script, self.scene)
        if self.rate_hz <= 0:
            raise ConfigError(f"rate_hz must be > 0, got {self.rate_hz}")
        if self.scene not in SCENES:
            raise ConfigError(f"scene must be one of {', '.join(SCENES)}, got {self.scene!r}")
        if not 15 <= self.num_joints <= len(JOINT_NAMES):
            raise ConfigError(f"num_joints must be 15..{len(JOINT_NAMES)}, got {self.num_joints}")


class SimGlove(Device):
    """Simulated glove; see the module docstring."""

    Config = SimGloveConfig

    def __init__(self, name: str, config=None) -> None:
        super().__init__(name, config)
        c: SimGloveConfig = self.config
        self.serial = f"SIMGLOVE-{c.seed}-{c.hand}"
        self.world = World(c.seed, c.epoch_ns, scene=c.scene)
        #: The hand's state at a host instant: the scripted operator's, or the world's own.
        self.state_at_ns = state_source(self.world, c.script)
        self.ticker = SimTicker(c.rate_hz, c, c.seed, _TAG)
        self._rng = np.random.default_rng([c.seed, _TAG])
        self._connected_once = False
        self.stream_name = f"{name}/hand"

    def streams(self) -> list[StreamSpec]:
        c: SimGloveConfig = self.config
        f32 = "float32"
        fields = [
            FieldSpec("wrist_pos", f32, (3,), "m", ["x", "y", "z"]),
            FieldSpec("wrist_quat", f32, (4,), "", ["w", "x", "y", "z"]),
            FieldSpec("finger_joints", f32, (c.num_joints,), "rad", list(JOINT_NAMES[:c.num_joints])),
            FieldSpec("grip", f32, (1,), "m", ["aperture"]),
            FieldSpec("pressure", f32, (5,), "N", list(FINGER_NAMES)),
            FieldSpec("buttons", "uint8", (2,), "", ["record", "deadman"]),
            FieldSpec("imu_gyro", f32, (3,), "rad/s", ["x", "y", "z"]),
            FieldSpec("imu_accel", f32, (3,), "m/s^2", ["x", "y", "z"]),
        ]
        meta = {"serial": self.serial, "hand": c.hand, "clock": self.ticker.clock.meta(),
                "latency_ms": [c.latency_min_ms, c.latency_max_ms],
                "frames": "positions in the table frame (z up); imu in the wrist frame "
                          "(z = approach axis, y = finger opening); imu_accel includes gravity"}
        return [StreamSpec(self.stream_name, "state", c.rate_hz, fields, meta=meta)]

    def info(self) -> dict:
        return {**super().info(), "model": "SimGlove", "serial": self.serial,
                "hand": self.config.hand}

    def connect(self) -> None:
        self.ticker.connect()
        self._connected_once = True

    def read(self, timeout_s: float) -> list[Reading]:
        if not self._connected_once:
            raise DeviceError("read() before connect()")
        return [self._sample(tick) for tick in self.ticker.due(timeout_s, MAX_BATCH)]

    def _sample(self, tick) -> Reading:
        s = self.state_at_ns(tick.true_ns)
        n = self.config.num_joints
        f32 = np.float32
        noise = self._rng.standard_normal(6)
        fields = {
            "wrist_pos": s.wrist_pos.astype(f32),
            "wrist_quat": s.wrist_quat.astype(f32),
            "finger_joints": s.finger_joints[:n].astype(f32),
            "grip": np.array([s.grip], f32),
            "pressure": s.pressure.astype(f32),
            "buttons": s.buttons,
            "imu_gyro": (s.imu_gyro + GYRO_NOISE * noise[:3]).astype(f32),
            "imu_accel": (s.imu_accel + ACCEL_NOISE * noise[3:]).astype(f32),
        }
        return Reading(self.stream_name, tick.device_ns, tick.host_ns, fields, seq=tick.frame)

    def close(self) -> None:
        self.ticker.close()
