"""Issue 19: camera and glove latencies differ; calibration measures them against sim ground truth.

One calibration recording of the simulator (time-code screen + table taps, the issue's
asymmetric latencies, a 1 kHz glove) is written through the real episode writer and analysed
through ``collector calibrate latency --from``; the simulator's device clocks give the truth.
"""

import json
from dataclasses import replace

import numpy as np
import pytest

from collector.calibration.latency import PHASE_COVERAGE_GOOD, timecode_latency
from collector.calibration.procedure import analyse_recording
from collector.calibration.station import episode_calibration, load_calibration
from collector.cli import main
from collector.storage.reader import open_episode
from collector.storage.sync import (calibrated_latencies_ms, calibrated_time_ns, compute_sync_index,
                                    fit_device_clock, sync_time_ns)
from devices.sim_camera.screen import TimecodeScreen
from devices.sim_clock import DeviceClock
from tests.collector.sim_episodes import write_sim_episode

# The finding: the glove's transport latency 0.2-6 ms, the camera's 0.2-2 ms.
CAMERA_LATENCY = {"latency_min_ms": 0.2, "latency_max_ms": 2.0}
GLOVE_LATENCY = {"latency_min_ms": 0.2, "latency_max_ms": 6.0}
DISPLAY_DELAY_MS = 8.0
# The default run films a panel at 59.5 Hz for 6 s: a 30 fps camera meets every phase of its
# refresh within 2 s, so the camera's latency is bracketed tightly. The slow run films the
# procedure's 20 s at 59.94 Hz (a whole period swept in 17 s; at 60.000 Hz never: the bracket
# stays wide, see the synthetic tests below) with ~14 taps.
SHORT = {"seconds": 6, "screen_hz": 59.5}
LONG = {"seconds": 20, "screen_hz": 59.94}


def calibration_recording(folder, seconds, screen_hz):
    """A calibration episode, its analysis by the CLI, and each stream's true capture times."""
    path = write_sim_episode(
        folder / "calibration.h5", seed=3, seconds=seconds, width=320, height=240, glove_rate=1000.0,
        camera_options={"scene": "taps", "timecode_screen": True, "screen_refresh_hz": screen_hz,
                        "screen_delay_ms": DISPLAY_DELAY_MS, **CAMERA_LATENCY},
        glove_options={"scene": "taps", **GLOVE_LATENCY})
    out = {"path": path, "seconds": seconds, "screen_hz": screen_hz}
    with open_episode(path) as ep:
        for name, stream in (("cam", "cam0/color"), ("glove", "glove/hand")):
            t = ep.timestamps(stream)
            clock = DeviceClock.from_meta(ep.streams[stream].meta["clock"])
            true = np.array([clock.true_time_ns(int(d)) for d in t["t_device_ns"]], np.int64)
            fit = fit_device_clock(t["t_device_ns"], t["t_host_ns"])
            out[name] = {"stream": stream, "true": true,
                         "fitted": sync_time_ns(t["t_device_ns"], t["t_host_ns"], fit),
                         "true_latency_ms": float(np.mean(t["t_host_ns"] - true)) / 1e6}
        out["serials"] = {s: str(spec.meta.get("serial", "")) for s, spec in ep.streams.items()}
    stored = folder / "station.json"
    assert main(["calibrate", "latency", "--from", str(path), "--output", str(stored),
                 "--display-delay-ms", str(DISPLAY_DELAY_MS)]) == 0
    out["calibration"] = load_calibration(stored)
    return out


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    return calibration_recording(tmp_path_factory.mktemp("short"), **SHORT)


@pytest.fixture(scope="module")
def long_recording(tmp_path_factory):
    return calibration_recording(tmp_path_factory.mktemp("long"), **LONG)


@pytest.fixture(scope="module")
def calibration(recording):
    return recording["calibration"]


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


def test_calibration_measures_the_camera_within_1_ms_and_the_glove_from_taps(recording, calibration):
    cam = calibration["streams"]["cam0/color"]
    glove = calibration["streams"]["glove/hand"]
    assert cam["method"] == "timecode" and glove["method"] == "motion"
    # Nearly every frame shows a readable code (QR decoding misses one now and then).
    assert cam["frames"] >= 0.95 * recording["seconds"] * 30
    assert abs(calibration["display"]["refresh_ms"] - 1000 / recording["screen_hz"]) < 0.01
    assert cam["phase_coverage"] >= PHASE_COVERAGE_GOOD
    assert abs(cam["latency_ms"] - recording["cam"]["true_latency_ms"]) < 0.2
    # The simulated camera's latency is at most latency_max_ms; each reading of the time code
    # carries the bracket's error (up to ~0.2 ms), so the measured p95 may sit just above it.
    assert cam["uncertainty_ms"] < 0.2 and 0.3 < cam["jitter_ms"] < 0.8
    assert cam["p95_ms"] < CAMERA_LATENCY["latency_max_ms"] + 0.2
    assert glove["taps"] >= 3 and glove["relative_to"] == "cam0/color" and glove["uncertainty_ms"] > 0
    assert glove["frames"] >= 60 and "taps_offset_ms" in glove  # the impacts' estimate, as a check
    # The depth stream is captured with the colour image: same latency.
    assert calibration["streams"]["cam0/depth"]["latency_ms"] == cam["latency_ms"]
    assert cam["serial"] == recording["serials"]["cam0/color"]


@pytest.mark.slow
@pytest.mark.timeout(1800)  # renders and decodes 20 s of frames: minutes on a busy machine
def test_the_procedure_estimates_each_latency_within_1_ms(long_recording):
    """Issue 19's accuracy target over the procedure's 20 s (~14 taps)."""
    streams = long_recording["calibration"]["streams"]
    for name in ("cam", "glove"):
        truth = long_recording[name]["true_latency_ms"]
        assert abs(streams[long_recording[name]["stream"]]["latency_ms"] - truth) < 1.0, streams


def calibrated_pairing(recording):
    latencies = calibrated_latencies_ms(episode_calibration(recording["calibration"], recording["serials"]))
    return true_pairing(recording,
                        calibrated_time_ns(recording["cam"]["fitted"], latencies["cam0/color"]),
                        calibrated_time_ns(recording["glove"]["fitted"], latencies["glove/hand"]))


def true_offset_ms(recording):
    return recording["glove"]["true_latency_ms"] - recording["cam"]["true_latency_ms"]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_after_calibration_frames_pick_the_truly_nearest_glove_sample(long_recording):
    """Issue 19's targets: >= 99 % of frames get their truly nearest 1 kHz glove sample and the
    true skew p99 is < 1 ms. Frames fall 0, 1/3 or 2/3 ms from a glove sample, so this needs
    the glove's offset within ~0.17 ms: the hand's motion gives it within 0.1 ms on 5 seeds
    (benchmarks/latency_calibration.py); the impacts alone were 0.1-1.2 ms off."""
    share, p99 = calibrated_pairing(long_recording)
    glove = long_recording["calibration"]["streams"]["glove/hand"]
    assert abs(glove["offset_ms"] - true_offset_ms(long_recording)) < 0.15, glove
    assert share >= 0.99 and p99 < 1.0, (share, p99)


def synthetic_codes(seed, camera_fps, screen_hz, seconds, latency_ms=1.1, delay_ms=DISPLAY_DELAY_MS):
    """A camera's fitted times, decoded codes and host times filming a screen, without pixels."""
    rng = np.random.default_rng(seed)
    screen = TimecodeScreen(screen_hz, delay_ms)
    start = 1_764_460_000_000_000_000 + int(rng.integers(0, 10**9))
    true = start + np.round(np.arange(int(seconds * camera_fps)) * 1e9 / camera_fps).astype(np.int64)
    transport = rng.uniform(0.2, 2.0, true.size) * 1e6
    transport += latency_ms * 1e6 - transport.mean()
    codes = np.array([screen.shown_ns(int(t)) for t in true], np.int64)
    fitted = true + int(round(latency_ms * 1e6)) + rng.integers(-20_000, 20_000, true.size)
    return fitted, codes, (true + transport).astype(np.int64)


@pytest.mark.parametrize("seed", range(40))
def test_timecode_bracket_is_tight_whatever_the_phase_once_the_period_is_swept(seed):
    """The root cause of the old 1-in-5 wide bracket: 12 s of 30 fps on a 59.94 Hz screen sweep
    only 72 % of a refresh period, so the bracket depended on where the sweep started. 20 s
    (the procedure's default) sweep it all, at any starting phase."""
    fitted, codes, host = synthetic_codes(seed, 30.0, 59.94, 20.0)
    result = timecode_latency(fitted, codes, host, DISPLAY_DELAY_MS)
    assert result["phase_coverage"] >= PHASE_COVERAGE_GOOD
    assert result["uncertainty_ms"] < 0.2
    assert abs(result["latency_ms"] - 1.1) < result["uncertainty_ms"] + 0.05


def test_a_camera_in_lock_step_with_the_screen_says_its_bracket_is_wide():
    """30 fps on a 60.000 Hz screen meets the refresh at one phase only: the latency is known
    within half a refresh, and the result says so instead of claiming precision."""
    fitted, codes, host = synthetic_codes(1, 30.0, 60.0, 20.0)
    result = timecode_latency(fitted, codes, host, DISPLAY_DELAY_MS)
    assert result["phase_coverage"] < 0.1
    assert result["uncertainty_ms"] > 7.0
    assert abs(result["latency_ms"] - 1.1) <= result["uncertainty_ms"] + 0.05


def test_too_few_codes_is_a_clear_error():
    fitted, codes, host = synthetic_codes(2, 30.0, 59.94, 2.0)
    codes[5:] = -1
    with pytest.raises(ValueError, match="only 5 frames showed a readable time code"):
        timecode_latency(fitted, codes, host, DISPLAY_DELAY_MS)


def test_info_shows_the_calibration_applied_to_an_episode(recording, calibration, capsys, tmp_path):
    """What `collector info` says of an episode recorded with this calibration."""
    path = write_sim_episode(tmp_path / "ep.h5", seed=3, seconds=0.5, width=64, height=48,
                             glove_rate=1000.0, attrs={"latency_calibration": json.dumps(
                                 episode_calibration(calibration, recording["serials"]))})
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "latency calibration:" in out and "glove/hand" in out and "skew to cam0/color" in out
    assert "not applied" not in out


def test_a_short_calibration_already_removes_most_of_the_skew(recording):
    """The default run's 6 s (~4 taps, ~80 moving frames) place the glove within ~0.5 ms (rms
    0.23 ms, at most 0.44 ms over 25 six-second windows of 5 seeds): the true skew p99 falls
    from 2.7-3.0 ms (above) to about a glove period. The issue's targets (>= 99 % truly nearest,
    p99 < 1 ms) need the procedure's 20 s: the slow test above."""
    share, p99 = calibrated_pairing(recording)
    glove = recording["calibration"]["streams"]["glove/hand"]
    assert abs(glove["offset_ms"] - true_offset_ms(recording)) < 0.6, (glove, true_offset_ms(recording))
    assert p99 < 1.5, (share, p99)


class WithoutWristPosition:
    """An episode reader whose glove does not report a wrist position (many gloves don't)."""

    def __init__(self, reader):
        self.reader = reader
        self.streams = {name: replace(spec, fields=[f for f in spec.fields if f.name != "wrist_pos"])
                        for name, spec in reader.streams.items()}

    def __getattr__(self, name):
        return getattr(self.reader, name)


def test_a_glove_without_a_wrist_position_is_calibrated_from_the_impacts(recording):
    with open_episode(recording["path"]) as ep:
        calibration = analyse_recording(WithoutWristPosition(ep), display_delay_ms=DISPLAY_DELAY_MS)
    glove = calibration["streams"]["glove/hand"]
    assert glove["method"] == "taps" and glove["taps"] >= 3, glove
    # The impacts place the glove within a few ms (0.1-2.4 ms at 20 s: docs/time-sync.md).
    assert abs(glove["offset_ms"] - true_offset_ms(recording)) < 3.0, glove
