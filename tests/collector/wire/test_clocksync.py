"""NTP-style clock estimate between hosts: offset and drift recovered from noisy, asymmetric
exchanges; a node whose clock is 2.5 s ahead and drifting records on the app's clock, with the
estimate and its residual stored in the episode."""

import threading
import time

import numpy as np
import pytest
import zmq

from collector.wire.bus import NodePublisher
from collector.wire.clocksync import ClockEstimator
from collector.config import RecordingConfig
from collector.storage.reader import open_episode
from collector.wire.protocol import Describe, Sample
from collector.recording.recorder import Recorder
from collector.wire.streams import FieldSpec, StreamSpec

from tests.collector.wire.test_remote_nodes import free_base_port


def test_offset_and_drift_from_noisy_exchanges():
    rng = np.random.default_rng(0)
    offset, drift = 2_500_000_000, 150e-6
    est = ClockEstimator()
    t = 1_700_000_000_000_000_000
    for _ in range(60):  # one best-of burst per second for a minute
        up, down = rng.uniform(50e3, 400e3, 2)  # asymmetric legs, 50-400 us
        t0 = t
        remote = int(t0 + up + offset + drift * (t0 + up - 1_700_000_000_000_000_000))
        t3 = int(t0 + up + down)
        est.add(t0, remote, t3)
        t += 1_000_000_000
    e = est.estimate
    true_offset_now = offset + drift * (e.ref_ns - 1_700_000_000_000_000_000)
    assert abs(e.offset_ns - true_offset_now) < 200e3  # within the legs' asymmetry
    assert abs(e.drift_ppm - 150) < 10
    assert 0 < e.residual_ns < 200e3
    # Mapping a remote timestamp back gives the local time within the same bound.
    local = e.ref_ns - 5_000_000_000
    remote = int(local + offset + drift * (local - 1_700_000_000_000_000_000))
    assert abs(est.to_local(remote) - local) < 200e3


def test_to_local_is_the_identity_before_any_exchange():
    assert ClockEstimator().to_local(123) == 123
    with pytest.raises(ValueError, match="reply before request"):
        ClockEstimator().add(10, 5, 9)


class SkewedNode:
    """A 'remote host' whose clock runs ``offset_s`` ahead and ``drift_ppm`` fast, publishing a
    200 Hz stream stamped with that clock and answering pings with it."""

    def __init__(self, base: str, offset_s: float, drift_ppm: float, context: zmq.Context) -> None:
        self.t_ref = time.time_ns()
        self.offset_ns, self.drift = int(offset_s * 1e9), drift_ppm * 1e-6
        spec = StreamSpec("far/imu", "state", 200.0, [FieldSpec("v", "<f4", (3,))])
        self.node = NodePublisher(base, Describe(node="far", streams=[spec.to_dict()], info={}),
                                  context=context, messages_per_second=200,
                                  handlers={"ping": lambda _req: {"ok": True, "t_host_ns": self.now()}})
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def now(self) -> int:
        t = time.time_ns()
        return t + self.offset_ns + int(self.drift * (t - self.t_ref))

    def _run(self) -> None:
        seq = 0
        while not self.stop.wait(0.005):
            self.node.send(Sample("far", "far/imu", seq, seq, self.now(), {"v": np.zeros(3, np.float32)}))
            seq += 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.node.close()


def test_a_remote_clock_is_mapped_onto_the_app_clock_and_recorded(tmp_path):
    context = zmq.Context()
    base = f"tcp://127.0.0.1:{free_base_port()}"
    node = SkewedNode(base, offset_s=2.5, drift_ppm=300.0, context=context)
    recorder = None
    try:
        recorder = Recorder({"far": base}, RecordingConfig(output=tmp_path, min_free_gb=0.01),
                            context=context)
        assert abs(recorder.status()["clocks"]["far"]["offset_ns"] - 2.5e9) < 5e6
        assert recorder.start({"task": "clock"})["ok"]
        time.sleep(3.0)
        path = recorder.stop()["path"]
        clocks = recorder.status()["clocks"]["far"]
    finally:
        if recorder is not None:
            recorder.close()
        node.close()
        context.destroy(linger=0)
    with open_episode(path) as ep:
        t = ep.timestamps("far/imu")
        # On the app's clock, capture precedes arrival by the loopback latency only, not 2.5 s.
        latency_ms = (t["t_recv_ns"] - t["t_host_ns"]) / 1e6
        assert ep.count("far/imu") > 300
        assert np.percentile(latency_ms, 50) > -1.0 and np.percentile(latency_ms, 99) < 30, \
            np.percentile(latency_ms, [0, 50, 99])
        events = [e["detail"] for e in ep.events() if e["kind"] == "clock"]
    assert len(events) >= 3 and all(e["node"] == "far" for e in events)
    assert {"offset_ns", "drift_ppm", "residual_ns", "rtt_ns", "exchanges"} <= set(events[-1])
    assert events[-1]["residual_ns"] < 5e6
    assert abs(clocks["drift_ppm"] - 300) < 300  # 4 s of exchanges on a busy machine: coarse


def test_absurd_remote_clocks_are_reported_and_out_of_range_values_refused():
    est = ClockEstimator()
    t = 1_700_000_000_000_000_000
    for i in range(10):  # the remote clock runs at 0.3x ours
        t0 = t + i * 1_000_000_000
        est.add(t0, int(0.3 * t0), t0 + 100_000)
    e = est.estimate
    assert e.fault.startswith("remote clock runs at 0.30x local time")
    assert e.drift_ppm == 0.0 and "fault" in e.to_dict()
    # Mapping never divides by a rate near zero and stays an int64.
    assert -2 ** 63 <= est.to_local(2 ** 63 - 1) < 2 ** 63
    for bad in (2 ** 64, -2 ** 63 - 1, 1.5, True, "12"):
        with pytest.raises(ValueError, match="t_remote must be an int64 timestamp"):
            est.add(t, bad, t + 1)
    with pytest.raises(ValueError, match="292 years"):
        est.add(-2 ** 63, 2 ** 63 - 1, -2 ** 63 + 2)
    assert est.estimate is e  # refused exchanges leave the estimate as it was
