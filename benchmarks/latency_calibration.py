"""Latency calibration against the simulator's ground truth: where the glove offset's error comes
from, per seed (prints, asserts nothing).

    python benchmarks/latency_calibration.py                      # 5 seeds, 20 s each (~1 min a seed)
    python benchmarks/latency_calibration.py --seeds 3 --seconds 10
    python benchmarks/latency_calibration.py --height-noise-mm 0.3  # a noisier wrist tracker

Each seed films the calibration scene (time-code screen, table taps) with the issue's asymmetric
latencies (camera 0.2-2 ms, glove 0.2-6 ms, 1 kHz glove), in memory, through the real simulated
drivers. Per seed it prints, in ms:

* ``impacts``: the glove's impact times from fingertip force against the true impacts (max |error|);
* ``fit``: the camera's fitted clock against true capture time, after its mean (max |error|);
* ``true``: the glove's latency minus the camera's (what calibration must find);
* ``taps`` / ``taps_cam``: the impacts estimate's error (``tap_offset``), and the same with true
  frame and impact times (the camera's part alone);
* ``motion``: the hand-motion estimate's error (``motion_offset``) and its stated uncertainty;
* ``nearest`` / ``p99``: share of frames whose synchronized glove sample is the truly nearest one,
  and true skew p99, with the motion estimate applied; ``ideal``: the same with the true offset
  (what the per-frame clock fits alone allow).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from collector.calibration.latency import (decode_timecodes, glove_impacts, motion_offset,  # noqa: E402
                                           motion_signals, tap_offset)
from collector.storage.sync import compute_sync_index, fit_device_clock, sync_time_ns  # noqa: E402
from devices.sim_camera.node import SimCamera  # noqa: E402
from devices.sim_glove.node import SimGlove  # noqa: E402


def film(seed: int, seconds: float, width: int, height: int) -> dict:
    """One calibration recording in memory: per device its readings' times and fields."""
    timing = {"seed": seed, "epoch_ns": time.time_ns() - 10**9, "realtime": False}
    camera = SimCamera("cam0", {**timing, "width": width, "height": height, "scene": "taps",
                                "timecode_screen": True, "screen_refresh_hz": 59.94,
                                "clock_offset_ns": 5_000_000_000, "clock_drift_ppm": 80.0,
                                "latency_min_ms": 0.2, "latency_max_ms": 2.0})
    glove = SimGlove("glove", {**timing, "rate_hz": 1000.0, "scene": "taps",
                               "clock_offset_ns": -3_000_000_000, "clock_drift_ppm": -50.0,
                               "latency_min_ms": 0.2, "latency_max_ms": 6.0})
    out = {"taps": camera.world.taps, "epoch_ns": timing["epoch_ns"]}
    for device in (camera, glove):
        device.connect()
    for name, device, stream in (("cam", camera, "cam0/color"), ("glove", glove, "glove/hand")):
        rows, start = [], None
        while True:
            readings = [r for r in device.read(1.0) if r.stream == stream]
            if not readings:
                continue
            start = start or readings[0].t_host_ns
            if readings[0].t_host_ns - start > seconds * 1e9:
                break
            rows += readings
        device.close()
        clock = device.ticker.clock
        device_t = np.array([r.t_device_ns for r in rows], np.int64)
        host_t = np.array([r.t_host_ns for r in rows], np.int64)
        out[name] = {"true": np.array([clock.true_time_ns(int(t)) for t in device_t], np.int64),
                     "fitted": sync_time_ns(device_t, host_t, fit_device_clock(device_t, host_t)),
                     "fields": {k: np.stack([r.fields[k] for r in rows]) for k in rows[0].fields}}
    return out


def pairing(cam_true, glove_true, cam_t, glove_t) -> tuple[float, float]:
    """Share of frames given their truly nearest glove sample, and the true skew p99 (ms)."""
    index = compute_sync_index("cam", {"cam": (30.0, cam_t), "glove": (1000.0, glove_t)})["streams"]["glove"]["index"]
    nearest = np.abs(glove_true[None, :] - cam_true[:, None]).argmin(axis=1)
    ok = index >= 0
    return float((index == nearest).mean()), float(np.percentile(np.abs(glove_true[index[ok]] - cam_true[ok]), 99)) / 1e6


def measure(seed: int, seconds: float, width: int, height: int, height_noise_mm: float) -> dict:
    rec = film(seed, seconds, width, height)
    cam, glove = rec["cam"], rec["glove"]
    lat_cam, lat_glove = cam["fitted"] - cam["true"], glove["fitted"] - glove["true"]
    truth_ms = float(lat_glove.mean() - lat_cam.mean()) / 1e6
    frames = list(cam["fields"]["rgb"])
    box = decode_timecodes(frames[:5])[1]
    force = glove["fields"]["pressure"].astype(float).sum(axis=1)
    impacts = glove_impacts(glove["fitted"], force)
    t0, t1 = (glove["true"][[0, -1]] - rec["epoch_ns"]) / 1e9
    true_impacts = np.array([rec["epoch_ns"] + round(s * 1e9) for s in rec["taps"].impacts_between(t0 + 0.05, t1 - 0.05)],
                            np.int64)
    # Each true impact on the glove's fitted clock, to compare with what force says.
    expected = true_impacts + np.interp(true_impacts, glove["true"], lat_glove).round().astype(np.int64)
    impact_err = np.abs(impacts[:, None] - expected[None, :]).min(axis=1) / 1e6
    signals = motion_signals(frames, box)
    count = signals["count"]
    taps = tap_offset(cam["fitted"], count, impacts)["offset_ms"]
    taps_cam = tap_offset(cam["true"], count, true_impacts)["offset_ms"]
    height_m = glove["fields"]["wrist_pos"][:, 2].astype(float)
    height_m = height_m + np.random.default_rng(seed).normal(0, height_noise_mm / 1000, height_m.size)
    motion = motion_offset(cam["fitted"], signals["change"], glove["fitted"], height_m)
    applied = round(motion["offset_ms"] * 1e6)
    share, p99 = pairing(cam["true"], glove["true"], cam["fitted"], glove["fitted"] - applied)
    ideal = pairing(cam["true"], glove["true"], cam["fitted"] - int(lat_cam.mean()), glove["fitted"] - int(lat_glove.mean()))
    return {"seed": seed, "impacts": float(impact_err.max()), "fit": float(np.abs(lat_cam - lat_cam.mean()).max()) / 1e6,
            "true": truth_ms, "taps": taps - truth_ms, "taps_cam": taps_cam, "motion": motion["offset_ms"] - truth_ms,
            "motion_unc": motion["uncertainty_ms"], "nearest": share, "p99": p99, "ideal": ideal[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--height-noise-mm", type=float, default=0.0,
                        help="Gaussian noise added to the glove's wrist height (the simulated one has none)")
    args = parser.parse_args(argv)
    print(f"{args.seconds:g} s at {args.width}x{args.height}, 1 kHz glove, height noise {args.height_noise_mm:g} mm; ms")
    print(f"{'seed':>4} {'impacts':>8} {'fit':>6} {'true':>6} {'taps':>7} {'taps_cam':>8} {'motion':>7} "
          f"{'±':>5} {'nearest':>7} {'p99':>5} {'ideal':>5}")
    rows = []
    for seed in args.seeds:
        r = measure(seed, args.seconds, args.width, args.height, args.height_noise_mm)
        rows.append(r)
        print(f"{r['seed']:>4} {r['impacts']:8.4f} {r['fit']:6.3f} {r['true']:6.3f} {r['taps']:+7.3f} "
              f"{r['taps_cam']:+8.3f} {r['motion']:+7.3f} {r['motion_unc']:5.3f} {r['nearest']:7.3f} "
              f"{r['p99']:5.2f} {r['ideal']:5.3f}", flush=True)
    worst = {k: max(abs(r[k]) for r in rows) for k in ("taps", "motion")}
    print(f"max |error|: taps {worst['taps']:.3f} ms, motion {worst['motion']:.3f} ms; "
          f"nearest >= {min(r['nearest'] for r in rows):.3f}, p99 <= {max(r['p99'] for r in rows):.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
