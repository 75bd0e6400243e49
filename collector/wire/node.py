"""The node runtime: runs one device (:class:`collector.wire.device.Device`) as a node on the bus.

Started as ``python -m devices DRIVER --name cam0 --endpoint ipc:///tmp/x/cam0 --options '{"fps": 30}'``
(devices/__main__.py picks the driver). The node numbers samples per stream (or forwards the device's frame counter), announces its
streams, reports connection changes and stalls as events, and reconnects a lost device.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import zmq

from collector.wire import protocol
from collector.wire.bus import NodePublisher
from collector.wire.protocol import Describe, Event, Sample
from collector.wire.device import Device, DeviceDisconnected, DeviceError

log = logging.getLogger("collector.wire.node")

RECONNECT_INTERVAL_S = 1.0
#: Set by the supervisor on a node it restarted: why (``collector.recording.supervisor``).
RESTART_REASON_ENV = "COLLECTOR_RESTART_REASON"
#: A restarted node waits this long at most for its subscribers to reconnect before it
#: announces itself, so that the recorder hears the ``restarted`` event.
RESUBSCRIBE_WAIT_S = 2.0
#: A stream is reported stalled after this many nominal periods without a sample (min 0.5 s).
STALL_PERIODS = 10


class Node:
    """A device and its publisher; :meth:`run` loops until :meth:`stop`."""

    def __init__(self, device: Device, endpoint: str, *, curve=None, insecure: bool = False,
                 restart_reason: str = "") -> None:
        self.device = device
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

    def stop(self) -> None:
        self._stop.set()

    def _event(self, kind: str, stream: str | None = None, **detail) -> None:
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

    def run(self) -> None:
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
                readings = self.device.read(timeout_s=0.2)
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
            if not readings:
                if not stalled and now - last_sample > self._stall_after_s:
                    stalled = True
                    self._event("stalled", seconds=round(now - last_sample, 3))
                continue
            if stalled:
                stalled = False
                self._event("resumed", seconds=round(now - last_sample, 3))
            last_sample = now
            for r in readings:
                seq = self._next_seq[r.stream] if r.seq is None else r.seq
                self._next_seq[r.stream] = seq + 1
                self.publisher.send(Sample(node=self.device.name, stream=r.stream, seq=seq,
                                           t_device_ns=r.t_device_ns, t_host_ns=r.t_host_ns,
                                           fields=r.fields, encodings=r.encodings))

    def close(self) -> None:
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
