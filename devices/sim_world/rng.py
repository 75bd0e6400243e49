"""Counter-based random numbers: a value is a pure function of its keys.

The world must give the same answer in every process for any ``(seed, cycle, ...)`` without
replaying history, so instead of a stateful generator we hash the keys (SplitMix64 finaliser).
Pure Python integers: a few hundred nanoseconds per number, no generator to construct.
"""

from __future__ import annotations

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_TO_UNIT = 2.0 ** -53


def mix64(x: int) -> int:
    """SplitMix64's finaliser: a bijective scramble of a 64-bit integer."""
    x = (x + _GOLDEN) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def hash_keys(*keys: int) -> int:
    """A 64-bit hash of a sequence of integers (negative ones included)."""
    h = 0x5EED
    for key in keys:
        h = mix64(h ^ (int(key) & _MASK))
    return h


def unit(*keys: int) -> float:
    """A uniform float in [0, 1) determined by ``keys``."""
    return (hash_keys(*keys) >> 11) * _TO_UNIT


class KeyedRandom:
    """A short deterministic stream of numbers for one ``keys`` tuple (e.g. one cycle's plan)."""

    __slots__ = ("_base", "_count")

    def __init__(self, *keys: int) -> None:
        self._base = hash_keys(*keys)
        self._count = 0

    def random(self) -> float:
        self._count += 1
        return (mix64((self._base + self._count * _GOLDEN) & _MASK) >> 11) * _TO_UNIT

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.random()

    def signed(self, amplitude: float) -> float:
        return amplitude * (2.0 * self.random() - 1.0)

    def permutation(self, n: int) -> list[int]:
        items = list(range(n))
        for i in range(n - 1, 0, -1):  # Fisher-Yates
            j = int(self.random() * (i + 1))
            items[i], items[j] = items[j], items[i]
        return items
