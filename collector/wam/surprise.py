"""The recorded surprise trace of an episode, summed up so review tools can rank episodes by it."""

from __future__ import annotations

from typing import Any

import numpy as np

from collector.wam.skill import skill_db


def surprise_stream(episode: Any) -> str | None:
    """Name of the episode's WAM surprise stream (``<node>/surprise`` with a ``score`` field)."""
    for name, spec in episode.streams.items():
        if name.endswith("/surprise") and any(f.name == "score" for f in spec.fields):
            return name
    return None


def surprise_summary(episode: Any) -> dict[str, Any] | None:
    """Plain-data summary of an open episode's surprise trace, or ``None`` if it has none.

    ``mean``, ``p95`` and ``max`` of the score; ``excess_mean`` = mean of ``score - baseline``
    (how much worse than "nothing moves" the model did: high in episodes it finds odd);
    ``share_above_baseline``; ``peak_t_s`` = seconds from the episode start to the highest score;
    ``skill_db`` = the preview's skill over the whole episode, dB better than the still frame
    (:func:`collector.wam.skill.skill_db`: negative when the still frame was the better guess).
    """
    stream = surprise_stream(episode)
    if stream is None or episode.count(stream) == 0:
        return None
    score = np.asarray(episode.frames(stream, "score"), np.float64).reshape(-1)
    baseline = np.asarray(episode.frames(stream, "baseline"), np.float64).reshape(-1)
    t = episode.timestamps(stream)["t_host_ns"].astype(np.int64)
    start_ns = int(episode.attrs.get("start_time_ns", t[0]))
    peak = int(np.argmax(score))
    return {"stream": stream, "count": int(score.size), "mean": float(score.mean()),
            "p95": float(np.percentile(score, 95)), "max": float(score[peak]),
            "excess_mean": float((score - baseline).mean()),
            "share_above_baseline": float((score > baseline).mean()),
            "peak_t_s": (int(t[peak]) - start_ns) / 1e9, "skill_db": skill_db(score, baseline)}
