"""Completing interrupted episodes: ``collector recover`` and the app's start-up check.

    from collector.recovery import recover_interrupted
    for result in recover_interrupted("recordings"):      # what the app runs when it starts
        print(result.message)

An episode is interrupted when its writer died before closing it (SIGKILL, crash, power loss):
the file holds everything up to the writer's last flush (at most ``recording.flush_interval_s``,
<= 1 s, is lost) and reads only in SWMR mode. Recovery
(:func:`collector.episode_reader.recover_episode`) rewrites it as a plain HDF5 file with status
``recovered``, its counts and synchronized index rebuilt. A file whose writer is still alive
(:mod:`collector.writer_lock`) is never touched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from .episode_reader import EpisodeError, open_episode, recover_episode
from .library import TRASH_DIR
from .writer_lock import MARKER_SUFFIX, episode_of, marker_path, writer_alive, writer_info

log = logging.getLogger("collector.recovery")


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
        return RecoveryResult(path, "failed", f"{path}: cannot be recovered: {exc}")
    if not interrupted:
        marker_path(path).unlink(missing_ok=True)
        return RecoveryResult(path, "skipped", f"{path}: complete, nothing to recover")
    try:
        recover_episode(path)
        with open_episode(path) as episode:
            counts = {name: episode.count(name) for name in episode.streams}
    except Exception as exc:  # a full disk, a damaged file: report it, keep going
        return RecoveryResult(path, "failed", f"{path}: recovery failed: {type(exc).__name__}: {exc}")
    marker_path(path).unlink(missing_ok=True)
    total = ", ".join(f"{name} {n}" for name, n in counts.items())
    return RecoveryResult(path, "recovered", f"{path}: interrupted recording recovered "
                          f"(status 'recovered'; samples kept: {total})", counts)


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
