"""Tells a live episode writer from a dead one: a locked marker file beside the episode.

An :class:`~collector.storage.writer.EpisodeWriter` creates ``.<name>.h5.writing`` before the episode
file and holds an exclusive ``flock`` on it until the episode is closed. The kernel drops the lock
when the process dies, however it dies (SIGKILL, OOM killer, power loss), so:

* marker present and locked: a writer is recording right now: never touch the file;
* marker present and unlocked: the writer died: the episode is interrupted and can be recovered;
* no marker: the episode was closed (or written before markers existed).

Recovery at start-up only has to look for markers instead of opening every file. The HDF5
library's own file lock cannot serve: a SWMR writer releases it once it enters SWMR mode.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; a marker then always reads as a live writer's
    fcntl = None  # type: ignore[assignment]

MARKER_SUFFIX = ".writing"

log = logging.getLogger(__name__)


def marker_path(episode: str | Path) -> Path:
    """The marker of ``episode``: ``dir/.NAME.writing`` beside ``dir/NAME``."""
    episode = Path(episode)
    return episode.with_name(f".{episode.name}{MARKER_SUFFIX}")


def episode_of(marker: str | Path) -> Path:
    """The episode file a marker belongs to (inverse of :func:`marker_path`)."""
    marker = Path(marker)
    return marker.with_name(marker.name[1:-len(MARKER_SUFFIX)])


class WriterLock:
    """The marker of one episode, created and locked by its writer (see the module docstring)."""

    def __init__(self, episode: str | Path) -> None:
        self.path = marker_path(episode)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise
                except OSError as exc:  # a filesystem without flock (some network shares)
                    log.warning("%s: no file locks here (%s); start-up recovery will leave this "
                                "episode alone if the recording is interrupted", self.path, exc)
            os.ftruncate(self._fd, 0)
            os.write(self._fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode())
        except OSError:
            os.close(self._fd)
            self._fd = None
            raise

    def release(self, *, remove: bool) -> None:
        """Drop the lock; ``remove`` the marker when the episode was closed properly (a kept
        marker lets start-up recovery find an episode left ``recording``). Never raises."""
        if self._fd is None:
            return
        if remove:
            self.path.unlink(missing_ok=True)
        try:
            os.close(self._fd)  # closing releases the flock
        except OSError:
            pass
        self._fd = None


def writer_alive(episode: str | Path) -> bool:
    """Whether a live process holds the writer lock of ``episode``."""
    marker = marker_path(episode)
    try:
        fd = os.open(marker, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        if fcntl is None:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held by a writer, or no locks on this filesystem: assume a live writer
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def writer_info(episode: str | Path) -> dict:
    """What the marker says about its writer (``pid``, ``host``); ``{}`` if unreadable."""
    try:
        return json.loads(marker_path(episode).read_text() or "{}")
    except (OSError, ValueError):
        return {}
