"""The collector wire protocol: the one reference implementation.

Every message on the bus is a ZeroMQ multipart message::

    [topic, header, *buffers]

* ``topic``  -- UTF-8 bytes, ``"<type>/<node>[/<stream>]"``; subscribers filter on its prefix.
* ``header`` -- UTF-8 JSON object with ``"v"`` (protocol version) and ``"type"``.
* ``buffers``-- raw, C-contiguous array bytes, one per field declared in the header, sent and
  received without copying (no pickle, no base64).

Message types:

``sample``
    One sample of one stream: ``node``, ``stream``, ``seq`` (per stream, from 0, +1 per sample),
    ``t_device_ns`` (the device's own clock), ``t_host_ns`` (host capture time, ``time.time_ns``
    clock) and ``fields``: a list of ``{"name", "dtype", "shape", "encoding"}``, one per buffer.
``describe``
    A node's stream declarations (see :class:`collector.streams.StreamSpec`), sent on request
    over the node's control socket and published when the node (re)connects.
``event``
    Something that happened to a node: ``kind`` (connected, disconnected, stalled, error, ...),
    ``stream`` (optional), ``t_host_ns`` and a free-form ``detail`` object.

``docs/wire-protocol.md`` describes the same thing for people writing nodes in other languages.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

PROTOCOL_VERSION = 1

SAMPLE = "sample"
DESCRIBE = "describe"
EVENT = "event"
MESSAGE_TYPES = (SAMPLE, DESCRIBE, EVENT)

#: Encodings a field's buffer may carry on the wire.
RAW = "raw"
JPEG = "jpeg"
ENCODINGS = (RAW, JPEG)

log = logging.getLogger(__name__)


class ProtocolError(ValueError):
    """A message that does not follow the wire protocol; the text says exactly what is wrong."""


@dataclass
class Sample:
    """One sample of one stream: named arrays and the two timestamps."""

    node: str
    stream: str
    seq: int
    t_device_ns: int
    t_host_ns: int
    fields: dict[str, np.ndarray]
    encodings: dict[str, str] = field(default_factory=dict)

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.fields.values())


@dataclass
class Describe:
    """A node's declaration of its streams (a list of ``StreamSpec.to_dict()`` objects)."""

    node: str
    streams: list[dict[str, Any]]
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Event:
    """A node-level happening: connection state changes, stalls, errors."""

    node: str
    kind: str
    t_host_ns: int
    stream: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


Message = Sample | Describe | Event


def _json(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def encode_sample(sample: Sample) -> list:
    """Frames for ``sample``: the arrays go as buffers without copying when contiguous."""
    fields = []
    buffers: list = []
    for name, array in sample.fields.items():
        array = np.ascontiguousarray(array)
        # An encoded field (e.g. JPEG) travels as its 1-D uint8 byte string.
        fields.append({"name": name, "dtype": array.dtype.str, "shape": list(array.shape),
                       "encoding": sample.encodings.get(name, RAW)})
        buffers.append(array.data.cast("B") if array.ndim and array.nbytes else array.tobytes())
    header = {
        "v": PROTOCOL_VERSION, "type": SAMPLE, "node": sample.node, "stream": sample.stream,
        "seq": int(sample.seq), "t_device_ns": int(sample.t_device_ns),
        "t_host_ns": int(sample.t_host_ns), "fields": fields,
    }
    return [f"{SAMPLE}/{sample.stream}".encode(), _json(header), *buffers]


def encode_describe(describe: Describe) -> list[bytes]:
    header = {"v": PROTOCOL_VERSION, "type": DESCRIBE, "node": describe.node,
              "streams": describe.streams, "info": describe.info}
    return [f"{DESCRIBE}/{describe.node}".encode(), _json(header)]


def encode_event(event: Event) -> list[bytes]:
    header = {"v": PROTOCOL_VERSION, "type": EVENT, "node": event.node, "kind": event.kind,
              "stream": event.stream, "t_host_ns": int(event.t_host_ns), "detail": event.detail}
    return [f"{EVENT}/{event.node}".encode(), _json(header)]


def encode(message: Message) -> list:
    """Frames for any message."""
    if isinstance(message, Sample):
        return encode_sample(message)
    if isinstance(message, Describe):
        return encode_describe(message)
    if isinstance(message, Event):
        return encode_event(message)
    raise TypeError(f"cannot encode {type(message).__name__}")


def _require(header: dict, key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in header:
        raise ProtocolError(f"header has no '{key}'")
    value = header[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError(f"header '{key}' must be {getattr(kind, '__name__', kind)}, "
                            f"got {type(value).__name__}")
    return value


def _frame_bytes(frame) -> memoryview:
    # zmq.Frame (copy=False) exposes .buffer; bytes and memoryview are used as they are.
    buffer = getattr(frame, "buffer", frame)
    return memoryview(buffer)


def decode(frames: Sequence) -> Message:
    """Parse a multipart message; raise :class:`ProtocolError` saying what is wrong.

    Sample buffers become numpy arrays that share memory with the received frames.
    """
    if len(frames) < 2:
        raise ProtocolError(f"expected at least 2 frames (topic, header), got {len(frames)}")
    try:
        topic = bytes(_frame_bytes(frames[0])).decode()
        header = json.loads(bytes(_frame_bytes(frames[1])))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"header is not UTF-8 JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("header must be a JSON object")
    version = _require(header, "v", int)
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"unknown protocol version {version} (this reader speaks "
                            f"{PROTOCOL_VERSION})")
    kind = _require(header, "type", str)
    if kind not in MESSAGE_TYPES:
        raise ProtocolError(f"unknown message type '{kind}'")
    node = _require(header, "node", str)
    if not topic.startswith(f"{kind}/"):
        raise ProtocolError(f"topic '{topic}' does not match message type '{kind}'")
    if kind == DESCRIBE:
        _expect_frames(frames, 2)
        streams = _require(header, "streams", list)
        return Describe(node=node, streams=streams, info=header.get("info") or {})
    if kind == EVENT:
        _expect_frames(frames, 2)
        stream = header.get("stream")
        return Event(node=node, kind=_require(header, "kind", str),
                     t_host_ns=_require(header, "t_host_ns", int), stream=stream,
                     detail=header.get("detail") or {})
    return _decode_sample(header, node, frames)


def _expect_frames(frames: Sequence, count: int) -> None:
    if len(frames) != count:
        raise ProtocolError(f"expected {count} frames, got {len(frames)}")


def _decode_sample(header: dict, node: str, frames: Sequence) -> Sample:
    stream = _require(header, "stream", str)
    seq = _require(header, "seq", int)
    t_device = _require(header, "t_device_ns", int)
    t_host = _require(header, "t_host_ns", int)
    specs = _require(header, "fields", list)
    _expect_frames(frames, 2 + len(specs))
    arrays: dict[str, np.ndarray] = {}
    encodings: dict[str, str] = {}
    for spec, frame in zip(specs, frames[2:]):
        if not isinstance(spec, dict):
            raise ProtocolError("each field must be an object")
        name = _require(spec, "name", str)
        encoding = spec.get("encoding", RAW)
        if encoding not in ENCODINGS:
            raise ProtocolError(f"field '{name}': unknown encoding '{encoding}'")
        try:
            dtype = np.dtype(_require(spec, "dtype", str))
        except TypeError as exc:
            raise ProtocolError(f"field '{name}': bad dtype: {exc}") from None
        if dtype.hasobject:
            raise ProtocolError(f"field '{name}': object dtypes are not allowed")
        shape = _require(spec, "shape", list)
        if not all(isinstance(n, int) and n >= 0 for n in shape):
            raise ProtocolError(f"field '{name}': shape must be non-negative integers")
        buffer = _frame_bytes(frame)
        expected = math.prod(shape) * dtype.itemsize
        if buffer.nbytes != expected:
            raise ProtocolError(f"field '{name}': buffer has {buffer.nbytes} bytes, "
                                f"dtype {dtype.str} and shape {tuple(shape)} need {expected}")
        arrays[name] = np.frombuffer(buffer, dtype=dtype).reshape(shape)
        encodings[name] = encoding
    return Sample(node=node, stream=stream, seq=seq, t_device_ns=t_device, t_host_ns=t_host,
                  fields=arrays, encodings=encodings)


def now_ns() -> int:
    """Host wall-clock time in ns: the clock every ``t_host_ns`` on the bus uses."""
    return time.time_ns()
