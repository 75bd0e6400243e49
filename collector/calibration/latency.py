"""Estimating capture latencies from a calibration recording (Qt-free; docs/time-sync.md).

Two measurements, both on each stream's *fitted* device clock (:func:`collector.storage.sync.
fit_device_clock`), which is true capture time plus that stream's mean latency, without jitter:

* **Cameras** film a screen showing the host clock as a QR code. A frame fitted at ``m`` shows
  the code of the last refresh that lit up before its capture, so ``code = P * floor((m - C) / P)``
  for the screen's refresh period ``P`` and an unknown constant ``C`` = mean camera latency +
  display pipeline delay. Every frame brackets ``C`` within one period; frames at many phases of
  the refresh grid narrow it to a small interval (:func:`timecode_latency`). The pipeline delay
  (scan-out, pixel response) cannot be seen by the camera: it is stated, not measured.
* **The glove** has no screen: the operator taps the table, lifting the hand and bringing it
  down. A glove that reports its wrist position sees the hand's height at 1 kHz; the camera sees
  the image change as the hand moves, a function of the height alone (the hand lands the same way
  each tap). Laid against the glove's height shifted by the right offset, the frames of the rise
  and of the fall fall on one curve; shifted by a wrong one, rise and fall split apart, since the
  hand moves up in one and down in the other (:func:`motion_offset`, UMI's cross-correlation of
  a signal both devices see). A glove without a wrist position falls back to the impacts: its
  fingertip force jumps at each, the camera sees the hand stop (:func:`tap_offset`, ~1 ms).
"""

from __future__ import annotations

from typing import Iterable

import cv2
import numpy as np

#: A tap seen by the camera and one felt by the glove further apart than this are not paired.
MAX_TAP_MISMATCH_NS = 100_000_000


def decode_timecodes(frames: Iterable[np.ndarray]) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """The host time (ns) each RGB frame's QR code shows (-1 where none decodes), and the code's
    bounding box ``(x0, y0, x1, y1)`` in pixels (``None`` if no frame had one)."""
    detector = cv2.QRCodeDetector()
    values, box, corners = [], None, None
    for rgb in frames:
        grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
        text = ""
        if corners is not None:  # the screen does not move: decode where it was, ~5x faster
            text = detector.decode(grey, corners)[0]
        if not text:
            text, points, _ = detector.detectAndDecode(grey)
            if text and points is not None:
                corners = points
                pts = points.reshape(-1, 2)
                pad = 0.25 * float(np.ptp(pts[:, 0]))
                x0, y0 = np.maximum(pts.min(axis=0) - pad, 0).astype(int)
                x1, y1 = (pts.max(axis=0) + pad).astype(int)
                box = (int(x0), int(y0), int(x1), int(y1))
        values.append(int(text) if text.isdigit() else -1)
    return np.array(values, np.int64), box


#: Phases spread over this share of the refresh period bracket a camera's latency within ~0.2 ms
#: on a 60 Hz screen: a calibration films the code until its cameras reach it (or time runs out).
PHASE_COVERAGE_GOOD = 0.98

#: Displays refresh at least this often (50 Hz and up): a camera slower than the screen sees
#: codes whole periods apart, and the smallest step may be several periods.
MAX_REFRESH_PERIOD_NS = 21_000_000


def _refresh_period_ns(steps: np.ndarray) -> int:
    """The screen's refresh period from the steps between successive codes a camera saw: each
    step is a whole number of periods. A 30 fps camera on a 60 Hz screen may never see two
    adjacent refreshes, so the smallest step is divided down to a display's period first."""
    if not steps.size:
        return 0
    rough = float(steps.min())
    rough /= max(1, int(np.ceil(rough / MAX_REFRESH_PERIOD_NS)))
    periods = np.maximum(1, np.round(steps / rough))
    return int(round(float(np.median(steps / periods))))


def timecode_latency(fitted_ns: np.ndarray, codes_ns: np.ndarray, t_host_ns: np.ndarray,
                     display_delay_ms: float) -> dict:
    """A camera's latency from the decoded codes; see the module docstring.

    ``fitted_ns`` are the frames' fitted device times, ``codes_ns`` the decoded codes (-1: none),
    ``t_host_ns`` the host arrival times. Returns ``latency_ms`` (mean), ``p95_ms`` and
    ``jitter_ms`` (standard deviation) of the per-frame latency, ``uncertainty_ms`` (half the
    bracketing interval), ``phase_coverage`` (the share of the refresh period the frames'
    phases span), ``refresh_ms`` (measured), ``display_delay_ms`` (the stated pipeline delay
    plus the measured mean staleness of the code on screen) and ``frames`` decoded.

    The bracket is only as narrow as the frames' phases on the refresh grid are spread: a
    camera whose rate is a near-multiple of the screen's sweeps the period slowly (30 fps on
    59.94 Hz: one period in 16.7 s) and one in lock-step (30 fps on 60.000 Hz) never does.
    The uncertainty says so honestly (up to half a period); :data:`PHASE_COVERAGE_GOOD` tells
    a caller whether to keep filming.
    """
    ok = codes_ns >= 0
    if ok.sum() < 10:
        raise ValueError(f"only {int(ok.sum())} frames showed a readable time code (need 10)")
    m, code, host = (np.asarray(a, np.int64)[ok] for a in (fitted_ns, codes_ns, t_host_ns))
    steps = np.diff(np.unique(code))
    period = _refresh_period_ns(steps)
    if period <= 0:
        raise ValueError("the time code never changed: is the screen refreshing?")
    y = m - code  # = C + staleness, staleness in [0, period)
    # Every frame says C lies in (y - period, y]; all of them together: [max(y) - P, min(y)].
    low, high = int(y.max()) - period, int(y.min())
    # Fit residuals can make the frames disagree (low > high): then the disagreement is the
    # uncertainty, not zero.
    c = (low + high) / 2
    stated = display_delay_ms * 1e6
    latency = c - stated  # fitted time = true capture time + mean latency
    per_frame = host - (m - latency)  # each frame's own transport latency
    staleness = float(np.mean(y - c))
    return {"latency_ms": float(np.mean(per_frame)) / 1e6,
            "p95_ms": float(np.percentile(per_frame, 95)) / 1e6,
            "jitter_ms": float(np.std(per_frame)) / 1e6,
            "uncertainty_ms": abs(high - low) / 2e6, "refresh_ms": period / 1e6,
            "phase_coverage": float(np.ptp(y)) / period,
            "display_delay_ms": display_delay_ms + staleness / 1e6,
            "display_pipeline_ms_stated": display_delay_ms, "frames": int(ok.sum())}


#: Per pixel, summed |RGB difference| below this is sensor noise (the simulated camera's: sigma 2
#: per channel), not the hand.
NOISE_FLOOR = 12


def motion_signals(frames: list[np.ndarray], exclude: tuple[int, int, int, int] | None = None,
                   threshold: int = 60) -> dict[str, np.ndarray]:
    """Per frame, how much of the image differs from the resting scene (the per-pixel median).

    The hand rests most of the time, so the median is the hand at rest. ``count``: the pixels
    that differ by more than ``threshold``, which falls to 0 as the hand comes down on the
    table. ``change``: the summed differences above the sensor's :data:`NOISE_FLOOR` (/100),
    which also follows the partly covered pixels along the hand's edges and moves in smaller
    steps. ``exclude`` (the screen) is ignored.
    """
    stack = np.stack([np.asarray(f, np.int16) for f in frames])
    if exclude is not None:
        x0, y0, x1, y1 = exclude
        stack[:, y0:y1, x0:x1] = 0

    def differences(rest):
        return (np.abs(f - rest).sum(axis=-1) for f in stack)

    # First guess of the resting scene: the median; then the median of the frames that differ
    # least from it (the hand resting), which the first is not when the hand rests < half
    # of the time.
    first = np.array([(d > threshold).sum() for d in differences(np.median(stack, axis=0).astype(np.int16))], float)
    still = first <= np.percentile(first, 15)
    count, change = [], []
    for d in differences(np.median(stack[still], axis=0).astype(np.int16)):
        count.append((d > threshold).sum())
        change.append(np.maximum(d - NOISE_FLOOR, 0).sum() / 100.0)
    return {"count": np.array(count, float), "change": np.array(change, float)}


def motion_signal(frames: list[np.ndarray], exclude: tuple[int, int, int, int] | None = None,
                  threshold: int = 60, continuous: bool = False) -> np.ndarray:
    """One of :func:`motion_signals`: ``change`` if ``continuous``, else ``count``."""
    return motion_signals(frames, exclude, threshold)["change" if continuous else "count"]


def glove_impacts(t_ns: np.ndarray, force: np.ndarray) -> np.ndarray:
    """Impact times from fingertip force (N, summed over fingers): each jump from ~0 is
    extrapolated back along the first samples of its ramp to where the force left 0."""
    t = np.asarray(t_ns, np.int64)
    f = np.asarray(force, float)
    peak = float(np.percentile(f, 99.5))
    on = f > 0.02 * peak
    out = []
    for k in np.flatnonzero(on[1:] & ~on[:-1]) + 1:
        ramp = [k]
        while ramp[-1] + 1 < f.size and f[ramp[-1] + 1] > f[ramp[-1]] and len(ramp) < 4:
            ramp.append(ramp[-1] + 1)
        if len(ramp) >= 2:
            x = (t[ramp] - t[k]).astype(float)
            slope, intercept = np.polyfit(x, f[ramp], 1)
            out.append(int(t[k]) + round(-intercept / slope) if slope > 0 else int(t[k]))
        else:
            out.append(int(t[k - 1] + t[k]) // 2)
    return np.array(out, np.int64)


def tap_offset(camera_t_ns: np.ndarray, signal: np.ndarray, glove_impacts_ns: np.ndarray) -> dict:
    """The glove's latency minus the camera's from taps; see the module docstring.

    A camera at 30 fps sees a hand come down between two frames, so one tap alone places the
    impact only within 33 ms. But the impacts fall at every phase of the frame grid: laid over
    each other at the glove's impact times, the frames of all taps sample the last moments of
    the descent densely. Near the table :func:`motion_signal` is linear in the height, so a
    line through the pooled points where it is small but not zero crosses 0 at the camera's
    impact, ``offset`` after (or before) the glove's. Returns ``offset_ms`` (glove minus
    camera), ``uncertainty_ms`` (the zero crossing's standard error) and ``taps`` used.
    """
    t = np.asarray(camera_t_ns, np.int64)
    glove = np.sort(np.asarray(glove_impacts_ns, np.int64))
    if glove.size < 3:
        raise ValueError(f"the glove felt {glove.size} taps (need 3)")
    pos = np.searchsorted(glove, t).clip(1, glove.size - 1)
    near = np.where(np.abs(glove[pos - 1] - t) < np.abs(glove[pos] - t), pos - 1, pos)
    tau = (t - glove[near]).astype(float)  # camera frame time relative to the glove's impact
    peak = float(np.percentile(signal, 95))
    window = np.abs(tau) < MAX_TAP_MISMATCH_NS
    linear = window & (signal > 0.02 * peak) & (signal < 0.6 * peak)
    taps = np.unique(near[linear]).size
    if linear.sum() < 4:
        raise ValueError(f"only {int(linear.sum())} camera frames caught a hand about to land")
    # A quadratic absorbs the slight curvature of the area against height; its root nearest
    # the pooled points' end is the camera's impact.
    coef, cov = np.polyfit(tau[linear], signal[linear], 2, cov=True)
    roots = [r.real for r in np.roots(coef) if abs(r.imag) < 1e-9]
    end = float(tau[linear].max())
    if not roots or np.polyval(np.polyder(coef), end) >= 0:
        raise ValueError("the camera's signal does not fall towards the impacts")
    tau0 = min(roots, key=lambda r: abs(r - end))
    slope = np.polyval(np.polyder(coef), tau0)
    # Standard error of the root (delta method: d(root)/d(coef) = -tau0**k / slope).
    grad = -np.array([tau0 ** 2, tau0, 1.0]) / slope
    err = float(np.sqrt(max(grad @ cov @ grad, 0.0)))
    return {"offset_ms": -tau0 / 1e6, "uncertainty_ms": err / 1e6, "taps": int(taps),
            "frames": int(linear.sum())}


#: How far apart the two devices' clocks may be before calibration: the search spans this.
MAX_OFFSET_NS = 50_000_000
#: Frames whose image change is below this share of its 95th percentile are the hand at rest.
MOVING_SHARE = 0.02
#: The recording is cut into this many stretches to see how much the estimate varies.
BLOCKS = 4


#: A wrist height noisier than this (m, sample to sample) is averaged over :data:`SMOOTH_S`: a
#: tracker's noise would otherwise jumble the frames' order by height. A centred average does
#: not shift the signal; it only rounds the corners of the motion, so a clean one is left alone.
HEIGHT_NOISE_M = 2e-5
SMOOTH_S = 0.021


def smoothed_height(t_ns: np.ndarray, height_m: np.ndarray) -> np.ndarray:
    """``height_m`` averaged over :data:`SMOOTH_S` (centred) if it is noisier than
    :data:`HEIGHT_NOISE_M`, else as it is. The noise is estimated from second differences (white
    noise: sqrt(6) sigma), which the hand's own motion barely moves at a glove's rate."""
    h = np.asarray(height_m, float)
    if h.size < 5:
        return h
    noise = 1.4826 * float(np.median(np.abs(np.diff(h, 2)))) / np.sqrt(6)
    period = float(np.median(np.diff(np.asarray(t_ns, np.int64)))) / 1e9
    width = int(round(SMOOTH_S / period)) | 1 if period > 0 else 1
    if noise <= HEIGHT_NOISE_M or width < 3:
        return h
    return np.convolve(np.pad(h, width // 2, mode="edge"), np.ones(width) / width, mode="valid")


def _spread(signal: np.ndarray, height: np.ndarray) -> float:
    """How far the (height, signal) points are from one curve: the total variation of the
    signal along increasing height. Rise and fall on one curve go up and down once."""
    return float(np.abs(np.diff(signal[np.argsort(height, kind="stable")])).sum())


def _best_offset(t_ns: np.ndarray, signal: np.ndarray, glove_t: np.ndarray, glove_h: np.ndarray,
                 candidates: np.ndarray) -> float:
    heights = [np.interp(t_ns + c, glove_t, glove_h) for c in candidates]
    return float(candidates[int(np.argmin([_spread(signal, h) for h in heights]))])


def motion_offset(camera_t_ns: np.ndarray, signal: np.ndarray, glove_t_ns: np.ndarray,
                  glove_height_m: np.ndarray) -> dict:
    """The glove's latency minus the camera's from the hand's motion; see the module docstring.

    ``signal`` is :func:`motion_signals`' ``change`` per camera frame, ``glove_height_m``
    the glove's wrist height per glove sample; both on their fitted clocks. The offset is the
    shift of the glove's clock that puts the moving frames on one curve of signal against
    height (searched within :data:`MAX_OFFSET_NS`, then to 5 us). A frame falls between glove
    samples 1 ms apart: its height is interpolated. Returns ``offset_ms``, ``uncertainty_ms``
    (the spread of the estimates from :data:`BLOCKS` stretches of the recording, divided by
    the square root of their number) and ``frames`` (moving ones used).
    """
    t0 = int(np.asarray(glove_t_ns, np.int64)[0])
    t = (np.asarray(camera_t_ns, np.int64) - t0).astype(float)
    glove_t = (np.asarray(glove_t_ns, np.int64) - t0).astype(float)
    h = smoothed_height(glove_t_ns, glove_height_m)
    s = np.asarray(signal, float)
    moving = s > MOVING_SHARE * float(np.percentile(s, 95))
    if moving.sum() < 20 or np.ptp(h) < 0.01:
        raise ValueError(f"only {int(moving.sum())} camera frames saw the hand move, and the glove "
                         f"rose {np.ptp(h) * 1000:.0f} mm (need 20 frames and 10 mm)")
    t, s = t[moving], s[moving]

    coarse = _best_offset(t, s, glove_t, h, np.arange(-MAX_OFFSET_NS, MAX_OFFSET_NS, 100_000.0))
    fine = coarse + np.arange(-1_000_000.0, 1_000_001.0, 5_000.0)
    offset = _best_offset(t, s, glove_t, h, fine)
    block = np.minimum(np.arange(t.size) * BLOCKS // t.size, BLOCKS - 1)
    parts = [_best_offset(t[block == b], s[block == b], glove_t, h, fine) for b in range(BLOCKS)]
    err = float(np.std(parts)) / np.sqrt(BLOCKS)
    return {"offset_ms": offset / 1e6, "uncertainty_ms": err / 1e6, "frames": int(t.size)}
