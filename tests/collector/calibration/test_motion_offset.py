"""The glove's offset from the hand's motion (``motion_offset``), without pixels: a camera whose
image change is a function of the hand's height, a 1 kHz glove reporting that height, the
scripted taps of the simulator (devices/sim_world/taps.py)."""

import numpy as np
import pytest

from collector.calibration.latency import motion_offset, smoothed_height
from devices.sim_world.taps import TAP_HEIGHT, TapScript

START_NS = 1_764_460_000_000_000_000


def image_change(height_m):
    """What a camera sees of a hand ``height_m`` above its resting place: one function of the
    height, saturating higher up (thin faces stop adding area). The rendered, aliased steps
    are the slow tests' (test_latency.py)."""
    return 900 * (1 - np.exp(-height_m / 0.0032 / 12))


def recording(seed, seconds=20.0, offset_ms=2.7, height_noise_m=0.0):
    """Camera frame times and image change, glove times and heights; the glove's clock reads
    ``offset_ms`` later than the camera's for the same instant (its larger latency)."""
    taps = TapScript(seed)
    rng = np.random.default_rng(seed)
    frames = START_NS + np.round(np.arange(int(seconds * 30)) * 1e9 / 30).astype(np.int64)
    glove = START_NS + np.arange(int(seconds * 1000)) * 1_000_000 + int(rng.integers(0, 10**6))

    def height(t_ns):
        return np.array([taps.height((t - START_NS) / 1e9 + 1.0)[0] for t in t_ns])

    signal = image_change(height(frames)) + rng.normal(0, 0.5, frames.size)
    glove_height = height(glove) + rng.normal(0, height_noise_m, glove.size) if height_noise_m else height(glove)
    return frames, signal, glove + round(offset_ms * 1e6), glove_height


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_offset_comes_out_within_a_tenth_of_a_glove_period(seed):
    frames, signal, glove_t, glove_h = recording(seed)
    result = motion_offset(frames, signal, glove_t, glove_h)
    assert abs(result["offset_ms"] - 2.7) < 0.1, result
    assert result["frames"] > 150 and 0 < result["uncertainty_ms"] < 0.3


def test_a_noisy_wrist_tracker_is_averaged_not_shifted():
    frames, signal, glove_t, glove_h = recording(4, height_noise_m=0.0003)
    assert abs(motion_offset(frames, signal, glove_t, glove_h)["offset_ms"] - 2.7) < 0.1
    # A clean height is left as it is; a noisy one is smoothed without a delay.
    clean = recording(4)[3]
    assert np.array_equal(smoothed_height(glove_t, clean), clean)
    smooth = smoothed_height(glove_t, glove_h)

    def sample_noise(h):
        return np.median(np.abs(np.diff(h, 2)))

    assert sample_noise(smooth) < 0.1 * sample_noise(glove_h)
    lags = range(-5, 6)  # samples (ms) the smoothed height may trail or lead the true one
    misfit = [np.mean((np.roll(smooth, -lag) - clean)[10:-10] ** 2) for lag in lags]
    assert lags[int(np.argmin(misfit))] == 0


def test_a_hand_that_never_moves_is_a_clear_error():
    frames, signal, glove_t, glove_h = recording(5, seconds=2.0)
    with pytest.raises(ValueError, match="saw the hand move"):
        motion_offset(frames, np.zeros_like(signal), glove_t, np.full_like(glove_h, TAP_HEIGHT))
