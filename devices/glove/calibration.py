"""Per-operator glove calibration: each joint's reading with the hand open and in a fist.

    python -m devices.glove.calibration --port /dev/ttyACM0 --operator ana

asks the operator to hold the hand open, then to make a fist (2 s each), and saves
``~/.config/collector/gloves/ana-right.json``. A glove node with ``operator = "ana"`` (or
``calibration = PATH``) then publishes ``finger_closure`` (0 = open, 1 = fist, per joint) next
to the raw ``finger_joints`` and writes the calibration into every episode (stream metadata
``calibration``), so the raw data can always be re-normalised later.

The calibration itself (the data, its file, :func:`calibrate`) is
:mod:`devices.glove.calibration_data`, which the node imports; this module is only the capture.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from devices.glove.calibration_data import (DEFAULT_DIR, MIN_RANGE, Calibration, CalibrationError, calibrate,
                                            calibration_path)
from devices.glove.node import Glove

__all__ = ["DEFAULT_DIR", "MIN_RANGE", "Calibration", "CalibrationError", "calibrate", "calibration_path", "main"]


def _capture(glove, seconds: float) -> np.ndarray:
    rows = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rows += [r.fields["finger_joints"] for r in glove.read(0.2)]
    return np.array(rows)


def main(argv: list[str] | None = None) -> int:
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
