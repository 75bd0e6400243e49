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
    Since version 2, a batch of ``count`` consecutive samples of one stream (:class:`SampleBatch`):
    ``seq``, ``t_device_ns`` and ``t_host_ns`` are lists of ``count`` integers, ``fields`` gives
    one sample's dtype and shape, and each buffer holds ``count`` samples of its field one after
    the other. Raw fields only: an encoded field (JPEG) has a length of its own per sample.
``describe``
    A node's stream declarations (see :class:`collector.wire.streams.StreamSpec`), sent on request
    over the node's control socket and published when the node (re)connects.
``event``
    Something that happened to a node: ``kind`` (connected, disconnected, stalled, error, ...),
    ``stream`` (optional), ``t_host_ns`` and a free-form ``detail`` object.

Versions: a writer marks each message with the oldest version that can say it (version 1 for a
single sample, a describe or an event, so readers that speak only 1 keep reading them; version 2
for a batch); a reader accepts :data:`SUPPORTED_VERSIONS`.

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

#: The newest version this module speaks: 2 adds batched samples (``count``) to version 1.
PROTOCOL_VERSION = 2
#: What a writer puts in every message but a batch, so that version-1 readers still read them.
BASE_VERSION = 1
#: The first version with :class:`SampleBatch` (``"count"`` in a sample's header).
BATCH_VERSION = 2
#: Versions a reader accepts.
SUPPORTED_VERSIONS = (1, 2)

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

# Limits a reader enforces before anything reaches a writer (docs/wire-protocol.md, section 3.4).
#: Longest topic frame, bytes.
MAX_TOPIC_BYTES = 256
#: Longest header frame of a sample or event, bytes.
MAX_HEADER_BYTES = 64 * 1024
#: Longest header frame of a describe (declarations carry intrinsics, channel names), bytes.
MAX_DESCRIBE_BYTES = 1024 * 1024
#: Most fields (buffers) in one sample.
MAX_FIELDS = 64
#: Largest buffer of one field, bytes (a 4K RGB frame is 25 MB).
MAX_BUFFER_BYTES = 256 * 1024 * 1024
#: Most streams one describe may declare.
MAX_STREAMS = 64
#: Most samples in one batch (three lists of this many int64 still fit in MAX_HEADER_BYTES).
MAX_BATCH_SAMPLES = 512
#: ``seq`` is an unsigned count that fits an int64; timestamps are int64 ns.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: Longest error text; a sender's strings are clipped well below it, never copied whole.
MAX_ERROR_TEXT = 300

#: Why a message was rejected: :attr:`ProtocolError.reason`, what receivers count by.
BAD_HEADER = "bad_header"        # not a UTF-8 JSON object, wrong key types, unknown version/type
BAD_TOPIC = "bad_topic"          # not UTF-8, or does not match the header
BAD_FIELD = "bad_field"          # a field's dtype, shape, encoding or buffer is wrong
OUT_OF_RANGE = "out_of_range"    # an integer outside int64 (or seq < 0)
BAD_DESCRIBE = "bad_describe"    # a stream declaration that StreamSpec refuses
FORGED_SENDER = "forged_sender"  # a node speaking for another node (collector.wire.bus)
TOO_LARGE = "too_large"          # over one of the size limits above
BAD_FRAMES = "bad_frames"        # the wrong number of frames
BAD_REPLY = "bad_reply"          # a control reply that is not one JSON object (collector.wire.bus)
REASONS = (BAD_HEADER, BAD_TOPIC, BAD_FIELD, OUT_OF_RANGE, BAD_DESCRIBE, FORGED_SENDER,
           TOO_LARGE, BAD_FRAMES, BAD_REPLY)

#: A numpy array-protocol typestr such as ``|u1``, ``<u2``, ``<f4``, ``<M8[ns]``: byte order,
#: kind, item size, optional unit. Structured, sub-array and comma forms are not wire dtypes.
_TYPESTR = re.compile(r"[<>|=]?[a-zA-Z?][0-9]*(\[[0-9a-zA-Z]+\])?")

log = logging.getLogger(__name__)


class ProtocolError(ValueError):
    """A message that does not follow the wire protocol; the text says exactly what is wrong,
    ``reason`` (one of :data:`REASONS`) says which kind of wrong, for counting."""

    def __init__(self, message: str, reason: str = BAD_HEADER) -> None:
        super().__init__(clip(message, MAX_ERROR_TEXT))
        self.reason = reason


def clip(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut."""
    text = str(text)
    if len(text) <= limit:
        return text
    tail = f"... ({len(text)} chars)"
    return text[:max(0, limit - len(tail))] + tail


def _show(value: Any, limit: int = 60) -> str:
    """A sender's value for an error text: ``repr`` clipped, so no message grows with input."""
    return clip(repr(value), limit)


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
class SampleBatch:
    """``len(seq)`` consecutive samples of one stream in one message (protocol version 2).

    Each array of ``fields`` holds the samples along its first axis, shape ``(count,
    *sample_shape)``; :meth:`samples` gives them back one by one. Raw fields only: an encoded
    field (JPEG) has a length of its own per sample and is sent as single samples.
    """

    node: str
    stream: str
    seq: list[int]
    t_device_ns: list[int]
    t_host_ns: list[int]
    fields: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.seq)

    def samples(self) -> list[Sample]:
        """The samples in order; their arrays are views into :attr:`fields` (nothing copied)."""
        fields = self.fields.items()
        # ``array[i, ...]``, not ``array[i]``: a scalar field stays a 0-d array, as sent alone.
        return [Sample(node=self.node, stream=self.stream, seq=seq, t_device_ns=t_device,
                       t_host_ns=t_host, fields={name: array[i, ...] for name, array in fields},
                       encodings={name: RAW for name in self.fields})
                for i, (seq, t_device, t_host)
                in enumerate(zip(self.seq, self.t_device_ns, self.t_host_ns))]

    @classmethod
    def of(cls, samples: Sequence[Sample]) -> "SampleBatch":
        """Stack ``samples`` of one stream into a batch (the arrays are copied once).

        Raises:
            ProtocolError: no samples or more than :data:`MAX_BATCH_SAMPLES`, samples of
                different streams, a field missing, of another dtype or shape than in the first
                sample, or encoded (reason ``bad_field``).
        """
        if not 1 <= len(samples) <= MAX_BATCH_SAMPLES:
            raise ProtocolError(f"a batch holds 1 .. {MAX_BATCH_SAMPLES} samples, got "
                                f"{len(samples)}", TOO_LARGE if samples else OUT_OF_RANGE)
        first = samples[0]
        for sample in samples:
            if ((sample.node, sample.stream) != (first.node, first.stream)
                    or sample.fields.keys() != first.fields.keys()):
                raise ProtocolError(f"a batch holds samples of one stream with the same fields; "
                                    f"{_show(sample.stream)} seq {sample.seq} differs from "
                                    f"{_show(first.stream)} seq {first.seq}", BAD_FIELD)
            for name in sample.fields:
                encoding = sample.encodings.get(name, RAW)
                if encoding != RAW:
                    raise ProtocolError(f"field {_show(name)} is {_show(encoding)}-encoded: "
                                        "encoded fields have a length of their own per sample "
                                        "and cannot be batched; send such samples one by one",
                                        BAD_FIELD)
        fields: dict[str, np.ndarray] = {}
        for name in first.fields:
            column = [np.asarray(sample.fields[name]) for sample in samples]
            for sample, array in zip(samples, column):
                if array.dtype != column[0].dtype or array.shape != column[0].shape:
                    raise ProtocolError(f"field {_show(name)}: seq {sample.seq} is "
                                        f"{array.dtype.str} {array.shape}, seq {first.seq} "
                                        f"{column[0].dtype.str} {column[0].shape}: a batch's "
                                        "samples share each field's dtype and shape", BAD_FIELD)
            fields[name] = np.stack(column)
        return cls(node=first.node, stream=first.stream, seq=[s.seq for s in samples],
                   t_device_ns=[s.t_device_ns for s in samples],
                   t_host_ns=[s.t_host_ns for s in samples], fields=fields)


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


Message = Sample | SampleBatch | Describe | Event


def _json(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def _wire_buffer(array: np.ndarray):
    """``array``'s bytes for a buffer frame, without copying when it is C-contiguous."""
    # A flat uint8 view, not ``array.data.cast("B")``: that fails for dtypes the buffer
    # protocol cannot describe (datetime64) or cannot cast (non-native byte order, complex).
    return (memoryview(array.reshape(-1).view(np.uint8)) if array.ndim and array.nbytes
            else array.tobytes())


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
        buffers.append(_wire_buffer(array))
    header = {
        "v": BASE_VERSION, "type": SAMPLE, "node": sample.node, "stream": sample.stream,
        "seq": int(sample.seq), "t_device_ns": int(sample.t_device_ns),
        "t_host_ns": int(sample.t_host_ns), "fields": fields,
    }
    return [f"{SAMPLE}/{sample.stream}".encode(), _json(header), *buffers]


def encode_batch(batch: SampleBatch) -> list:
    """Frames for ``batch`` (version 2): one buffer per field holding every sample's array."""
    count = len(batch.seq)
    if not 1 <= count <= MAX_BATCH_SAMPLES:
        raise ProtocolError(f"a batch holds 1 .. {MAX_BATCH_SAMPLES} samples, got {count}",
                            TOO_LARGE if count else OUT_OF_RANGE)
    if not len(batch.t_device_ns) == len(batch.t_host_ns) == count:
        raise ProtocolError(f"a batch of {count} seq needs as many t_device_ns and t_host_ns, "
                            f"got {len(batch.t_device_ns)} and {len(batch.t_host_ns)}")
    fields = []
    buffers: list = []
    for name, array in batch.fields.items():
        array = np.asarray(array, order="C")
        if array.dtype.hasobject:
            raise ProtocolError(f"field '{name}': object dtypes cannot be sent")
        if array.ndim == 0 or array.shape[0] != count:
            raise ProtocolError(f"field '{name}' has shape {array.shape}: a batch's field holds "
                                f"its {count} samples along the first axis", BAD_FIELD)
        fields.append({"name": name, "dtype": array.dtype.str, "shape": list(array.shape[1:]),
                       "encoding": RAW})
        buffers.append(_wire_buffer(array))
    header = {
        "v": BATCH_VERSION, "type": SAMPLE, "node": batch.node, "stream": batch.stream,
        "count": count, "seq": [int(v) for v in batch.seq],
        "t_device_ns": [int(v) for v in batch.t_device_ns],
        "t_host_ns": [int(v) for v in batch.t_host_ns], "fields": fields,
    }
    return [f"{SAMPLE}/{batch.stream}".encode(), _json(header), *buffers]


def encode_describe(describe: Describe) -> list[bytes]:
    header = {"v": BASE_VERSION, "type": DESCRIBE, "node": describe.node,
              "streams": describe.streams, "info": describe.info}
    return [f"{DESCRIBE}/{describe.node}".encode(), _json(header)]


def encode_event(event: Event) -> list[bytes]:
    header = {"v": BASE_VERSION, "type": EVENT, "node": event.node, "kind": event.kind,
              "stream": event.stream, "t_host_ns": int(event.t_host_ns), "detail": event.detail}
    return [f"{EVENT}/{event.node}".encode(), _json(header)]


def encode(message: Message) -> list:
    """Frames for any message."""
    if isinstance(message, Sample):
        return encode_sample(message)
    if isinstance(message, SampleBatch):
        return encode_batch(message)
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


def _require_int64(header: dict, key: str, low: int = INT64_MIN) -> int:
    """An integer that fits the int64 datasets it is written to (``low`` .. 2**63-1)."""
    value = _require(header, key, int)
    if not low <= value <= INT64_MAX:
        bounds = "0 .. 2**63-1" if low == 0 else "-2**63 .. 2**63-1, a 64-bit signed integer"
        raise ProtocolError(f"header '{key}' = {clip(str(value), 40)} is out of range ({bounds})",
                            OUT_OF_RANGE)
    return value


def _require_field(spec: dict, key: str, kind: type) -> Any:
    try:
        return _require(spec, key, kind)
    except ProtocolError as exc:
        raise ProtocolError(str(exc), BAD_FIELD) from None


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {clip(text, 30)} is not finite")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (numbers in a header must be finite)")


def _frame_bytes(frame) -> memoryview:
    # zmq.Frame (copy=False) exposes .buffer; bytes and memoryview are used as they are.
    buffer = getattr(frame, "buffer", frame)
    return memoryview(buffer)


def decode(frames: Sequence) -> Message:
    """Parse a multipart message; raise :class:`ProtocolError` saying what is wrong.

    Sample buffers become numpy arrays that share memory with the received frames. Every
    number is range-checked and every size bounded (the ``MAX_*`` limits above) here, so what
    this returns can go to a writer as it is.
    """
    if len(frames) < 2:
        raise ProtocolError(f"expected at least 2 frames (topic, header), got {len(frames)}",
                            BAD_FRAMES)
    if len(frames) > 2 + MAX_FIELDS:
        raise ProtocolError(f"{len(frames)} frames, at most {2 + MAX_FIELDS} "
                            f"(topic, header and at most {MAX_FIELDS} fields)", TOO_LARGE)
    topic_bytes = _frame_bytes(frames[0])
    if topic_bytes.nbytes > MAX_TOPIC_BYTES:
        raise ProtocolError(f"topic is {topic_bytes.nbytes} bytes, at most {MAX_TOPIC_BYTES}",
                            TOO_LARGE)
    try:
        topic = bytes(topic_bytes).decode()
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"topic is not UTF-8: {exc}", BAD_TOPIC) from None
    header_bytes = _frame_bytes(frames[1])
    limit = MAX_DESCRIBE_BYTES if topic.startswith(f"{DESCRIBE}/") else MAX_HEADER_BYTES
    if header_bytes.nbytes > limit:
        raise ProtocolError(f"header is {header_bytes.nbytes} bytes, at most {limit}", TOO_LARGE)
    try:
        header = json.loads(bytes(header_bytes), parse_float=_finite_float,
                            parse_constant=_no_constant)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"header is not UTF-8 JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError(f"header must be a JSON object, got {type(header).__name__}")
    version = _require(header, "v", int)
    if version not in SUPPORTED_VERSIONS:
        raise ProtocolError(f"unknown protocol version {clip(str(version), 30)} (this reader "
                            f"speaks {' and '.join(map(str, SUPPORTED_VERSIONS))})")
    kind = _require(header, "type", str)
    if kind not in MESSAGE_TYPES:
        raise ProtocolError(f"unknown message type {_show(kind)}")
    node = _require(header, "node", str)
    if not topic.startswith(f"{kind}/"):
        raise ProtocolError(f"topic {_show(topic)} does not match message type '{kind}'", BAD_TOPIC)
    if kind == DESCRIBE:
        _expect_topic(topic, f"{DESCRIBE}/{node}")
        _expect_frames(frames, 2)
        streams = _require(header, "streams", list)
        if not all(isinstance(s, dict) for s in streams):
            raise ProtocolError("header 'streams' must be a list of objects")
        info = _optional(header, "info", dict) or {}
        _check_declarations(node, streams)
        return Describe(node=node, streams=streams, info=info)
    if header_bytes.nbytes > MAX_HEADER_BYTES:
        raise ProtocolError(f"header is {header_bytes.nbytes} bytes, at most {MAX_HEADER_BYTES}",
                            TOO_LARGE)
    if kind == EVENT:
        _expect_topic(topic, f"{EVENT}/{node}")
        _expect_frames(frames, 2)
        return Event(node=node, kind=_require(header, "kind", str),
                     t_host_ns=_require_int64(header, "t_host_ns"),
                     stream=_optional(header, "stream", str),
                     detail=_optional(header, "detail", dict) or {})
    return _decode_sample(header, version, node, topic, frames)


def _check_declarations(node: str, streams: list[dict]) -> None:
    """Each declaration as :class:`StreamSpec` takes it, naming only this node's streams."""
    from collector.wire.streams import StreamSpec  # streams is plain data; imported here to keep this first

    if len(streams) > MAX_STREAMS:
        raise ProtocolError(f"describe from node {_show(node)}: {len(streams)} streams, at most "
                            f"{MAX_STREAMS}", TOO_LARGE)
    seen: set[str] = set()
    where = f"describe from node {_show(node)}"
    for data in streams:
        try:
            spec = StreamSpec.from_dict(data)
        except ValueError as exc:
            raise ProtocolError(f"{where}: {exc}", BAD_DESCRIBE) from None
        if spec.node != node:
            raise ProtocolError(f"{where}: stream '{spec.name}' does not belong to node "
                                f"{_show(node)}", BAD_DESCRIBE)
        if spec.name in seen:
            raise ProtocolError(f"describe from node {_show(node)} declares stream "
                                f"'{spec.name}' twice", BAD_DESCRIBE)
        seen.add(spec.name)


def _optional(header: dict, key: str, kind: type) -> Any:
    """``header[key]`` if present and not null, checked like :func:`_require`; else ``None``."""
    if header.get(key) is None:
        return None
    return _require(header, key, kind)


def _expect_topic(topic: str, expected: str) -> None:
    # Subscribers filter on the topic prefix, so it must say exactly what the header says.
    if topic != expected:
        raise ProtocolError(f"topic {_show(topic)} does not match the header (expected "
                            f"{_show(expected)})", BAD_TOPIC)


def _expect_frames(frames: Sequence, count: int) -> None:
    if len(frames) != count:
        raise ProtocolError(f"expected {count} frames, got {len(frames)}", BAD_FRAMES)


def _require_int64_list(header: dict, key: str, count: int, low: int = INT64_MIN) -> list[int]:
    """A batch's list of ``count`` integers, each checked like :func:`_require_int64`."""
    values = _require(header, key, list)
    if len(values) != count:
        raise ProtocolError(f"header '{key}' has {len(values)} values, 'count' says {count}")
    for value in values:
        if type(value) is not int:  # JSON gives int, float, bool, str ...: only int will do
            raise ProtocolError(f"header '{key}' must be a list of integers, got "
                                f"{type(value).__name__} {_show(value, 30)}")
    if values and (min(values) < low or max(values) > INT64_MAX):
        bad = next(v for v in values if not low <= v <= INT64_MAX)
        bounds = "0 .. 2**63-1" if low == 0 else "-2**63 .. 2**63-1, a 64-bit signed integer"
        raise ProtocolError(f"header '{key}' holds {clip(str(bad), 40)}, out of range ({bounds})",
                            OUT_OF_RANGE)
    return values


def _decode_sample(header: dict, version: int, node: str, topic: str,
                   frames: Sequence) -> Sample | SampleBatch:
    stream = _require(header, "stream", str)
    if not stream.startswith(f"{node}/"):
        # Stream names are "<node>/<name>": two nodes can never mix their seq counters.
        raise ProtocolError(f"stream {_show(stream)} does not belong to node {_show(node)}",
                            BAD_TOPIC)
    _expect_topic(topic, f"{SAMPLE}/{stream}")
    if "count" not in header:
        seq = _require_int64(header, "seq", low=0)
        t_device = _require_int64(header, "t_device_ns")
        t_host = _require_int64(header, "t_host_ns")
        arrays, encodings = _decode_fields(header, frames, None)
        return Sample(node=node, stream=stream, seq=seq, t_device_ns=t_device, t_host_ns=t_host,
                      fields=arrays, encodings=encodings)
    if version < BATCH_VERSION:
        # A version-1 reader ignores unknown keys and would misread the lists: hence version 2.
        raise ProtocolError(f"a batch ('count' in a sample) needs protocol version "
                            f"{BATCH_VERSION}, the header says {version}")
    count = _require(header, "count", int)
    if count < 1:
        raise ProtocolError(f"header 'count' = {clip(str(count), 40)} is out of range (a batch "
                            f"holds 1 .. {MAX_BATCH_SAMPLES} samples)", OUT_OF_RANGE)
    if count > MAX_BATCH_SAMPLES:
        raise ProtocolError(f"header 'count' = {clip(str(count), 40)}: a batch holds at most "
                            f"{MAX_BATCH_SAMPLES} samples", TOO_LARGE)
    seq = _require_int64_list(header, "seq", count, low=0)
    t_device = _require_int64_list(header, "t_device_ns", count)
    t_host = _require_int64_list(header, "t_host_ns", count)
    arrays, _ = _decode_fields(header, frames, count)
    return SampleBatch(node=node, stream=stream, seq=seq, t_device_ns=t_device,
                       t_host_ns=t_host, fields=arrays)


def _decode_fields(header: dict, frames: Sequence,
                   count: int | None) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The arrays of a sample's buffers (``count`` None) or a batch's (``count`` samples along
    the first axis, raw only), sharing memory with the frames; and each field's encoding."""
    specs = _require(header, "fields", list)
    if len(specs) > MAX_FIELDS:
        raise ProtocolError(f"{len(specs)} fields, at most {MAX_FIELDS} fields", TOO_LARGE)
    _expect_frames(frames, 2 + len(specs))
    arrays: dict[str, np.ndarray] = {}
    encodings: dict[str, str] = {}
    for spec, frame in zip(specs, frames[2:]):
        if not isinstance(spec, dict):
            raise ProtocolError("each field must be an object", BAD_FIELD)
        name = _require_field(spec, "name", str)
        shown = _show(name)
        if name in arrays:
            raise ProtocolError(f"field {shown} appears twice", BAD_FIELD)
        encoding = spec.get("encoding", RAW)
        if not isinstance(encoding, str) or encoding not in ENCODINGS:
            raise ProtocolError(f"field {shown}: unknown encoding {_show(encoding)}", BAD_FIELD)
        if count is not None and encoding != RAW:
            raise ProtocolError(f"field {shown}: encoding '{encoding}' in a batch; encoded fields "
                                "have a length of their own per sample and are sent one sample "
                                "per message", BAD_FIELD)
        typestr = _require_field(spec, "dtype", str)
        if not _TYPESTR.fullmatch(typestr) or len(typestr) > 16:
            raise ProtocolError(f"field {shown}: bad dtype {_show(typestr)}: not an array-protocol "
                                f"typestr such as '|u1', '<u2' or '<f4'", BAD_FIELD)
        try:
            dtype = np.dtype(typestr)
        except (TypeError, ValueError) as exc:
            raise ProtocolError(f"field {shown}: bad dtype '{typestr}': {exc}", BAD_FIELD) from None
        if dtype.hasobject:
            raise ProtocolError(f"field {shown}: object dtypes are not allowed", BAD_FIELD)
        if dtype.itemsize == 0:
            raise ProtocolError(f"field {shown}: dtype '{typestr}' has no item size", BAD_FIELD)
        shape = _require_field(spec, "shape", list)
        if len(shape) > MAX_NDIM - (count is not None):
            raise ProtocolError(f"field {shown}: {len(shape)} dimensions, at most "
                                f"{MAX_NDIM - (count is not None)}", BAD_FIELD)
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
            raise ProtocolError(f"field {shown}: shape must be non-negative integers, "
                                f"got {_show(shape)}", BAD_FIELD)
        buffer = _frame_bytes(frame)
        if buffer.nbytes > MAX_BUFFER_BYTES:
            raise ProtocolError(f"field {shown}: {buffer.nbytes} bytes, at most {MAX_BUFFER_BYTES}",
                                TOO_LARGE)
        if count is not None:
            shape = [count, *shape]
        expected = math.prod(shape) * dtype.itemsize
        if buffer.nbytes != expected:
            per = "" if count is None else f" ({count} samples)"
            raise ProtocolError(f"field {shown}: buffer has {buffer.nbytes} bytes, dtype "
                                f"{dtype.str} and shape {clip(str(tuple(shape)), 80)}{per} need "
                                f"{clip(str(expected), 40)}", BAD_FIELD)
        try:
            array = np.frombuffer(buffer, dtype=dtype).reshape(shape)
            # Read-only: the buffer is the received message's own (pyzmq >= 26 hands out writable
            # views of it), and whoever keeps a frame (the episode writer, the pre-roll) may then
            # keep it as it is instead of copying it in case its producer reuses it.
            array.flags.writeable = False
            arrays[name] = array
        except ValueError as exc:  # e.g. an empty array with a dimension numpy cannot index
            raise ProtocolError(f"field {shown}: shape {clip(str(tuple(shape)), 80)}: {exc}",
                                BAD_FIELD) from None
        encodings[name] = encoding
    return arrays, encodings


def now_ns() -> int:
    """Host wall-clock time in ns: the clock every ``t_host_ns`` on the bus uses."""
    return time.time_ns()
