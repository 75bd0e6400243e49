"""A station's latency calibration: stored per station, applied in the clock mapping, kept in
every episode (docs/time-sync.md).

The file (JSON, :func:`station_calibration_path`) says which device each stream came from
(node, driver, serial), when it was measured, each stream's mean capture latency and its
uncertainty. The recorder copies it into each episode's root attribute ``latency_calibration``
(:func:`episode_calibration`), adding which calibrated devices are no longer the ones recording;
closing the episode subtracts each stream's latency from its fitted clock before the
synchronized index is built (:func:`collector.storage.sync.calibrated_latencies_ms`,
:func:`~collector.storage.sync.calibrated_time_ns`). ``collector info`` prints :func:`calibration_lines`.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Mapping

from collector.storage.sync import calibrated_latencies_ms, read_episode_calibration  # noqa: F401 (re-exported)

#: Bumped when the file's layout changes; readers accept every version written.
CALIBRATION_SCHEMA = 1
#: A calibration older than this is reported as due again (devices warm up, USB hubs move).
STALE_AFTER_S = 30 * 24 * 3600


def station_calibration_path(station: str = "") -> Path:
    """Where a station's calibration lives: ``$XDG_DATA_HOME/collector/calibration/<station>.json``
    (``~/.local/share`` without ``XDG_DATA_HOME``; station ``default`` when unnamed)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in (station or "default"))
    return Path(base) / "collector" / "calibration" / f"{name}.json"


def save_calibration(calibration: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``calibration`` atomically (a reader never sees half a file); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(dict(calibration), indent=2, sort_keys=True) + "\n")
    os.replace(partial, path)
    return path


def load_calibration(path: str | Path) -> dict[str, Any] | None:
    """The calibration in ``path``, or ``None`` if there is none; ``ValueError`` naming the file
    if it is not a calibration."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable calibration ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("streams"), dict):
        raise ValueError(f"{path}: not a latency calibration (no 'streams' table)")
    return data


def episode_calibration(calibration: Mapping[str, Any] | None,
                        serials: Mapping[str, str]) -> dict[str, Any] | None:
    """The calibration as stored in an episode: ``calibration`` plus ``changed``, the streams
    whose device is not the calibrated one (``serials``: each recorded stream's device serial,
    ``""`` if it has none) and ``uncalibrated``, recorded streams it does not cover."""
    if not calibration:
        return None
    streams = calibration.get("streams", {})
    changed = sorted(name for name, entry in streams.items()
                     if name in serials and entry.get("serial") and serials[name]
                     and str(entry["serial"]) != str(serials[name]))
    missing = sorted(name for name in streams if name not in serials)
    return {**calibration, "changed": changed, "absent": missing,
            "uncalibrated": sorted(name for name in serials if name not in streams)}


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{max(seconds, 0):.0f} s"


def calibrated_skew_ms(calibration: Mapping[str, Any], stream: str,
                       reference: str) -> tuple[float, float] | None:
    """``stream``'s calibrated latency relative to ``reference``'s and its uncertainty (ms): the
    skew an uncalibrated recording of the two has, which calibration removes."""
    streams = calibration.get("streams", {})
    a, b = streams.get(stream), streams.get(reference)
    if not a or not b:
        return None
    return (float(a["latency_ms"]) - float(b["latency_ms"]),
            math.hypot(float(a.get("uncertainty_ms", 0.0)), float(b.get("uncertainty_ms", 0.0))))


def calibration_lines(calibration: Mapping[str, Any] | None, *, now_ns: int | None = None,
                      recorded_ns: int | None = None) -> list[str]:
    """What ``collector info`` and the review window say about a calibration, one line each:
    per stream its latency and uncertainty, the skew to the reference camera, the age (at
    ``recorded_ns`` if given, else now) and what no longer matches."""
    if not calibration:
        return ["latency calibration: none (streams synchronized on fitted device clocks; "
                "a latency difference between devices is not corrected: run "
                "'collector calibrate latency')"]
    at = int(calibration.get("calibrated_ns", 0))
    when = recorded_ns if recorded_ns is not None else (now_ns or time.time_ns())
    age = _age((when - at) / 1e9)
    lines = [f"latency calibration: {calibration.get('calibrated_at', '?')} ({age} "
             f"{'before recording' if recorded_ns is not None else 'old'}), station "
             f"'{calibration.get('station', '')}'"]
    reference = str(calibration.get("reference", ""))
    applied = calibrated_latencies_ms(calibration)
    for name, entry in sorted(calibration.get("streams", {}).items()):
        skew = calibrated_skew_ms(calibration, name, reference) if name != reference else None
        rel = f", skew to {reference} {skew[0]:+.2f} ± {skew[1]:.2f} ms" if skew else ""
        extra = ""
        if entry.get("p95_ms") is not None:
            extra = f" (p95 {entry['p95_ms']:.2f}, jitter {entry.get('jitter_ms', 0):.2f} ms)"
        lines.append(f"  {name:<16} latency {entry['latency_ms']:6.2f} ± "
                     f"{entry.get('uncertainty_ms', 0):.2f} ms{extra}{rel} "
                     f"[{entry.get('method', '?')}, {entry.get('driver', '?')} "
                     f"{entry.get('serial', '') or ''}]".rstrip() + ("" if name in applied else " (not applied)"))
    display = calibration.get("display")
    if display:
        lines.append(f"  display: refresh {display.get('refresh_ms', 0):.3f} ms, delay "
                     f"{display.get('delay_ms', 0):.2f} ms (pipeline {display.get('pipeline_ms_stated', 0):g} "
                     "ms stated, not measured)")
    for key, words in (("changed", "device changed since calibration"),
                       ("absent", "calibrated but not recorded"),
                       ("uncalibrated", "recorded but not calibrated")):
        if calibration.get(key):
            lines.append(f"  {words}: {', '.join(calibration[key])} -> calibration not applied; "
                         "run 'collector calibrate latency' again")
    if (when - at) / 1e9 > STALE_AFTER_S:
        lines.append(f"  calibration is older than {STALE_AFTER_S // 86400} days: run it again")
    return lines


def episode_attr(station: str, serials: Mapping[str, str], path: str | Path | None = None) -> str:
    """The ``latency_calibration`` attribute for a new episode of ``station`` (JSON, ``""``: no
    calibration). The recorder calls this at every start, so a calibration made during a
    session applies from the next episode on. An unreadable file counts as none (the episode
    is recorded uncalibrated and says so) rather than refusing to record."""
    try:
        calibration = load_calibration(path or station_calibration_path(station))
    except ValueError:
        calibration = None
    data = episode_calibration(calibration, serials)
    return json.dumps(data, sort_keys=True) if data else ""
