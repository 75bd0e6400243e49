"""A virtual screen in the camera's view that shows the host clock as a QR code.

The screen refreshes at ``refresh_hz`` on a grid of host time: refresh ``n`` reads the host
clock at ``n * period`` (the code it shows: that time in ns, as digits) and lights up
``delay_ms`` later (rendering, scan-out, pixel response), staying until the next one does. A
camera frame captured at true time ``t`` therefore shows the code
``floor((t - delay) / period) * period``: on average ``delay + period / 2`` old. That is the
"display delay" ``collector calibrate latency`` has to subtract, and the one part of a camera's
measured latency that the camera is not to blame for.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Size of one QR module in pixels, and the quiet zone around the code in modules.
MODULE_PX = 4
QUIET = 2


class TimecodeScreen:
    """Draws the screen's current code into a camera image (top-left corner, facing the camera)."""

    def __init__(self, refresh_hz: float = 60.0, delay_ms: float = 8.0) -> None:
        self.period_ns = round(1e9 / refresh_hz)
        self.delay_ns = round(delay_ms * 1e6)
        self._encoder = cv2.QRCodeEncoder.create()

    def shown_ns(self, true_ns: int) -> int:
        """The host time encoded by the code on screen at true time ``true_ns``."""
        return ((true_ns - self.delay_ns) // self.period_ns) * self.period_ns

    def image(self, value_ns: int) -> np.ndarray:
        """The code for ``value_ns`` as a white-bordered greyscale image."""
        code = self._encoder.encode(str(int(value_ns)))
        code = np.pad(code, QUIET, constant_values=255)
        return np.kron(code, np.ones((MODULE_PX, MODULE_PX), np.uint8))

    def draw(self, rgb: np.ndarray, true_ns: int) -> int:
        """Paint the screen as seen at ``true_ns`` into ``rgb`` (in place); return its value."""
        value = self.shown_ns(true_ns)
        img = self.image(value)
        h, w = min(img.shape[0], rgb.shape[0] - 4), min(img.shape[1], rgb.shape[1] - 4)
        rgb[4:4 + h, 4:4 + w] = img[:h, :w, None]
        return value
