"""The online device-to-host clock estimate used when frames have no host-mapped timestamps."""

import numpy as np

from devices.realsense.clock import HostClockEstimate


def simulated_frames(n=900, drift_ppm=60.0, seed=1):
    """30 fps device timestamps and their arrival times: host = capture + 1..9 ms of delay."""
    rng = np.random.default_rng(seed)
    capture = 1_700_000_000_000_000_000 + np.arange(n) * 33_333_333
    device = 5_000_000_000 + np.round((capture - capture[0]) * (1 + drift_ppm * 1e-6)).astype(np.int64)
    arrival = capture + rng.integers(1_000_000, 9_000_000, n)
    return capture, device, arrival


def test_estimate_recovers_capture_time_within_the_smallest_delay_and_the_drift():
    capture, device, arrival = simulated_frames()
    clock = HostClockEstimate()
    host = np.array([clock.update(int(d), int(a)) for d, a in zip(device, arrival)])
    error_ms = (host - capture) / 1e6
    # Once the window spans a few seconds the error is near the minimum delay (1 ms), where
    # arrival times are 1..9 ms late.
    assert np.all((error_ms[300:] > 0) & (error_ms[300:] < 2.5)), error_ms[300:].max()
    assert np.mean(error_ms[300:]) < 1.5
    assert abs(clock.drift_ppm - 60.0) < 30
    assert np.all(host <= arrival) and np.all(np.diff(host) > 0)
    assert np.std(np.diff(host[300:])) < np.std(np.diff(arrival[300:])) / 5


def test_a_jump_of_the_device_clock_restarts_the_estimate():
    clock = HostClockEstimate()
    for i in range(10):
        clock.update(1_000_000_000 + i * 33_333_333, 2_000_000_000_000 + i * 33_333_333 + 2_000_000)
    assert clock.meta()["samples"] == 10
    # The camera was replugged: its clock starts again near zero.
    host = clock.update(5_000_000, 2_000_000_000_000 + 10 * 33_333_333 + 2_000_000)
    assert clock.meta()["samples"] == 1
    assert host == 2_000_000_000_000 + 10 * 33_333_333 + 2_000_000


def test_an_absurd_camera_clock_is_reported_and_mapped_on_arrival_times():
    capture, device, arrival = simulated_frames(n=600, drift_ppm=0.0)
    device = 5_000_000_000 + (device - device[0]) // 3  # the camera's clock runs at 0.33x
    clock = HostClockEstimate()
    host, notices = [], []
    for d, a in zip(device, arrival):
        host.append(clock.update(int(d), int(a)))
        notices += clock.notices()
    assert [k for k, _ in notices] == ["error"]
    assert notices[0][1].startswith("camera clock runs at 0.33x real time")
    assert host[-1] == arrival[-1] and np.all(np.diff(host) > 0)


def test_a_camera_clock_jump_is_reported_once_and_huge_values_do_not_wrap():
    capture, device, arrival = simulated_frames(n=300)
    device = device.astype(object)
    device[150:] += 2 ** 62  # jumps by 146 years: Python integers, no int64 wrap
    clock = HostClockEstimate()
    notices = []
    host = []
    for d, a in zip(device, arrival):
        host.append(clock.update(int(d), int(a)))
        notices += clock.notices()
    assert [k for k, _ in notices] == ["error"] and "camera clock jumped by +" in notices[0][1]
    assert np.all(np.diff(host) > 0) and host[-1] <= arrival[-1]
