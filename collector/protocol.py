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
import re
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

#: Most dimensions a field may have (numpy 1.x supports 32, numpy 2 supports 64).
MAX_NDIM = 32

#: A numpy array-protocol typestr such as ``|u1``, ``<u2``, ``<f4``, ``<M8[ns]``: byte order,
#: kind, item size, optional unit. Structured, sub-array and comma forms are not wire dtypes.
_TYPESTR = re.compile(r"[<>|=]?[a-zA-Z?][0-9]*(\[[0-9a-zA-Z]+\])?")

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
        # Not np.ascontiguousarray: it turns a zero-d array into shape (1,).
        array = np.asarray(array, order="C")
        if array.dtype.hasobject:
            raise ProtocolError(f"field '{name}': object dtypes cannot be sent")
        # An encoded field (e.g. JPEG) travels as its 1-D uint8 byte string.
        fields.append({"name": name, "dtype": array.dtype.str, "shape": list(array.shape),
                       "encoding": sample.encodings.get(name, RAW)})
        # A flat uint8 view, not ``array.data.cast("B")``: that fails for dtypes the buffer
        # protocol cannot describe (datetime64) or cannot cast (non-native byte order, complex).
        buffers.append(memoryview(array.reshape(-1).view(np.uint8))
                       if array.ndim and array.nbytes else array.tobytes())
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
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"topic is not UTF-8: {exc}") from None
    try:
        header = json.loads(bytes(_frame_bytes(frames[1])))
    except (TypeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"header is not UTF-8 JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError(f"header must be a JSON object, got {type(header).__name__}")
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
        _expect_topic(topic, f"{DESCRIBE}/{node}")
        _expect_frames(frames, 2)
        streams = _require(header, "streams", list)
        if not all(isinstance(s, dict) for s in streams):
            raise ProtocolError("header 'streams' must be a list of objects")
        return Describe(node=node, streams=streams, info=_optional(header, "info", dict) or {})
    if kind == EVENT:
        _expect_topic(topic, f"{EVENT}/{node}")
        _expect_frames(frames, 2)
        return Event(node=node, kind=_require(header, "kind", str),
                     t_host_ns=_require(header, "t_host_ns", int),
                     stream=_optional(header, "stream", str),
                     detail=_optional(header, "detail", dict) or {})
    return _decode_sample(header, node, topic, frames)


def _optional(header: dict, key: str, kind: type) -> Any:
    """``header[key]`` if present and not null, checked like :func:`_require`; else ``None``."""
    if header.get(key) is None:
        return None
    return _require(header, key, kind)


def _expect_topic(topic: str, expected: str) -> None:
    # Subscribers filter on the topic prefix, so it must say exactly what the header says.
    if topic != expected:
        raise ProtocolError(f"topic '{topic}' does not match the header (expected '{expected}')")


def _expect_frames(frames: Sequence, count: int) -> None:
    if len(frames) != count:
        raise ProtocolError(f"expected {count} frames, got {len(frames)}")


def _decode_sample(header: dict, node: str, topic: str, frames: Sequence) -> Sample:
    stream = _require(header, "stream", str)
    if not stream.startswith(f"{node}/"):
        # Stream names are "<node>/<name>": two nodes can never mix their seq counters.
        raise ProtocolError(f"stream '{stream}' does not belong to node '{node}'")
    _expect_topic(topic, f"{SAMPLE}/{stream}")
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
        if name in arrays:
            raise ProtocolError(f"field '{name}' appears twice")
        encoding = spec.get("encoding", RAW)
        if not isinstance(encoding, str) or encoding not in ENCODINGS:
            raise ProtocolError(f"field '{name}': unknown encoding {encoding!r}")
        typestr = _require(spec, "dtype", str)
        if not _TYPESTR.fullmatch(typestr):
            raise ProtocolError(f"field '{name}': bad dtype '{typestr}': not an array-protocol "
                                f"typestr such as '|u1', '<u2' or '<f4'")
        try:
            dtype = np.dtype(typestr)
        except (TypeError, ValueError) as exc:
            raise ProtocolError(f"field '{name}': bad dtype '{typestr}': {exc}") from None
        if dtype.hasobject:
            raise ProtocolError(f"field '{name}': object dtypes are not allowed")
        if dtype.itemsize == 0:
            raise ProtocolError(f"field '{name}': dtype '{typestr}' has no item size")
        shape = _require(spec, "shape", list)
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
            raise ProtocolError(f"field '{name}': shape must be non-negative integers, "
                                f"got {shape}")
        if len(shape) > MAX_NDIM:
            raise ProtocolError(f"field '{name}': {len(shape)} dimensions, at most {MAX_NDIM}")
        buffer = _frame_bytes(frame)
        expected = math.prod(shape) * dtype.itemsize
        if buffer.nbytes != expected:
            raise ProtocolError(f"field '{name}': buffer has {buffer.nbytes} bytes, "
                                f"dtype {dtype.str} and shape {tuple(shape)} need {expected}")
        try:
            arrays[name] = np.frombuffer(buffer, dtype=dtype).reshape(shape)
        except ValueError as exc:  # e.g. an empty array with a dimension numpy cannot index
            raise ProtocolError(f"field '{name}': shape {tuple(shape)}: {exc}") from None
        encodings[name] = encoding
    return Sample(node=node, stream=stream, seq=seq, t_device_ns=t_device, t_host_ns=t_host,
                  fields=arrays, encodings=encodings)


def now_ns() -> int:
    """Host wall-clock time in ns: the clock every ``t_host_ns`` on the bus uses."""
    return time.time_ns()
