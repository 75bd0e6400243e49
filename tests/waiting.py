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


def wait_for_samples(status: Callable[[], dict], streams: tuple[str, ...], count: int = 20,
                     timeout_s: float = 60.0) -> None:
    """Until each of ``streams`` has delivered ``count`` more samples, as the recorder's
    ``status()["streams"][name]["received"]`` counts them (a recording is under way)."""
    def received() -> dict[str, int]:
        return {n: s["received"] for n, s in status()["streams"].items()}
    before = received()
    wait_for(lambda: all(received().get(n, 0) >= before.get(n, 0) + count for n in streams),
             timeout_s=timeout_s, message=f"{count} more samples of {', '.join(streams)}")
