"""Names of the HDF5 episode layout (docs/episode-format.md) shared by the HDF5 writer, reader,
checksums and recovery."""

from __future__ import annotations

#: A JPEG-stored field is ``<field>.jpeg`` (the frames' bytes, end to end) and
#: ``<field>.offsets`` (where each frame ends).
JPEG_SUFFIX, OFFSETS_SUFFIX = ".jpeg", ".offsets"
#: A video-stored field is ``<field>.video`` (one packet per frame, end to end), ``<field>.offsets``
#: (where each packet ends), ``<field>.pts`` (each packet's presentation timestamp, the frame
#: index) and ``<field>.key`` (1 where the packet is a keyframe: the keyframe index).
VIDEO_SUFFIX, PTS_SUFFIX, KEY_SUFFIX = ".video", ".pts", ".key"
#: Datasets of concatenated per-frame bytes, each indexed by ``<field>.offsets``.
BYTES_SUFFIXES = (JPEG_SUFFIX, VIDEO_SUFFIX)
#: Color encodings stored as video (collector.storage.video), by codec name.
VIDEO_ENCODINGS = ("h264", "hevc", "av1")
#: SWMR needs >= 1.10 formats; no newer, so HDF5 1.10+ can read.
LIBVER = ("v110", "latest")


def bytes_suffix(group, field: str) -> str | None:
    """Which byte dataset (``.jpeg`` or ``.video``) stores ``field`` in ``group``, or ``None``."""
    return next((s for s in BYTES_SUFFIXES if field + s in group), None)
