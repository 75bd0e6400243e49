"""The synchronized index: for every sample of a master stream, the nearest sample of each other.

Matching uses host capture time (``t_host_ns``), the one clock every stream shares. A master
sample whose nearest partner is further away than ``max_skew_ns`` gets index ``-1``: a consumer
then sees "no sample" instead of a stale one silently repeated across a dropout.
"""

from __future__ import annotations

import numpy as np

#: Added to half the larger nominal period: host timestamps jitter by a few ms (USB, scheduling).
SKEW_MARGIN_NS = 5_000_000


def default_max_skew_ns(master_rate_hz: float, other_rate_hz: float,
                        margin_ns: int = SKEW_MARGIN_NS) -> int:
    """Half the larger of the two nominal periods plus ``margin_ns``.

    Half a period is the furthest the nearest sample can be when both streams run at their
    nominal rates (a 30 fps camera against a 1 kHz glove: 16.7 ms); the margin absorbs jitter.
    Anything further means the other stream missed samples around that instant.
    """
    period_ns = 1e9 / min(float(master_rate_hz), float(other_rate_hz))
    return int(round(period_ns / 2)) + int(margin_ns)


def _median_period_ns(t_ns: np.ndarray) -> float:
    if t_ns.size < 2:
        return 0.0
    return float(np.median(np.diff(np.sort(t_ns))))


def build_sync_index(master_t_ns: np.ndarray, other_t_ns: np.ndarray,
                     max_skew_ns: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Nearest ``other`` sample for each master timestamp.

    Returns ``(index, skew_ns)``, both int64 of the master's length: ``index[i]`` is the position
    in ``other_t_ns`` of the sample closest in time to ``master_t_ns[i]`` (the earlier one on a
    tie) or ``-1`` when none lies within ``max_skew_ns``; ``skew_ns[i]`` is
    ``other_t_ns[index[i]] - master_t_ns[i]`` (0 where ``index`` is -1).

    ``other_t_ns`` need not be sorted (host timestamps may jitter backwards). ``max_skew_ns=None``
    derives the bound from the measured median periods, as :func:`default_max_skew_ns` does from
    nominal rates.
    """
    master = np.asarray(master_t_ns, dtype=np.int64).reshape(-1)
    other = np.asarray(other_t_ns, dtype=np.int64).reshape(-1)
    index = np.full(master.shape, -1, dtype=np.int64)
    skew = np.zeros(master.shape, dtype=np.int64)
    if master.size == 0 or other.size == 0:
        return index, skew
    if max_skew_ns is None:
        period = max(_median_period_ns(master), _median_period_ns(other))
        max_skew_ns = int(round(period / 2)) + SKEW_MARGIN_NS
    order = np.argsort(other, kind="stable")
    sorted_t = other[order]
    right = np.searchsorted(sorted_t, master, side="left").clip(0, sorted_t.size - 1)
    left = (right - 1).clip(0, sorted_t.size - 1)
    # Compare distances in int64: timestamps are ~1.7e18 ns, beyond float64's exact integers.
    d_left = np.abs(sorted_t[left] - master)
    d_right = np.abs(sorted_t[right] - master)
    nearest = np.where(d_left <= d_right, left, right)
    distance = np.minimum(d_left, d_right)
    ok = distance <= int(max_skew_ns)
    index[ok] = order[nearest[ok]]
    skew[ok] = sorted_t[nearest[ok]] - master[ok]
    return index, skew


def skew_stats_ms(skew_ns: np.ndarray, index: np.ndarray) -> dict[str, float | int]:
    """p50, p99 and max of ``|skew|`` in ms over matched samples, and how many had no match."""
    matched = np.abs(np.asarray(skew_ns, dtype=np.int64)[np.asarray(index) >= 0])
    unmatched = int(np.count_nonzero(np.asarray(index) < 0))
    if matched.size == 0:
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan"),
                "unmatched": unmatched}
    p50, p99 = np.percentile(matched, [50, 99])
    return {"p50_ms": float(p50) / 1e6, "p99_ms": float(p99) / 1e6,
            "max_ms": float(matched.max()) / 1e6, "unmatched": unmatched}
