"""The glove serial protocol (``docs/glove-protocol.md``): packets, COBS framing, CRC, CSV lines.

This module is the reference implementation of that document and imports no serial library:
:class:`GloveFrameParser` turns any byte stream into packets (and counts what it had to throw
away), :class:`ChannelLayout` turns a sample packet's payload into named numpy arrays, and
:func:`encode_packet` is what firmware (and our simulator) writes.

Binary frame on the wire::

    COBS( ver:u8 | type:u8 | seq:u32 | t_us:u32 | payload | crc32:u32 ) 0x00

little-endian; ``crc32`` is zlib's CRC-32 of everything before it. COBS removes every zero
byte from the packet, so ``0x00`` only ever ends a frame: after garbage the parser drops bytes
up to the next ``0x00`` and the frame after it decodes, i.e. it resynchronises within one frame.
A good frame that garbage ran into without a ``0x00`` between them is found at the end of the
run, however long the run was (the parser keeps the last :data:`MAX_FRAME` bytes of it).
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from cobs import cobs

PROTOCOL_VERSION = 1
#: Packet types.
SAMPLE = 0x01
DESCRIBE = 0x02
HELLO = 0x03   # host -> glove: "send your DESCRIBE"
TYPE_NAMES = {SAMPLE: "sample", DESCRIBE: "describe", HELLO: "hello"}

HEADER = struct.Struct("<BBII")
CRC = struct.Struct("<I")
#: Largest decoded packet (header + payload + CRC); anything longer is garbage.
MAX_PACKET = 4096
#: Largest encoded frame without its delimiter (COBS adds at most 1 byte per 254).
MAX_FRAME = MAX_PACKET + MAX_PACKET // 254 + 2
DELIMITER = b"\x00"
#: A CSV line longer than this is garbage.
MAX_LINE = 4096

#: dtypes a channel may use on the wire (little-endian numpy typestrs).
WIRE_DTYPES = ("|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<f4", "<f8")


class GloveProtocolError(ValueError):
    """A describe packet or CSV header that does not follow the protocol."""


class Packet(NamedTuple):
    """One decoded, CRC-checked packet."""

    type: int
    seq: int
    t_us: int
    payload: bytes
    #: Bytes of its COBS frame on the wire, without the delimiter.
    wire_size: int = 0


def encode_packet(kind: int, seq: int, t_us: int, payload: bytes = b"") -> bytes:
    """One complete frame (COBS-encoded, CRC appended, delimiter included)."""
    body = HEADER.pack(PROTOCOL_VERSION, kind, seq & 0xFFFFFFFF, t_us & 0xFFFFFFFF) + payload
    return cobs.encode(body + CRC.pack(zlib.crc32(body))) + DELIMITER


@dataclass
class ParserStats:
    """What a parser accepted and rejected, by reason (``bad`` keys are stable names)."""

    packets: int = 0
    bytes: int = 0
    bad: Counter = field(default_factory=Counter)
    #: Good packets found right behind garbage that had no delimiter before them.
    resynced: int = 0
    #: Bytes that were no part of a valid packet (garbage, damaged or cut frames), and the
    #: number of delimited runs they came in. The partial frame of a port opened mid-stream
    #: is not counted.
    garbage_bytes: int = 0
    garbage_runs: int = 0

    @property
    def bad_frames(self) -> int:
        return sum(self.bad.values())


class GloveFrameParser:
    """Incremental binary-mode parser: :meth:`feed` any bytes, get the complete packets back.

    Never raises on input: a frame that fails COBS, length, version or CRC checks is counted in
    ``stats.bad`` under its reason and skipped. Memory is bounded by 2 x :data:`MAX_FRAME`: a run
    longer than that without a delimiter is counted once as ``too_long`` and only its last
    :data:`MAX_FRAME` bytes are kept, since a valid frame can be no longer, so the good frame at
    the end of any run of garbage is still found.
    """

    def __init__(self, *, opened_mid_stream: bool = True) -> None:
        self._buffer = bytearray()
        # A port opened while the glove streams starts inside a frame: its partial first frame
        # is not counted as bad (but a good frame at its end is still taken).
        self._quiet = opened_mid_stream
        self._overflow = 0  # bytes of the current run dropped beyond MAX_FRAME
        self.stats = ParserStats()

    def feed(self, data: bytes) -> list[Packet]:
        self.stats.bytes += len(data)
        packets: list[Packet] = []
        start = 0
        while True:
            end = data.find(0, start)
            if end < 0:
                self._keep(data[start:])
                return packets
            if self._buffer:
                self._buffer += data[start:end]
                frame = bytes(self._buffer)
                self._buffer.clear()
            else:
                frame = data[start:end]
            if len(frame) > MAX_FRAME:
                self._overflowed(len(frame) - MAX_FRAME)
                frame = frame[-MAX_FRAME:]
            start = end + 1
            overflow, self._overflow = self._overflow, 0
            quiet, self._quiet = self._quiet, False
            if frame or overflow:
                packet = self._decode(frame, count=not (quiet or overflow))
                if packet is not None:
                    packets.append(packet)
                if not quiet:
                    waste = overflow + len(frame) - (packet.wire_size if packet else 0)
                    if waste:
                        self.stats.garbage_bytes += waste
                        self.stats.garbage_runs += 1

    def _keep(self, tail: bytes) -> None:
        self._buffer += tail
        if len(self._buffer) > 2 * MAX_FRAME:  # trimmed now and then, not on every byte
            self._overflowed(len(self._buffer) - MAX_FRAME)
            del self._buffer[:-MAX_FRAME]

    def _overflowed(self, dropped: int) -> None:
        if not self._overflow and not self._quiet:
            self.stats.bad["too_long"] += 1  # once per run
        self._overflow += dropped

    def _decode(self, frame: bytes, *, count: bool = True) -> Packet | None:
        packet, reason = _check(frame)
        if packet is not None:
            self.stats.packets += 1
            return packet
        if count:
            self.stats.bad[reason] += 1
        # Garbage or a truncated frame ran into a good frame that had no delimiter before it:
        # the good frame is a suffix of what we got. Try each start where the version and type
        # bytes fit (shortest garbage first); COBS, CRC, version and type must all pass, so a
        # false find is ~1e-12 per try.
        for start in _cobs_starts(frame):
            packet, _ = _check(frame[start:])
            if packet is not None:
                self.stats.packets += 1
                self.stats.resynced += 1
                return packet
        return None


#: Where a packet can start inside a run: a COBS code byte covering at least the version and
#: type bytes (>= 3), then this protocol's version, then a known type. Zero-width, so that
#: overlapping candidates are all found.
_PACKET_START = re.compile(b"(?=[\\x03-\\xff]" + re.escape(bytes([PROTOCOL_VERSION])) + b"["
                           + b"".join(re.escape(bytes([t])) for t in sorted(TYPE_NAMES)) + b"])")


def _cobs_starts(frame: bytes) -> list[int]:
    """Offsets ``1..`` at which a packet of this protocol may start inside ``frame``, in
    increasing order: only those where the decoded version and type bytes would be valid (about
    one random offset in 20,000), so that resynchronising after kilobytes of garbage costs a
    regex scan and a few decodes, not one decode per byte."""
    shortest = HEADER.size + CRC.size + 1  # one COBS code byte at least
    return [m.start() for m in _PACKET_START.finditer(frame, 1, max(1, len(frame) - shortest + 1))]


def _check(frame: bytes) -> tuple[Packet | None, str]:
    """The packet in one COBS frame, or ``None`` and the reason it is not one."""
    try:
        body = cobs.decode(frame)
    except cobs.DecodeError:
        return None, "cobs"
    if len(body) < HEADER.size + CRC.size:
        return None, "short"
    (crc,) = CRC.unpack_from(body, len(body) - CRC.size)
    if zlib.crc32(memoryview(body)[:-CRC.size]) != crc:
        return None, "crc"
    version, kind, seq, t_us = HEADER.unpack_from(body)
    if version != PROTOCOL_VERSION:
        return None, "version"
    if kind not in TYPE_NAMES:
        return None, "type"
    return Packet(kind, seq, t_us, body[HEADER.size:-CRC.size], len(frame)), ""


@dataclass(frozen=True)
class Channel:
    """One channel of a describe packet: ``count`` values of ``dtype`` per sample."""

    name: str
    dtype: str
    count: int
    unit: str = ""
    names: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class ChannelLayout:
    """What a glove says about itself in its DESCRIBE packet (or CSV ``#describe`` line)."""

    channels: tuple[Channel, ...]
    rate_hz: float
    info: dict[str, Any]

    @classmethod
    def from_json(cls, text: bytes | str) -> "ChannelLayout":
        """Parse the describe JSON; raise :class:`GloveProtocolError` saying what is wrong."""
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise GloveProtocolError(f"describe is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise GloveProtocolError("describe must be a JSON object")
        rate = doc.get("rate_hz")
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not rate > 0:
            raise GloveProtocolError(f"describe: rate_hz must be a number > 0, got {rate!r}")
        raw = doc.get("channels")
        if not isinstance(raw, list) or not raw:
            raise GloveProtocolError("describe: channels must be a non-empty list")
        channels = []
        for i, c in enumerate(raw):
            where = f"describe: channels[{i}]"
            if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not c["name"]:
                raise GloveProtocolError(f"{where} needs a non-empty string 'name'")
            if c.get("dtype") not in WIRE_DTYPES:
                raise GloveProtocolError(f"{where} ({c['name']}): dtype {c.get('dtype')!r} is not "
                                         f"one of {', '.join(WIRE_DTYPES)}")
            count = c.get("count", 1)
            if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 256:
                raise GloveProtocolError(f"{where} ({c['name']}): count must be 1..256, got {count!r}")
            names = tuple(c.get("names") or ())
            if names and len(names) != count:
                raise GloveProtocolError(f"{where} ({c['name']}): {len(names)} names for "
                                         f"count {count}")
            channels.append(Channel(c["name"], c["dtype"], count, str(c.get("unit", "")), names,
                                    c.get("min"), c.get("max")))
        if len({c.name for c in channels}) != len(channels):
            raise GloveProtocolError("describe: channel names must be unique")
        info = {k: v for k, v in doc.items() if k not in ("channels", "rate_hz")}
        return cls(tuple(channels), float(rate), info)

    def to_json(self) -> str:
        channels = []
        for c in self.channels:
            entry: dict[str, Any] = {"name": c.name, "dtype": c.dtype, "count": c.count,
                                     "unit": c.unit}
            if c.names:
                entry["names"] = list(c.names)
            if c.min is not None:
                entry["min"], entry["max"] = c.min, c.max
            channels.append(entry)
        return json.dumps({**self.info, "rate_hz": self.rate_hz, "channels": channels},
                          separators=(",", ":"))

    @property
    def dtype(self) -> np.dtype:
        """The structured dtype of one sample payload (channels packed in order, no padding)."""
        return np.dtype([(c.name, c.dtype, (c.count,)) for c in self.channels])

    @property
    def payload_size(self) -> int:
        return self.dtype.itemsize

    def decode(self, payload: bytes) -> dict[str, np.ndarray] | None:
        """Named arrays of one sample payload, or ``None`` if its length is wrong."""
        dtype = self.dtype
        if len(payload) != dtype.itemsize:
            return None
        record = np.frombuffer(payload, dtype)[0]
        return {c.name: np.array(record[c.name]) for c in self.channels}

    def encode(self, values: dict[str, Any]) -> bytes:
        """The payload of one sample (what firmware writes)."""
        record = np.zeros((), self.dtype)
        for c in self.channels:
            record[c.name] = values[c.name]
        return record.tobytes()

    def signature(self) -> tuple:
        """What must stay the same across reconnects for the declared streams to hold."""
        return tuple((c.name, c.dtype, c.count) for c in self.channels)


class CsvLineParser:
    """Plain-text mode for DIY gloves: ``t_us,seq,v0,v1,...\\n`` lines in channel order.

    A ``#describe {json}`` line (same JSON as the DESCRIBE packet) sets the layout; other lines
    starting with ``#`` are comments. A line with the wrong number of values, a non-number or
    no layout yet is counted in ``stats.bad`` and skipped.
    """

    def __init__(self, layout: ChannelLayout | None = None, *,
                 opened_mid_stream: bool = True) -> None:
        self.layout = layout
        self._buffer = bytearray()
        self._overlong = opened_mid_stream  # the first line may be partial: skip it
        self.stats = ParserStats()

    def feed(self, data: bytes) -> list[Packet]:
        """Complete lines as packets: DESCRIBE for a ``#describe`` line, SAMPLE otherwise."""
        self.stats.bytes += len(data)
        self._buffer += data
        *lines, rest = self._buffer.split(b"\n")
        self._buffer = bytearray(rest)
        if len(self._buffer) > MAX_LINE:
            self.stats.bad["too_long"] += 1
            self._buffer.clear()
            self._overlong = True
        packets = []
        for line in lines:
            if self._overlong:
                self._overlong = False
                continue
            packet = self._line(bytes(line).strip())
            if packet is not None:
                packets.append(packet)
        return packets

    def _line(self, line: bytes) -> Packet | None:
        bad = self.stats.bad
        if not line:
            return None
        if line.startswith(b"#"):
            if line.startswith(b"#describe "):
                try:
                    self.layout = ChannelLayout.from_json(line[len(b"#describe "):])
                except GloveProtocolError:
                    bad["describe"] += 1
                    return None
                self.stats.packets += 1
                return Packet(DESCRIBE, 0, 0, line[len(b"#describe "):])
            return None
        if self.layout is None:
            bad["no_layout"] += 1
            return None
        parts = line.split(b",")
        dtype = self.layout.dtype
        expected = 2 + sum(c.count for c in self.layout.channels)
        if len(parts) != expected:
            bad["columns"] += 1
            return None
        try:
            t_us, seq = int(parts[0]), int(parts[1])
            values = np.array([float(p) for p in parts[2:]])
        except ValueError:
            bad["number"] += 1
            return None
        if not (0 <= t_us < 2 ** 32 and 0 <= seq < 2 ** 32) or not np.all(np.isfinite(values)):
            bad["range"] += 1
            return None
        record = np.zeros((), dtype)
        i = 0
        for c in self.layout.channels:
            chunk = values[i:i + c.count]
            info = np.iinfo(c.dtype) if np.dtype(c.dtype).kind in "ui" else None
            if info is not None and (np.any(chunk < info.min) or np.any(chunk > info.max)):
                bad["range"] += 1
                return None
            record[c.name] = chunk
            i += c.count
        self.stats.packets += 1
        return Packet(SAMPLE, seq, t_us, record.tobytes())


def csv_line(layout: ChannelLayout, seq: int, t_us: int, values: dict[str, Any]) -> bytes:
    """One CSV sample line (what a DIY firmware prints)."""
    cells = [str(t_us & 0xFFFFFFFF), str(seq & 0xFFFFFFFF)]
    for c in layout.channels:
        array = np.asarray(values[c.name], dtype=c.dtype).reshape(-1)
        cells += [f"{v:.6g}" if array.dtype.kind == "f" else str(int(v)) for v in array]
    return (",".join(cells) + "\n").encode()


class Unwrapper:
    """Extends a wrapping 32-bit counter (``seq``, ``t_us``) to an ever-increasing integer.

    Correct as long as consecutive values are less than half the range apart (35 minutes of
    ``t_us``); :meth:`reset` after a reconnect.
    """

    def __init__(self, bits: int = 32) -> None:
        self._mod = 1 << bits
        self._half = self._mod >> 1
        self.value: int | None = None

    def reset(self) -> None:
        self.value = None

    def __call__(self, raw: int) -> int:
        if self.value is None:
            self.value = raw
        else:
            delta = (raw - self.value) % self._mod
            if delta >= self._half:
                delta -= self._mod  # a small step backwards (reordered or repeated)
            self.value += delta
        return self.value
