"""The wearable glove over a serial port (``glove`` driver), in the protocol of
``docs/glove-protocol.md`` (binary COBS frames, or CSV lines for DIY gloves).

A reader thread of its own reads the port with pyserial, parses, maps the glove's microsecond
clock to host time (:class:`devices.glove.clock.OnlineClockMap`) and queues one reading per
glove sample; :meth:`Glove.read` hands over whatever is queued, so nothing is lost at 1 kHz and
the node publishes every sample with the glove's own sequence number (a sample the glove sent
but we never got shows as a gap; a glove reboot as a restart).

Published stream ``<name>/hand`` (kind ``state``): one field per channel the glove declares in
its DESCRIBE (the simulated firmware declares the same fields as ``sim_glove``), plus
``finger_closure`` when a calibration is set, ``t_rx_ns`` (host time the bytes were read) and
the clock estimate in force (``clock_offset_ns``, ``clock_drift_ppb``; integers, so training
exports that take every float field as state leave them out). ``t_host_ns`` is the
mapped capture time, ``t_device_ns`` the glove's clock in ns.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np

from collector.wire.options import ConfigError
from collector.wire.streams import FieldSpec, StreamSpec

from collector.wire.device import Device, DeviceDisconnected, DeviceError, Reading
from devices.glove import wire
from devices.glove.calibration_data import Calibration, CalibrationError, calibration_path
from devices.glove.clock import OnlineClockMap

log = logging.getLogger(__name__)

#: Bytes of garbage, arriving for more than GARBAGE_LOST_S without one valid frame, after which
#: we call the link broken (wrong baud rate). Shorter runs are line noise: counted, reported.
GARBAGE_LIMIT = 4096
GARBAGE_LOST_S = 1.0
#: At most one ``noise`` event per this many seconds (each with the bytes since the last).
NOISE_EVENT_INTERVAL_S = 1.0
HELLO_INTERVAL_S = 0.5


@dataclass
class GloveConfig:
    """Options of the ``glove`` driver. Choose the port by ``port`` (a tty path such as
    ``/dev/ttyACM0`` or ``/dev/serial/by-id/...``) or by USB ``vid``/``pid``/``serial_number``
    (hex strings as ``collector devices`` prints them, e.g. ``vid = "2341"``)."""

    port: str = ""
    vid: str = ""
    pid: str = ""
    serial_number: str = ""
    baudrate: int = 921600
    mode: Literal["binary", "csv"] = "binary"
    #: A label for the metadata and the calibration file name.
    hand: Literal["right", "left"] = "right"
    #: Seconds to wait for the glove's DESCRIBE when opening the port.
    describe_timeout_s: float = 3.0
    #: Known fixed delay from capture to the host reading the bytes (subtracted).
    transport_latency_us: float = 0.0
    #: Calibration: a file, or an operator whose file in ``calibration_dir`` is used.
    calibration: str = ""
    operator: str = ""
    calibration_dir: str = "~/.config/collector/gloves"

    def validate(self) -> None:
        if not self.port and not (self.vid or self.serial_number):
            raise ConfigError("set port (a tty path) or vid/pid/serial_number to find the glove "
                              "(collector devices lists them)")
        for key in ("vid", "pid"):
            value = getattr(self, key)
            try:
                if value and not 0 <= int(value, 16) <= 0xFFFF:
                    raise ValueError
            except ValueError:
                raise ConfigError(f"{key} must be 4 hex digits, e.g. '2341', got {value!r}") from None
        if self.baudrate <= 0:
            raise ConfigError(f"baudrate must be > 0, got {self.baudrate}")
        if self.describe_timeout_s <= 0:
            raise ConfigError(f"describe_timeout_s must be > 0, got {self.describe_timeout_s}")


def resolve_port(config: GloveConfig) -> str:
    """The tty path of the configured glove; DeviceError naming the candidates otherwise."""
    if config.port:
        return config.port
    from serial.tools import list_ports

    def matches(p) -> bool:
        return ((not config.vid or p.vid == int(config.vid, 16))
                and (not config.pid or p.pid == int(config.pid, 16))
                and (not config.serial_number or p.serial_number == config.serial_number))

    ports = [p for p in list_ports.comports() if p.vid is not None]
    found = [p for p in ports if matches(p)]
    wanted = ", ".join(f"{k}={getattr(config, k)}" for k in ("vid", "pid", "serial_number")
                       if getattr(config, k))
    if len(found) == 1:
        return found[0].device
    seen = "; ".join(f"{p.device} {p.vid:04x}:{p.pid:04x} {p.serial_number or ''}"
                     for p in ports) or "no USB serial ports"
    if not found:
        raise DeviceError(f"no serial port with {wanted} (seen: {seen})")
    raise DeviceError(f"{len(found)} serial ports match {wanted}; add serial_number or port "
                      f"(seen: {seen})")


class _Lost:
    """Queued by the reader thread when the link broke."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class _LayoutChanged(Exception):
    pass


class Glove(Device):
    """Serial glove driver; see the module docstring."""

    Config = GloveConfig

    def __init__(self, name: str, config=None) -> None:
        super().__init__(name, config)
        c: GloveConfig = self.config
        self.stream_name = f"{name}/hand"
        self.layout: wire.ChannelLayout | None = None
        self.calibration = self._load_calibration()
        self.port_path = ""
        self._serial = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lost: _Lost | None = None
        self._parser = self._new_parser()
        self.clock = OnlineClockMap(round(c.transport_latency_us * 1000))
        self._seq = wire.Unwrapper()
        self._t_us = wire.Unwrapper()
        #: Samples dropped because their payload did not match the DESCRIBE.
        self.bad_payloads = 0
        #: (kind, detail) for the node to publish (clock faults, noise, reader failures).
        self._events: collections.deque[tuple[str, dict]] = collections.deque(maxlen=1000)

    # -- setup ------------------------------------------------------------------------------------

    def _new_parser(self):
        return wire.CsvLineParser() if self.config.mode == "csv" else wire.GloveFrameParser()

    def _load_calibration(self) -> Calibration | None:
        c: GloveConfig = self.config
        path = c.calibration or (calibration_path(c.operator, c.hand, c.calibration_dir)
                                 if c.operator else "")
        if not path:
            return None
        try:
            return Calibration.load(path)
        except CalibrationError as exc:
            raise DeviceError(str(exc)) from None

    def streams(self) -> list[StreamSpec]:
        if self.layout is None:
            self._open()  # the channels are the glove's to declare: ask it
        layout = self.layout
        fields = [FieldSpec(ch.name, np.dtype(ch.dtype).str, (ch.count,), ch.unit, list(ch.names))
                  for ch in layout.channels]
        if self.calibration is not None:
            joints = self._channel("finger_joints")
            if joints is None or joints.count != len(self.calibration.open):
                raise DeviceError(f"calibration of {self.calibration.operator!r} has "
                                  f"{len(self.calibration.open)} joints; the glove declares "
                                  f"{joints.count if joints else 'no'} finger_joints")
            fields.append(FieldSpec("finger_closure", "float32", (joints.count,), "",
                                    list(joints.names)))
        fields += [FieldSpec("t_rx_ns", "int64", (), "ns"),
                   FieldSpec("clock_offset_ns", "int64", (), "ns"),
                   FieldSpec("clock_drift_ppb", "int32", (), "ppb")]
        meta = {"port": self.port_path, "baudrate": self.config.baudrate,
                "mode": self.config.mode, "hand": self.config.hand,
                "glove": layout.info, "channels": json_channels(layout),
                "clock": {"model": "online lower-envelope fit of t_rx - t_device",
                          "device_unit": "us", "window_s": 20.0,
                          "transport_latency_us": self.config.transport_latency_us,
                          "fields": ["clock_offset_ns", "clock_drift_ppb"]},
                "calibration": self.calibration.to_dict() if self.calibration else None}
        return [StreamSpec(self.stream_name, "state", layout.rate_hz, fields, meta=meta)]

    def _channel(self, name: str) -> wire.Channel | None:
        return next((ch for ch in self.layout.channels if ch.name == name), None)

    def info(self) -> dict:
        info = {**super().info(), "port": self.port_path, "hand": self.config.hand}
        if self.layout is not None:
            info.update({k: self.layout.info[k] for k in ("model", "serial", "firmware")
                         if k in self.layout.info})
        return info

    def _open(self) -> None:
        """Open the port and wait for the glove's DESCRIBE; the port stays open."""
        import serial

        c: GloveConfig = self.config
        self.port_path = resolve_port(c)
        try:
            self._serial = serial.Serial(self.port_path, c.baudrate, timeout=0.05)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DeviceError(f"cannot open {self.port_path}: {exc}") from None
        try:
            layout = self._wait_describe()
        except BaseException:
            self._close_port()
            raise
        if self.layout is not None and layout.signature() != self.layout.signature():
            self._close_port()
            raise DeviceError(f"the glove on {self.port_path} now declares different channels "
                              "than when this node started; restart the node to take them")
        self.layout = layout

    def _wait_describe(self) -> wire.ChannelLayout:
        import serial

        c: GloveConfig = self.config
        self._parser = self._new_parser()
        hello = b"?\n" if c.mode == "csv" else wire.encode_packet(wire.HELLO, 0, 0)
        start = time.monotonic()
        next_hello = start
        try:
            while time.monotonic() - start < c.describe_timeout_s:
                if time.monotonic() >= next_hello:
                    self._serial.write(hello)
                    next_hello += HELLO_INTERVAL_S
                for packet in self._parser.feed(self._serial.read(max(1, self._serial.in_waiting))):
                    if packet.type == wire.DESCRIBE:
                        try:
                            return wire.ChannelLayout.from_json(packet.payload)
                        except wire.GloveProtocolError as exc:
                            raise DeviceError(f"{self.port_path}: {exc}") from None
        except (serial.SerialException, OSError) as exc:
            raise DeviceError(f"{self.port_path}: {exc}") from None
        stats = self._parser.stats
        if not stats.bytes:
            raise DeviceError(f"no data from {self.port_path} in {c.describe_timeout_s:g} s: is "
                              "the glove powered and streaming?")
        if not stats.packets:
            raise DeviceError(f"{stats.bytes} bytes from {self.port_path} but no valid "
                              f"{c.mode} frame at {c.baudrate} baud: wrong baudrate or mode "
                              "in the node's options?")
        raise DeviceError(f"{self.port_path} streams {c.mode} frames but never sent DESCRIBE "
                          f"in {c.describe_timeout_s:g} s (see docs/glove-protocol.md)")

    def connect(self) -> None:
        if self._serial is None:
            self._open()
        self._stop.clear()
        self._queue = queue.SimpleQueue()
        self._lost = None
        self._thread = threading.Thread(target=self._read_loop, args=(self._serial, self._queue),
                                        name=f"{self.name}-serial", daemon=True)
        self._thread.start()

    # -- the reader thread ------------------------------------------------------------------------

    def _read_loop(self, port, out: queue.SimpleQueue) -> None:
        # Whatever goes wrong in here, the thread never dies silently: the failure becomes an
        # error event and a lost link, so the node reconnects.
        try:
            self._read_port(port, out)
        except Exception as exc:
            log.exception("%s: reader thread failed", self.name)
            message = (f"{self.port_path}: reader failed ({type(exc).__name__}: {exc}); "
                       "reconnecting")
            self._events.append(("error", {"message": message}))
            out.put(_Lost(message))

    def _read_port(self, port, out: queue.SimpleQueue) -> None:
        import serial

        parser = self._parser
        garbage_since_good = 0
        last_good = time.monotonic()
        noise_reported = (parser.stats.garbage_bytes, parser.stats.garbage_runs)
        next_noise_event = 0.0
        layout_dtype = self.layout.dtype
        while not self._stop.is_set():
            try:
                data = port.read(max(1, port.in_waiting))
            except (serial.SerialException, OSError, TypeError) as exc:
                # TypeError: pyserial's read on a port closed under it by another thread.
                if not self._stop.is_set():
                    out.put(_Lost(f"{self.port_path}: {exc}"))
                return
            if not data:
                continue
            rx_ns = time.time_ns()
            before = parser.stats.packets
            try:
                readings = [r for p in parser.feed(data)
                            if (r := self._reading(p, rx_ns, layout_dtype)) is not None]
            except _LayoutChanged as exc:
                out.put(_Lost(str(exc)))
                return
            now = time.monotonic()
            if parser.stats.packets > before:
                garbage_since_good, last_good = 0, now
            else:
                garbage_since_good += len(data)
                # Line noise is counted and reported; only a link that stays garbage for a
                # while (a wrong baud rate) is lost: a burst of kilobytes of noise followed by
                # good frames costs only the frames it damaged, not a reconnect.
                if garbage_since_good > GARBAGE_LIMIT and now - last_good > GARBAGE_LOST_S:
                    self._report_noise(noise_reported)
                    out.put(_Lost(f"{garbage_since_good} bytes from {self.port_path} without a "
                                  f"valid frame at {self.config.baudrate} baud in "
                                  f"{now - last_good:.1f} s (wrong baudrate?)"))
                    return
            if now >= next_noise_event and parser.stats.garbage_bytes > noise_reported[0]:
                noise_reported = self._report_noise(noise_reported)
                next_noise_event = now + NOISE_EVENT_INTERVAL_S
            if readings:
                out.put(readings)

    def _report_noise(self, since: tuple[int, int]) -> tuple[int, int]:
        """Queue a ``noise`` event for the garbage counted since ``since``; the new mark."""
        stats = self._parser.stats
        mark = (stats.garbage_bytes, stats.garbage_runs)
        n, runs = mark[0] - since[0], mark[1] - since[1]
        if n > 0:
            self._events.append(("noise", {
                "message": f"{n} bytes of line noise in {runs} run{'s' * (runs != 1)} on "
                           f"{self.port_path} (skipped; only frames they damaged are lost)",
                "bytes": n, "runs": runs, "total_bytes": mark[0], "stream": self.stream_name}))
        return mark

    def _reading(self, packet: wire.Packet, rx_ns: int, dtype: np.dtype) -> Reading | None:
        if packet.type == wire.DESCRIBE:
            try:
                layout = wire.ChannelLayout.from_json(packet.payload)
            except wire.GloveProtocolError:
                return None
            if layout.signature() != self.layout.signature():
                raise _LayoutChanged(f"the glove on {self.port_path} changed its channels")
            return None
        if packet.type != wire.SAMPLE:
            return None
        if len(packet.payload) != dtype.itemsize:
            self.bad_payloads += 1
            return None
        previous = self._seq.value
        seq = self._seq(packet.seq)
        if previous is not None and seq <= previous:
            # The glove restarted (seq went back): its clock restarted too.
            self._t_us.reset()
            self.clock.reset()
            self._seq.value = seq = packet.seq
        device_ns = self._t_us(packet.t_us) * 1000
        host_ns = self.clock.map(device_ns, rx_ns)
        for kind, message in self.clock.notices():
            self._events.append((kind, {"message": message, "stream": self.stream_name}))
        record = np.frombuffer(packet.payload, dtype)[0]
        fields = {name: np.array(record[name]) for name in dtype.names}
        if self.calibration is not None:
            fields["finger_closure"] = self.calibration.closure(fields["finger_joints"])
        fields["t_rx_ns"] = np.array(rx_ns, np.int64)
        fields["clock_offset_ns"] = np.array(_saturate(self.clock.offset_ns, 63), np.int64)
        fields["clock_drift_ppb"] = np.array(self.clock.drift_ppb_int32(), np.int32)
        return Reading(self.stream_name, device_ns, host_ns, fields, seq=seq)

    # -- the Device interface ---------------------------------------------------------------------

    def events(self) -> list[tuple[str, dict]]:
        out = []
        while self._events:
            out.append(self._events.popleft())
        return out

    def read(self, timeout_s: float) -> list[Reading]:
        if self._thread is None:
            raise DeviceError("read() before connect()")
        if self._lost is not None:
            reason, self._lost = self._lost.reason, None
            raise DeviceDisconnected(reason)
        try:
            item = self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return []
        readings: list[Reading] = []
        while True:
            if isinstance(item, _Lost):
                if not readings:
                    raise DeviceDisconnected(item.reason)
                self._lost = item  # hand over what came before the loss first
                return readings
            readings += item
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return readings

    def _close_port(self) -> None:
        if self._serial is not None:
            try:
                self._serial.close()
            except Exception:  # closing a port whose device vanished may fail; it is gone anyway
                pass
            self._serial = None

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            if self._serial is not None:
                try:
                    self._serial.cancel_read()
                except Exception:
                    pass
            self._thread.join(1.0)
        self._thread = None
        self._close_port()


def _saturate(value: int, bits: int) -> int:
    """``value`` clamped to a signed integer of ``bits`` + 1 bits (no wrap, no OverflowError)."""
    return max(-(1 << bits), min((1 << bits) - 1, int(value)))


def json_channels(layout: wire.ChannelLayout) -> list[dict]:
    return [{"name": c.name, "dtype": c.dtype, "count": c.count, "unit": c.unit,
             "min": c.min, "max": c.max} for c in layout.channels]
