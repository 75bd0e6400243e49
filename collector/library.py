"""Episode files as a collection: where a new one goes, operator edits, the trash.

Every function here leaves sample data untouched: edits touch attributes only, and nothing is
deleted (discarded episodes move to ``<output>/.trash``).
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import h5py

from .config import RecordingConfig
from .episode import OUTCOMES

#: Attributes an operator or reviewer may change on a finished episode.
EDITABLE_ATTRS = ("outcome", "notes", "tags")


def episode_path(rec: RecordingConfig, meta: dict[str, Any], uuid: str, when: datetime) -> Path:
    """Where an episode goes: ``rec.output / rec.path_pattern`` filled in (safe file names)."""
    def safe(value: Any) -> str:
        text = str(value or "unknown").strip()
        return "".join(c if c.isalnum() or c in "-_." else "-" for c in text) or "unknown"
    local = when.astimezone()
    relative = rec.path_pattern.format(
        task=safe(meta.get("task")), operator=safe(meta.get("operator")),
        station=safe(meta.get("station")), date=local.strftime("%Y-%m-%d"),
        time=local.strftime("%H%M%S"), uuid=uuid[:8])
    return Path(rec.output) / relative


def update_episode_attrs(path: str | Path, **attrs: Any) -> None:
    """Set operator-editable attributes (outcome, notes, tags) on a finished episode, leaving
    every dataset untouched."""
    unknown = set(attrs) - set(EDITABLE_ATTRS)
    if unknown:
        raise ValueError(f"cannot edit {', '.join(sorted(unknown))}; editable: {', '.join(EDITABLE_ATTRS)}")
    if "outcome" in attrs and attrs["outcome"] not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, got {attrs['outcome']!r}")
    with h5py.File(path, "r+") as f:
        for key, value in attrs.items():
            f.attrs[key] = json.dumps(list(value)) if key == "tags" else str(value)


def move_to_trash(path: Path, root: Path) -> Path:
    """Discarded episodes are moved, never deleted: a mistaken key press is recoverable."""
    trash = root / ".trash"
    trash.mkdir(parents=True, exist_ok=True)
    target = trash / path.name
    if path.exists():
        os.replace(path, target)
    return target
