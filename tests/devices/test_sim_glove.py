"""The simulated glove: declared streams, pacing, clock model and fault injection."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from collector.wire.bus import Subscriber, node_endpoints
from collector.wire.options import ConfigError
from collector.wire.protocol import Sample
from collector.wire.device import DeviceDisconnected, DeviceError
from devices.sim_clock import DeviceClock
from devices.sim_glove.node import SimGlove
from devices.sim_world import World

REPO = Path(__file__).resolve().parents[2]


def fast(**options) -> SimGlove:
    glove = SimGlove("glove", {"realtime": False, **options})
    glove.connect()
    return glove


def read_n(glove: SimGlove, n: int) -> list:
    out = []
    while len(out) < n:
        out += glove.read(1.0)
    return out


def test_readings_match_declared_streams():
    glove = fast(num_joints=20)
    (spec,) = glove.streams()
    assert spec.name == "glove/hand" and spec.kind == "state" and spec.rate_hz == 200.0
    assert spec.field("finger_joints").channel_names[:3] == ["thumb_cmc", "thumb_mcp", "thumb_ip"]
    assert spec.field("buttons").channel_names == ["record", "deadman"]
    assert spec.field("wrist_quat").channel_names == ["w", "x", "y", "z"]
    for reading in read_n(glove, 20):
        assert reading.stream == spec.name
        assert set(reading.fields) == {f.name for f in spec.fields}
        for f in spec.fields:
            array = reading.fields[f.name]
            assert array.dtype.str == f.dtype and array.shape == f.shape, f.name


def test_samples_are_the_world_at_their_true_time():
    glove = fast(seed=3, clock_offset_ns=123_456_789, clock_drift_ppm=40.0)
    # What a reader of the recording has: the clock model from the stream's metadata.
    world, clock = World(seed=3), DeviceClock.from_meta(glove.streams()[0].meta["clock"])
    for r in read_n(glove, 50)[::7]:
        s = world.state_at_ns(clock.true_time_ns(r.t_device_ns))
        assert np.allclose(r.fields["wrist_pos"], s.wrist_pos, atol=1e-6)
        assert np.allclose(r.fields["finger_joints"], s.finger_joints[:15], atol=1e-6)
        assert np.allclose(r.fields["imu_accel"], s.imu_accel, atol=0.2)


def test_rate_is_accurate_in_realtime():
    glove = SimGlove("glove", {"rate_hz": 500.0})
    glove.connect()
    start = time.monotonic()
    readings = []
    while time.monotonic() - start < 1.0:
        readings += glove.read(0.2)
    glove.close()
    assert 480 <= len(readings) <= 520  # catch-up batches: none is lost
    seqs = [r.seq for r in readings]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    true = [glove.ticker.clock.true_time_ns(r.t_device_ns) for r in readings]
    assert np.allclose(np.diff(true), 2_000_000, atol=1)
    host = np.array([r.t_host_ns for r in readings])
    assert np.all(np.diff(host) > 0)
    latency = host - np.array(true)
    assert latency.min() >= 200_000 and latency.max() <= 2_000_000


def test_falling_behind_returns_every_missed_sample():
    glove = SimGlove("glove", {"rate_hz": 1000.0})
    glove.connect()
    first = glove.read(0.5)
    time.sleep(0.05)
    late = glove.read(0.5)
    glove.close()
    assert len(late) >= 40
    assert [r.seq for r in late] == list(range(first[-1].seq + 1, first[-1].seq + 1 + len(late)))


def test_clock_model_round_trip():
    rng = np.random.default_rng(0)
    for drift in (0.0, 37.5, -250.0):
        clock = DeviceClock(epoch_ns=1_700_000_000_000_000_000, offset_ns=-5_000_000, drift_ppm=drift)
        for t in rng.integers(1_700_000_000_000_000_000, 1_800_000_000_000_000_000, 200):
            t = int(t)
            device = clock.device_ns(t)
            assert abs(clock.true_time_ns(device) - t) <= 1
            assert clock.device_ns(clock.true_time_ns(device)) == device
        one_second = clock.device_ns(clock.epoch_ns + 10 ** 9) - clock.device_ns(clock.epoch_ns)
        assert one_second == 10 ** 9 + round(drift * 1000)


def test_drop_fraction_leaves_seq_gaps_of_the_right_share():
    glove = fast(rate_hz=1000.0, drop_fraction=0.2, seed=1)
    readings = read_n(glove, 4000)
    seqs = np.array([r.seq for r in readings])
    assert np.all(np.diff(seqs) >= 1)
    span = seqs[-1] - seqs[0] + 1
    assert 1 - len(seqs) / span == pytest.approx(0.2, abs=0.025)


def test_stall_skips_samples_but_not_frame_numbers():
    glove = fast(rate_hz=100.0, stall_at_s=0.5, stall_s=0.3)
    readings = read_n(glove, 100)
    seqs = np.diff([r.seq for r in readings])
    host_gaps = np.diff([r.t_host_ns for r in readings]) / 1e9
    assert sorted(seqs)[-1] == 31 and sorted(seqs)[-2] == 1  # one gap: 30 frames lost
    assert host_gaps.max() == pytest.approx(0.31, abs=0.003)


def test_disconnect_raises_then_recovers():
    glove = SimGlove("glove", {"rate_hz": 200.0, "disconnect_at_s": 0.15, "disconnect_s": 0.25})
    start = time.monotonic()
    glove.connect()
    before = []
    with pytest.raises(DeviceDisconnected):
        while time.monotonic() - start < 2:
            before += glove.read(0.2)
    assert 0.13 < time.monotonic() - start < 0.5
    glove.close()
    refused = 0
    while True:
        try:
            glove.connect()
            break
        except DeviceDisconnected:
            raise AssertionError("connect() must raise DeviceError, not DeviceDisconnected")
        except DeviceError:
            refused += 1
            time.sleep(0.02)
    assert refused >= 3 and 0.38 < time.monotonic() - start < 1.0
    after = glove.read(0.5)
    assert after and after[0].seq - before[-1].seq >= 0.2 * 200  # gap covers the outage


def test_disconnect_without_realtime():
    glove = fast(rate_hz=100.0, disconnect_at_s=0.5, disconnect_s=1.0)
    before = []
    with pytest.raises(DeviceDisconnected):
        while True:
            before += glove.read(1.0)
    with pytest.raises(DeviceError):
        glove.connect()
    glove.connect()
    after = glove.read(1.0)
    assert len(before) == 50 and after[0].seq == 150


def test_config_errors_are_exact():
    with pytest.raises(ConfigError, match=r"^glove\.options: rate_hz must be > 0, got 0\.0$"):
        SimGlove("glove", {"rate_hz": 0})
    with pytest.raises(ConfigError, match=r"^glove\.options: unknown option 'rate' \(known: "):
        SimGlove("glove", {"rate": 100})
    with pytest.raises(ConfigError, match=r"^glove\.options: num_joints must be 15\.\.20, got 12$"):
        SimGlove("glove", {"num_joints": 12})
    with pytest.raises(ConfigError, match=r"^glove\.options\.hand: 'up' is not one of 'right', 'left'$"):
        SimGlove("glove", {"hand": "up"})
    with pytest.raises(ConfigError, match=r"^glove\.options: drop_fraction must be in \[0, 1\), got 1\.0$"):
        SimGlove("glove", {"drop_fraction": 1.0})


def test_runs_as_a_node_process():
    runtime = tempfile.mkdtemp(prefix="simglove-")
    base = f"ipc://{runtime}/glove"
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-m", "devices", "sim_glove", "--name", "glove", "--endpoint", base,
         "--options", '{"rate_hz": 500, "seed": 2}', "--log-level", "WARNING"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    sub = Subscriber([node_endpoints(base).data])
    try:
        samples = []
        deadline = time.monotonic() + 15
        while len(samples) < 100 and time.monotonic() < deadline and proc.poll() is None:
            message = sub.receive(100)
            if isinstance(message, Sample):
                samples.append(message)
        assert len(samples) == 100, proc.stdout.read().decode() if proc.poll() is not None else ""
        assert samples[0].stream == "glove/hand"
        assert samples[0].fields["finger_joints"].shape == (15,)
        counters = sub.tracker.streams["glove/hand"]
        assert counters.gaps == 0 and counters.restarts == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sub.close()
        shutil.rmtree(runtime, ignore_errors=True)


def test_a_scripted_operator_wears_the_glove_and_a_bad_script_is_named():
    glove = SimGlove("glove", {"rate_hz": 100.0, "script": [{"do": "idle", "s": 1.0}]})
    glove.connect()
    readings = read_n(glove, 5)
    assert all(r.fields["buttons"][1] == 0 for r in readings)  # idle: the deadman is off
    assert all(np.array_equal(r.fields["wrist_pos"], readings[0].fields["wrist_pos"]) for r in readings)
    glove.close()
    with pytest.raises(ConfigError, match=r"glove.options.script\[0\].do: 'jump' is not one of"):
        SimGlove("glove", {"script": [{"do": "jump", "s": 1.0}]})
    with pytest.raises(ConfigError, match="script drives the cubes scene"):
        SimGlove("glove", {"scene": "taps", "script": [{"do": "idle", "s": 1.0}]})


def test_a_1khz_glove_node_in_batches_loses_nothing_up_to_its_stop():
    import threading

    import zmq

    from collector.wire.node import Node
    from collector.wire.protocol import Event, SampleBatch
    from tests.waiting import wait_for

    runtime = tempfile.mkdtemp(prefix="sgb", dir="/tmp")
    context = zmq.Context()
    node = Node(SimGlove("glove", {"rate_hz": 1000, "seed": 4}), f"ipc://{runtime}/glove")
    sub = Subscriber({"glove": node_endpoints(f"ipc://{runtime}/glove").data}, context=context)
    batches: list[int] = []
    send = node.publisher.send

    def counting_send(message) -> None:
        if isinstance(message, SampleBatch):
            batches.append(len(message))
        send(message)
    try:
        def probe_seen() -> bool:  # past PUB/SUB's slow joiner, before the node's thread runs
            node.publisher.send(Event(node="glove", kind="probe", t_host_ns=0))
            return isinstance(sub.receive(20), Event)
        wait_for(probe_seen, timeout_s=10, interval_s=0)
        node.publisher.send = counting_send
        thread = threading.Thread(target=node.run, daemon=True)
        thread.start()
        seqs: list[int] = []

        def received(count: int):
            def enough() -> bool:
                message = sub.receive(50)
                if isinstance(message, Sample):
                    seqs.append(message.seq)
                return len(seqs) >= count
            return enough
        wait_for(received(1000), timeout_s=30, interval_s=0, message="1000 samples")
        node.stop()
        thread.join(10)
        node.close()  # what was held at the stop goes out, and the socket lingers until it has
        published = node.publisher.published.query(2**62)["streams"]["glove/hand"]["count"]
        wait_for(received(published), timeout_s=10, interval_s=0,
                 message=f"all {published} published samples")
        assert seqs == list(range(seqs[0], seqs[0] + published)) and len(seqs) == published
        counters = sub.tracker.streams["glove/hand"]
        assert (counters.gaps, counters.restarts) == (0, 0)
        assert batches and sum(batches) > published / 2, "1 kHz goes out in batches"
    finally:
        sub.close()
        context.destroy(linger=0)
        shutil.rmtree(runtime, ignore_errors=True)
