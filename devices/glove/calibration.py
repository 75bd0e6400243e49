"""Per-operator glove calibration: each joint's reading with the hand open and in a fist.

    python -m devices.glove.calibration --port /dev/ttyACM0 --operator ana

asks the operator to hold the hand open, then to make a fist (2 s each), and saves
``~/.config/collector/gloves/ana-right.json``. A glove node with ``operator = "ana"`` (or
``calibration = PATH``) then publishes ``finger_closure`` (0 = open, 1 = fist, per joint) next
to the raw ``finger_joints`` and writes the calibration into every episode (stream metadata
``calibration``), so the raw data can always be re-normalised later.
"""

from __future__ import annotations

import argparse
import json
import sys
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


def _capture(glove, seconds: float) -> np.ndarray:
    rows = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rows += [r.fields["finger_joints"] for r in glove.read(0.2)]
    return np.array(rows)


def main(argv: list[str] | None = None) -> int:
    from devices.glove.node import Glove  # serial only when capturing

    parser = argparse.ArgumentParser(prog="python -m devices.glove.calibration",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", default="", help="tty path (default: by --vid/--pid)")
    parser.add_argument("--vid", default="")
    parser.add_argument("--pid", default="")
    parser.add_argument("--baudrate", type=int, default=921600)
    parser.add_argument("--operator", required=True)
    parser.add_argument("--hand", choices=("right", "left"), default="right")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--dir", default=DEFAULT_DIR)
    args = parser.parse_args(argv)
    glove = Glove("glove", {"port": args.port, "vid": args.vid, "pid": args.pid,
                            "baudrate": args.baudrate, "hand": args.hand})
    try:
        glove.connect()
        names = glove.streams()[0].field("finger_joints").channel_names
        input("Hold the hand flat and open, then press Enter ")
        opened = _capture(glove, args.seconds)
        input("Make a tight fist, then press Enter ")
        fist = _capture(glove, args.seconds)
    except Exception as exc:  # DeviceError, KeyError for a glove without finger_joints
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        glove.close()
    calibration = calibrate(opened, fist, operator=args.operator, hand=args.hand,
                            joint_names=names, glove_serial=glove.info().get("serial", ""))
    print(calibration.save(calibration_path(args.operator, args.hand, args.dir)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
