"""Completing interrupted episodes: ``collector recover`` and the app's start-up check.

    from collector.storage.recovery import recover_interrupted
    for result in recover_interrupted("recordings"):      # what the app runs when it starts
        print(result.message)

An episode is interrupted when its writer died before closing it (SIGKILL, crash, power loss):
the file holds everything up to the writer's last flush (at most ``recording.flush_interval_s``,
<= 1 s, is lost) and reads only in SWMR mode. Recovery
(:func:`collector.storage.reader.recover_episode`) rewrites it as a plain HDF5 file with status
``recovered``, its counts and synchronized index rebuilt. A file whose writer is still alive
(:mod:`collector.storage.writer_lock`) is never touched.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from pathlib import Path

from collector.storage.reader import EpisodeError, open_episode, recover_episode
from collector.storage.library import TRASH_DIR
from collector.storage.writer import truncate_stream
from collector.storage.writer_lock import MARKER_SUFFIX, episode_of, marker_path, writer_alive, writer_info

log = logging.getLogger("collector.storage.recovery")


@dataclass
class RecoveryResult:
    """What happened to one file: ``action`` is ``recovered``, ``skipped`` (a live writer, or
    nothing to recover), ``failed`` or ``cleaned`` (a stale marker removed)."""

    path: Path
    action: str
    message: str
    counts: dict[str, int] | None = None

    @property
    def ok(self) -> bool:
        return self.action != "failed"


def recover_file(path: str | Path) -> RecoveryResult:
    """Recover one episode if it was interrupted; refuse while a writer holds it."""
    path = Path(path)
    if writer_alive(path):
        pid = writer_info(path).get("pid", "?")
        return RecoveryResult(path, "skipped", f"{path}: being recorded right now (pid {pid}); "
                              "not touched")
    if not path.exists():
        marker_path(path).unlink(missing_ok=True)
        return RecoveryResult(path, "cleaned", f"{path}: gone (discarded); stale marker removed")
    try:
        with open_episode(path) as episode:
            interrupted = episode.interrupted
    except EpisodeError as exc:
        # Killed while closing (plain write mode): the flag blocks every open, the data is there.
        if "open for write" not in str(exc) or not clear_open_flag(path):
            return RecoveryResult(path, "failed", f"{path}: cannot be recovered: {exc}")
        log.warning("%s: cleared the open-for-write flag left by a writer killed while closing", path)
        try:
            with open_episode(path) as episode:
                interrupted = episode.interrupted
        except EpisodeError as again:
            return RecoveryResult(path, "failed", f"{path}: cannot be recovered: {again}")
    if not interrupted:
        marker_path(path).unlink(missing_ok=True)
        return RecoveryResult(path, "skipped", f"{path}: complete, nothing to recover")
    try:
        if needs_in_place(path):
            recover_in_place(path)
        else:
            recover_episode(path)
        with open_episode(path) as episode:
            counts = {name: episode.count(name) for name in episode.streams}
    except Exception as exc:  # a full disk, a damaged file: report it, keep going
        return RecoveryResult(path, "failed", f"{path}: recovery failed: {type(exc).__name__}: {exc}")
    marker_path(path).unlink(missing_ok=True)
    total = ", ".join(f"{name} {n}" for name, n in counts.items())
    return RecoveryResult(path, "recovered", f"{path}: interrupted recording recovered "
                          f"(status 'recovered'; samples kept: {total})", counts)


_M32 = 0xFFFFFFFF
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M32


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle``, the checksum of HDF5 metadata (H5checksum.c)."""
    length, i = len(data), 0
    a = b = c = (0xDEADBEEF + length + initval) & _M32
    while length > 12:
        a = (a + int.from_bytes(data[i:i + 4], "little")) & _M32
        b = (b + int.from_bytes(data[i + 4:i + 8], "little")) & _M32
        c = (c + int.from_bytes(data[i + 8:i + 12], "little")) & _M32
        a = (a - c) & _M32; a ^= _rot(c, 4); c = (c + b) & _M32    # noqa: E702
        b = (b - a) & _M32; b ^= _rot(a, 6); a = (a + c) & _M32    # noqa: E702
        c = (c - b) & _M32; c ^= _rot(b, 8); b = (b + a) & _M32    # noqa: E702
        a = (a - c) & _M32; a ^= _rot(c, 16); c = (c + b) & _M32   # noqa: E702
        b = (b - a) & _M32; b ^= _rot(a, 19); a = (a + c) & _M32   # noqa: E702
        c = (c - b) & _M32; c ^= _rot(b, 4); b = (b + a) & _M32    # noqa: E702
        length, i = length - 12, i + 12
    if length == 0:
        return c
    tail = data[i:] + bytes(12 - length)
    a = (a + int.from_bytes(tail[0:4], "little")) & _M32
    b = (b + int.from_bytes(tail[4:8], "little")) & _M32
    c = (c + int.from_bytes(tail[8:12], "little")) & _M32
    c ^= b; c = (c - _rot(b, 14)) & _M32   # noqa: E702
    a ^= c; a = (a - _rot(c, 11)) & _M32   # noqa: E702
    b ^= a; b = (b - _rot(a, 25)) & _M32   # noqa: E702
    c ^= b; c = (c - _rot(b, 16)) & _M32   # noqa: E702
    a ^= c; a = (a - _rot(c, 4)) & _M32    # noqa: E702
    b ^= a; b = (b - _rot(a, 14)) & _M32   # noqa: E702
    c ^= b; c = (c - _rot(b, 24)) & _M32   # noqa: E702
    return c


def clear_open_flag(path: str | Path) -> bool:
    """Clear the "open for write" flags a writer killed in plain (non-SWMR) write mode leaves in
    the superblock, as HDF5's ``h5clear -s`` does: the last step of an episode (writing ``/sync``)
    runs in that mode, and without this the whole file would refuse to open. Only superblock
    versions 2 and 3 (what collector writes) are handled, and only after their checksum checks
    out. Returns whether a flag was cleared."""
    with open(path, "r+b") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:8] != _HDF5_SIGNATURE or head[8] not in (2, 3):
            return False
        size = 12 + 4 * head[9]  # flags, then base, extension, end-of-file and root addresses
        body = head + fh.read(size - 12)
        (stored,) = struct.unpack("<I", fh.read(4))
        if lookup3(body) != stored or not body[11]:
            return False
        body = body[:11] + b"\x00" + body[12:]
        fh.seek(0)
        fh.write(body + struct.pack("<I", lookup3(body)))
    return True


#: Free space (beyond the file's own size) that recovery by copy wants; with less, the episode
#: is finished in place.
COPY_MARGIN_BYTES = 16 << 20


def needs_in_place(path: str | Path) -> bool:
    """Whether the disk lacks room for a recovered copy of ``path`` (its size plus a margin)."""
    import shutil

    path = Path(path)
    return shutil.disk_usage(path.parent).free < path.stat().st_size + COPY_MARGIN_BYTES


def truncate_past_eoa(path: str | Path) -> int:
    """Cut off what lies past the end-of-file address in the superblock (superblock v2/v3, as
    collector writes) and return the bytes freed. HDF5 never reads past that address, so this
    is only what a writer wrote after its last completed flush (a flush cut short by a full
    disk): giving it back is what lets a full disk finish the episode in place."""
    with open(path, "r+b") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:8] != _HDF5_SIGNATURE or head[8] not in (2, 3):
            return 0
        size = head[9]  # bytes per address
        body = head + fh.read(4 * size)
        (stored,) = struct.unpack("<I", fh.read(4))
        if lookup3(body) != stored:
            return 0
        base = int.from_bytes(body[12:12 + size], "little")
        eoa = int.from_bytes(body[12 + 2 * size:12 + 3 * size], "little")
        end = fh.seek(0, 2)
        if eoa <= 0 or base + eoa >= end:
            return 0
        fh.truncate(base + eoa)
        return end - (base + eoa)


def recover_in_place(path: str | Path) -> Path:
    """Finish an interrupted episode inside its own file, for a disk without room for a copy.

    Space past the superblock's end-of-file address is given back first
    (:func:`truncate_past_eoa`); the open-for-write flags are cleared; datasets are cut to whole
    samples, which frees the chunks of a half-written flush inside the file; then the closing
    attributes and ``/sync`` (a few bytes per master frame) are written into that space, as
    :meth:`HDF5EpisodeWriter.close` does. Unlike recovery by copy this is not atomic: a crash in the
    middle leaves the file ``recording`` and recovery can run again."""
    import h5py
    import numpy as np

    from collector.storage.writer import EVENT_DATASETS, finalize_episode

    path = Path(path)
    freed = truncate_past_eoa(path)
    if freed:
        log.warning("%s: gave back %d bytes past the last completed flush", path, freed)
    clear_open_flag(path)
    with open_episode(path) as episode:
        counts = {name: episode.count(name) for name in episode.streams}
    with h5py.File(path, "r+") as f:
        end_ns = int(f.attrs.get("start_time_ns", 0))
        for name, count in counts.items():
            group = f["streams"][name]
            truncate_stream(group, count)
            if count:
                end_ns = max(end_ns, int(group["t_recv_ns"][count - 1]))
        if "events" in f:
            events = f["events"]
            n = min((events[k].shape[0] for k in EVENT_DATASETS if k in events), default=0)
            for key in EVENT_DATASETS:
                if key in events:
                    events[key].resize((n,))
            if n:
                end_ns = max(end_ns, int(np.max(events["t_ns"][:n])))
        finalize_episode(f, status="recovered", end_attrs={"end_time_ns": end_ns})
    return path


def _skip(path: Path, root: Path) -> bool:
    return TRASH_DIR in path.relative_to(root).parts


def recover_interrupted(root: str | Path) -> list[RecoveryResult]:
    """Recover every episode under ``root`` left by a dead writer, found by its marker: fast
    enough for every start-up (no episode file is opened unless it has a marker)."""
    root = Path(root)
    if not root.is_dir():
        return []
    results = []
    for marker in sorted(root.rglob(f".*{MARKER_SUFFIX}")):
        if _skip(marker, root):
            continue
        result = recover_file(episode_of(marker))
        if result.action != "skipped" or "being recorded" not in result.message:
            log.log(logging.ERROR if not result.ok else logging.WARNING, "%s", result.message)
        results.append(result)
    return results


def recover_tree(target: str | Path) -> list[RecoveryResult]:
    """``collector recover``: one file, or every ``*.h5`` under a folder (opened one by one, so
    files interrupted without a marker are found too), plus markers' files."""
    target = Path(target)
    if not target.is_dir():
        return [recover_file(target)]
    files = {p for p in target.rglob("*.h5") if not _skip(p, target)}
    files |= {episode_of(m) for m in target.rglob(f".*{MARKER_SUFFIX}") if not _skip(m, target)}
    return [recover_file(p) for p in sorted(files)]
