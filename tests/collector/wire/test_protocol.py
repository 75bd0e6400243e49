"""The wire protocol: round trips, zero-copy decoding, and an exact error for every malformed case."""

from __future__ import annotations

import json

import numpy as np
import pytest

from collector.wire import protocol
from collector.wire.protocol import (
    BASE_VERSION,
    Describe,
    Event,
    ProtocolError,
    Sample,
    decode,
    encode,
)


def _sample(**fields) -> Sample:
    return Sample(node="cam0", stream="cam0/color", seq=7, t_device_ns=123_456_789,
                  t_host_ns=1_700_000_000_000_000_000, fields=fields)


def _roundtrip(message):
    return decode(encode(message))


def _frames_with_header(frames: list, **changes) -> list:
    """``frames`` with the header's keys replaced (``None`` deletes a key)."""
    header = json.loads(bytes(frames[1]))
    for key, value in changes.items():
        if value is None:
            header.pop(key, None)
        else:
            header[key] = value
    return [frames[0], json.dumps(header).encode(), *frames[2:]]


def _frames_with_field(frames: list, index: int = 0, **changes) -> list:
    header = json.loads(bytes(frames[1]))
    for key, value in changes.items():
        if value is None:
            header["fields"][index].pop(key, None)
        else:
            header["fields"][index][key] = value
    return [frames[0], json.dumps(header).encode(), *frames[2:]]


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def sample_frames(rng) -> list:
    return encode(_sample(color=rng.integers(0, 255, (4, 5, 3), dtype=np.uint8),
                          depth=rng.integers(0, 65535, (4, 5), dtype=np.uint16)))


# ----------------------------------------------------------------------------- round trips


def test_sample_roundtrip_many_fields(rng):
    fields = {
        "color": rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),
        "depth": rng.integers(0, 65536, (480, 640), dtype=np.uint16),
        "joints": rng.standard_normal(15).astype(np.float32),
        "buttons": np.array([0, 1], dtype=np.uint8),
        "scalar": np.array(3.5, dtype=np.float64),          # zero-d
        "empty": np.zeros((0, 3), dtype=np.float32),         # empty
        "nothing": np.zeros((0,), dtype=np.uint8),
        "stamp": np.array(["2024-01-01T00:00:00"], dtype="datetime64[ns]"),
        "big_endian": np.arange(6, dtype=">u2").reshape(2, 3),
        "complex": np.array([1 + 2j, 3 - 4j], dtype=np.complex64),
        "flags": np.array([True, False, True]),
    }
    sample = Sample(node="cam0", stream="cam0/color", seq=42, t_device_ns=-5,
                    t_host_ns=1_700_000_000_123_456_789, fields=fields,
                    encodings={"color": protocol.RAW})
    frames = encode(sample)
    assert frames[0] == b"sample/cam0/color"
    assert len(frames) == 2 + len(fields)
    back = decode(frames)
    assert isinstance(back, Sample)
    assert (back.node, back.stream, back.seq) == ("cam0", "cam0/color", 42)
    assert (back.t_device_ns, back.t_host_ns) == (-5, 1_700_000_000_123_456_789)
    assert list(back.fields) == list(fields)
    for name, array in fields.items():
        got = back.fields[name]
        assert got.dtype == array.dtype, name
        assert got.shape == array.shape, name
        np.testing.assert_array_equal(got, array, err_msg=name)
        assert back.encodings[name] == protocol.RAW
    assert back.nbytes() == sample.nbytes()


def test_header_dtype_strings_are_typestrs(rng):
    frames = encode(_sample(c=np.zeros((2, 2, 3), np.uint8), d=np.zeros((2, 2), np.uint16),
                            s=np.zeros(15, np.float32)))
    header = json.loads(bytes(frames[1]))
    # A single sample stays version 1, so readers that speak only version 1 still read it.
    assert header["v"] == BASE_VERSION == 1 and header["type"] == "sample"
    assert [f["dtype"] for f in header["fields"]] == ["|u1", "<u2", "<f4"]
    assert [f["shape"] for f in header["fields"]] == [[2, 2, 3], [2, 2], [15]]
    assert {f["encoding"] for f in header["fields"]} == {"raw"}


def test_jpeg_encoding_roundtrip():
    payload = np.frombuffer(b"\xff\xd8\xff\xe0 not really a jpeg \xff\xd9", dtype=np.uint8)
    sample = _sample(color=payload)
    sample.encodings = {"color": protocol.JPEG}
    back = _roundtrip(sample)
    assert back.encodings == {"color": "jpeg"}
    assert bytes(back.fields["color"]) == bytes(payload)


def test_describe_roundtrip():
    streams = [{"name": "cam0/color", "kind": "color", "rate_hz": 30.0,
                "fields": [{"name": "rgb", "dtype": "|u1", "shape": [480, 640, 3]}], "meta": {}}]
    describe = Describe(node="cam0", streams=streams, info={"serial": "123", "fw": [5, 13]})
    frames = encode(describe)
    assert frames[0] == b"describe/cam0" and len(frames) == 2
    assert decode(frames) == describe


def test_event_roundtrip():
    event = Event(node="glove", kind="stalled", t_host_ns=1_700_000_000_000_000_001,
                  stream="glove/state", detail={"silent_s": 0.5})
    frames = encode(event)
    assert frames[0] == b"event/glove" and len(frames) == 2
    assert decode(frames) == event
    no_stream = Event(node="glove", kind="connected", t_host_ns=1)
    assert decode(encode(no_stream)) == no_stream


def test_encode_rejects_other_objects():
    with pytest.raises(TypeError, match="cannot encode dict"):
        encode({"node": "x"})


def test_encode_rejects_object_arrays():
    with pytest.raises(ProtocolError, match="field 'o': object dtypes cannot be sent"):
        encode(_sample(o=np.array([object()], dtype=object)))


# ----------------------------------------------------------------------------- zero copy


def test_encode_and_decode_share_memory(rng):
    color = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    depth = rng.integers(0, 65536, (480, 640), dtype=np.uint16)
    frames = encode(_sample(color=color, depth=depth))
    # encode does not copy contiguous arrays: the buffers are views of them ...
    assert np.shares_memory(np.frombuffer(frames[2], np.uint8), color)
    assert np.shares_memory(np.frombuffer(frames[3], np.uint8), depth)
    back = decode(frames)
    # ... and decode does not copy the buffers.
    assert np.shares_memory(back.fields["color"], color)
    assert np.shares_memory(back.fields["depth"], depth)


def test_decode_of_bytearray_frame_reflects_mutation():
    frames = encode(_sample(depth=np.arange(12, dtype=np.uint16).reshape(3, 4)))
    buffer = bytearray(frames[2])
    back = decode([frames[0], frames[1], buffer])
    assert back.fields["depth"][0, 0] == 0
    buffer[0:2] = (999).to_bytes(2, "little")
    assert back.fields["depth"][0, 0] == 999
    assert np.shares_memory(back.fields["depth"], np.frombuffer(buffer, np.uint8))


def test_decode_of_zmq_frames_shares_memory():
    zmq = pytest.importorskip("zmq")
    frames = encode(_sample(depth=np.arange(40_000, dtype=np.uint16)))  # > copy threshold
    zframes = [zmq.Frame(bytes(f)) for f in frames]
    back = decode(zframes)
    np.testing.assert_array_equal(back.fields["depth"], np.arange(40_000, dtype=np.uint16))
    assert np.shares_memory(back.fields["depth"], np.frombuffer(zframes[2].buffer, np.uint8))
    # Read-only although pyzmq's buffer is writable: whoever keeps a received frame (the episode
    # writer, the pre-roll) keeps it as it is instead of copying it.
    assert zframes[2].buffer.readonly is False and not back.fields["depth"].flags.writeable


def test_non_contiguous_arrays_are_sent_correctly(rng):
    base = rng.integers(0, 256, (480, 640, 4), dtype=np.uint8)
    strided = base[::2, ::3, :3]                       # a non-contiguous view
    transposed = rng.standard_normal((5, 7)).astype(np.float32).T
    fortran = np.asfortranarray(rng.integers(0, 65536, (6, 9), dtype=np.uint16))
    reversed_ = np.arange(10, dtype=np.int64)[::-1]
    assert not strided.flags.c_contiguous and not transposed.flags.c_contiguous
    assert not fortran.flags.c_contiguous and not reversed_.flags.c_contiguous
    fields = {"strided": strided, "transposed": transposed, "fortran": fortran,
              "reversed": reversed_}
    frames = encode(_sample(**fields))
    header = json.loads(bytes(frames[1]))
    for spec, frame, (name, array) in zip(header["fields"], frames[2:], fields.items()):
        assert spec["shape"] == list(array.shape)
        assert memoryview(frame).nbytes == array.nbytes
        # C order on the wire
        assert bytes(frame) == np.ascontiguousarray(array).tobytes(order="C"), name
    back = decode(frames)
    for name, array in fields.items():
        np.testing.assert_array_equal(back.fields[name], array, err_msg=name)


# ----------------------------------------------------------------------------- malformed


def _raises(frames, match: str) -> ProtocolError:
    with pytest.raises(ProtocolError, match=match) as info:
        decode(frames)
    return info.value


def test_too_few_frames():
    _raises([], r"expected at least 2 frames \(topic, header\), got 0")
    _raises([b"sample/cam0/color"], r"expected at least 2 frames \(topic, header\), got 1")


def test_sample_with_extra_buffer(sample_frames):
    _raises([*sample_frames, b"\x00" * 8], "expected 4 frames, got 5")


def test_sample_with_missing_buffer(sample_frames):
    _raises(sample_frames[:-1], "expected 4 frames, got 3")
    _raises(sample_frames[:2], "expected 4 frames, got 2")


def test_describe_and_event_with_extra_frame():
    describe = encode(Describe(node="n", streams=[]))
    _raises([*describe, b"x"], "expected 2 frames, got 3")
    event = encode(Event(node="n", kind="connected", t_host_ns=1))
    _raises([*event, b"x"], "expected 2 frames, got 3")


def test_header_not_json(sample_frames):
    _raises([sample_frames[0], b"{not json", *sample_frames[2:]], "header is not UTF-8 JSON")
    _raises([sample_frames[0], b"\xff\xfe\x00garbage", *sample_frames[2:]],
            "header is not UTF-8 JSON")
    _raises([sample_frames[0], b"", *sample_frames[2:]], "header is not UTF-8 JSON")
    _raises([sample_frames[0], b"[" * 60_000, *sample_frames[2:]], "header is not UTF-8 JSON")


def test_topic_not_utf8(sample_frames):
    _raises([b"sample/\xff\xfe", *sample_frames[1:]], "topic is not UTF-8")


@pytest.mark.parametrize("header, kind", [(b"[1, 2]", "list"), (b"42", "int"),
                                          (b'"sample"', "str"), (b"null", "NoneType")])
def test_header_not_an_object(sample_frames, header, kind):
    _raises([sample_frames[0], header, *sample_frames[2:]],
            f"header must be a JSON object, got {kind}")


@pytest.mark.parametrize("key", ["v", "type", "node", "stream", "seq", "t_device_ns", "t_host_ns",
                                 "fields"])
def test_sample_missing_key(sample_frames, key):
    _raises(_frames_with_header(sample_frames, **{key: None}), f"header has no '{key}'")


def test_describe_and_event_missing_keys():
    describe = encode(Describe(node="n", streams=[]))
    _raises(_frames_with_header(describe, streams=None), "header has no 'streams'")
    _raises(_frames_with_header(describe, node=None), "header has no 'node'")
    event = encode(Event(node="n", kind="connected", t_host_ns=1))
    _raises(_frames_with_header(event, kind=None), "header has no 'kind'")
    _raises(_frames_with_header(event, t_host_ns=None), "header has no 't_host_ns'")


@pytest.mark.parametrize("key, value, message", [
    ("seq", True, "header 'seq' must be int, got bool"),
    ("seq", 1.0, "header 'seq' must be int, got float"),
    ("seq", "7", "header 'seq' must be int, got str"),
    ("t_host_ns", False, "header 't_host_ns' must be int, got bool"),
    ("t_device_ns", [1], "header 't_device_ns' must be int, got list"),
    ("v", True, "header 'v' must be int, got bool"),
    ("v", "1", "header 'v' must be int, got str"),
    ("type", 1, "header 'type' must be str, got int"),
    ("node", 5, "header 'node' must be str, got int"),
    ("stream", {"a": 1}, "header 'stream' must be str, got dict"),
    ("fields", {"rgb": {}}, "header 'fields' must be list, got dict"),
])
def test_sample_wrong_types(sample_frames, key, value, message):
    _raises(_frames_with_header(sample_frames, **{key: value}), message)


def test_describe_and_event_wrong_types():
    describe = encode(Describe(node="n", streams=[]))
    _raises(_frames_with_header(describe, streams="cam0/color"),
            "header 'streams' must be list, got str")
    _raises(_frames_with_header(describe, streams=["cam0/color"]),
            "header 'streams' must be a list of objects")
    _raises(_frames_with_header(describe, info=[1]), "header 'info' must be dict, got list")
    event = encode(Event(node="n", kind="connected", t_host_ns=1))
    _raises(_frames_with_header(event, t_host_ns=True), "header 't_host_ns' must be int, got bool")
    _raises(_frames_with_header(event, kind=3), "header 'kind' must be str, got int")
    _raises(_frames_with_header(event, stream=3), "header 'stream' must be str, got int")
    _raises(_frames_with_header(event, detail="x"), "header 'detail' must be dict, got str")


def test_field_wrong_types(sample_frames):
    header = json.loads(bytes(sample_frames[1]))
    header["fields"][0] = "color"
    _raises([sample_frames[0], json.dumps(header).encode(), *sample_frames[2:]],
            "each field must be an object")
    _raises(_frames_with_field(sample_frames, name=None), "header has no 'name'")
    _raises(_frames_with_field(sample_frames, name=1), "header 'name' must be str, got int")
    _raises(_frames_with_field(sample_frames, dtype=None), "header has no 'dtype'")
    _raises(_frames_with_field(sample_frames, dtype=8), "header 'dtype' must be str, got int")
    _raises(_frames_with_field(sample_frames, shape=None), "header has no 'shape'")
    _raises(_frames_with_field(sample_frames, shape="4,5,3"), "header 'shape' must be list, got str")
    _raises(_frames_with_field(sample_frames, shape=[4, True, 3]),
            r"field 'color': shape must be non-negative integers, got \[4, True, 3\]")
    _raises(_frames_with_field(sample_frames, shape=[4, 5.0, 3]),
            "field 'color': shape must be non-negative integers")


def test_duplicate_field_name(sample_frames):
    _raises(_frames_with_field(sample_frames, 1, name="color", dtype="|u1", shape=[4, 5, 2]),
            "field 'color' appears twice")


@pytest.mark.parametrize("version", [0, 3, 99, -1])
def test_unknown_protocol_version(sample_frames, version):
    _raises(_frames_with_header(sample_frames, v=version),
            rf"unknown protocol version {version} \(this reader speaks 1 and 2\)")


def test_unknown_version_is_rejected_before_anything_else(sample_frames):
    # a future version may change everything but "v": nothing else is looked at
    header = json.dumps({"v": 3, "what": "ever"}).encode()
    _raises([b"whatever", header], "unknown protocol version 3")


def test_unknown_message_type(sample_frames):
    _raises([b"blob/cam0", *_frames_with_header(sample_frames, type="blob")[1:]],
            "unknown message type 'blob'")


def test_topic_type_mismatch(sample_frames):
    _raises([b"event/cam0", *sample_frames[1:]],
            "topic 'event/cam0' does not match message type 'sample'")
    _raises([b"", *sample_frames[1:]], "topic '' does not match message type 'sample'")
    event = encode(Event(node="n", kind="connected", t_host_ns=1))
    _raises([b"sample/n", event[1]], "topic 'sample/n' does not match message type 'event'")


def test_topic_must_name_the_same_stream_or_node(sample_frames):
    _raises([b"sample/cam1/color", *sample_frames[1:]],
            r"topic 'sample/cam1/color' does not match the header \(expected 'sample/cam0/color'\)")
    describe = encode(Describe(node="cam0", streams=[]))
    _raises([b"describe/cam1", describe[1]], "expected 'describe/cam0'")
    event = encode(Event(node="cam0", kind="connected", t_host_ns=1))
    _raises([b"event/cam0/extra", event[1]], "expected 'event/cam0'")


def test_buffer_size_mismatch(sample_frames):
    _raises([*sample_frames[:2], bytes(memoryview(sample_frames[2]))[:-1], sample_frames[3]],
            r"field 'color': buffer has 59 bytes, dtype \|u1 and shape \(4, 5, 3\) need 60")
    _raises([*sample_frames[:3], bytes(memoryview(sample_frames[3])) + b"\x00"],
            r"field 'depth': buffer has 41 bytes, dtype <u2 and shape \(4, 5\) need 40")
    _raises(_frames_with_field(sample_frames, 1, dtype="<u4"),
            r"field 'depth': buffer has 40 bytes, dtype <u4 and shape \(4, 5\) need 80")
    _raises(_frames_with_field(sample_frames, 1, shape=[4, 6]),
            r"field 'depth': buffer has 40 bytes, dtype <u2 and shape \(4, 6\) need 48")


@pytest.mark.parametrize("dtype", ["uint8x", "xx", "<u3", "(2,)u1", "i4,i4", "", "<<u2", "u1 "])
def test_bad_dtype_string(sample_frames, dtype):
    _raises(_frames_with_field(sample_frames, dtype=dtype), "field 'color': bad dtype")


@pytest.mark.parametrize("dtype", ["|S0", "|V0", "<U0"])
def test_zero_size_dtype(sample_frames, dtype):
    _raises(_frames_with_field(sample_frames, dtype=dtype, shape=[0]),
            f"field 'color': dtype '{dtype}' has no item size")


@pytest.mark.parametrize("dtype", ["|O", "O", "|O8"])
def test_object_dtype(sample_frames, dtype):
    _raises(_frames_with_field(sample_frames, dtype=dtype, shape=[60 // 8]),
            "field 'color': object dtypes are not allowed")


def test_negative_shape(sample_frames):
    _raises(_frames_with_field(sample_frames, shape=[-4, -5, 3]),
            r"field 'color': shape must be non-negative integers, got \[-4, -5, 3\]")


def test_too_many_dimensions(sample_frames):
    _raises(_frames_with_field(sample_frames, shape=[1] * 65),
            "field 'color': 65 dimensions, at most 32")


def test_empty_array_with_impossible_dimension(sample_frames):
    frames = _frames_with_field(sample_frames, shape=[0, 10**30])
    _raises([*frames[:2], b"", frames[3]], r"field 'color': shape \(0, 10{30}\)")


@pytest.mark.parametrize("encoding", ["png", "", "RAW", 1, None, ["raw"]])
def test_unknown_encoding(sample_frames, encoding):
    if encoding is None:  # an explicit null is not "absent"
        frames = _frames_with_field(sample_frames, encoding="placeholder")
        frames[1] = frames[1].replace(b'"placeholder"', b"null")
    else:
        frames = _frames_with_field(sample_frames, encoding=encoding)
    _raises(frames, f"field 'color': unknown encoding {encoding!r}".replace("[", r"\["))


def test_missing_encoding_means_raw(sample_frames):
    back = decode(_frames_with_field(sample_frames, encoding=None))
    assert back.encodings["color"] == "raw"


# ----------------------------------------------------------------------------- fuzz


def _base_messages(rng) -> list[list[bytes]]:
    samples = [
        _sample(color=rng.integers(0, 256, (6, 8, 3), dtype=np.uint8),
                depth=rng.integers(0, 65536, (6, 8), dtype=np.uint16)),
        _sample(joints=rng.standard_normal(15).astype(np.float32),
                buttons=np.array([0, 1], np.uint8)),
        _sample(scalar=np.array(1.5), empty=np.zeros((0, 2), np.float32)),
    ]
    messages = [[bytes(memoryview(f)) for f in encode(s)] for s in samples]
    messages.append(encode(Describe(node="cam0", streams=[
        {"name": "cam0/color", "kind": "color", "rate_hz": 30.0,
         "fields": [{"name": "rgb", "dtype": "|u1", "shape": [6, 8, 3]}], "meta": {}}],
        info={"a": 1})))
    messages.append(encode(Event(node="cam0", kind="error", t_host_ns=5, stream="cam0/color",
                                 detail={"x": [1, 2]})))
    return messages


_JUNK = [None, True, False, -1, 0, 1, 2, 2**64, -(2**70), 1.5, float("1e308"), "", "x", "raw",
         "jpeg", "|u1", "<u2", "<f4", "|O", "(2,)u1", "|S0", "|V0", "u1,u1", "<M8[ns]", "sample", "event", "describe", [], [1],
         [-1], [0, 10**20], [1] * 40, {}, {"name": "x"}, [{"name": "x", "dtype": "|u1"}]]


def _mutate_header(rng, header: bytes) -> bytes:
    choice = rng.integers(0, 5)
    data = bytearray(header)
    if choice == 0 and data:  # flip bytes
        for _ in range(rng.integers(1, 4)):
            data[rng.integers(0, len(data))] ^= 1 << int(rng.integers(0, 8))
        return bytes(data)
    if choice == 1 and data:  # overwrite bytes with random ones
        for _ in range(rng.integers(1, 4)):
            data[rng.integers(0, len(data))] = int(rng.integers(0, 256))
        return bytes(data)
    if choice == 2:  # truncate
        return bytes(data[: rng.integers(0, len(data) + 1)])
    # structured: replace a value (top level or in a field) with junk, or delete a key
    try:
        obj = json.loads(header)
    except ValueError:  # an earlier mutation broke it already
        return header
    if not isinstance(obj, dict) or not obj:
        return header
    target = obj
    if isinstance(obj.get("fields"), list) and obj["fields"] and rng.random() < 0.5:
        target = obj["fields"][rng.integers(0, len(obj["fields"]))]
        if not isinstance(target, dict) or not target:
            return header
    keys = list(target)
    key = keys[rng.integers(0, len(keys))]
    if choice == 3:
        target[key] = _JUNK[rng.integers(0, len(_JUNK))]
    else:
        del target[key]
    return json.dumps(obj).encode()


def _mutate(rng, frames: list[bytes]) -> list:
    frames = list(frames)
    for _ in range(rng.integers(1, 3)):
        op = rng.integers(0, 9)
        if op <= 2 and len(frames) > 1:
            frames[1] = _mutate_header(rng, frames[1])
        elif op == 3 and len(frames) > 2:  # truncate or extend a buffer
            i = rng.integers(2, len(frames))
            cut = rng.integers(0, len(frames[i]) + 1)
            frames[i] = frames[i][:cut] if rng.random() < 0.7 else frames[i] + b"\x00" * cut
        elif op == 4 and frames:  # drop a frame
            del frames[rng.integers(0, len(frames))]
        elif op == 5:  # add a random frame
            frames.insert(rng.integers(0, len(frames) + 1),
                          rng.bytes(int(rng.integers(0, 64))))
        elif op == 6 and frames:  # mutate the topic
            topic = bytearray(frames[0])
            if topic:
                topic[rng.integers(0, len(topic))] = int(rng.integers(0, 256))
            frames[0] = bytes(topic)
        elif op == 7:  # entirely random frames
            frames = [rng.bytes(int(rng.integers(0, 40))) for _ in range(rng.integers(0, 6))]
        else:  # swap two frames
            if len(frames) > 1:
                i, j = rng.choice(len(frames), 2, replace=False)
                frames[i], frames[j] = frames[j], frames[i]
    return frames


def test_fuzz_decode_returns_or_raises_protocol_error():
    rng = np.random.default_rng(20240601)
    base = _base_messages(rng)
    outcomes = {"ok": 0, "error": 0}
    for i in range(20_000):
        original = base[rng.integers(0, len(base))]
        frames = _mutate(rng, original)
        try:
            message = decode(frames)
        except ProtocolError:
            outcomes["error"] += 1
        except Exception as exc:  # pragma: no cover - the failure being tested for
            pytest.fail(f"iteration {i}: decode({frames!r:.500}) raised {type(exc).__name__}: {exc}")
        else:
            assert isinstance(message, (Sample, Describe, Event))
            outcomes["ok"] += 1
    # both branches are exercised
    assert outcomes["error"] > 10_000
    assert outcomes["ok"] > 100


# ----------------------------------------------------------------------------- hostile input: ranges, sizes, reasons


def _reason(frames, match: str, reason: str) -> ProtocolError:
    error = _raises(frames, match)
    assert error.reason == reason, (error.reason, str(error))
    return error


@pytest.mark.parametrize("key, value", [
    ("t_host_ns", 2**64), ("t_host_ns", 2**63), ("t_host_ns", -(2**63) - 1),
    ("t_device_ns", 2**63), ("t_device_ns", -(2**64)),
    ("seq", -1), ("seq", 2**63), ("seq", 10**30),
])
def test_sample_integers_out_of_int64_range(sample_frames, key, value):
    error = _reason(_frames_with_header(sample_frames, **{key: value}),
                    f"header '{key}' = {value} is out of range", "out_of_range")
    assert "2**63" in str(error)


def test_sample_integers_at_the_int64_limits_are_accepted(sample_frames):
    back = decode(_frames_with_header(sample_frames, seq=2**63 - 1, t_device_ns=-(2**63),
                                      t_host_ns=2**63 - 1))
    assert (back.seq, back.t_device_ns, back.t_host_ns) == (2**63 - 1, -(2**63), 2**63 - 1)
    assert decode(_frames_with_header(sample_frames, seq=0)).seq == 0


def test_event_time_out_of_range():
    event = encode(Event(node="glove", kind="disconnected", t_host_ns=1))
    _reason(_frames_with_header(event, t_host_ns=2**64), "header 't_host_ns' = 18446744073709551616 is out of range",
            "out_of_range")


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"])
def test_header_floats_must_be_finite(text):
    header = ('{"v":1,"type":"event","node":"n","kind":"k","t_host_ns":1,'
              '"detail":{"x":%s}}' % text).encode()
    _reason([b"event/n", header], "not finite|NaN|Infinity", "bad_header")


def test_header_and_topic_sizes_are_bounded(sample_frames):
    header = json.loads(bytes(sample_frames[1]))
    header["pad"] = "x" * protocol.MAX_HEADER_BYTES
    error = _reason([sample_frames[0], json.dumps(header).encode(), *sample_frames[2:]],
                    r"header is \d+ bytes, at most 65536", "too_large")
    assert len(str(error)) < 200
    event = encode(Event(node="n", kind="error", t_host_ns=1, detail={"m": "y" * 70_000}))
    _reason(event, "header is", "too_large")
    big_topic = b"sample/cam0/" + b"c" * 1_000_000
    error = _reason([big_topic, *sample_frames[1:]], r"topic is 1000012 bytes, at most 256", "too_large")
    assert len(str(error)) < 200  # the sender's text is never copied into the error


def test_field_count_and_buffer_size_are_bounded(sample_frames, monkeypatch):
    many = encode(_sample(**{f"f{i}": np.zeros(1, np.uint8) for i in range(protocol.MAX_FIELDS + 1)}))
    _reason(many, f"at most {protocol.MAX_FIELDS} fields", "too_large")
    _reason([many[0], many[1], *[b""] * 10_000], "frames", "too_large")
    monkeypatch.setattr(protocol, "MAX_BUFFER_BYTES", 50)
    _reason(sample_frames, "field 'color': 60 bytes, at most 50", "too_large")


def test_error_text_never_carries_a_huge_sender_string(sample_frames):
    huge = "z" * 100_000
    for frames in (_frames_with_header(sample_frames, type=huge[:60_000]),
                   _frames_with_header(sample_frames, stream="cam0/" + huge[:60_000]),
                   _frames_with_field(sample_frames, dtype=huge[:60_000]),
                   _frames_with_field(sample_frames, encoding=huge[:60_000])):
        with pytest.raises(ProtocolError) as info:
            decode(frames)
        assert len(str(info.value)) <= protocol.MAX_ERROR_TEXT


def _describe_frames(*streams, node="glove") -> list:
    return encode(Describe(node=node, streams=list(streams)))


_HAND = {"name": "glove/hand", "kind": "state", "rate_hz": 200.0,
         "fields": [{"name": "joints", "dtype": "<f4", "shape": [22]}], "meta": {}}


def test_describe_streams_are_validated_at_the_wire():
    assert decode(_describe_frames(_HAND)).streams == [_HAND]
    no_kind = {k: v for k, v in _HAND.items() if k != "kind"}
    error = _reason(_describe_frames(no_kind), "describe from node 'glove': stream 'glove/hand'",
                    "bad_describe")
    assert "lacks 'kind'" in str(error)
    _reason(_describe_frames({**_HAND, "name": "cam0/color"}),
            "stream 'cam0/color' does not belong to node 'glove'", "bad_describe")
    _reason(_describe_frames(_HAND, _HAND), "declares stream 'glove/hand' twice", "bad_describe")
    _reason(_describe_frames(*[{**_HAND, "name": f"glove/s{i}"} for i in range(protocol.MAX_STREAMS + 1)]),
            f"65 streams, at most {protocol.MAX_STREAMS}", "too_large")
    _reason(_describe_frames({**_HAND, "rate_hz": -1}), "stream 'glove/hand': rate_hz must be a finite number > 0", "bad_describe")
    _reason(_describe_frames({**_HAND, "fields": [{"name": "joints", "dtype": "<f4"}]}),
            "lacks 'shape'", "bad_describe")


_MALFORMED_DECLARATIONS = [
    ("a list", ["glove/hand"], "must be an object"),
    ("no name", {k: v for k, v in _HAND.items() if k != "name"}, "lacks 'name'"),
    ("no kind", {k: v for k, v in _HAND.items() if k != "kind"}, "lacks 'kind'"),
    ("no rate", {k: v for k, v in _HAND.items() if k != "rate_hz"}, "lacks 'rate_hz'"),
    ("no fields", {k: v for k, v in _HAND.items() if k != "fields"}, "lacks 'fields'"),
    ("name int", {**_HAND, "name": 5}, "'name' must be a string"),
    ("kind list", {**_HAND, "kind": ["state"]}, "kind"),
    ("kind unknown", {**_HAND, "kind": "smell"}, "kind 'smell' is not one of"),
    ("rate str", {**_HAND, "rate_hz": "fast"}, "rate_hz must be a number"),
    ("rate bool", {**_HAND, "rate_hz": True}, "rate_hz must be a number"),
    ("rate nan", {**_HAND, "rate_hz": float("nan")}, "rate_hz must be a finite number > 0"),
    ("rate inf", {**_HAND, "rate_hz": float("inf")}, "rate_hz must be a finite number > 0"),
    ("fields dict", {**_HAND, "fields": {"joints": {}}}, "'fields' must be a list"),
    ("fields empty", {**_HAND, "fields": []}, "field names must be unique and non-empty"),
    ("field str", {**_HAND, "fields": ["joints"]}, "field 0 must be an object"),
    ("field extra key", {**_HAND, "fields": [{**_HAND["fields"][0], "colour": 1}]}, "unknown key 'colour'"),
    ("field no dtype", {**_HAND, "fields": [{"name": "j", "shape": [2]}]}, "lacks 'dtype'"),
    ("field name int", {**_HAND, "fields": [{"name": 3, "dtype": "<f4", "shape": [2]}]}, "name must be a string"),
    ("dtype junk", {**_HAND, "fields": [{"name": "j", "dtype": "nonsense", "shape": [2]}]}, "bad dtype"),
    ("dtype int", {**_HAND, "fields": [{"name": "j", "dtype": 5, "shape": [2]}]}, "bad dtype"),
    ("dtype object", {**_HAND, "fields": [{"name": "j", "dtype": "|O", "shape": [2]}]}, "object"),
    ("dtype empty", {**_HAND, "fields": [{"name": "j", "dtype": "|V0", "shape": [2]}]}, "item size"),
    ("shape negative", {**_HAND, "fields": [{"name": "j", "dtype": "<f4", "shape": [-2]}]}, "shape"),
    ("shape str", {**_HAND, "fields": [{"name": "j", "dtype": "<f4", "shape": "ab"}]}, "shape"),
    ("shape float", {**_HAND, "fields": [{"name": "j", "dtype": "<f4", "shape": [1.5]}]}, "shape"),
    ("shape huge", {**_HAND, "fields": [{"name": "j", "dtype": "<f4", "shape": [2**40, 2**40]}]}, "shape"),
    ("shape deep", {**_HAND, "fields": [{"name": "j", "dtype": "<f4", "shape": [1] * 40}]}, "dimensions"),
    ("reserved", {**_HAND, "fields": [{"name": "seq", "dtype": "<f4", "shape": [2]}]}, "reserved"),
    ("unit int", {**_HAND, "fields": [{"name": "j", "dtype": "<f4", "shape": [2], "unit": 1}]}, "unit"),
    ("channels str", {**_HAND, "fields": [{"name": "j", "dtype": "<f4", "shape": [2],
                                            "channel_names": "ab"}]}, "channel_names"),
    ("channels ints", {**_HAND, "fields": [{"name": "j", "dtype": "<f4", "shape": [2],
                                             "channel_names": [1, 2]}]}, "channel_names"),
    ("meta list", {**_HAND, "meta": [1]}, "'meta' must be an object"),
]


@pytest.mark.parametrize("data, message", [case[1:] for case in _MALFORMED_DECLARATIONS],
                         ids=[case[0] for case in _MALFORMED_DECLARATIONS])
def test_stream_spec_from_dict_raises_value_error_saying_what_is_wrong(data, message):
    from collector.wire.streams import StreamSpec

    with pytest.raises(ValueError, match=message) as info:
        StreamSpec.from_dict(data)
    assert type(info.value) is ValueError


def test_every_protocol_error_has_a_known_reason(sample_frames):
    rng = np.random.default_rng(7)
    base = _base_messages(rng)
    reasons = set()
    for _ in range(3000):
        try:
            decode(_mutate(rng, base[rng.integers(0, len(base))]))
        except ProtocolError as exc:
            assert exc.reason in protocol.REASONS, (exc.reason, str(exc))
            reasons.add(exc.reason)
    assert {"bad_header", "bad_topic", "bad_field", "bad_describe"} <= reasons
