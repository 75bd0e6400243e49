"""A glove calibration as data: each joint's reading with the hand open and in a fist, for one
operator and hand, saved as JSON (``~/.config/collector/gloves/<operator>-<hand>.json``).

The glove node reads it (to publish ``finger_closure``); capturing one is the command in
:mod:`devices.glove.calibration`, which drives the node. Kept apart so the two do not import
each other.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

DEFAULT_DIR = "~/.config/collector/gloves"
#: Joints whose open and fist readings differ by less than this are not normalised (0).
MIN_RANGE = 1e-3


class CalibrationError(ValueError):
    """A calibration file or capture that cannot be used; the message says why."""


@dataclass
class Calibration:
    """Open-hand and fist readings of each finger joint for one operator and hand."""

    operator: str
    hand: str
    joint_names: list[str]
    open: list[float]
    fist: list[float]
    glove_serial: str = ""
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    def __post_init__(self) -> None:
        if not (len(self.open) == len(self.fist) == len(self.joint_names)):
            raise CalibrationError(f"calibration of {self.operator!r}: {len(self.joint_names)} "
                                   f"joints but {len(self.open)} open and {len(self.fist)} fist "
                                   "values")

    def closure(self, joints: np.ndarray) -> np.ndarray:
        """Per joint 0 (open) .. 1 (fist), clipped; 0 for joints that did not move while
        calibrating (no NaN: training code takes these values as they are)."""
        lo = np.asarray(self.open, np.float32)
        span = np.asarray(self.fist, np.float32) - lo
        moved = np.abs(span) >= MIN_RANGE
        closure = (np.asarray(joints, np.float32) - lo) / np.where(moved, span, 1.0)
        return np.where(moved, np.clip(closure, 0.0, 1.0), 0.0).astype(np.float32)

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        path = Path(path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Calibration":
        path = Path(path).expanduser()
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise CalibrationError(f"no calibration file {path} (make one with: python -m "
                                   "devices.glove.calibration --operator NAME)") from None
        except ValueError as exc:
            raise CalibrationError(f"{path}: not JSON: {exc}") from None
        try:
            return cls(**data)
        except TypeError as exc:
            raise CalibrationError(f"{path}: {exc}") from None


def calibration_path(operator: str, hand: str, directory: str = DEFAULT_DIR) -> Path:
    return Path(directory).expanduser() / f"{operator}-{hand}.json"


def calibrate(open_samples: np.ndarray, fist_samples: np.ndarray, *, operator: str, hand: str,
              joint_names: list[str], glove_serial: str = "") -> Calibration:
    """A calibration from joint readings (N, J) captured with the hand open and in a fist.

    Medians, so a twitch during the capture does not move the range.
    """
    open_samples, fist_samples = np.atleast_2d(open_samples), np.atleast_2d(fist_samples)
    if not len(open_samples) or not len(fist_samples):
        raise CalibrationError("no samples captured: is the glove streaming?")
    return Calibration(operator, hand, list(joint_names),
                       np.median(open_samples, axis=0).astype(float).round(5).tolist(),
                       np.median(fist_samples, axis=0).astype(float).round(5).tolist(), glove_serial)
