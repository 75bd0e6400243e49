"""Exports that rebuild their own synchronized index apply the episode's latency calibration, so
they pair the same samples as the index the episode was closed with (docs/time-sync.md)."""

import json

import h5py
import numpy as np

from collector.calibration.station import episode_calibration
from collector.export.selection import SignalMapping, load_steps
from tests.collector.calibration.test_station import SERIALS, calibration
from tests.collector.sim_episodes import write_sim_episode

MAPPING = SignalMapping(cameras=["cam0/color"], state=["glove/hand:wrist_pos"],
                        action="glove/hand:imu_accel")


def rebuilt_copy(path, copy, keep_calibration=True):
    """``path`` as an episode written before ``/sync`` existed (exports rebuild the index);
    without ``keep_calibration`` also as one recorded uncalibrated."""
    copy.write_bytes(path.read_bytes())
    with h5py.File(copy, "a") as f:
        del f["sync"]
        if not keep_calibration:
            f.attrs["latency_calibration"] = ""
    return copy


def test_a_rebuilt_index_pairs_the_samples_the_calibrated_episode_paired(tmp_path):
    # The glove calibrated 4 ms later than the camera: at 1 kHz, every frame's partner moves.
    attrs = {"latency_calibration": json.dumps(episode_calibration(calibration(1.0, 5.0), SERIALS))}
    path = write_sim_episode(tmp_path / "calibrated.h5", seed=1, seconds=0.5, glove_rate=1000.0,
                             attrs=attrs)
    stored = load_steps(path, MAPPING)
    rebuilt = load_steps(rebuilt_copy(path, tmp_path / "rebuilt.h5"), MAPPING)
    assert stored.state.shape[0] >= 10
    np.testing.assert_array_equal(rebuilt.frames["cam0/color"], stored.frames["cam0/color"])
    np.testing.assert_array_equal(rebuilt.state, stored.state)

    # Without the calibration the rebuilt index pairs other samples: the check above can fail.
    uncalibrated = load_steps(rebuilt_copy(path, tmp_path / "plain.h5", keep_calibration=False),
                              MAPPING)
    assert uncalibrated.state.shape == stored.state.shape
    assert not np.array_equal(uncalibrated.state, stored.state)
