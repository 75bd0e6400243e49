"""The station's WAM checkpoint registry: one JSON file of what each checkpoint learned from.

The background trainer (:mod:`collector.wam.trainer_service`) keeps it in its folder
(``registry.json``, written atomically): every saved episode it has seen with its task and its
side of the split (``train``, ``select`` or ``held_out``, decided once, when the episode is first
seen, so an episode held out is never trained on or selected on later), and every checkpoint it made with the episodes and
tasks it was trained on, its held-out skill and whether it replaced the running one.
``collector wam status`` reads it; :func:`training_summary` turns a checkpoint's report into the
line the window and the CLI show ("trained on 14 episodes of pick-cube, +1.4 dB over still frame
at +1 s").
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REGISTRY_FILE = "registry.json"
REGISTRY_VERSION = 1
#: The sides of the split: trained on; scored to pick the fine-tune's best state (early stopping);
#: scored once, to decide the swap. Registries written before selection had no SELECT episodes.
TRAIN, SELECT, HELD_OUT = "train", "select", "held_out"


def skill_db(validation: dict[str, float] | None) -> float | None:
    """Held-out skill: whole-frame PSNR at +1 s of the model minus that of the still frame
    (copy-last), dB; ``None`` without both figures."""
    if not validation or "psnr_1s" not in validation or "psnr_1s_copy_last" not in validation:
        return None
    return float(validation["psnr_1s"]) - float(validation["psnr_1s_copy_last"])


def format_db(value: float | None) -> str:
    """``+1.42 dB``, or ``n/a`` for a figure that is missing."""
    return "n/a" if value is None else f"{value:+.2f} dB"


def describe_tasks(tasks: dict[str, int]) -> str:
    """``{"pick-cube": 14}`` -> ``"pick-cube"``; several: ``"pick-cube (10), stack (4)"``."""
    named = {t: n for t, n in tasks.items() if t}
    if len(named) == 1:
        return next(iter(named))
    return ", ".join(f"{t} ({n})" for t, n in sorted(named.items(), key=lambda kv: (-kv[1], kv[0])))


def training_summary(report: dict[str, Any] | None) -> str:
    """One line on what a checkpoint was trained on and its held-out skill at +1 s, from its
    training report ("" when the report says nothing)."""
    if not report:
        return ""
    station = report.get("station") or {}
    episodes = station.get("episodes", len(report.get("train_episodes") or []))
    if not episodes:
        return ""
    tasks = describe_tasks(station.get("tasks") or {})
    text = f"trained on {episodes} episode{'s' if episodes != 1 else ''}" + (f" of {tasks}" if tasks else "")
    skill = skill_db(report.get("validation"))
    if skill is not None:
        text += f", {skill:+.1f} dB over still frame at +1 s"
    return text


@dataclass
class Registry:
    """``registry.json`` in ``folder``: episodes seen and checkpoints made (see the module
    docstring). Not thread-safe; the trainer owns it."""

    folder: Path
    #: uuid -> {"path", "task", "side"}, in the order they were seen.
    episodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Every checkpoint the trainer made, oldest first.
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    #: The checkpoint the node runs (a path), or ``None``: the one it started with.
    active: str | None = None

    @classmethod
    def load(cls, folder: str | Path) -> "Registry":
        """The registry in ``folder`` (empty if there is none yet). Raises ``ValueError`` for a
        file that is not a registry."""
        folder = Path(folder)
        path = folder / REGISTRY_FILE
        if not path.exists():
            return cls(folder)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a readable registry ({exc})") from None
        if not isinstance(data, dict) or data.get("version") != REGISTRY_VERSION:
            raise ValueError(f"{path}: not a version {REGISTRY_VERSION} WAM checkpoint registry")
        return cls(folder, dict(data.get("episodes") or {}), list(data.get("checkpoints") or []),
                   data.get("active"))

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / REGISTRY_FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"version": REGISTRY_VERSION, "episodes": self.episodes,
                                   "checkpoints": self.checkpoints, "active": self.active},
                                  indent=1))
        os.replace(tmp, path)  # a reader never sees half a file

    def note_episode(self, uuid: str, path: str, task: str, val_fraction: float = 0.2,
                     select_fraction: float = 0.0) -> str:
        """Add a saved episode (once; again: its side unchanged) and return its side: held out
        while fewer than ``ceil(val_fraction * n)`` of the ``n`` episodes seen are, else for
        selection while fewer than ``ceil(select_fraction * n)`` are, else train. At 0.2 and 0.2:
        the 1st episode held out, the 2nd for selection, the next four trained on, and so on."""
        if uuid in self.episodes:
            return self.episodes[uuid]["side"]
        n = len(self.episodes) + 1
        count = Counter(e["side"] for e in self.episodes.values())
        if count[HELD_OUT] < math.ceil(val_fraction * n):
            side = HELD_OUT
        elif count[SELECT] < math.ceil(select_fraction * n):
            side = SELECT
        else:
            side = TRAIN
        self.episodes[uuid] = {"path": str(path), "task": task, "side": side}
        return side

    def paths(self, side: str) -> list[str]:
        """The episode files on one side of the split that still exist."""
        return [e["path"] for e in self.episodes.values() if e["side"] == side and Path(e["path"]).exists()]

    def tasks(self, side: str = TRAIN) -> dict[str, int]:
        return dict(Counter(e["task"] for e in self.episodes.values()
                            if e["side"] == side and Path(e["path"]).exists()))

    def uuids(self, side: str) -> list[str]:
        return [u for u, e in self.episodes.items() if e["side"] == side and Path(e["path"]).exists()]

    def active_entry(self) -> dict[str, Any] | None:
        return next((c for c in reversed(self.checkpoints) if c["path"] == self.active), None)
