"""A simulated RealSense-like RGB-D camera looking at the scripted world.

Publishes ``<name>/color`` (RGB uint8) and ``<name>/depth`` (uint16 mm, aligned to colour: same
intrinsics, identity extrinsics) at ``fps``. Each frame is rendered from the world state at the
frame's true capture time, which is what a glove node with the same seed and epoch reports at
that time, so the pictures are caused by the glove's motion.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from collector.wire.bus import node_endpoints
from collector.wire.options import ConfigError
from collector.wire.streams import FieldSpec, StreamSpec

from collector.wire.device import Device, DeviceError, Reading
from devices.sim_clock import SimTicker, SimTimingOptions
from devices.sim_world import World
from devices.sim_world.operator import OperatorStep, check_script, state_source
from devices.sim_world.world import SCENES
from devices.sim_camera.screen import TimecodeScreen
from devices.sim_camera.follow import CommandFollower
from devices.sim_camera.render import Renderer, camera_for_view
from devices.sim_world.look import scene_look

log = logging.getLogger(__name__)

#: Separates this camera's random streams (drops, latency, noise) from other devices'.
_TAG_BASE = 1000
LATE_LOG_INTERVAL_S = 5.0


#: Pixels per bit of the timestamp barcode (64 bits in the top BARCODE_BLOCK rows).
BARCODE_BLOCK = 4


def write_barcode(rgb, value: int) -> None:
    """Write ``value`` (64-bit) into the top rows of ``rgb``: white block = 1, black = 0."""
    bits = [(value >> (63 - i)) & 1 for i in range(64)]
    for i, bit in enumerate(bits[: rgb.shape[1] // BARCODE_BLOCK]):
        rgb[:BARCODE_BLOCK, i * BARCODE_BLOCK:(i + 1) * BARCODE_BLOCK] = 255 if bit else 0


def read_barcode(rgb) -> int:
    """The value :func:`write_barcode` drew (reads the centre pixel of each block)."""
    middle = BARCODE_BLOCK // 2
    value = 0
    for i in range(64):
        value = (value << 1) | int(rgb[middle, i * BARCODE_BLOCK + middle, 0] > 127)
    return value


@dataclass
class SimCameraConfig(SimTimingOptions):
    """Options of ``sim_camera`` (plus the clock, fault and pacing options it inherits)."""

    seed: int = 0
    #: Viewpoint: 0 front, 1 right, 2 left, 3 overhead, 4+ around the table.
    view: int = 0
    #: Scene variation (devices/sim_world/look.py): 0 the original look; 1, 2, ... other
    #: lighting, table tops and cube colours, the same motion.
    variation: int = 0
    width: int = 640
    height: int = 480
    fps: float = 30.0
    #: Base endpoint of a teleop node: draw the gripper where its commands put it (teleop on)
    #: instead of at the scripted hand; until the first command, at the hand.
    follow_commands: str = ""
    #: Draw the frame's host capture time (ns) as a barcode in its top rows, so that a display
    #: benchmark can read from the painted pixels when each frame was captured.
    timestamp_barcode: bool = False
    #: "cubes" (the pick-and-place script) or "taps" (the latency calibration scene: the hand
    #: taps the table, devices/sim_world/taps.py).
    scene: str = "cubes"
    #: The glove's scripted operator (devices/sim_world/operator.py), to see the hand the glove
    #: of the same script (and epoch) feels; empty: the world's own operator.
    script: list[OperatorStep] = field(default_factory=list)
    #: Film a virtual screen showing the host clock as a QR code (devices/sim_camera/screen.py),
    #: refreshing at ``screen_refresh_hz`` and lighting up ``screen_delay_ms`` after it read the
    #: clock: what ``collector calibrate latency`` decodes.
    timecode_screen: bool = False
    screen_refresh_hz: float = 60.0
    screen_delay_ms: float = 8.0

    def validate(self) -> None:
        super().validate()
        if self.follow_commands:
            try:
                node_endpoints(self.follow_commands)
            except ValueError as exc:
                raise ConfigError(f"follow_commands: {exc}") from None
        if self.fps <= 0:
            raise ConfigError(f"fps must be > 0, got {self.fps}")
        if not (16 <= self.width <= 4096 and 16 <= self.height <= 4096):
            raise ConfigError(f"width and height must be 16..4096, got {self.width}x{self.height}")
        if self.scene not in SCENES:
            raise ConfigError(f"scene must be one of {', '.join(SCENES)}, got {self.scene!r}")
        check_script(self.script, self.scene)
        if not (1 <= self.screen_refresh_hz <= 1000 and 0 <= self.screen_delay_ms <= 1000):
            raise ConfigError("screen_refresh_hz must be 1..1000 and screen_delay_ms 0..1000, got "
                              f"{self.screen_refresh_hz} and {self.screen_delay_ms}")
        if self.view < 0:
            raise ConfigError(f"view must be >= 0, got {self.view}")
        if self.variation < 0:
            raise ConfigError(f"variation must be >= 0, got {self.variation}")


class SimCamera(Device):
    """Simulated aligned RGB-D camera; see the module docstring."""

    Config = SimCameraConfig

    def __init__(self, name: str, config=None) -> None:
        super().__init__(name, config)
        c: SimCameraConfig = self.config
        self.serial = f"SIM-{c.seed}-{c.view}"
        self.camera = camera_for_view(c.view, c.width, c.height, c.seed)
        self.world = World(c.seed, c.epoch_ns, scene=c.scene)
        self.state_at_ns = state_source(self.world, c.script)
        self.ticker = SimTicker(c.fps, c, c.seed, _TAG_BASE + 10 * c.view)
        self.screen = (TimecodeScreen(c.screen_refresh_hz, c.screen_delay_ms)
                       if c.timecode_screen else None)
        self._renderer: Renderer | None = None  # built on connect: ~0.2 s of precomputation
        self._pending: tuple[int, object, object] | None = None  # (tick index, rgb, depth)
        self._last_late_log = 0.0
        self.late_frames = 0
        self.follower = CommandFollower(c.follow_commands) if c.follow_commands else None

    def streams(self) -> list[StreamSpec]:
        c: SimCameraConfig = self.config
        common = {"intrinsics": self.camera.intrinsics(), "depth_scale": 0.001,
                  "serial": self.serial, "clock": self.ticker.clock.meta(),
                  "latency_ms": [c.latency_min_ms, c.latency_max_ms],
                  "camera_pose_in_table": self.camera.pose(), "view": c.view,
                  "variation": c.variation}
        depth_meta = dict(common, depth_to_color={"rotation": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0,
                                                               0.0, 0.0, 1.0],
                                                  "translation": [0.0, 0.0, 0.0]})
        return [
            StreamSpec(f"{self.name}/color", "color", c.fps,
                       [FieldSpec("rgb", "uint8", (c.height, c.width, 3))], meta=dict(common),
                       image_field="rgb"),
            StreamSpec(f"{self.name}/depth", "depth", c.fps,
                       [FieldSpec("depth", "uint16", (c.height, c.width), unit="mm")],
                       meta=depth_meta, image_field="depth"),
        ]

    def info(self) -> dict:
        return {**super().info(), "model": "SimCamera", "serial": self.serial,
                "view": self.config.view}

    def connect(self) -> None:
        if self._renderer is None:
            self._renderer = Renderer(self.world, self.camera, self.config.seed,
                                      _TAG_BASE + 10 * self.config.view,
                                      scene_look(self.config.variation))
        self.ticker.connect()

    def read(self, timeout_s: float) -> list[Reading]:
        if self._renderer is None:
            raise DeviceError("read() before connect()")
        tick = self.ticker.peek()
        if self._pending is None or self._pending[0] != tick.index:
            # Render ahead of the frame's due time: the world is a function of time, so the
            # picture of a future instant is already known and the frame goes out on time.
            state = self.state_at_ns(tick.true_ns)
            if self.follower is not None:
                state = self.follower.apply(state)
            rgb, depth = self._renderer.render(state, tick.frame)
            if self.screen is not None:
                self.screen.draw(rgb, tick.true_ns)
            self._pending = (tick.index, rgb, depth)
        if not self.ticker.wait(tick, timeout_s):
            return []
        self.ticker.advance(tick)
        _, rgb, depth = self._pending
        self._pending = None
        if self.config.timestamp_barcode:
            write_barcode(rgb, tick.host_ns)
        self._check_late(tick.host_ns)
        return [Reading(f"{self.name}/color", tick.device_ns, tick.host_ns, {"rgb": rgb},
                        seq=tick.frame),
                Reading(f"{self.name}/depth", tick.device_ns, tick.host_ns, {"depth": depth},
                        seq=tick.frame)]

    def _check_late(self, host_ns: int) -> None:
        if not self.config.realtime:
            return
        late_s = (time.time_ns() - host_ns) / 1e9
        if late_s > self.ticker.period_ns / 1e9:
            # Too slow to keep up: frames go out late rather than being skipped.
            self.late_frames += 1
            now = time.monotonic()
            if now - self._last_late_log > LATE_LOG_INTERVAL_S:
                self._last_late_log = now
                log.warning("%s: frame delivered %.1f ms late (%d late frames so far)",
                            self.name, late_s * 1e3, self.late_frames)

    def close(self) -> None:
        self.ticker.close()
        self._pending = None
        if self.follower is not None:
            self.follower.close()
