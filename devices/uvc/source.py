"""What ``source`` names (a device, an index, a video file, an image sequence) and opening it
through OpenCV's ``VideoCapture``, the one code path for cameras and files alike."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collector.wire.device import DeviceError

DEVICE, FILE, SEQUENCE = "device", "file", "sequence"
_PATTERN = re.compile(r"%0?\d*d")


@dataclass(frozen=True)
class Source:
    """A parsed ``source`` option: ``kind`` is ``device``, ``file`` or ``sequence``."""

    text: str
    kind: str

    @property
    def target(self) -> Any:
        """What ``VideoCapture`` opens: an index (int) or a path."""
        return int(self.text) if self.text.isdigit() else self.text

    @property
    def is_live(self) -> bool:
        return self.kind == DEVICE

    def first_file(self) -> Path:
        """The file to probe: the video, or the image sequence's first frame."""
        if self.kind == FILE:
            return Path(self.text)
        for start in (0, 1):
            path = Path(self.text % start)
            if path.is_file():
                return path
        return Path(self.text % 0)

    def check(self) -> None:
        """``DeviceError`` when a file source is absent (a device is checked by opening it)."""
        if self.kind != DEVICE and not self.first_file().is_file():
            what = "image sequence" if self.kind == SEQUENCE else "video file"
            raise DeviceError(f"{what} {self.first_file()} does not exist")
        if self.kind == DEVICE and isinstance(self.target, str) and not Path(self.text).exists():
            raise DeviceError(f"camera {self.text} is not attached (collector devices uvc lists them)")


def parse_source(text: str) -> Source:
    """``"2"`` and ``"/dev/video2"`` are cameras, ``"frames/%04d.png"`` an image sequence,
    anything else a video file."""
    if text.isdigit() or text.startswith("/dev/"):
        return Source(text, DEVICE)
    if _PATTERN.search(text):
        return Source(text, SEQUENCE)
    return Source(text, FILE)


def cv2_module():
    """OpenCV, imported when a camera is opened (the driver's SDK)."""
    try:
        import cv2
    except Exception as exc:  # absent (ImportError) or broken (OSError from its libraries)
        raise DeviceError(f"OpenCV cannot be imported ({exc}); pip install opencv-python-headless") from None
    return cv2


def open_capture(source: Source):
    """A ``VideoCapture`` on ``source``, opened; ``DeviceError`` saying why it cannot be."""
    cv2 = cv2_module()
    source.check()
    if source.kind == DEVICE:
        cap = cv2.VideoCapture(source.target, cv2.CAP_V4L2)
    elif source.kind == SEQUENCE:
        cap = cv2.VideoCapture(source.text, cv2.CAP_IMAGES)
    else:
        cap = cv2.VideoCapture(source.text, cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise DeviceError(f"OpenCV cannot open {source.kind} {source.text}")
    return cap


def probe(source: Source) -> tuple[int, int, float]:
    """``(width, height, fps)`` of a file source (fps 0 when the file does not say)."""
    cap = open_capture(source)
    try:
        cv2 = cv2_module()
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if width <= 0 or height <= 0:
            ok, frame = cap.read()
            if not ok:
                raise DeviceError(f"{source.text}: no frame to read")
            height, width = frame.shape[:2]
        return width, height, fps if 0 < fps <= 1000 else 0.0
    finally:
        cap.release()
