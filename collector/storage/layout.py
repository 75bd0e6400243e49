"""Names of the HDF5 episode layout (docs/episode-format.md) shared by the HDF5 writer, reader,
checksums and recovery."""

from __future__ import annotations

#: A JPEG-stored field is ``<field>.jpeg`` (the frames' bytes, end to end) and
#: ``<field>.offsets`` (where each frame ends).
JPEG_SUFFIX, OFFSETS_SUFFIX = ".jpeg", ".offsets"
#: SWMR needs >= 1.10 formats; no newer, so HDF5 1.10+ can read.
LIBVER = ("v110", "latest")
