"""Episode storage: the only package that knows how episodes are stored.

    from collector.storage import create_episode, open_episode

    with create_episode(path, specs, {"task": "pick"}, compression="lz4") as writer:
        writer.append(sample, t_recv_ns)          # an EpisodeWriter
    with open_episode(path) as episode:           # an EpisodeReader
        rgb = episode.frames("cam0/color", "rgb", 0)

A path is an HDF5 file (:mod:`collector.storage.writer`, :mod:`collector.storage.reader`), or
``memory://<name>`` for an episode held in memory (:mod:`collector.storage.memory`, for tests).
Everything outside this package reads and writes episodes through these functions and the
:class:`EpisodeWriter` / :class:`EpisodeReader` interfaces; only this package imports h5py to
read episodes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from collector.storage.interface import EpisodeError, EpisodeReader, EpisodeWriter, LedgerBuilder
from collector.wire.streams import StreamSpec

__all__ = ["EpisodeError", "EpisodeReader", "EpisodeWriter", "LedgerBuilder", "create_episode",
           "open_episode", "read_attrs", "is_memory_path", "MEMORY_PREFIX"]

#: Paths starting with this name an episode of the in-memory backend.
MEMORY_PREFIX = "memory://"


def is_memory_path(path: str | Path) -> bool:
    """Whether ``path`` names an in-memory episode (``memory://name``)."""
    return str(path).startswith(MEMORY_PREFIX)


def create_episode(path: str | Path, specs: list[StreamSpec], attrs: dict[str, Any] | None = None,
                   **options: Any) -> EpisodeWriter:
    """A writer for a new episode at ``path``; ``options`` are the backend's (HDF5:
    ``compression``, ``color_encoding``, ``jpeg_quality``, ``checksums``; memory: those and
    ``store``, an :class:`~collector.storage.memory.EpisodeStore`)."""
    if is_memory_path(path) or "store" in options:
        from collector.storage.memory import MemoryEpisodeWriter

        return MemoryEpisodeWriter(path, specs, attrs, **options)
    from collector.storage.writer import HDF5EpisodeWriter

    return HDF5EpisodeWriter(path, specs, attrs, **options)


def open_episode(path: str | Path, **options: Any) -> EpisodeReader:
    """Open an episode for reading; :class:`EpisodeError` for anything that is not one.
    (memory: ``store=`` picks the store, default the process-wide one)."""
    if is_memory_path(path) or "store" in options:
        from collector.storage.memory import open_memory_episode

        return open_memory_episode(path, **options)
    from collector.storage.reader import open_episode as open_hdf5

    return open_hdf5(path)


def read_attrs(path: str | Path, keys: tuple[str, ...] | None = None, **options: Any) -> dict[str, Any]:
    """An episode's root attributes (only ``keys`` if given) as plain values, without opening
    its streams: the fast path for listings. Raises :class:`EpisodeError`."""
    if is_memory_path(path) or "store" in options:
        with open_episode(path, **options) as episode:
            attrs = dict(episode.attrs)
    else:
        from collector.storage.reader import read_root_attrs

        attrs = read_root_attrs(path)
    return attrs if keys is None else {k: attrs.get(k) for k in keys}
