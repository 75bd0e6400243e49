"""Synthetic episodes with known defects, written in a blink: for tests, benchmarks and demos.

    write_synthetic_episode("demo/ep.h5", duration_s=6, idle_start_s=1.5, gap=(2.0, 0.3),
                            disconnect_at_s=4.0, surprise_peaks_s=[3.0])
    write_synthetic_ledger("demo/ep.h5", undrained={"cam0/color": 45})   # "45 samples missing"

The camera shows a moving square over a gradient, the glove moves its wrist and fingers between
the idle spans, and every timestamp is computed (no sleeping), so a file takes milliseconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

import json

import h5py

from collector.storage.writer import HDF5EpisodeWriter
from collector.storage.ledger import SourceMarks, build_ledger
from collector.wire.protocol import Sample
from collector.wire.streams import FieldSpec, StreamSpec

T0_NS = 1_790_000_000_000_000_000


def synthetic_specs(width: int = 160, height: int = 120, glove_hz: float = 200.0,
                    surprise: bool = False) -> list[StreamSpec]:
    """Streams of a synthetic episode: ``cam0/color``, ``glove/hand`` and optionally ``wam/surprise``."""
    specs = [StreamSpec("cam0/color", "color", 30.0, [FieldSpec("rgb", "uint8", (height, width, 3))]),
             StreamSpec("glove/hand", "state", glove_hz, [
                 FieldSpec("wrist_pos", "float32", (3,), "m", ["x", "y", "z"]),
                 FieldSpec("finger_joints", "float32", (5,), "rad", ["thumb", "index", "middle", "ring", "pinky"]),
                 FieldSpec("grip", "float32", (1,), "m", ["aperture"])])]
    if surprise:
        specs.append(StreamSpec("wam/surprise", "prediction", 10.0, [FieldSpec("surprise", "float32", (1,))]))
    return specs


def _frame(i: int, width: int, height: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.empty((height, width, 3), np.uint8)
    rgb[..., 0] = (x * 255 // max(1, width - 1)).astype(np.uint8)
    rgb[..., 1] = (y * 255 // max(1, height - 1)).astype(np.uint8)
    rgb[..., 2] = 90
    cx = int((0.5 + 0.35 * np.sin(i / 15)) * width)
    cy = height // 2
    s = max(4, width // 10)
    rgb[max(0, cy - s):cy + s, max(0, cx - s):cx + s] = (240, 240, 240)
    return rgb


def write_synthetic_episode(path: str | Path, *, duration_s: float = 4.0, idle_start_s: float = 0.0,
                            idle_end_s: float = 0.0, gap: tuple[float, float] | None = None,
                            stall: tuple[float, float] | None = None,
                            disconnect_at_s: float | None = None,
                            surprise_peaks_s: Sequence[float] | None = None,
                            attrs: dict[str, Any] | None = None, start_ns: int = T0_NS,
                            width: int = 160, height: int = 120, glove_hz: float = 200.0,
                            color_encoding: str = "raw") -> Path:
    """Write one finished episode to ``path`` and return it.

    Args:
        duration_s: recording length.
        idle_start_s, idle_end_s: the glove holds still for this long at the start / end.
        gap: ``(at_s, length_s)``: the glove loses its samples there (seq jumps: a drop).
        stall: ``(at_s, length_s)``: the camera delivers nothing there, seq unbroken (a stall).
        disconnect_at_s: a ``disconnected`` event of the glove node, ``connected`` 0.2 s later.
        surprise_peaks_s: add a ``wam/surprise`` stream with peaks at these times.
        attrs: root attributes (task, operator, outcome, ...).
    """
    specs = synthetic_specs(width, height, glove_hz, surprise_peaks_s is not None)
    writer = HDF5EpisodeWriter(path, specs, {"start_time_ns": start_ns, **(attrs or {})},
                           color_encoding=color_encoding)
    ns = lambda s: start_ns + int(s * 1e9)  # noqa: E731
    inside = lambda t, span: span is not None and span[0] <= t < span[0] + span[1]  # noqa: E731
    seq = 0
    for i in range(int(duration_s * 30)):
        t = 0.02 + i / 30
        if inside(t, stall):
            continue
        writer.append(Sample("cam0", "cam0/color", seq, ns(t), ns(t), {"rgb": _frame(i, width, height)}),
                      ns(t) + 2_000_000)
        seq += 1
    moving_from, moving_to = idle_start_s, duration_s - idle_end_s
    for i in range(int(duration_s * glove_hz)):
        t = 0.01 + i / glove_hz
        if inside(t, gap):
            continue
        phase = np.clip(t, moving_from, moving_to)
        wrist = np.array([0.3 + 0.1 * np.sin(phase), 0.1 * np.cos(phase * 1.3), 0.2], np.float32)
        joints = (0.6 + 0.5 * np.sin(phase * 2 + np.arange(5) * 0.4)).astype(np.float32)
        writer.append(Sample("glove", "glove/hand", i, ns(t), ns(t), {
            "wrist_pos": wrist, "finger_joints": joints,
            "grip": np.array([0.05 + 0.03 * np.sin(phase * 2)], np.float32)}), ns(t) + 1_000_000)
    if surprise_peaks_s is not None:
        for i in range(int(duration_s * 10)):
            t = 0.05 + i / 10
            value = 0.1 + sum(np.exp(-((t - p) / 0.15) ** 2) for p in surprise_peaks_s)
            writer.append(Sample("wam", "wam/surprise", i, ns(t), ns(t),
                                 {"surprise": np.array([value], np.float32)}), ns(t))
    if gap is not None:
        writer.add_event(ns(gap[0] + gap[1]), "gap", "glove/hand", {"missing": int(gap[1] * glove_hz)})
    if disconnect_at_s is not None:
        writer.add_event(ns(disconnect_at_s), "disconnected", "", {"node": "glove"})
        writer.add_event(ns(disconnect_at_s + 0.2), "connected", "", {"node": "glove"})
    return writer.close(end_attrs={"end_time_ns": ns(duration_s + 0.05)})


def write_synthetic_ledger(path: str | Path, *, undrained: dict[str, int] | None = None,
                           lost: dict[str, int] | None = None, stop_s: float | None = None,
                           failed: str = "") -> dict[str, Any]:
    """Give a finished episode an integrity ledger (:mod:`collector.storage.ledger`) built from what the
    file holds, as the recorder would, and return it.

    Args:
        undrained: per stream, samples the source published that never arrived before the drain
            time ran out ("tail not drained").
        lost: per stream, samples published but never received ("lost in transport").
        stop_s: the episode's stop instant in seconds after its start (default: its end time), so
            a stream whose samples end early shows a missing tail.
        failed: mark the recording failed for this reason (status ``"failed"``).
    """
    undrained, lost = undrained or {}, lost or {}
    with h5py.File(path, "r+") as f:
        start_ns = int(f.attrs["start_time_ns"])
        stop_ns = start_ns + int(stop_s * 1e9) if stop_s is not None else int(f.attrs["end_time_ns"])
        streams, written, marks, node_of = {}, {}, {}, {}
        groups: dict[str, Any] = {}
        f["streams"].visititems(lambda key, obj: groups.setdefault(key, obj)
                                if isinstance(obj, h5py.Group) and "t_host_ns" in obj else None)
        for stream, stream_group in groups.items():
            name = stream.split("/")[0]
            t, seq = stream_group["t_host_ns"][:], stream_group["seq"][:]
            streams[stream] = float(stream_group.attrs.get("rate_hz", 0.0))
            written[stream] = {"count": int(t.size), "first_t_ns": int(t[0]) if t.size else None,
                               "last_t_ns": int(t[-1]) if t.size else None,
                               "last_seq": int(seq[-1]) if seq.size else None}
            published = int(t.size) + undrained.get(stream, 0) + lost.get(stream, 0)
            node_of[stream] = name
            mark = marks.setdefault(name, SourceMarks(start={"boot": "synthetic", "streams": {}},
                                                      stop={"boot": "synthetic", "streams": {}}))
            mark.start["streams"][stream] = {"count": 0, "seq": -1, "known": True}
            mark.stop["streams"][stream] = {"count": published, "seq": published - 1, "known": True}
        ledger = build_ledger(start_ns=start_ns, stop_ns=stop_ns, streams=streams, written=written,
                              rejected={}, tallies={}, marks=marks, node_of=node_of,
                              undrained=set(undrained), transport_gaps=lost)
        f.attrs["ledger"] = json.dumps(ledger)
        if failed:
            f.attrs["status"] = "failed"
            f.attrs["end_reason"] = failed
    return ledger
