"""What every export shares: choosing and loading episodes, atomic output, progress, figures.

Exports read episodes read-only (:func:`collector.storage.open_episode`) and write into a
hidden sibling of the target that is renamed into place only when complete, so an interrupted
export leaves neither a half-written dataset nor any change to the recordings.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from tqdm import tqdm

from collector.storage import EpisodeError
from collector.export.selection import (EpisodeFilter, EpisodeSteps, SignalMapping,
                                        drop_damaged_steps, load_steps, select_episodes)

#: Frames read (and resized) per HDF5 request while exporting.
IMAGE_BATCH = 64


class ExportError(Exception):
    """An export that cannot be done; the text says why."""


@dataclass
class ExportResult:
    """What an export wrote: ``path``, episodes and steps, bytes, seconds, skipped files."""

    path: Path
    episodes: int
    steps: int
    bytes_written: int
    seconds: float
    skipped: dict[Path, str] = field(default_factory=dict)
    dropped_steps: int = 0
    #: Episodes exported without their damaged frames: path -> one reason per frame.
    damaged: dict[Path, list[str]] = field(default_factory=dict)
    #: What the export did that a user should know (padding, zero-filled hands, a warning).
    notes: list[str] = field(default_factory=list)

    @property
    def mb_per_s(self) -> float:
        return self.bytes_written / 1e6 / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        text = (f"{self.path}: {self.episodes} episodes, {self.steps} steps, "
                f"{self.bytes_written / 1e6:.1f} MB in {self.seconds:.1f} s ({self.mb_per_s:.1f} MB/s)")
        if self.dropped_steps:
            text += f"; {self.dropped_steps} steps without every signal left out"
        for note in self.notes:
            text += f"\n  note: {note}"
        for path, why in self.skipped.items():
            text += f"\n  skipped {path}: {why}"
        frames = sum(len(r) for r in self.damaged.values())
        if frames:
            text += f"\n  {frames} damaged frame{'s' if frames > 1 else ''} left out (their steps dropped):"
            for path, reasons in self.damaged.items():
                shown = "; ".join(reasons[:5]) + (f"; {len(reasons) - 5} more" if len(reasons) > 5 else "")
                text += f"\n    {path}: {shown}"
        return text


def check_consistent(episodes: Sequence[EpisodeSteps]) -> None:
    """Raise ``ValueError`` unless every episode has the same cameras, state and action names."""
    if not episodes:
        return
    first = episodes[0]
    for e in episodes[1:]:
        for what in ("state_names", "action_names"):
            if getattr(e, what) != getattr(first, what):
                raise ValueError(f"{e.path}: {what} differ from {first.path}'s; choose the "
                                 "signals explicitly (--state / --action)")
        if list(e.frames) != list(first.frames):
            raise ValueError(f"{e.path}: cameras {list(e.frames)} differ from {first.path}'s "
                             f"{list(first.frames)}; choose them with --camera")


def load_episodes(paths: Sequence[str | Path], mapping: SignalMapping,
                  episode_filter: EpisodeFilter | None,
                  damaged: dict[Path, list[str]] | None = None
                  ) -> tuple[list[EpisodeSteps], dict[Path, str]]:
    """The selected episodes as steps (empty and unreadable ones skipped), checked to be alike.

    Every camera frame an export will read is checked first (CRC32, Fletcher-32, or decoding
    in files without checksums): a damaged frame's step is left out and its reason added to
    ``damaged``, so the export never stops half-way on it."""
    files, skipped = select_episodes(paths, episode_filter)
    episodes = []
    for path in files:
        try:
            steps, reasons = drop_damaged_steps(load_steps(path, mapping), thorough=True)
        except EpisodeError as exc:  # damage in the state or time data: the episode is unusable
            skipped[path] = str(exc)
            continue
        if reasons and damaged is not None:
            damaged[path] = reasons
        if len(steps) < 2:
            skipped[path] = f"{len(steps)} usable steps"
        else:
            episodes.append(steps)
    if not episodes:
        reasons = "".join(f"\n  {p}: {why}" for p, why in skipped.items())
        raise ExportError(f"no episodes to export{reasons or ' (no .h5 files found)'}")
    try:
        check_consistent(episodes)
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    return episodes, skipped


#: File in a folder export, and root attribute of an HDF5 export, that marks it as written by
#: collector: ``--force`` replaces only what carries it.
EXPORT_MARKER = ".collector-export"
EXPORT_ATTR = "collector_export"


def check_output(target: Path, inputs: Sequence[str | Path], *, force: bool, directory: bool) -> None:
    """Raise :class:`ExportError` unless writing ``target`` is safe: it must not be an input, lie
    inside one or contain one, and an existing ``target`` is replaced only with ``force`` and only
    when it is a previous export of the same kind (it carries the marker this module writes)."""
    resolved = Path(target).resolve()
    for given in inputs:
        source = Path(given).resolve()
        if resolved == source:
            raise ExportError(f"refusing to write to {target}: it is the input {given}")
        if resolved.is_relative_to(source):
            raise ExportError(f"refusing to write to {target}: it is inside the input {given}")
        if source.is_relative_to(resolved):
            raise ExportError(f"refusing to write to {target}: it contains the input {given}")
    if not resolved.exists():
        return
    if not force:
        raise ExportError(f"{target} exists (use --force to replace it)")
    if not is_previous_export(resolved, directory=directory):
        kind = "folder" if directory else "HDF5 file"
        raise ExportError(f"refusing to replace {target}: it is not a previous collector export "
                          f"(no {EXPORT_MARKER if directory else EXPORT_ATTR + ' attribute'} in this "
                          f"{kind}); --force replaces only exports it wrote, remove it yourself or "
                          "choose another output")


def is_previous_export(path: Path, *, directory: bool) -> bool:
    """Whether ``path`` is an export collector wrote: a folder with :data:`EXPORT_MARKER`, or
    an HDF5 file whose root has :data:`EXPORT_ATTR`."""
    if directory:
        return path.is_dir() and not path.is_symlink() and (path / EXPORT_MARKER).is_file()
    if not path.is_file() or path.is_symlink():
        return False
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return EXPORT_ATTR in f.attrs
    except OSError:
        return False


def _mark(tmp: Path, kind: str, directory: bool) -> None:
    import json

    import h5py

    from collector import __version__

    if directory:
        (tmp / EXPORT_MARKER).write_text(json.dumps({"format": kind, "app_version": __version__}) + "\n")
    else:
        with h5py.File(tmp, "a") as f:
            f.attrs[EXPORT_ATTR] = kind


@contextmanager
def atomic_output(target: Path, *, force: bool, directory: bool,
                  inputs: Sequence[str | Path] = (), kind: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target``.

    Checks ``target`` first (:func:`check_output`: never an input, inside one or holding one;
    an existing ``target`` only with ``force`` and only if it is a previous export). The
    finished output is marked as an export (``kind``: the format). On failure the temporary is
    removed.
    """
    target = Path(target)
    check_output(target, inputs, force=force, directory=directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.partial-{os.getpid()}")
    _remove(tmp)
    if directory:
        tmp.mkdir()
    try:
        yield tmp
        _mark(tmp, kind, directory)
    except BaseException:
        _remove(tmp)
        raise
    check_output(target, inputs, force=force, directory=directory)  # unchanged while we wrote?
    _remove(target)
    os.replace(tmp, target)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def progress(total: int, desc: str, enabled: bool = True) -> tqdm:
    """A progress bar over ``total`` frames (steps x cameras) on stderr (hidden when ``enabled`` is false)."""
    return tqdm(total=total, desc=desc, unit="frame", disable=not enabled, file=sys.stderr,
                dynamic_ncols=True, leave=True)


def batches(n: int, size: int = IMAGE_BATCH) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def field_groups(names: Sequence[str]) -> dict[str, slice]:
    """``["glove/hand/wrist_pos.x", ...]`` -> ``{"glove/hand/wrist_pos": slice(0, 3), ...}``."""
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        groups.setdefault(name.rsplit(".", 1)[0], []).append(i)
    return {key: slice(idx[0], idx[-1] + 1) for key, idx in groups.items()}


def velocity(state: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """Time derivative of each state channel (per second), float32."""
    if state.shape[0] < 2:
        return np.zeros_like(state, np.float32)
    return np.gradient(state.astype(np.float64), t_s, axis=0).astype(np.float32)


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start
