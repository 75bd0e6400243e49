"""Every episode under a folder, with cached summaries and safe curation.

The catalog is the model behind ``collector ls``, ``collector report`` and the review window:

    catalog = EpisodeCatalog("recordings")
    for s in catalog.scan():                       # cached: 1,000 files list in about a second
        print(s.name, s.task, s.outcome, s.flags)
    catalog.curate(path, outcome="success", tags=["clean"], trim=[0.8, 11.5])
    catalog.trash(path)                            # recoverable: catalog.restore(...)

Summaries (facts, curation, quality report, thumbnail) are cached in ``<root>/.collector-review/``,
keyed by each file's relative path, size and modification time, so a file is opened again only
when it changed. Curation writes attributes only (:func:`collector.storage.library.update_episode_attrs`)
and refreshes the cached entry without recomputing the quality report (the samples did not
change). Observers (``catalog.observers.append(callback)``) get ``(event, payload)`` for
``scanned``, ``curated``, ``trashed`` and ``restored``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Iterable

from collector.storage import read_attrs
from collector.storage.library import TRASH_DIR, move_to_trash, restore_from_trash, update_episode_attrs

from collector.review.quality import duration_outliers
from collector.review.summary import EpisodeSummary, curation_fields, summarize_episode

log = logging.getLogger(__name__)

CACHE_DIR = ".collector-review"
CACHE_FILE = "summaries.json"
THUMBNAIL_DIR = "thumbnails"
#: Bumped whenever a summary or quality field changes meaning: older caches are recomputed.
CACHE_VERSION = 3


def episode_files(root: Path) -> list[Path]:
    """Episode files under ``root`` (``*.h5``), skipping hidden folders and files: the trash,
    the cache, and a recovery's temporary file."""
    root = Path(root)
    if root.is_file():
        return [root]
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(folder) / f for f in sorted(files) if f.endswith(".h5") and not f.startswith(".")]
    return found


class SummaryCache:
    """``summaries.json`` in the cache folder: ``{relative path: {mtime_ns, size, summary}}``.

    Written atomically (temporary file + ``os.replace``); an unreadable or older cache is
    ignored and rebuilt. A read-only folder works without a cache (everything is recomputed).
    Thread-safe: a window may curate while its worker thread scans.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.RLock()
        self.path = folder / CACHE_FILE
        self.entries: dict[str, dict[str, Any]] = {}
        self.dirty = False
        try:
            data = json.loads(self.path.read_text())
            if data.get("version") == CACHE_VERSION:
                self.entries = data["entries"]
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, AttributeError) as exc:
            log.warning("%s: ignoring unreadable review cache (%s)", self.path, exc)

    def get(self, key: str, stat: os.stat_result) -> EpisodeSummary | None:
        entry = self.entries.get(key)
        if entry and entry["mtime_ns"] == stat.st_mtime_ns and entry["size"] == stat.st_size:
            return EpisodeSummary.from_dict(entry["summary"])
        return None

    def put(self, key: str, stat: os.stat_result, summary: EpisodeSummary) -> None:
        with self._lock:
            self.entries[key] = {"mtime_ns": stat.st_mtime_ns, "size": stat.st_size,
                                 "summary": summary.to_dict()}
            self.dirty = True

    def prune(self, keep: Iterable[str]) -> None:
        keep = set(keep)
        with self._lock:
            for key in [k for k in self.entries if k not in keep]:
                del self.entries[key]
                self.dirty = True

    def drop(self, key: str) -> None:
        with self._lock:
            if self.entries.pop(key, None) is not None:
                self.dirty = True

    def save(self) -> None:
        with self._lock:
            self._save()

    def _save(self) -> None:
        if not self.dirty:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".summaries.", suffix=".tmp")
            with os.fdopen(fd, "w") as out:
                json.dump({"version": CACHE_VERSION, "entries": self.entries}, out)
            os.replace(tmp, self.path)
            self.dirty = False
        except OSError as exc:
            log.warning("%s: cannot write the review cache (%s)", self.path, exc)


class EpisodeCatalog:
    """The episodes under ``root``; :meth:`scan` lists them, the other methods curate.

    Args:
        root: folder of episodes (searched recursively) or one episode file.
        use_cache: read and write ``<root>/.collector-review``; ``False`` recomputes everything
            and writes nothing.
    """

    def __init__(self, root: str | Path, *, use_cache: bool = True) -> None:
        self.root = Path(root)
        base = self.root if self.root.is_dir() else self.root.parent
        self.cache_folder = base / CACHE_DIR
        self.thumbnail_folder = self.cache_folder / THUMBNAIL_DIR
        self.use_cache = use_cache
        self.summaries: list[EpisodeSummary] = []
        self.observers: list[Callable[[str, Any], None]] = []
        self._cache = SummaryCache(self.cache_folder) if use_cache else None

    # ---- listing ---------------------------------------------------------------------------
    def _key(self, path: Path) -> str:
        base = self.root if self.root.is_dir() else self.root.parent
        try:
            return str(path.resolve().relative_to(base.resolve()))
        except ValueError:
            return str(path.resolve())

    def scan(self, progress: Callable[[int, int], None] | None = None) -> list[EpisodeSummary]:
        """Summaries of every episode file, newest first; unchanged files come from the cache.

        ``progress(done, total)`` is called after each file that had to be opened.
        """
        files = episode_files(self.root)
        summaries, todo = [], []
        for path in files:
            try:
                stat = path.stat()
            except OSError:  # moved away while listing
                continue
            cached = self._cache.get(self._key(path), stat) if self._cache else None
            if cached is not None:
                cached.path = str(path)
                summaries.append(cached)
            else:
                todo.append((path, stat))
        for done, (path, stat) in enumerate(todo, 1):
            summary = summarize_episode(path, self.thumbnail_folder if self.use_cache else None)
            if self._cache is not None:
                self._cache.put(self._key(path), stat, summary)
            summaries.append(summary)
            if progress:
                progress(done, len(todo))
        if self._cache is not None:
            self._cache.prune(self._key(p) for p in files)
            self._cache.save()
        self._mark_outliers(summaries)
        summaries.sort(key=lambda s: (s.start_time_ns, s.path), reverse=True)
        self.summaries = summaries
        self._emit("scanned", summaries)
        return summaries

    @staticmethod
    def _mark_outliers(summaries: list[EpisodeSummary]) -> None:
        readable = [s for s in summaries if s.ok]
        outliers = duration_outliers((s.path, s.task, s.duration_s) for s in readable)
        for s in readable:
            if s.path in outliers and "duration-outlier" not in s.flags:
                s.flags = sorted([*s.flags, "duration-outlier"])

    def get(self, path: str | Path) -> EpisodeSummary | None:
        """The listed summary of ``path``, or ``None``."""
        wanted = str(Path(path))
        return next((s for s in self.summaries if s.path == wanted), None)

    def thumbnail_path(self, summary: EpisodeSummary) -> Path | None:
        """Where ``summary``'s thumbnail JPEG is, or ``None`` if it has none."""
        path = self.thumbnail_folder / summary.thumbnail if summary.thumbnail else None
        return path if path is not None and path.exists() else None

    # ---- curation --------------------------------------------------------------------------
    def curate(self, path: str | Path, **attrs: Any) -> EpisodeSummary:
        """Set ``outcome``, ``tags``, ``notes`` and/or ``trim`` on ``path`` (attributes only;
        see :func:`collector.storage.library.update_episode_attrs`) and return the updated summary."""
        path = Path(path)
        update_episode_attrs(path, **attrs)
        fields = curation_fields(read_attrs(path, ("outcome", "tags", "notes", "trim")))
        summary = self.get(path)
        if summary is None:
            summary = summarize_episode(path, self.thumbnail_folder if self.use_cache else None)
            self.summaries.append(summary)
        for key, value in fields.items():
            setattr(summary, key, value)
        if self._cache is not None:
            # The samples did not change: refresh the cached entry instead of recomputing it.
            self._cache.put(self._key(path), path.stat(), summary)
            self._cache.save()
        self._emit("curated", summary)
        return summary

    def trash(self, path: str | Path) -> Path:
        """Move ``path`` to ``<root>/.trash`` (recoverable with :meth:`restore`)."""
        path = Path(path)
        base = self.root if self.root.is_dir() else self.root.parent
        target = move_to_trash(path, base)
        self.summaries = [s for s in self.summaries if s.path != str(path)]
        if self._cache is not None:
            self._cache.drop(self._key(path))
            self._cache.save()
        self._emit("trashed", {"path": str(path), "trash": str(target)})
        return target

    def trashed(self) -> list[Path]:
        """Episodes in this folder's trash."""
        base = self.root if self.root.is_dir() else self.root.parent
        trash = base / TRASH_DIR
        return sorted(p for p in trash.glob("*.h5")) if trash.is_dir() else []

    def restore(self, trashed: str | Path) -> Path:
        """Move a trashed episode back to where it was; rescan to list it again."""
        base = self.root if self.root.is_dir() else self.root.parent
        target = restore_from_trash(Path(trashed), base)
        self._emit("restored", {"path": str(target)})
        return target

    def _emit(self, event: str, payload: Any) -> None:
        for callback in list(self.observers):
            callback(event, payload)
