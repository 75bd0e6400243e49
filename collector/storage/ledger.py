"""The integrity ledger: for every stream of an episode, what its source published inside the
episode's window, what was written, and what is missing and why.

An episode is a window ``[start_ns, stop_ns)`` on the host-mapped capture clock; a sample belongs
to it when its ``t_host_ns`` falls inside, whenever it arrives. Two sides keep the books:

* the **node** (:class:`collector.wire.publish_log.PublishLog`, kept by every
  :class:`collector.wire.bus.NodePublisher`) counts
  what it published and answers, for an instant T, how many samples of each stream it had
  published with ``t_host_ns < T`` (its ``count`` at T) and the ``seq`` of the last of them;
* the **recorder** (:class:`StreamTally`) counts, per episode and stream, what it routed to the
  writer and what it lost on the way (queue overflow, a failure handling the message).

At close, :func:`build_ledger` balances them per stream::

    published = written + overflow + rejected + receiver_failure + tail_not_drained
                + lost_in_transport

where ``lost_in_transport`` is what remains and must not be negative, and adds head and tail
coverage (first and last capture time against start and stop). The ledger is stored in the
episode as the root attribute ``ledger`` (JSON; docs/episode-format.md), and
:func:`ledger_problems` says in words what a reader must know ("cam0: last 5.5 s missing").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

#: Reasons a published sample is missing from an episode, in the ledger's order.
MISSING_REASONS = ("dropped_at_device", "overflow", "rejected", "receiver_failure",
                   "tail_not_drained", "lost_in_transport")
REASON_WORDS = {"dropped_at_device": "dropped at the device", "overflow": "writer queue overflow",
                "rejected": "rejected as malformed", "receiver_failure": "receiver failure",
                "tail_not_drained": "tail not drained", "lost_in_transport": "lost in transport"}
LEDGER_VERSION = 1
#: Stream kinds that are silent by design part of the time (a teleop command stream stops while
#: the deadman is released or after an e-stop), so their coverage is not checked.
UNCOVERED_KINDS = ("command",)


def coverage_tolerance_s(rate_hz: float) -> float:
    """How far a stream's first (last) sample may lie from the start (stop) before the episode
    counts as missing its head (tail): three sample periods, at least 0.1 s."""
    return max(0.1, 3.0 / rate_hz) if rate_hz > 0 else 1.0


@dataclass
class StreamTally:
    """The recorder's count of one stream inside one episode."""

    queued: int = 0             # handed to the writer
    overflow: int = 0           # writer queue full
    receiver_failure: int = 0   # an error while handling the message
    late: int = 0               # arrived after the episode had finished draining
    first_t_ns: int | None = None
    last_t_ns: int | None = None
    last_seq: int | None = None

    def add(self, t_host_ns: int, seq: int) -> None:
        self.queued += 1
        if self.first_t_ns is None or t_host_ns < self.first_t_ns:
            self.first_t_ns = t_host_ns
        if self.last_t_ns is None or t_host_ns > self.last_t_ns:
            self.last_t_ns, self.last_seq = t_host_ns, seq


@dataclass
class SourceMarks:
    """What a node said it had published at the episode's start and stop instants."""

    start: dict[str, Any] | None = None   # PublishLog.query(start_ns) reply
    stop: dict[str, Any] | None = None    # PublishLog.query(stop_ns) reply
    error: str = ""

    def published(self, stream: str) -> tuple[int | None, int | None, str]:
        """``(published, dropped_at_device, note)`` for ``stream`` inside the window."""
        if self.start is None or self.stop is None:
            return None, None, self.error or "the node did not report what it published"
        if self.start["boot"] != self.stop["boot"]:
            return None, None, "the node restarted during the episode"
        a, b = self.start["streams"].get(stream), self.stop["streams"].get(stream)
        if b is None:
            return 0, 0, ""  # the node published nothing of this stream by the stop instant
        if a is None:
            a = {"count": 0, "seq": -1, "known": True}
        if not (a["known"] and b["known"]):
            return None, None, "the node's publish history does not reach back to the episode"
        published = b["count"] - a["count"]
        span = b["seq"] - a["seq"] if a["seq"] >= 0 else published
        return published, max(0, span - published), ""


def build_ledger(*, start_ns: int, stop_ns: int, streams: dict[str, float],
                 written: dict[str, dict[str, Any]], rejected: dict[str, int],
                 tallies: dict[str, StreamTally], marks: dict[str, SourceMarks],
                 node_of: dict[str, str], malformed: dict[str, dict[str, int]] | None = None,
                 undrained: set[str] | frozenset = frozenset(),
                 transport_gaps: dict[str, int] | None = None,
                 kinds: dict[str, str] | None = None) -> dict[str, Any]:
    """The ledger of one episode (see the module docstring). ``streams`` maps each stream to
    its nominal rate, ``node_of`` to its node; ``written`` gives each stream's ``count``,
    ``first_t_ns``, ``last_t_ns`` and ``last_seq`` in the file, ``rejected`` what the writer
    refused. What remains unexplained is the tail of a stream in ``undrained`` (it had not
    delivered past the stop instant when the drain time ran out), beyond the samples the
    receiver saw missing from ``seq`` (``transport_gaps``), else lost in transport."""
    out: dict[str, Any] = {}
    for name, rate in streams.items():
        tally = tallies.get(name) or StreamTally()
        stored = written.get(name) or {"count": 0, "first_t_ns": None, "last_t_ns": None, "last_seq": None}
        mark = marks.get(node_of.get(name, ""), SourceMarks(error="no node for this stream"))
        published, dropped, note = mark.published(name)
        missing = {"overflow": tally.overflow, "rejected": rejected.get(name, 0),
                   "receiver_failure": tally.receiver_failure, "tail_not_drained": 0,
                   "lost_in_transport": 0}
        n_written = stored["count"]
        balanced = None
        if published is not None:
            rest = published - n_written - sum(missing.values())
            balanced = rest >= 0
            if name in undrained:
                gaps = max(0, (transport_gaps or {}).get(name, 0) - (dropped or 0))
                missing["lost_in_transport"] = max(0, min(rest, gaps))
                missing["tail_not_drained"] = max(0, rest - missing["lost_in_transport"])
            else:
                missing["lost_in_transport"] = max(0, rest)
        first, last = stored["first_t_ns"], stored["last_t_ns"]
        out[name] = {
            "node": node_of.get(name, ""), "kind": (kinds or {}).get(name, ""), "rate_hz": rate,
            "published": published,
            "written": n_written, "missing": {"dropped_at_device": dropped or 0, **missing},
            "late": tally.late, "balanced": balanced, "note": note,
            "first_t_ns": first, "last_t_ns": last,
            "head_s": None if first is None else (first - start_ns) / 1e9,
            "tail_s": None if last is None else (stop_ns - last) / 1e9}
    return {"version": LEDGER_VERSION, "start_ns": start_ns, "stop_ns": stop_ns,
            "undrained": sorted(undrained), "malformed": malformed or {}, "streams": out}


def read_ledger(attrs: Any) -> dict[str, Any] | None:
    """The ledger stored in an episode's root attributes, or ``None`` (older or interrupted
    files have none)."""
    text = attrs.get("ledger", "")
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    if not text:
        return None
    try:
        ledger = json.loads(text)
    except ValueError:
        return {"unreadable": True}
    return ledger if isinstance(ledger, dict) else {"unreadable": True}


def ledger_problems(ledger: dict[str, Any] | None, *, accounted: bool = True) -> list[str]:
    """What a reader must know about an episode's completeness, one sentence per stream and
    problem: unbalanced books, a missing head or tail and (with ``accounted``) samples missing
    for a known reason. Without ``accounted`` it is what makes an episode invalid: books that
    do not balance or coverage that falls short."""
    if ledger is None:
        return []
    if ledger.get("unreadable") or not isinstance(ledger.get("streams"), dict):
        return ["the integrity ledger is unreadable"]
    problems = []
    duration_s = (ledger["stop_ns"] - ledger["start_ns"]) / 1e9
    for name, s in ledger["streams"].items():
        if s.get("balanced") is False:
            problems.append(f"{name}: the ledger does not balance (published {s['published']}, "
                            f"written {s['written']}): samples from outside the episode?")
        missing = {k: v for k, v in s.get("missing", {}).items() if v}
        if missing and accounted:
            total = sum(missing.values())
            problems.append(f"{name}: {total} samples missing (" + ", ".join(
                f"{n} {REASON_WORDS.get(k, k)}" for k, n in missing.items()) + ")")
        if s.get("kind") in UNCOVERED_KINDS:
            continue
        tolerance = coverage_tolerance_s(float(s.get("rate_hz") or 0))
        if s.get("first_t_ns") is None:  # a device silent from before the start included
            problems.append(f"{name}: no samples in the episode ({duration_s:.1f} s)")
            continue
        if s["head_s"] > tolerance:
            problems.append(f"{name}: first {s['head_s']:.1f} s missing")
        if s["tail_s"] > tolerance:
            problems.append(f"{name}: last {s['tail_s']:.1f} s missing")
    return problems

