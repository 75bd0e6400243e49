"""The checksums an episode writer computes (no file format, no reading): see
:mod:`collector.storage.checksums` for how they are checked.

Split from ``checksums`` so that the writer does not import the checking code, which reads
episodes through the reader (``checksums -> reader -> writer`` would otherwise be a cycle).
"""

from __future__ import annotations

import zlib
from typing import Iterable

import numpy as np

#: Suffix of the per-frame CRC32 dataset beside ``<field>.jpeg`` and ``<field>.offsets``.
CRC_SUFFIX = ".crc32"


def checksum_options(enabled: bool) -> dict:
    """h5py ``create_dataset`` keywords that add HDF5's Fletcher-32 filter to a chunked dataset.

    h5py appends it after any compression filter (Blosc2, LZ4, Zstd from hdf5plugin), so the
    checksum covers the bytes as stored and is verified before decompression; this works in
    SWMR mode (checked in tests/collector/test_checksums.py)."""
    return {"fletcher32": True} if enabled else {}


def frame_crc32(frames: Iterable[np.ndarray | bytes]) -> np.ndarray:
    """CRC32 (zlib's) of each encoded frame, as ``uint32``."""
    return np.array([zlib.crc32(memoryview(np.ascontiguousarray(f)).cast("B")) for f in frames],
                    dtype=np.uint32)


#: Stream-level dataset: one CRC32 per sample over its small datasets (see :func:`row_crc32`).
SAMPLE_CRC = "crc32"
#: Fields with more bytes per sample than this are left to Fletcher-32 alone: a chunk that
#: large is never zeroed whole by a bad block, the one damage Fletcher-32 cannot see (an
#: all-zero chunk with an all-zero checksum is self-consistent).
SAMPLE_CRC_MAX_BYTES = 64 << 10


def sample_crc_fields(raw_fields: Iterable[tuple[str, int]], time_columns: Iterable[str]) -> list[str]:
    """Which datasets the per-sample CRC covers, in order: the time columns, then every raw
    field of at most :data:`SAMPLE_CRC_MAX_BYTES` per sample (``raw_fields``: name, bytes)."""
    return [*time_columns, *(name for name, nbytes in raw_fields if nbytes <= SAMPLE_CRC_MAX_BYTES)]


def row_crc32(arrays: Iterable[np.ndarray]) -> np.ndarray:
    """CRC32 of each sample over the stored bytes of several datasets: ``arrays`` are ``(n, ...)``
    each, in the order of :func:`sample_crc_fields`; returns ``(n,)`` ``uint32``."""
    rows = [np.ascontiguousarray(a).reshape(a.shape[0], -1).view(np.uint8) for a in arrays]
    matrix = np.ascontiguousarray(np.concatenate(rows, axis=1))
    return np.array([zlib.crc32(row) for row in matrix], dtype=np.uint32)
