"""Quality report of one episode: what a reviewer checks before an episode goes into training.

:func:`quality_report` reads an open :class:`~collector.storage.EpisodeReader` once and returns
plain data (JSON-able, cached by :mod:`collector.review.catalog`): per-stream drops, gaps and
stalls, the sync skew distribution, glove disconnects, idle time at the start and end (from
glove motion), what the integrity ledger says is missing (``integrity``, in words: "cam0/color:
last 5.5 s missing"; read from a root attribute, no sample data), and the flags a table shows. Duration outliers need the whole folder, so
:func:`duration_outliers` runs over the summaries of every episode.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from collector.storage.ledger import ledger_problems

#: A gap between two samples longer than this many nominal periods (and ``STALL_MIN_S``) is a stall.
STALL_PERIODS = 5.0
STALL_MIN_S = 0.1
#: Wrist speed (m/s) and finger joint speed (rad/s) above which the hand counts as moving.
WRIST_MOVING_M_S = 0.02
JOINTS_MOVING_RAD_S = 0.3
#: Motion is smoothed over this window before judging idle, so a tremor is not motion.
MOTION_WINDOW_S = 0.25
#: Idle time at either end beyond this is flagged (and offered as a trim).
IDLE_FLAG_S = 1.0
#: Share of master frames without a partner sample beyond which a stream's sync is flagged.
UNMATCHED_FLAG_SHARE = 0.01
SKEW_HISTOGRAM_BINS = 20

#: Every flag a report may raise, with the sentence a table tooltip or a report shows.
FLAGS = {
    "damaged": "the file cannot be read as an episode",
    "failed": "the recording failed (a recorder thread died): the episode is not complete",
    "incomplete": "the integrity ledger shows samples missing, or a stream's head or tail missing",
    "interrupted": "the recording never finished (run collector recover)",
    "recovered": "completed by collector recover: the end of the recording may be lost",
    "drops": "samples were lost (sequence gaps or writer overflow)",
    "stalls": "a stream stopped delivering for a while",
    "skew": "streams are poorly synchronized (unmatched frames or skew near the limit)",
    "disconnect": "a device disconnected during the recording",
    "rejected": "samples were rejected as not matching their stream's declaration",
    "idle-start": "the hand is idle for a while at the start (trim it)",
    "idle-end": "the hand is idle for a while at the end (trim it)",
    "duration-outlier": "much shorter or longer than the task's other episodes",
    "empty": "the episode holds no samples",
}


def flag_sentences(flags: Iterable[str], integrity: Iterable[str] = ()) -> list[tuple[str, str]]:
    """``(flag, sentence)`` rows explaining ``flags``, as the report, the review window and their
    tooltips show them: each flag's sentence from :data:`FLAGS`, except that ``failed`` and
    ``incomplete`` are explained by the episode's own integrity sentences (``integrity``, see
    :meth:`collector.storage.EpisodeReader.integrity_problems`), one row each."""
    flags, integrity = list(flags), list(integrity)
    failed = [p for p in integrity if p.startswith("the recording failed")]
    missing = [p for p in integrity if p not in failed]
    rows: list[tuple[str, str]] = []
    for flag in flags:
        own = failed if flag == "failed" else missing if flag == "incomplete" else []
        rows += [(flag, sentence) for sentence in own] or [(flag, FLAGS.get(flag, flag))]
    return rows


def _stalls(t_host_ns: np.ndarray, seq: np.ndarray, rate_hz: float, t0_ns: int) -> list[dict[str, float]]:
    """Pauses without lost samples (seq unbroken): the device stopped delivering. Pauses where
    seq jumps are drops, reported as gaps."""
    if t_host_ns.size < 2:
        return []
    limit_ns = max(STALL_PERIODS / rate_hz, STALL_MIN_S) * 1e9
    step = np.diff(t_host_ns)
    where = np.flatnonzero((step > limit_ns) & (np.diff(seq) == 1))
    return [{"t_s": (int(t_host_ns[i]) - t0_ns) / 1e9, "duration_s": float(step[i]) / 1e9}
            for i in where]


def _skew_distribution(pair: dict[str, Any]) -> dict[str, Any]:
    index, skew = np.asarray(pair["index"]), np.asarray(pair["skew_ns"], np.int64)
    matched = np.abs(skew[index >= 0]) / 1e6
    limit_ms = pair["max_skew_ns"] / 1e6
    found = np.flatnonzero(index >= 0)
    # Streams start and stop a frame apart: unmatched frames at the very ends are expected, the
    # ones between the first and the last match are dropouts.
    inner = int(np.count_nonzero(index[found[0]:found[-1] + 1] < 0)) if found.size else int(index.size)
    out: dict[str, Any] = {"frames": int(index.size), "unmatched": int(np.count_nonzero(index < 0)),
                           "unmatched_inside": inner, "limit_ms": limit_ms}
    if matched.size:
        p50, p90, p99 = np.percentile(matched, [50, 90, 99])
        counts, edges = np.histogram(matched, bins=SKEW_HISTOGRAM_BINS, range=(0, max(limit_ms, 1e-3)))
        out.update(p50_ms=float(p50), p90_ms=float(p90), p99_ms=float(p99),
                   max_ms=float(matched.max()), histogram=counts.tolist(),
                   histogram_edges_ms=[float(e) for e in edges])
    return out


def glove_stream(episode: Any) -> str | None:
    """The first hand-state stream (one with ``wrist_pos`` or ``finger_joints``), or ``None``."""
    for name, spec in episode.streams.items():
        names = {f.name for f in spec.fields}
        if spec.kind == "state" and names & {"wrist_pos", "finger_joints"}:
            return name
    return None


def motion_speed(episode: Any, stream: str) -> tuple[np.ndarray, np.ndarray]:
    """``(t_host_ns, moving)`` of a hand stream: per sample, whether the wrist or the fingers
    move faster than the thresholds, smoothed over :data:`MOTION_WINDOW_S`."""
    spec, n = episode.streams[stream], episode.count(stream)
    t = episode.timestamps(stream)["t_host_ns"]
    if n < 3:
        return t, np.zeros(n, bool)
    dt = np.maximum(np.diff(t) / 1e9, 1e-6)
    moving = np.zeros(n - 1, bool)
    names = {f.name for f in spec.fields}
    window = max(1, int(round(MOTION_WINDOW_S * spec.rate_hz)))
    kernel = np.ones(window) / window
    for field, threshold in (("wrist_pos", WRIST_MOVING_M_S), ("finger_joints", JOINTS_MOVING_RAD_S)):
        if field not in names:
            continue
        values = episode.frames(stream, field).reshape(n, -1).astype(np.float64)
        speed = np.linalg.norm(np.diff(values, axis=0), axis=1) / dt
        speed = np.convolve(speed, kernel, mode="same")
        moving |= speed > threshold
    return t, np.concatenate([moving[:1], moving])


def idle_segments(episode: Any, t0_ns: int) -> dict[str, Any] | None:
    """Idle time at the start and end from glove motion: ``{"stream", "start_s", "end_s",
    "active": [first_s, last_s]}`` in seconds since ``t0_ns``; ``None`` without a glove."""
    stream = glove_stream(episode)
    if stream is None or episode.count(stream) < 3:
        return None
    t, moving = motion_speed(episode, stream)
    active = np.flatnonzero(moving)
    first_s, last_s = (int(t[0]) - t0_ns) / 1e9, (int(t[-1]) - t0_ns) / 1e9
    if not active.size:
        return {"stream": stream, "start_s": last_s - first_s, "end_s": 0.0, "active": None}
    a, b = (int(t[active[0]]) - t0_ns) / 1e9, (int(t[active[-1]]) - t0_ns) / 1e9
    return {"stream": stream, "start_s": a - first_s, "end_s": last_s - b, "active": [a, b]}


def quality_report(episode: Any) -> dict[str, Any]:
    """The quality report of an open episode, as plain data, with its ``flags``."""
    attrs = episode.attrs
    t0 = int(attrs.get("start_time_ns") or 0)
    sync = episode.sync
    events = episode.events()
    streams: dict[str, Any] = {}
    flags: set[str] = set()
    total = 0
    for name, spec in episode.streams.items():
        count = episode.count(name)
        total += count
        t = episode.timestamps(name)
        seq = t["seq"].astype(np.int64)
        step = np.diff(seq)
        jumps = step[step > 1]
        overflow = int(episode.stream_attrs(name).get("overflow", 0))
        missing = int((jumps - 1).sum()) + overflow
        stalls = _stalls(t["t_host_ns"], seq, spec.rate_hz, t0)
        duration = float(t["t_host_ns"][-1] - t["t_host_ns"][0]) / 1e9 if count > 1 else 0.0
        entry: dict[str, Any] = {
            "kind": spec.kind, "rate_hz": spec.rate_hz, "count": count,
            "measured_rate_hz": (count - 1) / duration if duration > 0 else 0.0,
            "gaps": int(jumps.size), "missing": missing, "overflow": overflow,
            "restarts": int(np.count_nonzero(step <= 0)),
            "drop_share": missing / (count + missing) if count + missing else 0.0,
            "gap_times_s": [(int(t["t_host_ns"][i + 1]) - t0) / 1e9 for i in np.flatnonzero(step > 1)],
            "stalls": stalls, "skew": None}
        pair = (sync or {}).get("streams", {}).get(name)
        if pair is not None:
            entry["skew"] = _skew_distribution(pair)
            skew = entry["skew"]
            if skew["frames"] and (skew["unmatched_inside"] > UNMATCHED_FLAG_SHARE * skew["frames"]
                                   or skew.get("p99_ms", 0) > 0.8 * skew["limit_ms"]):
                flags.add("skew")
        flags |= {"drops"} if missing else set()
        flags |= {"stalls"} if stalls else set()
        streams[name] = entry
    disconnects = [{"t_s": (e["t_ns"] - t0) / 1e9, "stream": e["stream"],
                    "node": e["detail"].get("node", "") if isinstance(e["detail"], dict) else ""}
                   for e in events if e["kind"] == "disconnected"]
    kinds: dict[str, int] = {}
    for event in events:
        kinds[event["kind"]] = kinds.get(event["kind"], 0) + 1
    idle = idle_segments(episode, t0)
    if disconnects:
        flags.add("disconnect")
    if kinds.get("rejected"):
        flags.add("rejected")
    if kinds.get("stalled"):
        flags.add("stalls")
    if idle and idle["start_s"] > IDLE_FLAG_S:
        flags.add("idle-start")
    if idle and idle["end_s"] > IDLE_FLAG_S:
        flags.add("idle-end")
    if episode.interrupted:
        flags.add("interrupted")
    if attrs.get("status") == "recovered":
        flags.add("recovered")
    if total == 0:
        flags.add("empty")
    integrity = episode.integrity_problems()
    if attrs.get("status") == "failed":
        flags.add("failed")
    if ledger_problems(episode.ledger):
        flags.add("incomplete")
    return {"streams": streams, "events": kinds, "disconnects": disconnects, "idle": idle,
            "integrity": integrity, "flags": sorted(flags)}


def duration_outliers(durations: Iterable[tuple[str, str, float]], *, min_group: int = 5,
                      mads: float = 3.5, min_rel: float = 0.5) -> set[str]:
    """Keys of episodes whose duration is far from their task's median.

    ``durations`` are ``(key, task, duration_s)``. Within a task of at least ``min_group``
    episodes, an episode is an outlier when it differs from the median by more than ``mads``
    scaled median absolute deviations and by more than ``min_rel`` of the median (so a task of
    near-identical durations does not flag ordinary variation: half again as long is the least).
    """
    groups: dict[str, list[tuple[str, float]]] = {}
    for key, task, duration in durations:
        groups.setdefault(task, []).append((key, float(duration)))
    out: set[str] = set()
    for members in groups.values():
        if len(members) < min_group:
            continue
        values = np.array([d for _, d in members])
        median = float(np.median(values))
        mad = 1.4826 * float(np.median(np.abs(values - median)))
        limit = max(mads * mad, min_rel * median)
        out |= {key for key, d in members if abs(d - median) > limit}
    return out
