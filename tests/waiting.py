"""The one way tests wait: poll a condition until a deadline, never sleep a fixed time and count.

These machines are shared and often busy, so every wait is for a condition, with a generous
deadline that only a real failure reaches.
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout_s: float = 30.0, interval_s: float = 0.02,
             message: str = "") -> T:
    """Call ``condition`` until it returns something truthy and return that; raise
    ``AssertionError`` (naming ``message``) if ``timeout_s`` passes first."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout_s} s" + (f": {message}" if message else ""))
        time.sleep(interval_s)
