"""From a calibration recording to a station calibration (Qt-free; the CLI and the wizard share it).

A calibration recording is an ordinary episode of the station's devices while every camera films
the time-code screen and the operator taps the table (:mod:`collector.calibration.latency`). Each
camera's colour stream gives its latency from the codes; the node's other streams (depth) are
captured with the same exposure and get the same latency. Each glove's fingertip force gives its
latency relative to the first camera from the taps: from the hand's height, where the glove
reports its wrist position, else from the impacts.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from typing import Any, Callable

import numpy as np

from collector.calibration.latency import (PHASE_COVERAGE_GOOD, decode_timecodes, glove_impacts,
                                           motion_offset, motion_signals, tap_offset, timecode_latency)
from collector.calibration.station import CALIBRATION_SCHEMA
from collector.storage.interface import EpisodeReader
from collector.storage.sync import fit_device_clock, sync_time_ns

#: What a screen adds between reading the clock and the light leaving it (render, scan-out,
#: pixel response) when nothing better is known: a typical 60 Hz LCD.
DEFAULT_DISPLAY_DELAY_MS = 8.0
#: Seconds of filming the procedure asks for: 30 fps on a 59.94 Hz screen sweeps a whole
#: refresh period in 16.7 s, and ~12 taps fit in it.
DEFAULT_SECONDS = 20.0
#: The field a glove's fingertip force is in, and the one a camera's colour image is in.
FORCE_FIELD, IMAGE_FIELD = "pressure", "rgb"
#: A glove's wrist position (table frame, z up): its height is what :func:`motion_offset` uses.
POSITION_FIELD = "wrist_pos"


class CalibrationError(ValueError):
    """The recording cannot calibrate the station; the message says what to do."""


def _fitted(reader: EpisodeReader, stream: str) -> tuple[np.ndarray, np.ndarray]:
    t = reader.timestamps(stream)
    fit = fit_device_clock(t["t_device_ns"], t["t_host_ns"])
    if fit is None:
        raise CalibrationError(f"{stream}: its device clock cannot be fitted to host time "
                               "(no device timestamps, or a reset): it cannot be calibrated")
    return sync_time_ns(t["t_device_ns"], t["t_host_ns"], fit), np.asarray(t["t_host_ns"], np.int64)


def _node(stream: str) -> str:
    return stream.split("/", 1)[0]


def _glove_entry(reader: EpisodeReader, stream: str, reference: str, camera: dict[str, Any],
                 cam_t: np.ndarray, signals: dict[str, np.ndarray]) -> dict[str, Any]:
    """A glove's latency relative to the ``reference`` camera (frames at ``cam_t``, their
    :func:`motion_signals`): from the hand's motion when the glove reports its wrist position
    (the impacts' estimate kept beside it as a check), else from the impacts alone
    (:mod:`collector.calibration.latency`)."""
    fitted, _ = _fitted(reader, stream)
    fields = {f.name for f in reader.streams[stream].fields}
    force = np.asarray(reader.frames(stream, FORCE_FIELD), float).reshape(len(fitted), -1).sum(axis=1)
    try:
        taps = tap_offset(cam_t, signals["count"], glove_impacts(fitted, force))
    except ValueError as exc:
        taps = {"error": str(exc)}
    entry: dict[str, Any] = {"relative_to": reference}
    motion_error = ""
    if POSITION_FIELD in fields:
        height = np.asarray(reader.frames(stream, POSITION_FIELD), float).reshape(len(fitted), -1)[:, 2]
        try:
            motion = motion_offset(cam_t, signals["change"], fitted, height)
            entry.update(method="motion", offset_ms=motion["offset_ms"], frames=motion["frames"],
                         offset_uncertainty_ms=motion["uncertainty_ms"])
        except ValueError as exc:
            motion_error = str(exc)  # the impacts may still do
    if "offset_ms" in entry:
        if "offset_ms" in taps:
            entry["taps_offset_ms"] = taps["offset_ms"]  # the impacts' estimate, ~1 ms: a check
    elif "offset_ms" in taps:
        entry.update(method="taps", offset_ms=taps["offset_ms"],
                     offset_uncertainty_ms=taps["uncertainty_ms"])
    else:
        raise CalibrationError(f"{stream}: {motion_error or taps['error']}; tap the table firmly, "
                               f"in view of {reference}, several times")
    if "taps" in taps:
        entry["taps"] = taps["taps"]
    entry.update(latency_ms=camera["latency_ms"] + entry["offset_ms"],
                 uncertainty_ms=math.hypot(camera["uncertainty_ms"], entry.pop("offset_uncertainty_ms")))
    return entry


def analyse_recording(reader: EpisodeReader, *, devices: dict[str, dict[str, str]] | None = None,
                      display_delay_ms: float = DEFAULT_DISPLAY_DELAY_MS, station: str = "",
                      progress: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    """The station calibration measured by a calibration recording (see the module docstring).

    ``devices`` maps node names to ``{"driver", "serial"}`` (from the config and the streams'
    own ``serial``). Raises :class:`CalibrationError` when no camera read the time code or
    no glove felt the taps.
    """
    devices = devices or {}
    cameras = [s for s, spec in reader.streams.items() if any(f.name == IMAGE_FIELD for f in spec.fields)]
    gloves = [s for s, spec in reader.streams.items() if any(f.name == FORCE_FIELD for f in spec.fields)]
    if not cameras:
        raise CalibrationError("no camera stream (an 'rgb' field) in the recording")
    streams: dict[str, dict[str, Any]] = {}
    display: dict[str, float] = {}
    reference, reference_taps = "", None
    for stream in sorted(cameras):
        progress(f"decoding {stream}'s time codes")
        frames = reader.frames(stream, IMAGE_FIELD)
        fitted, host = _fitted(reader, stream)
        codes, box = decode_timecodes(frames)
        try:
            cam = timecode_latency(fitted, codes, host, display_delay_ms)
        except ValueError as exc:
            raise CalibrationError(f"{stream}: {exc}; point it at the time-code screen") from None
        if cam["phase_coverage"] < PHASE_COVERAGE_GOOD:
            progress(f"{stream}: its frames met the screen's refresh at {cam['phase_coverage']:.0%} "
                     "of the phases: the estimate is bracketed within "
                     f"±{cam['uncertainty_ms']:.2f} ms (film longer, or change the screen's refresh "
                     "rate if camera and screen run in lock-step)")
        streams[stream] = {"latency_ms": cam["latency_ms"], "uncertainty_ms": cam["uncertainty_ms"],
                           "p95_ms": cam["p95_ms"], "jitter_ms": cam["jitter_ms"],
                           "method": "timecode", "frames": cam["frames"],
                           "phase_coverage": cam["phase_coverage"]}
        display = {"refresh_ms": cam["refresh_ms"], "delay_ms": cam["display_delay_ms"],
                   "pipeline_ms_stated": cam["display_pipeline_ms_stated"]}
        if not reference:
            reference, reference_taps = stream, (fitted, frames, box)
    signals = None
    for stream in sorted(gloves):
        progress(f"finding {stream}'s taps")
        cam_t, frames, box = reference_taps
        signals = signals or motion_signals(list(frames), box)  # once for every glove
        streams[stream] = _glove_entry(reader, stream, reference, streams[reference], cam_t, signals)
    # A node's other streams (a camera's depth) share its capture: same latency.
    for stream in reader.streams:
        if stream in streams:
            continue
        measured = [s for s in streams if _node(s) == _node(stream)]
        if measured:
            streams[stream] = {**{k: streams[measured[0]][k] for k in ("latency_ms", "uncertainty_ms")},
                               "method": f"same capture as {measured[0]}"}
    for stream, entry in streams.items():
        meta = reader.streams[stream].meta or {}
        node = devices.get(_node(stream), {})
        entry.update(node=_node(stream), driver=node.get("driver", ""),
                     serial=str(meta.get("serial", "") or node.get("serial", "")))
    now = time.time_ns()
    return {"schema": CALIBRATION_SCHEMA, "station": station, "calibrated_ns": now,
            "calibrated_at": datetime.fromtimestamp(now / 1e9, timezone.utc).isoformat(timespec="seconds"),
            "reference": reference, "display": display, "streams": streams,
            "recording_s": float(np.ptp(reader.timestamps(reference)["t_host_ns"])) / 1e9}


def report_lines(calibration: dict[str, Any]) -> list[str]:
    """The result as the operator reads it after the procedure."""
    lines = []
    for stream, e in sorted(calibration["streams"].items()):
        if e["method"] == "timecode":
            lines.append(f"{stream}: capture latency {e['latency_ms']:.2f} ± {e['uncertainty_ms']:.2f} ms "
                         f"(p95 {e['p95_ms']:.2f} ms, jitter {e['jitter_ms']:.2f} ms, "
                         f"{e['frames']} codes read)")
        elif e["method"] == "taps":
            lines.append(f"{stream}: latency {e['latency_ms']:.2f} ± {e['uncertainty_ms']:.2f} ms "
                         f"= {e['relative_to']} {e['offset_ms']:+.2f} ms from {e['taps']} taps")
        elif e["method"] == "motion":
            check = (f"; the impacts alone say {e['taps_offset_ms']:+.2f} ms"
                     if "taps_offset_ms" in e else "")
            lines.append(f"{stream}: latency {e['latency_ms']:.2f} ± {e['uncertainty_ms']:.2f} ms "
                         f"= {e['relative_to']} {e['offset_ms']:+.2f} ms from the hand's motion "
                         f"({e['frames']} frames, {e.get('taps', 0)} taps{check})")
        else:
            lines.append(f"{stream}: latency {e['latency_ms']:.2f} ms ({e['method']})")
    d = calibration.get("display") or {}
    if d:
        lines.append(f"display: refresh {d['refresh_ms']:.3f} ms; code on screen "
                     f"{d['delay_ms']:.2f} ms old on average when filmed "
                     f"(of which {d['pipeline_ms_stated']:g} ms pipeline delay, stated, not measured)")
    return lines
