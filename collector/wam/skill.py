"""Live skill of the WAM preview: how much better than the still frame it has been lately, in dB.

The node scores each prediction once its time has come (``NAME/surprise``: ``score`` is the RMSE
of the predicted frame against the frame that came, ``baseline`` the same for the still frame,
i.e. copy-last). Skill pools the squared errors over a rolling window, like whole-frame PSNR:

    skill_db = 10 * log10(mean(baseline**2) / mean(score**2))

``+1.0`` means the preview's frames were 1 dB closer to what happened than the frame it started
from; at or below ``0`` a viewer learns more from the live camera than from the "forecast", and
the window says so. The same function summarises a recorded episode's surprise trace.

The verdict (forecast or not) has hysteresis (:class:`ForecastVerdict`): a skill that hovers
around 0 dB would otherwise grey and ungrey the strip every few ticks. It turns on only at
``+0.3 dB`` and off only below ``0 dB``; in between it keeps what it said.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

#: Seconds of scored predictions the live skill pools.
SKILL_WINDOW_S = 60.0
#: Scored predictions needed before the skill is shown as known (at 8 Hz, about 3 s).
MIN_SCORED = 24
#: The preview becomes a forecast once its skill reaches this (dB over the still frame)...
FORECAST_ON_DB = 0.3
#: ...and stops being one only when its skill falls below this. Between the two the verdict
#: holds, so a skill that wobbles around 0 dB does not make the window flicker.
FORECAST_OFF_DB = 0.0


def db_over_still(model_mse: float, still_mse: float) -> float:
    """``10 log10(still / model)``: NaN when both are perfect (nothing to tell apart)."""
    if model_mse <= 0 and still_mse <= 0:
        return math.nan
    return 10 * math.log10(max(still_mse, 1e-12) / max(model_mse, 1e-12))


def skill_db(scores, baselines) -> float:
    """dB over the still frame of paired RMSEs (NaN when there are none)."""
    s = np.asarray(scores, np.float64)
    b = np.asarray(baselines, np.float64)
    if s.size == 0:
        return math.nan
    return db_over_still(float(np.mean(s * s)), float(np.mean(b * b)))


class ForecastVerdict:
    """Whether the preview counts as a forecast, decided with hysteresis over a skill's history:
    on at :data:`FORECAST_ON_DB` or more, off below :data:`FORECAST_OFF_DB`, unchanged between.
    The first known skill decides from the "on" threshold (a preview has to earn the word
    forecast); an unknown skill (NaN: a new model still measuring) forgets the verdict."""

    def __init__(self) -> None:
        #: ``None`` while unknown, else whether the preview beats the still frame.
        self.better: bool | None = None

    def update(self, db: float) -> bool | None:
        """Take the newest skill (dB over the still frame, NaN while unknown); return the verdict."""
        if not math.isfinite(db):
            self.better = None
        elif db >= FORECAST_ON_DB:
            self.better = True
        elif db < FORECAST_OFF_DB or self.better is None:
            self.better = False
        return self.better


@dataclass(frozen=True)
class Skill:
    """The rolling skill at one moment."""

    #: dB over the still frame; NaN until :data:`MIN_SCORED` predictions were scored.
    db: float
    #: Scored predictions pooled.
    count: int
    window_s: float = SKILL_WINDOW_S
    #: The verdict of a :class:`ForecastVerdict` that followed this skill over time; ``None``:
    #: judge this one value alone (as a first sight: forecast only from :data:`FORECAST_ON_DB`).
    verdict: bool | None = None

    @property
    def known(self) -> bool:
        return self.count >= MIN_SCORED and math.isfinite(self.db)

    @property
    def better_than_still(self) -> bool | None:
        """``None`` while unknown, else whether the preview counts as better than the still frame."""
        if not self.known:
            return None
        return self.verdict if self.verdict is not None else ForecastVerdict().update(self.db)

    def describe(self) -> str:
        """``+1.2 dB over the still frame (last 60 s)``, or what is still missing."""
        if not self.known:
            return f"skill: measuring ({self.count} of {MIN_SCORED} predictions scored)"
        return f"{self.db:+.1f} dB over the still frame (last {self.window_s:g} s)"


class RollingSkill:
    """Pools ``(t_ns, score, baseline)`` over the last ``window_s`` seconds (of the scores' own
    clock). Not thread-safe: one owner adds and reads."""

    def __init__(self, window_s: float = SKILL_WINDOW_S) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.window_s = window_s
        self._items: deque[tuple[int, float, float]] = deque()
        self._sum_score = self._sum_base = 0.0
        #: Scores refused (not finite, negative): counted, never pooled.
        self.rejected = 0
        self._verdict = ForecastVerdict()

    def add(self, t_ns: int, score: float, baseline: float) -> Skill:
        """Pool one scored prediction; returns the skill including it."""
        if not (math.isfinite(score) and math.isfinite(baseline)) or score < 0 or baseline < 0:
            self.rejected += 1
            return self.current()
        self._items.append((int(t_ns), score * score, baseline * baseline))
        self._sum_score += score * score
        self._sum_base += baseline * baseline
        horizon = int(t_ns) - int(self.window_s * 1e9)
        while self._items and self._items[0][0] < horizon:
            _, s2, b2 = self._items.popleft()
            self._sum_score -= s2
            self._sum_base -= b2
        self._verdict.update(self.current().db)
        return self.current()

    def current(self) -> Skill:
        """The skill now (its verdict follows every skill :meth:`add` pooled, with hysteresis)."""
        n = len(self._items)
        if n == 0:
            return Skill(math.nan, 0, self.window_s, self._verdict.better)
        # Running sums can drift a hair below zero after many subtractions: clamp.
        db = db_over_still(max(self._sum_score, 0.0) / n, max(self._sum_base, 0.0) / n)
        db = db if n >= MIN_SCORED else math.nan
        return Skill(db, n, self.window_s, self._verdict.better)
