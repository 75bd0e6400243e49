"""Options of the ``realsense`` driver (``[[nodes]] options = {...}`` in a station config)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from collector.wire.options import ConfigError

#: Options that change the camera, which a recording cannot do.
LIVE_ONLY_OPTIONS = ("serial", "auto_exposure", "exposure_us", "depth_exposure_us",
                     "laser_power_mw")


@dataclass
class RealSenseConfig:
    """What to open and how.

    A live camera is chosen by ``serial`` (empty: the only one attached). ``from_file`` plays a
    recording made by pyrealsense2's recorder (``.db3``) or RealSense Viewer (``.bag``) instead,
    with the resolution and rate it was recorded at.
    """

    #: Serial number of the camera (``collector devices`` lists them); "" = the only one.
    serial: str = ""
    #: Play this recording instead of opening a camera.
    from_file: Path | None = None
    #: Playback: follow the recording's clock (True) or deliver frames as fast as possible.
    realtime: bool = True
    #: Playback: start over at the end, numbering frames on (False: the end is a disconnect).
    loop: bool = True
    width: int = 640
    height: int = 480
    fps: int = 30
    #: Depth mode; 0 = same as colour.
    depth_width: int = 0
    depth_height: int = 0
    depth_fps: int = 0
    #: Reproject depth into the colour camera (same size and intrinsics as colour).
    align_depth_to_color: bool = False
    #: Auto-exposure of both sensors; None leaves the camera's setting.
    auto_exposure: bool | None = None
    #: Manual colour exposure in microseconds (turns colour auto-exposure off).
    exposure_us: float | None = None
    #: Manual depth exposure in microseconds (turns depth auto-exposure off).
    depth_exposure_us: float | None = None
    #: Projector power in milliwatts (0 turns the laser off).
    laser_power_mw: float | None = None
    #: Live: after this long without frames, check the camera is still attached and reopen it.
    stall_timeout_s: float = 2.0

    def validate(self) -> None:
        for name in ("width", "height", "fps"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("depth_width", "depth_height", "depth_fps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0 (0: same as colour), got {getattr(self, name)}")
        if self.stall_timeout_s <= 0:
            raise ConfigError(f"stall_timeout_s must be > 0, got {self.stall_timeout_s}")
        for name in ("exposure_us", "depth_exposure_us", "laser_power_mw"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"{name} must be >= 0, got {value}")
        if self.auto_exposure and (self.exposure_us is not None or self.depth_exposure_us is not None):
            raise ConfigError("auto_exposure = true contradicts a manual exposure_us/depth_exposure_us")
        if self.from_file is not None:
            live = [name for name in LIVE_ONLY_OPTIONS if getattr(self, name) not in (None, "")]
            if live:
                raise ConfigError(f"from_file plays the recorded camera settings; remove "
                                  f"{', '.join(live)}")

    @property
    def depth_mode(self) -> tuple[int, int, int]:
        """``(width, height, fps)`` of the depth stream."""
        return (self.depth_width or self.width, self.depth_height or self.height,
                self.depth_fps or self.fps)
