"""Lists the V4L2 cameras attached to this machine (``collector devices uvc``).

Names come from sysfs (``/sys/class/video4linux/videoN/name``); the modes each offers from
``v4l2-ctl --list-formats-ext`` when v4l-utils is installed (else ``modes`` is empty). Only a
camera's capture node is listed (a UVC camera also has a metadata node, ``index`` 1).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

SYSFS = Path("/sys/class/video4linux")


def _modes(device: str) -> list[str]:
    """``["MJPG 1280x720@30", ...]`` from v4l2-ctl, ``[]`` without it."""
    if shutil.which("v4l2-ctl") is None:
        return []
    try:
        out = subprocess.run(["v4l2-ctl", "-d", device, "--list-formats-ext"], capture_output=True,
                             text=True, timeout=3).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    modes, fourcc, size = [], "", ""
    for line in out.splitlines():
        if m := re.search(r"'(\w{4})'", line):
            fourcc = m.group(1)
        elif m := re.search(r"Size: \w+ (\d+x\d+)", line):
            size = m.group(1)
        elif (m := re.search(r"\(([\d.]+) fps\)", line)) and fourcc and size:
            modes.append(f"{fourcc} {size}@{float(m.group(1)):g}")
    return modes


def find_cameras(sysfs: Path = SYSFS) -> list[dict[str, Any]]:
    """One entry per camera: ``kind``, ``name``, ``id`` (the ``/dev/videoN`` to put in a config
    as ``options.source``) and ``modes``; ``[]`` when none is attached."""
    found = []
    for node in sorted(sysfs.glob("video*"), key=lambda p: int(re.sub(r"\D", "", p.name) or 0)):
        index = (node / "index").read_text().strip() if (node / "index").exists() else "0"
        if index != "0":
            continue
        name = (node / "name").read_text().strip() if (node / "name").exists() else node.name
        device = f"/dev/{node.name}"
        found.append({"kind": "uvc", "name": name, "id": device, "modes": _modes(device)})
    return found
