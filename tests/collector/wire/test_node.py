"""The node runtime's batching of high-rate streams: a batch goes out when its oldest reading
has waited the window (even with no new reading), at the most samples per message, before any
event and when the node stops; encoded and slow streams are never batched."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np
import pytest
import zmq

from collector.wire import protocol
from collector.wire.bus import Subscriber
from collector.wire.device import Device, DeviceDisconnected, Reading
from collector.wire.node import READ_TIMEOUT_S, Node, NodeOptions
from collector.wire.options import ConfigError, from_mapping
from collector.wire.protocol import Event, Sample, SampleBatch
from collector.wire.streams import FieldSpec, StreamSpec
from tests.waiting import wait_for


@dataclass
class _NoOptions:
    pass


class ScriptedDevice(Device):
    """Plays ``steps`` from :meth:`read`: a list of readings is returned, an exception raised, a
    callable called for its readings; once they are played, each read waits its timeout."""

    Config = _NoOptions

    def __init__(self, steps: list, rates: dict[str, float] | None = None) -> None:
        super().__init__("dev")
        self.rates = rates or {"dev/hand": 1000.0}
        self.steps = deque(steps)
        #: The timeout of every read, and how many readings were handed over before it.
        self.reads: list[tuple[float, int]] = []
        self.handed = 0
        self._idle = threading.Event()

    def streams(self) -> list[StreamSpec]:
        return [StreamSpec(name, "state", rate, [FieldSpec("x", "<f4", (3,))])
                for name, rate in self.rates.items()]

    def connect(self) -> None:
        pass

    def read(self, timeout_s: float) -> list[Reading]:
        self.reads.append((timeout_s, self.handed))
        if not self.steps:
            self._idle.wait(timeout_s)  # a device with nothing to give waits its timeout
            return []
        step = self.steps.popleft()
        if isinstance(step, Exception):
            raise step
        readings = step() if callable(step) else step
        self.handed += len(readings)
        return readings

    def close(self) -> None:
        pass


def _readings(first: int, count: int, stream: str = "dev/hand", **encodings) -> list[Reading]:
    return [Reading(stream, t_device_ns=seq, t_host_ns=protocol.now_ns(),
                    fields={"x": np.full(3, seq, np.float32)}, seq=seq,
                    encodings=dict(encodings))
            for seq in range(first, first + count)]


class Running:
    """A node on its own thread, what it publishes recorded in order."""

    def __init__(self, device: Device, rundir: str, **options) -> None:
        self.node = Node(device, f"ipc://{rundir}/dev", options=NodeOptions(**options))
        self.sent: list = []
        send = self.node.publisher.send

        def recording_send(message) -> None:
            self.sent.append(message)
            send(message)
        self.node.publisher.send = recording_send
        self.thread = threading.Thread(target=self.node.run, daemon=True)

    def start(self) -> "Running":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.node.stop()
        self.thread.join(10)
        assert not self.thread.is_alive()
        self.node.close()

    def batch_sizes(self) -> list[int]:
        return [len(m) if isinstance(m, SampleBatch) else 1 for m in self.sent
                if isinstance(m, (Sample, SampleBatch))]


def test_a_held_reading_goes_out_at_its_window_with_no_new_reading(rundir):
    device = ScriptedDevice([_readings(0, 3)])
    running = Running(device, rundir, batch_window_ms=5.0).start()
    try:
        wait_for(lambda: running.batch_sizes() == [3], timeout_s=10, message="the batch of 3")
        (batch,) = [m for m in running.sent if isinstance(m, SampleBatch)]
        assert batch.seq == [0, 1, 2]
        # the read after the readings waited no longer than the window, not READ_TIMEOUT_S
        timeout_after = next(t for t, handed in device.reads if handed == 3)
        assert timeout_after <= 0.005 < READ_TIMEOUT_S
    finally:
        running.stop()


def test_at_most_batch_max_samples_go_in_one_message(rundir):
    device = ScriptedDevice([_readings(0, 10)])
    running = Running(device, rundir, batch_window_ms=5.0, batch_max_samples=4).start()
    try:
        wait_for(lambda: sum(running.batch_sizes()) == 10, timeout_s=10)
        assert running.batch_sizes() == [4, 4, 2]
    finally:
        running.stop()


def test_held_readings_go_out_before_an_event_and_when_the_node_stops(rundir):
    context = zmq.Context()
    device = ScriptedDevice([])
    running = Running(device, rundir, batch_window_ms=100.0)
    sub = Subscriber({"dev": running.node.publisher.endpoints.data}, context=context)
    try:
        def probe_seen() -> bool:  # past PUB/SUB's slow joiner, before the node's thread runs
            running.node.publisher.send(Event(node="dev", kind="probe", t_host_ns=0))
            return isinstance(sub.receive(20), Event)
        wait_for(probe_seen, timeout_s=10, interval_s=0)

        def stop_after_two_more() -> list[Reading]:
            running.node.stop()  # the loop ends after these: held, then flushed at the end
            return _readings(5, 2)
        device.steps.extend([_readings(0, 3), DeviceDisconnected("unplugged"), _readings(3, 2),
                             stop_after_two_more])
        running.start()
        running.thread.join(10)
        running.node.close()  # the data socket lingers until what was sent is out
        messages: list = []

        def all_samples() -> bool:
            message = sub.receive(50)
            if message is not None and not (isinstance(message, Event) and message.kind == "probe"):
                messages.append(message)
            return sum(isinstance(m, Sample) for m in messages) == 7
        wait_for(all_samples, timeout_s=10, interval_s=0, message="7 samples")
        order = [m.seq if isinstance(m, Sample) else m.kind for m in messages
                 if not type(m).__name__ == "Describe"]
        assert order == ["connected", 0, 1, 2, "disconnected", "connected", 3, 4, 5, 6]
        # 3 and 4 waited less than the 100 ms window: they went out with 5 and 6 at the stop
        assert running.batch_sizes() == [3, 4]
    finally:
        sub.close()
        context.destroy(linger=0)


def test_encoded_readings_and_slow_streams_are_sent_alone(rundir):
    hand = [*_readings(0, 1), *_readings(1, 1, x="jpeg"), *_readings(2, 2)]
    color = _readings(0, 2, stream="dev/color")
    device = ScriptedDevice([hand + color], rates={"dev/hand": 1000.0, "dev/color": 30.0})
    running = Running(device, rundir).start()
    try:
        wait_for(lambda: sum(running.batch_sizes()) == 6, timeout_s=10)
        sent = [(type(m).__name__, m.stream, m.seq) for m in running.sent
                if isinstance(m, (Sample, SampleBatch))]
        assert sent == [("Sample", "dev/hand", 0),    # held alone, sent ahead of the JPEG
                        ("Sample", "dev/hand", 1),    # encoded: never in a batch
                        ("Sample", "dev/color", 0),   # 30 Hz: never batched
                        ("Sample", "dev/color", 1),
                        ("SampleBatch", "dev/hand", [2, 3])]
        assert running.node.batched == {"dev/hand"}
    finally:
        running.stop()


def test_a_zero_window_sends_every_sample_alone(rundir):
    device = ScriptedDevice([_readings(0, 5)])
    running = Running(device, rundir, batch_window_ms=0.0).start()
    try:
        wait_for(lambda: sum(running.batch_sizes()) == 5, timeout_s=10)
        assert running.batch_sizes() == [1] * 5 and not running.node.batched
    finally:
        running.stop()


@pytest.mark.parametrize("options, message", [
    ({"batch_window_ms": -1}, "batch_window_ms must be 0 \\(no batches\\) .. 100 ms, got -1"),
    ({"batch_window_ms": 250}, "batch_window_ms must be 0 \\(no batches\\) .. 100 ms, got 250"),
    ({"batch_min_rate_hz": 0}, "batch_min_rate_hz must be > 0, got 0"),
    ({"batch_max_samples": 513}, "batch_max_samples must be 1 .. 512, got 513"),
    ({"batch_windows_ms": 5}, "unknown option 'batch_windows_ms'"),
])
def test_node_options_are_checked(options, message):
    with pytest.raises(ConfigError, match=f"node: {message}"):
        from_mapping(NodeOptions, options, where="node")


def test_devices_cli_refuses_bad_node_options(rundir, capsys):
    from devices.__main__ import main

    code = main(["sim_glove", "--name", "glove", "--endpoint", f"ipc://{rundir}/glove",
                 "--node-options", '{"batch_window_ms": 500}'])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "error: --node-options: batch_window_ms must be 0 (no batches) .. 100 ms, got 500.0")


def test_devices_cli_gives_the_node_its_options(rundir, monkeypatch):
    import devices.__main__ as cli

    started: list[Node] = []

    def run_and_close(node: Node) -> int:
        started.append(node)
        node.close()
        return 0
    monkeypatch.setattr(cli, "run_until_signalled", run_and_close)
    assert cli.main(["sim_glove", "--name", "glove", "--endpoint", f"ipc://{rundir}/glove",
                     "--options", '{"rate_hz": 1000}',
                     "--node-options", '{"batch_window_ms": 2, "batch_max_samples": 8}']) == 0
    (node,) = started
    assert node.options == NodeOptions(batch_window_ms=2.0, batch_max_samples=8)
    assert node.batched == {"glove/hand"}
