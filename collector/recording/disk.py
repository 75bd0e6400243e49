"""Free disk space where episodes go: the one check before an episode starts (used by the
recorder, which refuses, and by the collect model, which says so before asking)."""

from __future__ import annotations

import shutil
from pathlib import Path

from collector.config import RecordingConfig


def free_bytes(folder: str | Path) -> int | None:
    """Free bytes on the disk that holds ``folder`` (or would: its nearest existing parent);
    ``None`` when the disk cannot be asked."""
    path = Path(folder).resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def start_refusal(recording: RecordingConfig) -> str | None:
    """Why an episode may not start for lack of space (``recording.min_free_gb``), or ``None``."""
    free = free_bytes(recording.output)
    if free is None or free >= recording.min_free_gb * 1e9:
        return None
    return (f"only {free / 1e9:.1f} GB free on {recording.output}; recording needs "
            f"{recording.min_free_gb:g} GB (recording.min_free_gb)")
