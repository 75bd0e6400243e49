"""Dataset dashboard figures: hours and episodes per task, operator and day, success rate,
share flagged. Plain data from a list of summaries; the window, ``collector ls --stats`` and
the HTML report draw it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from collector.review.summary import EpisodeSummary


@dataclass
class GroupStats:
    """Totals of one group of episodes (a task, an operator, a day, or all of them)."""

    episodes: int = 0
    seconds: float = 0.0
    kept_seconds: float = 0.0
    success: int = 0
    failure: int = 0
    unknown: int = 0
    flagged: int = 0
    damaged: int = 0
    bytes: int = 0

    @property
    def hours(self) -> float:
        return self.seconds / 3600

    @property
    def success_rate(self) -> float | None:
        """Successes among episodes judged success or failure; ``None`` when none is judged."""
        judged = self.success + self.failure
        return self.success / judged if judged else None

    @property
    def labelled(self) -> int:
        """Episodes marked success or failure (the rate's denominator)."""
        return self.success + self.failure

    @property
    def success_caption(self) -> str:
        """What the rate counts, in words: ``success rate of labelled episodes (3 of 10 labelled)``."""
        return (f"success rate of labelled episodes ({self.labelled} of "
                f"{self.episodes - self.damaged} labelled)")

    @property
    def flagged_share(self) -> float:
        readable = self.episodes - self.damaged
        return self.flagged / readable if readable else 0.0

    def add(self, s: EpisodeSummary) -> None:
        self.episodes += 1
        self.bytes += s.file_bytes
        if not s.ok:
            self.damaged += 1
            return
        self.seconds += s.duration_s
        self.kept_seconds += s.kept_duration_s
        outcome = s.outcome if s.outcome in ("success", "failure") else "unknown"
        setattr(self, outcome, getattr(self, outcome) + 1)
        self.flagged += bool(s.flags)


@dataclass
class Dashboard:
    """Totals, and the same per task, operator and day (keys sorted)."""

    total: GroupStats = field(default_factory=GroupStats)
    by_task: dict[str, GroupStats] = field(default_factory=dict)
    by_operator: dict[str, GroupStats] = field(default_factory=dict)
    by_day: dict[str, GroupStats] = field(default_factory=dict)
    flag_counts: dict[str, int] = field(default_factory=dict)


def build_dashboard(summaries: Iterable[EpisodeSummary]) -> Dashboard:
    """Aggregate ``summaries`` (damaged files count as episodes with no duration)."""
    board = Dashboard()
    for s in summaries:
        board.total.add(s)
        if not s.ok:
            continue
        for groups, key in ((board.by_task, s.task), (board.by_operator, s.operator),
                            (board.by_day, s.day)):
            groups.setdefault(key or "(none)", GroupStats()).add(s)
        for flag in s.flags:
            board.flag_counts[flag] = board.flag_counts.get(flag, 0) + 1
    for name in ("by_task", "by_operator", "by_day"):
        setattr(board, name, dict(sorted(getattr(board, name).items())))
    board.flag_counts = dict(sorted(board.flag_counts.items(), key=lambda kv: -kv[1]))
    return board
