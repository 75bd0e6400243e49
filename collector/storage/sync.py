"""The synchronized index: for every sample of a master stream, the nearest sample of each other.

Matching happens on the host clock, the one clock every stream shares. Host capture timestamps
carry transport jitter (USB, scheduling: milliseconds), while a device's own clock ticks evenly
but has its own offset and drift. So each stream's device clock is fitted to host time
(:func:`fit_device_clock`, least squares over the episode); where the fit explains host time
within ``CLOCK_FIT_MAX_RESIDUAL_NS`` the mapped device time is used, which removes the jitter,
otherwise the raw host timestamp (a device without a usable clock). A master sample whose nearest
partner is further away than ``max_skew_ns`` gets index ``-1``: a consumer then sees "no sample"
instead of a stale one silently repeated across a dropout.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

SYNC_METHOD = "nearest"

#: Added to half the larger nominal period: host timestamps jitter by a few ms (USB, scheduling).
SKEW_MARGIN_NS = 5_000_000


#: A device clock whose linear map to host time leaves larger residuals (p99) is not used.
CLOCK_FIT_MAX_RESIDUAL_NS = 5_000_000
#: A fitted drift beyond this is not a clock but a bug (wrong units, resets).
CLOCK_FIT_MAX_DRIFT_PPM = 1000.0


def fit_device_clock(t_device_ns: np.ndarray, t_host_ns: np.ndarray) -> dict[str, float] | None:
    """Fit ``host = host0 + slope * (device - device0)`` over a stream's samples.

    Returns ``{"device0", "host0", "slope", "drift_ppm", "residual_p99_ns"}`` or ``None`` when
    there are fewer than 10 samples, the device clock does not increase strictly (none, reset),
    or the fit does not explain host time within :data:`CLOCK_FIT_MAX_RESIDUAL_NS`.
    """
    device = np.asarray(t_device_ns, dtype=np.int64)
    host = np.asarray(t_host_ns, dtype=np.int64)
    if device.size < 10 or np.any(np.diff(device) <= 0):
        return None
    # Relative to the first sample: absolute ns (~1.7e18) are beyond float64's exact integers.
    x = (device - device[0]).astype(np.float64)
    y = (host - host[0]).astype(np.float64)
    slope, intercept = np.polyfit(x, y, 1)
    residual = np.abs(y - (slope * x + intercept))
    p99 = float(np.percentile(residual, 99))
    drift_ppm = (1.0 / slope - 1.0) * 1e6  # how much faster the device clock runs than the host
    if p99 > CLOCK_FIT_MAX_RESIDUAL_NS or abs(drift_ppm) > CLOCK_FIT_MAX_DRIFT_PPM:
        return None
    return {"device0": int(device[0]), "host0": int(host[0]) + float(intercept), "slope": float(slope),
            "drift_ppm": float(drift_ppm), "residual_p99_ns": p99}


def sync_time_ns(t_device_ns: np.ndarray, t_host_ns: np.ndarray,
                 fit: dict[str, float] | None) -> np.ndarray:
    """The time a stream is synchronized on: mapped device time with a fit, else host time."""
    if fit is None:
        return np.asarray(t_host_ns, dtype=np.int64)
    offset = np.asarray(t_device_ns, dtype=np.int64) - fit["device0"]
    return (int(round(fit["host0"])) + np.rint(offset * fit["slope"] + (fit["host0"] % 1))
            ).astype(np.int64)


def calibrated_time_ns(sync_t_ns: np.ndarray, latency_ms: float | None) -> np.ndarray:
    """Sync time less a stream's calibrated mean latency (``collector calibrate latency``).

    A fitted device clock maps to host time *plus that stream's mean latency*; streams with
    different latencies are then offset by the difference, which no fit can see. Subtracting
    each stream's measured latency brings them all to true capture time (docs/time-sync.md).
    """
    t = np.asarray(sync_t_ns, dtype=np.int64)
    return t if not latency_ms else t - int(round(latency_ms * 1e6))


def stream_sync_time_ns(t_device_ns: np.ndarray, t_host_ns: np.ndarray, fit: dict[str, float] | None,
                        latency_ms: float | None) -> np.ndarray:
    """What a stream's ``/sync`` matching uses: :func:`sync_time_ns` less its calibrated
    latency (:func:`calibrated_time_ns`). Episode close and exports that rebuild an index both
    call this, so they pair the same samples."""
    return calibrated_time_ns(sync_time_ns(t_device_ns, t_host_ns, fit), latency_ms)


#: The episode root attribute holding the latency calibration applied to it (JSON; written by
#: the recorder from the station's calibration, :mod:`collector.calibration.station`).
CALIBRATION_ATTR = "latency_calibration"


def read_episode_calibration(root_attrs: Any) -> dict[str, Any] | None:
    """An episode's ``latency_calibration`` attribute as data (``None``: recorded uncalibrated)."""
    raw = root_attrs.get(CALIBRATION_ATTR)
    if raw is None or raw == "":
        return None
    try:
        data = json.loads(raw)
    except (TypeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def calibrated_latencies_ms(calibration: dict[str, Any] | None) -> dict[str, float]:
    """Each calibrated stream's mean latency (ms) to subtract from its fitted clock. A stream
    whose device changed since calibration, or an episode stream the calibration does not
    cover, makes it apply to none: shifting some streams and not others would be worse than
    shifting none."""
    if not calibration or calibration.get("changed") or calibration.get("uncalibrated"):
        return {}
    return {name: float(entry["latency_ms"]) for name, entry in calibration.get("streams", {}).items()
            if isinstance(entry, dict) and entry.get("latency_ms") is not None}


def episode_latencies_ms(root_attrs: Any) -> dict[str, float]:
    """:func:`calibrated_latencies_ms` of an episode's root attributes (what closing it applies)."""
    return calibrated_latencies_ms(read_episode_calibration(root_attrs))


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


def compute_sync_index(master: str, streams: dict[str, tuple[float, np.ndarray]]) -> dict:
    """The synchronized index of every other stream against ``master``, as plain data (what
    :func:`read_sync_group` reads back); ``streams`` as in :func:`write_sync_group`."""
    t_ns = np.asarray(streams[master][1], np.int64) if master in streams else np.zeros(0, np.int64)
    result: dict[str, Any] = {"master": master, "method": SYNC_METHOD, "t_ns": t_ns, "streams": {}}
    for name, (rate_hz, other_t) in streams.items():
        if name == master or master not in streams:
            continue
        bound = default_max_skew_ns(streams[master][0], rate_hz)
        index, skew = build_sync_index(t_ns, other_t, bound)
        result["streams"][name] = {"index": index, "skew_ns": skew, "max_skew_ns": bound}
    result["max_skew_ns"] = max((s["max_skew_ns"] for s in result["streams"].values()), default=0)
    return result


def write_sync_group(f: Any, master: str, streams: dict[str, tuple[float, np.ndarray]]) -> dict:
    """Replace ``f["sync"]`` with the index of every other stream against ``master``.

    ``streams`` maps each stream name (the master included) to ``(nominal rate_hz, t_ns)``, the
    times to synchronize on (see :func:`sync_time_ns`).
    An unknown master gives an empty ``t_ns`` and no per-stream groups. Returns what
    :func:`read_sync_group` would read back.
    """
    if "sync" in f:
        del f["sync"]
    group = f.create_group("sync")
    result = compute_sync_index(master, streams)
    for name, pair in result["streams"].items():
        sub = group.create_group(name)
        sub.create_dataset("index", data=pair["index"])
        sub.create_dataset("skew_ns", data=pair["skew_ns"])
        sub.attrs["max_skew_ns"] = pair["max_skew_ns"]
    group.create_dataset("t_ns", data=result["t_ns"])
    group.attrs.update(master=master, method=SYNC_METHOD, max_skew_ns=result["max_skew_ns"])
    return result


def read_sync_group(f: Any) -> dict | None:
    """An episode's ``/sync`` as ``{"master", "method", "max_skew_ns", "t_ns", "streams":
    {name: {"index", "skew_ns", "max_skew_ns"}}}``, or ``None`` if the file has none.

    ``t_ns`` holds the master's host timestamps (M,); each stream's ``index`` and ``skew_ns``
    (M,) give its nearest sample per master sample (-1: none within ``max_skew_ns``). The master
    itself is not listed: its index is ``arange(M)``.
    """
    if "sync" not in f or "t_ns" not in f["sync"]:
        return None
    group = f["sync"]
    result: dict[str, Any] = {"master": str(group.attrs.get("master", "")),
                              "method": str(group.attrs.get("method", SYNC_METHOD)),
                              "max_skew_ns": int(group.attrs.get("max_skew_ns", 0)),
                              "t_ns": group["t_ns"][:], "streams": {}}
    for node in group.values():
        for sub in node.values() if hasattr(node, "values") else ():
            result["streams"][sub.name.split("/sync/", 1)[1]] = {
                "index": sub["index"][:], "skew_ns": sub["skew_ns"][:],
                "max_skew_ns": int(sub.attrs.get("max_skew_ns", 0))}
    return result
