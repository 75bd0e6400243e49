"""Batched samples (protocol version 2): round trips without copies, and an exact error for every
malformed batch."""

from __future__ import annotations

import json

import numpy as np
import pytest

from collector.wire import protocol
from collector.wire.protocol import (
    BATCH_VERSION,
    MAX_BATCH_SAMPLES,
    ProtocolError,
    Sample,
    SampleBatch,
    decode,
    encode,
)
from tests.collector.wire.test_protocol import _frames_with_header

T0 = 1_700_000_000_000_000_000


def _samples(count: int, first_seq: int = 5, stream: str = "glove/hand") -> list[Sample]:
    return [Sample(node=stream.split("/")[0], stream=stream, seq=first_seq + i,
                   t_device_ns=-1000 + i * 1_000_000, t_host_ns=T0 + i * 1_000_123,
                   fields={"joints": np.arange(15, dtype=np.float32) + i,
                           "pose": np.full((2, 3), i, np.float64),
                           "buttons": np.array([i % 2, 1], np.uint8),
                           "grip": np.array(i * 0.5, np.float32)})  # a scalar field
            for i in range(count)]


@pytest.fixture
def batch_frames() -> list:
    return encode(SampleBatch.of(_samples(4)))


def _raises(frames: list, reason: str, match: str) -> None:
    with pytest.raises(ProtocolError, match=match) as info:
        decode(frames)
    assert info.value.reason == reason


def test_a_batch_round_trips_as_views_of_the_received_buffers(batch_frames):
    sent = _samples(4)
    received = [bytearray(bytes(f)) for f in batch_frames]  # as if off the socket
    batch = decode(received)
    assert isinstance(batch, SampleBatch) and len(batch) == 4
    assert (batch.node, batch.stream) == ("glove", "glove/hand")
    assert batch.seq == [5, 6, 7, 8]
    assert batch.t_device_ns == [s.t_device_ns for s in sent]
    assert batch.t_host_ns == [s.t_host_ns for s in sent]
    assert batch.fields["joints"].shape == (4, 15) and batch.fields["grip"].shape == (4,)
    for got, want in zip(batch.samples(), sent):
        assert (got.node, got.stream, got.seq, got.t_device_ns, got.t_host_ns) == (
            want.node, want.stream, want.seq, want.t_device_ns, want.t_host_ns)
        assert list(got.fields) == list(want.fields)
        for name, array in want.fields.items():
            assert got.fields[name].dtype == array.dtype and got.fields[name].shape == array.shape
            np.testing.assert_array_equal(got.fields[name], array)
            assert got.encodings[name] == protocol.RAW
    # zero-copy: every sample's arrays live in the frames that came in
    for i, sample in enumerate(batch.samples()):
        for name, frame in zip(sample.fields, received[2:]):
            assert np.shares_memory(sample.fields[name], np.frombuffer(frame, np.uint8)), (i, name)


def test_a_batch_header_is_version_2_with_lists_and_per_sample_shapes(batch_frames):
    assert bytes(batch_frames[0]) == b"sample/glove/hand"  # subscribers' prefixes still match
    header = json.loads(bytes(batch_frames[1]))
    assert header["v"] == BATCH_VERSION == 2 and header["count"] == 4
    assert header["seq"] == [5, 6, 7, 8] and len(header["t_host_ns"]) == 4
    assert [f["shape"] for f in header["fields"]] == [[15], [2, 3], [2], []]
    assert [len(bytes(b)) for b in batch_frames[2:]] == [4 * 60, 4 * 48, 4 * 2, 4 * 4]


def test_a_batch_buffer_is_sample_major_c_order(batch_frames):
    joints = np.frombuffer(bytes(batch_frames[2]), np.float32)
    np.testing.assert_array_equal(joints[:15], np.arange(15))
    np.testing.assert_array_equal(joints[15:30], np.arange(15) + 1)


def test_a_header_without_count_is_a_single_sample_in_either_version():
    frames = encode(_samples(1)[0])
    assert json.loads(bytes(frames[1]))["v"] == 1
    for version in (1, 2):
        message = decode(_frames_with_header(frames, v=version))
        assert isinstance(message, Sample) and message.seq == 5


def test_a_batch_of_one_and_of_the_most_samples():
    assert decode(encode(SampleBatch.of(_samples(1)))).seq == [5]
    big = decode(encode(SampleBatch.of(_samples(MAX_BATCH_SAMPLES, first_seq=0))))
    assert big.seq == list(range(MAX_BATCH_SAMPLES))


BAD_BATCHES = [
    # (header changes, reason, message)
    ({"v": 1}, "bad_header", r"a batch \('count' in a sample\) needs protocol version 2, the header says 1"),
    ({"count": 0}, "out_of_range", r"header 'count' = 0 is out of range \(a batch holds 1 \.\. 512"),
    ({"count": -3}, "out_of_range", r"header 'count' = -3 is out of range"),
    ({"count": MAX_BATCH_SAMPLES + 1}, "too_large", "header 'count' = 513: a batch holds at most 512"),
    ({"count": "4"}, "bad_header", "header 'count' must be int, got str"),
    ({"count": True}, "bad_header", "header 'count' must be int, got bool"),
    ({"count": 4.0}, "bad_header", "header 'count' must be int, got float"),
    ({"count": 3}, "bad_header", "header 'seq' has 4 values, 'count' says 3"),
    ({"seq": [5, 6, 7]}, "bad_header", "header 'seq' has 3 values, 'count' says 4"),
    ({"t_device_ns": [1, 2, 3, 4, 5]}, "bad_header", "header 't_device_ns' has 5 values, 'count' says 4"),
    ({"t_host_ns": T0}, "bad_header", "header 't_host_ns' must be list, got int"),
    ({"seq": 5}, "bad_header", "header 'seq' must be list, got int"),
    ({"seq": [5, 6, 7.0, 8]}, "bad_header", "header 'seq' must be a list of integers, got float 7.0"),
    ({"seq": [5, True, 7, 8]}, "bad_header", "header 'seq' must be a list of integers, got bool True"),
    ({"seq": [5, 6, "7", 8]}, "bad_header", "header 'seq' must be a list of integers, got str '7'"),
    ({"seq": [5, -1, 7, 8]}, "out_of_range", r"header 'seq' holds -1, out of range \(0 \.\. 2\*\*63-1\)"),
    ({"seq": [5, 6, 7, 2**63]}, "out_of_range", "header 'seq' holds 9223372036854775808, out of range"),
    ({"t_host_ns": [T0, T0, T0, 2**64]}, "out_of_range",
     r"header 't_host_ns' holds 18446744073709551616, out of range \(-2\*\*63 \.\. 2\*\*63-1"),
    ({"t_device_ns": [-2**63 - 1, 0, 0, 0]}, "out_of_range", "header 't_device_ns' holds -9223372036854775809"),
    ({"seq": None}, "bad_header", "header has no 'seq'"),
]


@pytest.mark.parametrize("changes, reason, message", BAD_BATCHES,
                         ids=[f"{i}-{next(iter(c))}" for i, (c, _, _) in enumerate(BAD_BATCHES)])
def test_every_malformed_batch_header_is_refused_with_its_reason(batch_frames, changes, reason,
                                                                 message):
    _raises(_frames_with_header(batch_frames, **changes), reason, message)


def test_a_buffer_that_is_not_count_samples_is_refused(batch_frames):
    one_sample = bytes(batch_frames[2])[:60]
    _raises([*batch_frames[:2], one_sample, *batch_frames[3:]], "bad_field",
            r"field 'joints': buffer has 60 bytes, dtype <f4 and shape \(4, 15\) \(4 samples\) need 240")
    _raises([*batch_frames[:2], bytes(batch_frames[2]) + b"\0", *batch_frames[3:]], "bad_field",
            "field 'joints': buffer has 241 bytes")


def test_an_encoded_field_in_a_batch_is_refused(batch_frames):
    header = json.loads(bytes(batch_frames[1]))
    header["fields"][0]["encoding"] = "jpeg"
    _raises([batch_frames[0], json.dumps(header).encode(), *batch_frames[2:]], "bad_field",
            "field 'joints': encoding 'jpeg' in a batch; encoded fields have a length of their own")


def test_a_batch_with_a_frame_missing_or_extra_is_refused(batch_frames):
    _raises(batch_frames[:-1], "bad_frames", "expected 6 frames, got 5")
    _raises([*batch_frames, b"x"], "bad_frames", "expected 6 frames, got 7")


def test_stacking_refuses_what_cannot_be_one_batch():
    samples = _samples(3)
    with pytest.raises(ProtocolError, match="a batch holds 1 .. 512 samples, got 0"):
        SampleBatch.of([])
    jpeg = Sample(node="cam0", stream="cam0/color", seq=0, t_device_ns=0, t_host_ns=0,
                  fields={"rgb": np.zeros(10, np.uint8)}, encodings={"rgb": "jpeg"})
    raw = Sample(node="cam0", stream="cam0/color", seq=1, t_device_ns=0, t_host_ns=0,
                 fields={"rgb": np.zeros(10, np.uint8)})
    for batch in ([jpeg, jpeg], [raw, jpeg]):  # wherever the encoded sample is
        with pytest.raises(ProtocolError, match="field 'rgb' is 'jpeg'-encoded: encoded fields "
                                                "have a length of their own per sample and "
                                                "cannot be batched"):
            SampleBatch.of(batch)
    samples[2].fields["joints"] = np.zeros(14, np.float32)
    with pytest.raises(ProtocolError, match=r"field 'joints': seq 7 is <f4 \(14,\), seq 5 <f4 "
                                            r"\(15,\): a batch's samples share"):
        SampleBatch.of(samples)
    other = _samples(2) + _samples(1, stream="glove2/hand")
    with pytest.raises(ProtocolError, match="a batch holds samples of one stream"):
        SampleBatch.of(other)
    fewer = _samples(2)
    del fewer[1].fields["grip"]
    with pytest.raises(ProtocolError, match="a batch holds samples of one stream with the same "
                                            "fields; 'glove/hand' seq 6 differs"):
        SampleBatch.of(fewer)


def test_encoding_refuses_a_field_that_does_not_hold_count_samples():
    batch = SampleBatch.of(_samples(3))
    batch.fields["joints"] = batch.fields["joints"][:2]
    with pytest.raises(ProtocolError, match=r"field 'joints' has shape \(2, 15\): a batch's field "
                                            "holds its 3 samples along the first axis"):
        encode(batch)
    batch = SampleBatch.of(_samples(3))
    batch.t_host_ns.pop()
    with pytest.raises(ProtocolError, match="a batch of 3 seq needs as many t_device_ns and "
                                            "t_host_ns, got 3 and 2"):
        encode(batch)
