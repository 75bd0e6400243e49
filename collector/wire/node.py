"""The node runtime: runs one device (:class:`collector.wire.device.Device`) as a node on the bus.

Started as ``python -m devices DRIVER --name cam0 --endpoint ipc:///tmp/x/cam0 --options '{"fps": 30}'``
(devices/__main__.py picks the driver). The node numbers samples per stream (or forwards the device's frame counter), announces its
streams, reports connection changes and stalls as events, and reconnects a lost device.

High-rate streams (a 1 kHz glove) are published in batches (:class:`NodeOptions`): one message
per few milliseconds instead of one per sample, which is most of such a node's CPU and a third
of the recorder's receiving. A reading is held at most ``batch_window_ms``, and whatever is held
is published before any event and when the node stops.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass

import zmq

from collector.wire import protocol
from collector.wire.bus import NodePublisher
from collector.wire.options import ConfigError
from collector.wire.protocol import Describe, Event, ProtocolError, Sample, SampleBatch
from collector.wire.device import Device, DeviceDisconnected, DeviceError, Reading

log = logging.getLogger("collector.wire.node")

RECONNECT_INTERVAL_S = 1.0
#: Set by the supervisor on a node it restarted: why (``collector.recording.supervisor``).
RESTART_REASON_ENV = "COLLECTOR_RESTART_REASON"
#: A restarted node waits this long at most for its subscribers to reconnect before it
#: announces itself, so that the recorder hears the ``restarted`` event.
RESUBSCRIBE_WAIT_S = 2.0
#: A stream is reported stalled after this many nominal periods without a sample (min 0.5 s).
STALL_PERIODS = 10
#: Longest wait in ``device.read`` while nothing is held: how often ``stop`` is looked at.
READ_TIMEOUT_S = 0.2


@dataclass
class NodeOptions:
    """How the node runtime publishes, whatever the driver (``python -m devices --node-options
    '{"batch_window_ms": 2}'``).

    Streams declared at ``batch_min_rate_hz`` or more are published as batches
    (:class:`collector.wire.protocol.SampleBatch`): a reading waits at most ``batch_window_ms``
    for others of its stream, and at most ``batch_max_samples`` go in one message. The window
    is latency added to every reader of the stream (teleop reads the glove's live stream), so
    it stays a few milliseconds; cameras (30-90 Hz) stay one sample per message.
    """

    batch_window_ms: float = 5.0
    batch_min_rate_hz: float = 200.0
    batch_max_samples: int = 64

    def validate(self) -> None:
        if not 0 <= self.batch_window_ms <= 100:
            raise ConfigError(f"batch_window_ms must be 0 (no batches) .. 100 ms, got "
                              f"{self.batch_window_ms}")
        if not self.batch_min_rate_hz > 0:
            raise ConfigError(f"batch_min_rate_hz must be > 0, got {self.batch_min_rate_hz}")
        if not 1 <= self.batch_max_samples <= protocol.MAX_BATCH_SAMPLES:
            raise ConfigError(f"batch_max_samples must be 1 .. {protocol.MAX_BATCH_SAMPLES}, "
                              f"got {self.batch_max_samples}")


class Node:
    """A device and its publisher; :meth:`run` loops until :meth:`stop`."""

    def __init__(self, device: Device, endpoint: str, *, curve=None, insecure: bool = False,
                 restart_reason: str = "", options: NodeOptions | None = None) -> None:
        self.device = device
        self.options = options or NodeOptions()
        self.restart_reason = restart_reason
        self.specs = device.streams()
        self.describe = Describe(node=device.name, streams=[s.to_dict() for s in self.specs],
                                 info=device.info())
        rate = sum(s.rate_hz for s in self.specs)
        self.publisher = NodePublisher(endpoint, self.describe, messages_per_second=rate,
                                       curve=curve, insecure=insecure)
        self._accepted = None
        if restart_reason:
            # Watch for the recorder reconnecting to the new socket (a PUB socket drops what it
            # sends before a subscriber has joined).
            self._accepted = self.publisher.data.get_monitor_socket(zmq.EVENT_ACCEPTED)
        self._next_seq = {s.name: 0 for s in self.specs}
        self._stall_after_s = max(0.5, STALL_PERIODS / min(s.rate_hz for s in self.specs))
        self._stop = threading.Event()
        o = self.options
        #: Streams published in batches, and what each holds (oldest first) since when (monotonic).
        self.batched = ({s.name for s in self.specs if s.rate_hz >= o.batch_min_rate_hz}
                        if o.batch_window_ms > 0 and o.batch_max_samples > 1 else set())
        self._held: dict[str, list[Sample]] = {}
        self._held_since: dict[str, float] = {}

    def stop(self) -> None:
        self._stop.set()

    def _event(self, kind: str, stream: str | None = None, **detail) -> None:
        self.flush()  # what was read before it happened goes out before it
        log.log(logging.WARNING if kind == "error" else logging.INFO, "%s: %s %s",
                self.device.name, kind, detail or "")
        self.publisher.send(Event(node=self.device.name, kind=kind, t_host_ns=protocol.now_ns(),
                                  stream=stream, detail=detail))

    def _device_events(self) -> None:
        """Publish what the driver reported (clock faults, counted noise, reader failures)."""
        try:
            events = self.device.events()
        except Exception as exc:  # a driver bug must not stop the samples
            log.exception("%s: events() failed", self.device.name)
            events = [("error", {"message": f"driver events failed: {exc}"})]
        for kind, detail in events:
            detail = dict(detail)
            self._event(kind, detail.pop("stream", None), **detail)

    def _announce_restart(self) -> None:
        """After a restart by the supervisor: wait (bounded) for a subscriber, then say why."""
        monitor, self._accepted = self._accepted, None
        try:
            if monitor.poll(int(RESUBSCRIBE_WAIT_S * 1000)):
                self._stop.wait(0.05)  # its subscription follows the connection closely
        finally:
            self.publisher.data.disable_monitor()
            monitor.close(linger=0)
        self._event("restarted", message=f"restarted by the supervisor: {self.restart_reason}",
                    reason=self.restart_reason)

    def _publish(self, readings: list[Reading], now: float) -> None:
        """Number ``readings`` and publish them, or hold those of batched streams."""
        limit = self.options.batch_max_samples
        for r in readings:
            seq = self._next_seq[r.stream] if r.seq is None else r.seq
            self._next_seq[r.stream] = seq + 1
            sample = Sample(node=self.device.name, stream=r.stream, seq=seq,
                            t_device_ns=r.t_device_ns, t_host_ns=r.t_host_ns, fields=r.fields,
                            encodings=r.encodings)
            if r.stream not in self.batched or any(e != protocol.RAW for e in r.encodings.values()):
                self._flush_stream(r.stream)  # keeps the stream in order
                self.publisher.send(sample)
                continue
            held = self._held.setdefault(r.stream, [])
            if not held:
                self._held_since[r.stream] = now
            held.append(sample)
            if len(held) >= limit:
                self._flush_stream(r.stream)

    def _flush_stream(self, stream: str) -> None:
        held = self._held.pop(stream, None)
        self._held_since.pop(stream, None)
        if not held:
            return
        if len(held) == 1:
            self.publisher.send(held[0])  # version 1: readable by every reader
            return
        try:
            batch = SampleBatch.of(held)
        except ProtocolError as exc:  # e.g. a driver changed a field's shape: still sent, alone
            log.warning("%s: %s not batched: %s", self.device.name, stream, exc)
            for sample in held:
                self.publisher.send(sample)
            return
        self.publisher.send(batch)

    def flush(self) -> None:
        """Publish every held reading now (before an event, and when the node stops)."""
        for stream in list(self._held):
            self._flush_stream(stream)

    def _flush_due(self, now: float) -> None:
        window_s = self.options.batch_window_ms / 1000
        for stream, since in list(self._held_since.items()):
            if now - since >= window_s:
                self._flush_stream(stream)

    def _read_timeout(self) -> float:
        """Until the oldest held reading is due, so that none waits past its window even when
        no other reading comes."""
        if not self._held_since:
            return READ_TIMEOUT_S
        due = min(self._held_since.values()) + self.options.batch_window_ms / 1000
        return min(READ_TIMEOUT_S, max(0.0, due - time.monotonic()))

    def run(self) -> None:
        """Publish the device's readings until :meth:`stop`; what is held goes out at the end."""
        try:
            self._run()
        finally:
            self.flush()

    def _run(self) -> None:
        if self._accepted is not None:
            self._announce_restart()
        connected = False
        stalled = False
        last_sample = time.monotonic()
        parent = os.getppid()
        while not self._stop.is_set():
            if os.getppid() != parent:  # orphaned: the app that started this node is gone
                log.warning("%s: parent process exited; stopping", self.device.name)
                break
            if not connected:
                try:
                    self.device.connect()
                except DeviceError as exc:
                    self._event("error", message=str(exc))
                    self._stop.wait(RECONNECT_INTERVAL_S)
                    continue
                connected, stalled, last_sample = True, False, time.monotonic()
                self._event("connected")
                self.publisher.send(self.describe)
            try:
                readings = self.device.read(timeout_s=self._read_timeout())
            except DeviceDisconnected as exc:
                connected = False
                self._device_events()
                self.device.close()
                self._event("disconnected", message=str(exc))
                continue
            except Exception as exc:
                # A driver that fails in an unforeseen way is reported and reconnected, never
                # left running without samples.
                log.exception("%s: read failed", self.device.name)
                connected = False
                self._device_events()
                self.device.close()
                self._event("error", message=f"read failed ({type(exc).__name__}: {exc}); "
                                             "reconnecting")
                self._event("disconnected", message=str(exc))
                continue
            self._device_events()
            now = time.monotonic()
            if readings:
                if stalled:
                    stalled = False
                    self._event("resumed", seconds=round(now - last_sample, 3))
                last_sample = now
                self._publish(readings, now)
            elif not stalled and now - last_sample > self._stall_after_s:
                stalled = True
                self._event("stalled", seconds=round(now - last_sample, 3))
            self._flush_due(time.monotonic())

    def close(self) -> None:
        self.flush()  # run() flushes as it ends; this is for a node closed without running
        self.device.close()
        self.publisher.close()


def run_until_signalled(node) -> int:
    """The tail of every node process's ``main``: SIGINT and SIGTERM call ``node.stop()``,
    ``node.run()`` loops until then, and the node is closed whatever happens. Returns 0."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: node.stop())
    try:
        node.run()
    finally:
        node.close()
    return 0
