"""Checksums in episode files: Fletcher-32 per HDF5 chunk, CRC32 per stored JPEG frame.

    from collector.storage.reader import deep_problems
    for problem in deep_problems("recordings/pick/2026-01-01/ep.h5"):   # what validate --deep runs
        print(problem)            # cam0/color: samples 120-121 damaged (checksum mismatch in 'rgb')

HDF5 checks a chunk's Fletcher-32 whenever the chunk is read, so a flipped bit in sample data is
a read error instead of a silently wrong value; a JPEG frame's CRC32 (``<field>.crc32``, one per
frame) catches damage HDF5 cannot see: bytes rewritten through HDF5 itself, or a chunk written
without checksums. Files written before checksums existed have neither and stay valid: their
JPEG frames are checked by decoding them (see docs/episode-format.md).
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Iterable, Iterator

import h5py
import numpy as np

from collector.storage.codecs import CodecError, decode_jpeg, jpeg_shape

from collector.storage.crc import (CRC_SUFFIX, SAMPLE_CRC, SAMPLE_CRC_MAX_BYTES,  # noqa: F401
                                   checksum_options, frame_crc32, row_crc32, sample_crc_fields)
from collector.storage.layout import (BYTES_SUFFIXES, JPEG_SUFFIX as _JPEG_SUFFIX,
                                      OFFSETS_SUFFIX as _OFFSETS_SUFFIX, bytes_suffix)

#: Bytes read per request while scanning (a failed block is re-read chunk by chunk).
_SCAN_BYTES = 16 << 20


def _chunk_blocks(ds: h5py.Dataset) -> Iterator[tuple[int, int]]:
    """Row ranges ``[start, stop)`` along the first axis, whole chunks, about 16 MB each."""
    rows, total = ds.chunks[0], ds.shape[0]
    row_bytes = max(1, ds.dtype.itemsize * int(np.prod(ds.shape[1:], dtype=np.int64)))
    step = max(rows, (_SCAN_BYTES // (row_bytes * rows)) * rows)
    for start in range(0, total, step):
        yield start, min(total, start + step)


def unreadable_rows(ds: h5py.Dataset) -> list[tuple[int, int]]:
    """Row ranges ``[start, stop)`` of the chunks of ``ds`` that fail to read (a Fletcher-32
    mismatch, a chunk that no longer decompresses); reads every chunk once."""
    if ds.chunks is None or not ds.shape or not ds.shape[0]:
        return []
    bad, rows = [], ds.chunks[0]
    for start, stop in _chunk_blocks(ds):
        try:
            ds[start:stop]
            continue
        except Exception:  # h5py raises OSError for a failed filter; be as broad as damage is
            pass
        for lo in range(start, stop, rows):
            hi = min(stop, lo + rows)
            try:
                ds[lo:hi]
            except Exception:
                bad.append((lo, hi))
    return bad


def jpeg_frame_problems(group: h5py.Group, field: str, count: int,
                        frames: Iterable[int] | None = None, *, decode: bool = True,
                        shape: tuple[int, ...] | None = None) -> dict[int, str]:
    """Damaged JPEG frames of ``field`` (all ``count``, or only ``frames``): ``{frame: why}``.

    With a CRC dataset each frame's bytes are compared with its CRC; without one (older files)
    each frame is decoded (``decode``) or only its header and end marker are checked."""
    ends = group[field + _OFFSETS_SUFFIX][:count].astype(np.int64)
    bounds = np.concatenate([[0], ends])
    suffix = bytes_suffix(group, field) or _JPEG_SUFFIX
    data = group[field + suffix]
    crc_ds = group.get(field + CRC_SUFFIX)
    if crc_ds is None and suffix != _JPEG_SUFFIX:
        return {}  # video packets without CRCs: only Fletcher-32 (the chunk scan) checks them
    crcs, crc_known = None, None
    if crc_ds is not None:
        crcs, crc_known = _readable(crc_ds, count)
    wanted = np.unique(np.asarray(list(frames), np.int64)) if frames is not None else np.arange(count)
    wanted = wanted[(wanted >= 0) & (wanted < count)]
    problems: dict[int, str] = {}
    # Consecutive frames in blocks of about 16 MB: one read each, frame by frame if it fails.
    i = 0
    while i < wanted.size:
        j = i + 1
        while j < wanted.size and wanted[j] == wanted[j - 1] + 1 and \
                bounds[wanted[j] + 1] - bounds[wanted[i]] <= _SCAN_BYTES:
            j += 1
        block = wanted[i:j]
        lo, hi = int(bounds[block[0]]), int(bounds[block[-1] + 1])
        try:
            blob = data[lo:hi]
        except Exception:
            blob = None
        for k in block:
            a, b = int(bounds[k]), int(bounds[k + 1])
            try:
                raw = blob[a - lo:b - lo] if blob is not None else data[a:b]
            except Exception:
                problems[int(k)] = f"checksum mismatch in '{field}{suffix}'"
                continue
            if crcs is not None and not crc_known[k]:
                continue  # its CRC's chunk is unreadable: the chunk scan reports those samples
            why = _frame_problem(raw, None if crcs is None else int(crcs[k]), decode, shape)
            if why:
                problems[int(k)] = why
        i = j
    return problems


def _readable(ds: h5py.Dataset, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` rows of ``ds`` and which of them could be read (chunk by chunk)."""
    values, known = np.zeros((count, *ds.shape[1:]), ds.dtype), np.ones(count, bool)
    try:
        values[:] = ds[:count]
        return values, known
    except Exception:
        pass
    for lo, hi in unreadable_rows(ds):
        known[lo:min(hi, count)] = False
    for lo in range(0, count, ds.chunks[0]):
        hi = min(count, lo + ds.chunks[0])
        if known[lo:hi].all():
            values[lo:hi] = ds[lo:hi]
    return values, known


def _frame_problem(raw: np.ndarray, crc: int | None, decode: bool,
                   shape: tuple[int, ...] | None) -> str | None:
    if crc is not None:
        return None if zlib.crc32(raw.tobytes()) == crc else "CRC mismatch"
    if raw.size < 4 or raw[-2] != 0xFF or raw[-1] != 0xD9:
        return "undecodable JPEG (no end-of-image marker)"
    try:
        if decode:
            got = decode_jpeg(raw).shape
        else:
            got = jpeg_shape(raw)
    except CodecError as exc:
        return f"undecodable JPEG ({exc})"
    if shape is not None and tuple(got) != tuple(shape):
        return f"JPEG of shape {tuple(got)}, the spec says {tuple(shape)}"
    return None


def raw_frame_problems(ds: h5py.Dataset, frames: Iterable[int]) -> dict[int, str]:
    """Rows of ``ds`` among ``frames`` that fail to read: ``{row: why}`` (reads their chunks)."""
    wanted = set(int(f) for f in frames)
    name = ds.name.rsplit("/", 1)[-1]
    why = f"checksum mismatch in '{name}'" if ds.fletcher32 else f"unreadable chunk in '{name}'"
    return {row: why for lo, hi in unreadable_rows(ds) for row in range(lo, hi) if row in wanted}


def sample_ranges(samples: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted sample numbers as inclusive runs: ``[3, 4, 5, 9]`` -> ``[(3, 5), (9, 9)]``."""
    runs: list[tuple[int, int]] = []
    for s in sorted(set(samples)):
        if runs and s == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], s)
        else:
            runs.append((s, s))
    return runs


def describe_damage(stream: str, damaged: dict[int, str]) -> list[str]:
    """``{sample: why}`` as sentences, one per run of samples with one reason:
    ``"cam0/color: samples 120-121 damaged (checksum mismatch in 'rgb')"``."""
    by_reason: dict[str, list[int]] = {}
    for sample, why in damaged.items():
        by_reason.setdefault(why, []).append(sample)
    lines = []
    for why, samples in by_reason.items():
        for lo, hi in sample_ranges(samples):
            what = f"sample {lo}" if lo == hi else f"samples {lo}-{hi}"
            lines.append((lo, f"{stream}: {what} damaged ({why})"))
    return [text for _, text in sorted(lines)]


def sample_crc_problems(group: h5py.Group, count: int, known: dict[int, str] | None = None
                        ) -> dict[int, str]:
    """Samples whose per-sample CRC (:data:`SAMPLE_CRC`) does not match their stored bytes;
    samples already in ``known`` (unreadable chunks) are not read again."""
    crc_ds = group.get(SAMPLE_CRC)
    if not isinstance(crc_ds, h5py.Dataset) or "fields" not in crc_ds.attrs:
        return {}
    import json

    names = json.loads(crc_ds.attrs["fields"])
    problems: dict[int, str] = {}
    step = 4096
    for start in range(0, count, step):
        stop = min(count, start + step)
        if known and all(i in known for i in range(start, stop)):
            continue
        try:
            stored = crc_ds[start:stop]
            got = row_crc32([group[name][start:stop] for name in names])
        except Exception:  # an unreadable chunk among them: already reported by the chunk scan
            continue
        for i in np.flatnonzero(stored != got):
            problems[start + int(i)] = "CRC mismatch"
    return problems


def _stream_count(group: h5py.Group) -> int:
    # stream_length reads the offsets, which may be the damaged dataset: shapes only here.
    lengths = [ds.shape[0] for key, ds in group.items()
               if isinstance(ds, h5py.Dataset) and not key.endswith(BYTES_SUFFIXES) and ds.shape]
    return min(lengths, default=0)


def stream_damage(group: h5py.Group, count: int | None = None) -> tuple[dict[int, str], bool]:
    """Every damaged sample of one stream group, ``{sample: why}``, and whether the stream
    carries checksums at all. Reads every chunk of every dataset and checks every JPEG frame."""
    count = _stream_count(group) if count is None else count
    damaged: dict[int, str] = {}
    checked = False
    # JPEG and video fields alike: per-frame bytes located by their offsets.
    jpeg_fields = [key.rsplit(".", 1)[0] for key in group if key.endswith(BYTES_SUFFIXES)]
    ends = {}
    for field in jpeg_fields:
        try:
            ends[field] = group[field + _OFFSETS_SUFFIX][:count].astype(np.int64)
        except Exception:
            ends[field] = None
    for key, ds in group.items():
        if not isinstance(ds, h5py.Dataset):
            continue
        checked |= bool(ds.fletcher32) or key.endswith(CRC_SUFFIX)
        name = key
        why = f"checksum mismatch in '{name}'" if ds.fletcher32 else f"unreadable chunk in '{name}'"
        for lo, hi in unreadable_rows(ds):
            if key.endswith(BYTES_SUFFIXES):
                e = ends.get(key.rsplit(".", 1)[0])
                if e is None:
                    continue
                first = int(np.searchsorted(e, lo, side="right"))
                last = int(np.searchsorted(e, hi - 1, side="right"))
                rows = range(first, min(last, count - 1) + 1)
            else:
                rows = range(lo, min(hi, count))
            for row in rows:
                damaged.setdefault(row, why)
            if not rows:
                damaged.setdefault(-1, f"{why}, past the stored samples")
    for sample, why in sample_crc_problems(group, count, damaged).items():
        damaged.setdefault(sample, why)
    for field in jpeg_fields:
        if ends[field] is None:
            continue
        attrs = group[field + bytes_suffix(group, field)].attrs
        shape = tuple(int(v) for v in attrs["shape"]) if "shape" in attrs else None
        for frame, why in jpeg_frame_problems(group, field, count, decode=True, shape=shape).items():
            damaged.setdefault(frame, why)
    return damaged, checked
