"""Episode files as a collection: where a new one goes, operator edits, the trash.

Every function here leaves sample data untouched: edits touch attributes only, and nothing is
deleted (discarded episodes move to ``<output>/.trash``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

import h5py

from collector.storage.schema import OUTCOMES

#: Attributes an operator or reviewer may change on a finished episode.
EDITABLE_ATTRS = ("outcome", "notes", "tags", "trim")
#: Folder (under the recordings root) that discarded episodes move to.
TRASH_DIR = ".trash"


def episode_path(output: str | Path, pattern: str, meta: dict[str, Any], uuid: str,
                 when: datetime) -> Path:
    """Where an episode goes: ``output / pattern`` filled in (safe file names); ``pattern``
    may use ``{task}``, ``{operator}``, ``{station}``, ``{date}``, ``{time}`` and ``{uuid}``
    (its first 8 characters), e.g. the config's ``recording.path_pattern``."""
    def safe(value: Any) -> str:
        text = str(value or "unknown").strip()
        return "".join(c if c.isalnum() or c in "-_." else "-" for c in text) or "unknown"
    local = when.astimezone()
    relative = pattern.format(
        task=safe(meta.get("task")), operator=safe(meta.get("operator")),
        station=safe(meta.get("station")), date=local.strftime("%Y-%m-%d"),
        time=local.strftime("%H%M%S"), uuid=uuid[:8])
    return Path(output) / relative


def count_task_episodes(output: str | Path, pattern: str, task: str, when: datetime) -> int:
    """How many episodes of ``task`` lie on disk for ``when``'s day (local date), where
    :func:`episode_path` puts them (any operator, station, time and uuid; not the trash)."""
    def safe(value: Any) -> str:
        text = str(value or "unknown").strip()
        return "".join(c if c.isalnum() or c in "-_." else "-" for c in text) or "unknown"
    glob = pattern.format(task=safe(task), operator="*", station="*", time="*", uuid="*",
                          date=when.astimezone().strftime("%Y-%m-%d"))
    return sum(1 for p in Path(output).glob(glob) if p.is_file() and TRASH_DIR not in p.parts)


def split_by_episode(uuids: Sequence[str], val_fraction: float, seed: int = 0) -> set[str]:
    """The episode uuids held out for validation: a stable, seeded choice of
    ``ceil(fraction * n)`` episodes (at least one when ``val_fraction > 0`` and there are two
    or more episodes).

    The one split rule of the app: exports (robomimic masks, the torch dataset) and WAM training
    all call it, so an episode held out anywhere is held out everywhere with the same seed. Each
    episode's side depends only on its uuid and the seed ranks, so adding recordings moves few
    episodes across."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = math.ceil(val_fraction * len(uuids)) if len(uuids) > 1 else 0
    ranked = sorted(uuids, key=lambda u: hashlib.sha256(f"{seed}:{u}".encode()).hexdigest())
    return set(ranked[:n_val])


def editable_attr_values(attrs: dict[str, Any]) -> dict[str, str | None]:
    """``attrs`` checked and converted to how episodes store them (``None``: remove the
    attribute); raises ``ValueError`` saying what is wrong."""
    unknown = set(attrs) - set(EDITABLE_ATTRS)
    if unknown:
        raise ValueError(f"cannot edit {', '.join(sorted(unknown))}; editable: {', '.join(EDITABLE_ATTRS)}")
    if "outcome" in attrs and attrs["outcome"] not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, got {attrs['outcome']!r}")
    values: dict[str, str | None] = {}
    for key, value in attrs.items():
        if key == "tags":
            if isinstance(value, str) or not all(isinstance(t, str) for t in value):
                raise ValueError(f"tags must be a list of strings, got {value!r}")
            values[key] = json.dumps([t.strip() for t in value if t.strip()])
        elif key == "trim":
            values[key] = None if value is None else json.dumps(list(parse_trim(value)))
        else:
            values[key] = str(value)
    return values


def update_episode_attrs(path: str | Path, **attrs: Any) -> None:
    """Set operator-editable attributes (outcome, notes, tags, trim) on a finished episode,
    leaving every dataset untouched.

    Every value is checked before the file is opened, so a bad value changes nothing. ``trim``
    is ``[start_s, end_s]`` (see :func:`parse_trim`) or ``None`` to remove it. An interrupted
    file (still flagged open by its writer) is refused: run ``collector recover`` first.
    """
    values = editable_attr_values(attrs)
    try:
        f = h5py.File(path, "r+")
    except OSError as exc:
        if "open for write" in str(exc) or "lock" in str(exc):
            raise OSError(f"{path}: cannot open for editing ({exc}): a recording still in progress "
                          "or interrupted (complete it with `collector recover`), or open in "
                          "another program") from None
        raise OSError(f"{path}: cannot open for editing, not an HDF5 file or truncated/corrupt "
                      f"({exc})") from None
    with f:
        if "schema_version" not in f.attrs or "streams" not in f:
            raise ValueError(f"{path}: not a collector episode (no schema_version attribute or "
                             "/streams group); nothing changed")
        if f.attrs.get("status") == "recording":
            raise ValueError(f"{path}: the recording is not finished (status 'recording')")
        if values.get("trim"):
            check_trim_inside(json.loads(values["trim"]), float(f.attrs.get("duration_s") or 0))
        for key, value in values.items():
            if value is None:
                f.attrs.pop(key, None)
            else:
                f.attrs[key] = value


def parse_trim(value: Any) -> tuple[float, float] | None:
    """A ``trim`` attribute as ``(start_s, end_s)``, or ``None`` for no trim.

    ``value`` is the attribute's JSON text (``"[1.5, 12.0]"``), a pair, or empty/``None``.
    Seconds count from the episode's ``start_time_ns`` on the host clock (the clock of
    ``t_host_ns`` and ``/sync/t_ns``). Raises ``ValueError`` for anything but
    ``0 <= start_s < end_s``.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError(f"trim {value!r} is not JSON [start_s, end_s]") from None
    try:
        start, end = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"trim must be [start_s, end_s], got {value!r}") from None
    if not (0 <= start < end) or end == float("inf"):
        raise ValueError(f"trim must satisfy 0 <= start_s < end_s, got [{start:g}, {end:g}]")
    return start, end


#: How far a trim may reach past the recorded duration (rounding of ``duration_s``).
TRIM_TOLERANCE_S = 0.05


def check_trim_inside(trim: Any, duration_s: float) -> None:
    """``ValueError`` unless ``trim`` (``[start_s, end_s]``) lies inside an episode of
    ``duration_s`` seconds (unknown, 0: not checked)."""
    start, end = parse_trim(trim) or (0.0, 0.0)
    if duration_s > 0 and end > duration_s + TRIM_TOLERANCE_S:
        raise ValueError(f"trim [{start:g}, {end:g}] s reaches outside the episode "
                         f"(0 to {duration_s:.2f} s)")


def trim_mask(t_ns: Any, start_time_ns: int, trim: Any) -> Any:
    """Which of the timestamps ``t_ns`` (host clock, ns) lie inside the trim range (a boolean
    array; all true without a trim). Exports keep exactly these samples."""
    import numpy as np

    t = np.asarray(t_ns, dtype=np.int64)
    bounds = parse_trim(trim)
    if bounds is None:
        return np.ones(t.shape, bool)
    lo, hi = (int(start_time_ns) + int(round(b * 1e9)) for b in bounds)
    return (t >= lo) & (t <= hi)


def move_to_trash(path: Path, root: Path) -> Path:
    """Discarded episodes are moved, never deleted: a mistaken key press is recoverable.

    The file goes to ``root/.trash/<its name>`` (a numbered name if one is there already: it
    never replaces a trashed file), and ``<that name>.origin`` records where it came from for
    :func:`restore_from_trash`. Returns where it went.
    """
    path, root = Path(path), Path(root)
    target = _free_name(root / TRASH_DIR / path.name)
    if path.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        try:
            origin = str(path.resolve().relative_to(root.resolve()))
        except ValueError:
            origin = str(path.resolve())
        target.with_name(target.name + ".origin").write_text(origin + "\n")
    return target


def restore_from_trash(trashed: Path, root: Path) -> Path:
    """Move a trashed episode back to where it came from (a numbered name if that place is
    taken again; the root itself if its origin is unknown). Returns its new path."""
    trashed, root = Path(trashed), Path(root)
    origin_file = trashed.with_name(trashed.name + ".origin")
    origin = origin_file.read_text().strip() if origin_file.exists() else trashed.name
    target = _free_name(root / origin)  # an absolute origin stays absolute
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(trashed, target)
    origin_file.unlink(missing_ok=True)
    return target


def find_in_trash(original: Path, root: Path) -> Path | None:
    """The newest trashed file of ``root`` that came from ``original`` (None: there is none)."""
    trash = Path(root) / TRASH_DIR
    wanted = {str(Path(original).resolve())}
    try:
        wanted.add(str(Path(original).resolve().relative_to(Path(root).resolve())))
    except ValueError:
        pass
    found = [Path(str(o)[:-len(".origin")]) for o in trash.glob("*.origin")
             if o.read_text().strip() in wanted]
    found = [p for p in found if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def _free_name(target: Path) -> Path:
    candidate, n = target, 1
    while candidate.exists():
        candidate = target.with_name(f"{target.stem}.{n}{target.suffix}")
        n += 1
    return candidate


def sample_checksum(path: str | Path) -> str:
    """SHA-256 over every dataset's name, shape, dtype and bytes (not the attributes): equal
    before and after an edit proves the edit left the recorded samples untouched."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    with h5py.File(path, "r") as f:
        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset):
                digest.update(f"{name}{obj.shape}{obj.dtype}".encode())
                digest.update(np.ascontiguousarray(obj[()]).tobytes())
        f.visititems(visit)
    return digest.hexdigest()


def format_free_space(free_mb: float, reserve_mb: float, folder: str | Path) -> str:
    """The recorder's disk-full message, never with a negative figure: free space below the
    reserve (or none at all) reads as ``"disk is full"``, e.g. ``"/data: disk is full (0 MB
    left, recording.reserve_mb = 0)"`` or ``"/data: only 12 MB left (recording.reserve_mb =
    64)"``. ``free_mb`` may be negative when the caller subtracts what it is about to write."""
    left = max(0.0, float(free_mb))
    reserve = max(0.0, float(reserve_mb))
    if left < 1.0:
        return f"{folder}: disk is full (0 MB left, recording.reserve_mb = {reserve:g})"
    return f"{folder}: only {left:.0f} MB left (recording.reserve_mb = {reserve:g})"
