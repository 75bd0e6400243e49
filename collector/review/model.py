"""The review tool without Qt: a folder of episodes, a selection, a filter, curation and undo.

:class:`ReviewModel` is what the review window shows and what its buttons call; it runs headless
(tests, scripts, the CLI) and every action is a method:

    model = ReviewModel("recordings")
    model.scan(wait=True)                           # or in the background: events say when done
    model.set_filter(task="pick", flagged_only=True)
    model.select(model.visible()[0].path)
    model.curate(outcome="success", tags=["clean"], trim=[0.8, 11.5])
    model.trash()                                   # the selected episode, to <root>/.trash
    model.undo()                                    # puts it back; undo again reverts the edit

Observers (``model.subscribe(listener)``) get ``listener(event, data)`` with ``data`` a dict:

=================  ======================================================================
``folder``         ``root``: a folder was opened (nothing listed yet)
``scan_started``   ``root``
``scan_progress``  ``done``, ``total``: files opened so far (cached ones are not counted)
``scanned``        ``summaries`` (newest first), ``tasks``; or ``error`` if listing failed
``selected``       ``summary`` (or ``None``)
``filter``         ``filter`` (a :class:`ReviewFilter`)
``releasing``      ``path``: about to write or move this file: close any handle on it now
``released``       ``path``: done writing it (or the move failed): handles may reopen
``curated``        ``summary`` (updated), ``changes``
``trashed``        ``summary``, ``trash`` (where the file went)
``restored``       ``path`` (listed again after the rescan that follows)
``undo``           ``can_undo``: the undo stack changed
``message``        ``text``: one line for a status bar
``error``          ``action``, ``message``: an action failed; nothing changed
=================  ======================================================================

``scan_started``, ``scan_progress``, ``scanned`` and their ``message`` come from the scan's worker
thread (a view marshals them);
every other event comes from the thread that called the action.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable

from collector.review.catalog import EpisodeCatalog
from collector.review.summary import EpisodeSummary

log = logging.getLogger(__name__)

Listener = Callable[[str, dict[str, Any]], None]

#: Outcomes an operator can set; ``damaged`` is also a filter value (unreadable files).
OUTCOMES = ("success", "failure", "unknown")
#: Curation fields an edit may change (the attributes of ``EpisodeCatalog.curate``).
EDITABLE = ("outcome", "tags", "notes", "trim")


@dataclass(frozen=True)
class ReviewFilter:
    """Which episodes are shown: ``""``/``False`` means any."""

    search: str = ""        # every word must appear in task, operator, tags, notes, flags, file...
    outcome: str = ""       # success / failure / unknown / damaged
    task: str = ""
    flagged_only: bool = False

    def matches(self, s: EpisodeSummary) -> bool:
        if self.outcome and (s.outcome if s.ok else "damaged") != self.outcome:
            return False
        if self.task and s.task != self.task:
            return False
        if self.flagged_only and not s.flags:
            return False
        if self.search:
            text = " ".join([s.task, s.operator, s.station, s.prompt, s.notes, s.outcome, s.name,
                             *s.tags, *s.flags, s.error]).lower()
            return all(word in text for word in self.search.lower().split())
        return True


@dataclass
class _Edit:
    """Undo of a curation: the fields as they were."""

    path: str
    before: dict[str, Any]

    def describe(self) -> str:
        return f"edit of {Path(self.path).name}"


@dataclass
class _Trash:
    """Undo of a move to the trash."""

    path: str
    trash: Path

    def describe(self) -> str:
        return f"trash of {Path(self.path).name}"


class ReviewModel:
    """A folder of episodes as the review tool sees it.

    Args:
        root: folder of episodes (or one file); ``None`` until :meth:`open_folder`.
        use_cache: keep summaries in ``<root>/.collector-review`` (see :class:`EpisodeCatalog`).
        undo_limit: how many actions :meth:`undo` can take back.
    """

    def __init__(self, root: str | Path | None = None, *, use_cache: bool = True, undo_limit: int = 50) -> None:
        self.use_cache = use_cache
        self.undo_limit = undo_limit
        self.catalog: EpisodeCatalog | None = None
        self.summaries: list[EpisodeSummary] = []
        self.current: EpisodeSummary | None = None
        self.filter = ReviewFilter()
        self.undo_stack: list[_Edit | _Trash] = []
        self._listeners: list[Listener] = []
        self._lock = threading.RLock()
        self._scan_thread: threading.Thread | None = None
        self._rescan = False            # a scan was asked for while one ran
        self._reselect: str | None = None   # select this path once it is listed
        if root is not None:
            self.open_folder(root, scan=False)

    # ---- observers ---------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event, data)`` on every model event; returns the unsubscribe call."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _emit(self, event: str, **data: Any) -> None:
        for listener in list(self._listeners):
            try:
                listener(event, data)
            except Exception:
                log.exception("review listener failed on %s", event)

    def _fail(self, action: str, exc: BaseException) -> None:
        self._emit("error", action=action, message=str(exc))
        self._emit("message", text=f"{action}: {exc}")

    # ---- folder and listing ------------------------------------------------------------------
    @property
    def root(self) -> Path | None:
        return self.catalog.root if self.catalog is not None else None

    @property
    def thumbnail_folder(self) -> Path | None:
        return self.catalog.thumbnail_folder if self.catalog is not None else None

    @property
    def scanning(self) -> bool:
        return self._scan_thread is not None

    @property
    def tasks(self) -> list[str]:
        """The tasks of the listed readable episodes, sorted."""
        return sorted({s.task for s in self.summaries if s.ok and s.task})

    def open_folder(self, root: str | Path, *, scan: bool = True, wait: bool = False) -> None:
        """Review ``root`` (a different folder empties the undo stack); list it if ``scan``."""
        root = Path(root)
        if self.catalog is None or self.catalog.root.resolve() != root.resolve():
            self.undo_stack.clear()
            self._emit("undo", can_undo=False)
        self.catalog = EpisodeCatalog(root, use_cache=self.use_cache)
        self._emit("folder", root=root)
        if scan:
            self.scan(wait=wait)

    def scan(self, *, wait: bool = False) -> bool:
        """List the folder on a worker thread (``wait``: and return when done). Asked while a scan
        runs, one more scan follows it (that one may miss files added since it began). ``False``
        if no folder is open."""
        if self.catalog is None:
            return False
        with self._lock:
            if self._scan_thread is not None:
                self._rescan = True
                thread = self._scan_thread
            else:
                thread = threading.Thread(target=self._scan_work, name="review-scan", daemon=True)
                self._scan_thread = thread
                thread.start()
        if wait:
            thread.join()
        return True

    def _scan_work(self) -> None:
        while True:
            catalog = self.catalog
            self._emit("scan_started", root=catalog.root)
            self._emit("message", text=f"Listing {catalog.root} …")
            try:
                summaries = catalog.scan(progress=self._progress)
            except Exception as exc:  # an unreadable folder must not kill the tool
                log.exception("scan failed")
                self._emit("scanned", summaries=None, tasks=[], error=str(exc))
                self._emit("message", text=f"Cannot list {catalog.root}: {exc}")
            else:
                if catalog is self.catalog:  # not a folder opened since
                    self._apply_scan(summaries)
            with self._lock:
                if not self._rescan or self.catalog is None:
                    self._scan_thread = None
                    return
                self._rescan = False

    def _progress(self, done: int, total: int) -> None:
        self._emit("scan_progress", done=done, total=total)
        self._emit("message", text=f"Reading new or changed episodes: {done}/{total}")

    def _apply_scan(self, summaries: list[EpisodeSummary]) -> None:
        with self._lock:
            self.summaries = list(summaries)
            before = self.current.path if self.current is not None else None
            wanted = self._reselect or before
            self._reselect = None
            self.current = self.get(wanted) if wanted else None
            after = self.current.path if self.current is not None else None
        damaged = sum(not s.ok for s in summaries)
        self._emit("scanned", summaries=list(summaries), tasks=self.tasks, error=None)
        if after != before:  # a restored episode is selected, or the selected one is gone
            self._emit("selected", summary=self.current)
        self._emit("message", text=f"{len(summaries)} episodes" + (f", {damaged} damaged" if damaged else ""))

    def get(self, path: str | Path | None) -> EpisodeSummary | None:
        """The listed summary of ``path``, or ``None``."""
        if path is None:
            return None
        wanted = str(Path(path))
        return next((s for s in self.summaries if s.path == wanted), None)

    # ---- filter and selection ----------------------------------------------------------------
    def set_filter(self, **values: Any) -> ReviewFilter:
        """Change some of ``search``, ``outcome``, ``task``, ``flagged_only`` (``""``, or the menus'
        "any outcome" / "any task", clears one)."""
        names = {f.name for f in fields(ReviewFilter)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"no such filter: {', '.join(sorted(unknown))}")
        values = {k: "" if k in ("outcome", "task") and str(v).startswith("any ") else v for k, v in values.items()}
        if values.get("outcome") and values["outcome"] not in (*OUTCOMES, "damaged"):
            raise ValueError(f"outcome filter {values['outcome']!r}: not one of {OUTCOMES + ('damaged',)}")
        self.filter = replace(self.filter, **values)
        self._emit("filter", filter=self.filter)
        return self.filter

    def matches(self, summary: EpisodeSummary) -> bool:
        return self.filter.matches(summary)

    def visible(self) -> list[EpisodeSummary]:
        """The listed episodes the filter keeps, newest first."""
        return [s for s in self.summaries if self.filter.matches(s)]

    def select(self, path: str | Path | None) -> EpisodeSummary | None:
        """Make ``path`` the current episode (``None``: none); returns its summary."""
        summary = self.get(path)
        if summary is self.current:
            return summary
        self.current = summary
        self._emit("selected", summary=summary)
        if summary is not None and not summary.ok:
            self._emit("message", text=f"Damaged: {summary.error}")
        return summary

    # ---- curation ----------------------------------------------------------------------------
    def curate(self, path: str | Path | None = None, **changes: Any) -> EpisodeSummary | None:
        """Write ``outcome``, ``tags``, ``notes`` and/or ``trim`` to ``path`` (default: the
        current episode); undoable. Returns the updated summary, or ``None`` (an ``error``
        event says why) if nothing was written."""
        unknown = set(changes) - set(EDITABLE)
        if unknown:
            raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
        summary = self.get(path) if path is not None else self.current
        if summary is None or not summary.ok or self.catalog is None or not changes:
            return None
        before = {key: _copy(getattr(summary, key)) for key in changes}
        updated = self._write(summary.path, changes)
        if updated is not None:
            self._push(_Edit(updated.path, before))
            self._emit("message", text=f"Saved {', '.join(changes)} of {updated.name}")
        return updated

    def set_outcome(self, outcome: str, path: str | Path | None = None) -> EpisodeSummary | None:
        """Mark the episode (default: the current one) ``success``, ``failure`` or ``unknown``."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome {outcome!r}: not one of {OUTCOMES}")
        return self.curate(path, outcome=outcome)

    def _write(self, path: str, changes: dict[str, Any]) -> EpisodeSummary | None:
        self._emit("releasing", path=path)
        try:
            updated = self.catalog.curate(path, **changes)
        except (ValueError, OSError) as exc:
            self._fail("Not saved", exc)
            self._emit("released", path=path)
            return None
        with self._lock:
            self.summaries = [updated if s.path == updated.path else s for s in self.summaries]
            if self.current is not None and self.current.path == updated.path:
                self.current = updated
        self._emit("curated", summary=updated, changes=dict(changes))
        self._emit("released", path=path)
        return updated

    def trash(self, path: str | Path | None = None) -> Path | None:
        """Move the episode (default: the current one; a damaged file too) to the folder's
        ``.trash``; undoable. Returns where it went, or ``None`` if it did not move."""
        summary = self.get(path) if path is not None else self.current
        if summary is None or self.catalog is None:
            return None
        self._emit("releasing", path=summary.path)  # the file must not be open while it moves
        try:
            target = self.catalog.trash(summary.path)
        except OSError as exc:
            self._fail("Cannot move to trash", exc)
            self._emit("released", path=summary.path)
            return None
        with self._lock:
            self.summaries = [s for s in self.summaries if s.path != summary.path]
            was_current = self.current is not None and self.current.path == summary.path
        if was_current:
            self.current = None
            self._emit("selected", summary=None)
        self._push(_Trash(summary.path, target))
        self._emit("trashed", summary=summary, trash=target)
        self._emit("message", text=f"Moved {summary.name} to {target.parent} — Ctrl+Z puts it back")
        return target

    def trashed(self) -> list[Path]:
        """The episodes in this folder's trash."""
        return self.catalog.trashed() if self.catalog is not None else []

    def restore(self, trashed: str | Path, *, wait: bool = False) -> Path | None:
        """Move a trashed episode back where it was, rescan and select it once listed."""
        if self.catalog is None:
            return None
        try:
            restored = self.catalog.restore(trashed)
        except OSError as exc:
            self._fail("Cannot restore", exc)
            return None
        with self._lock:
            self._reselect = str(restored)
        self._emit("restored", path=restored)
        self._emit("message", text=f"Restored {restored}")
        self.scan(wait=wait)
        return restored

    # ---- undo --------------------------------------------------------------------------------
    @property
    def can_undo(self) -> bool:
        return bool(self.undo_stack)

    def undo_text(self) -> str:
        """What :meth:`undo` would take back, e.g. ``"trash of ep.h5"`` (``""``: nothing)."""
        return self.undo_stack[-1].describe() if self.undo_stack else ""

    def _push(self, step: _Edit | _Trash) -> None:
        self.undo_stack.append(step)
        del self.undo_stack[:-self.undo_limit]
        self._emit("undo", can_undo=True)

    def undo(self, *, wait: bool = False) -> bool:
        """Take back the last edit or move to the trash; ``False`` if there was none or it failed
        (then it stays on the stack). ``wait``: an undone trash returns once listed again."""
        if not self.undo_stack or self.catalog is None:
            return False
        step = self.undo_stack[-1]
        if isinstance(step, _Trash):
            done = self.restore(step.trash, wait=wait) is not None
        else:
            done = self.get(step.path) is not None and self._write(step.path, step.before) is not None
            if done:
                self._emit("message", text=f"Undid the {step.describe()}")
        if done:
            self.undo_stack.pop()
            self._emit("undo", can_undo=self.can_undo)
        return done

    def close(self, timeout_s: float = 10.0) -> None:
        """Wait for a running scan (a window calls this when it closes)."""
        with self._lock:
            self._rescan = False
            thread = self._scan_thread
        if thread is not None:
            thread.join(timeout_s)


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value
