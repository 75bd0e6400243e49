"""The recorder's side of hands-free episodes: it feeds the glove samples it receives to the
detector of ``recording.hands_free`` (:mod:`collector.recording.triggers`) and acts on its cuts.

A part of :class:`collector.recording.recorder.Recorder` (split by idea, not by size). The cuts
are acted on in the receiver thread, as the sample that decided them is handled: no other thread
can start or stop in between, and an episode that starts in the past (at an activity's onset)
takes the samples held since then before any newer one (``_adopt_unrouted``).

An activity cut only stops an episode it started (Space still starts and stops episodes of its
own); a gesture stops whichever episode runs, as the glove's record button does. Each episode's
``trigger`` attribute says what started it (``manual``, ``gesture`` or ``activity``) and
``end_trigger`` what stopped it.
"""

from __future__ import annotations

import logging
from typing import Any

from collector.recording.triggers import ACTIVITY, MANUAL, ActivityDetector, Cut, make_detector
from collector.wire.protocol import Sample

log = logging.getLogger("collector.recording.recorder")


class HandsFreeTriggers:
    """Trigger methods of the recorder (mixed into ``Recorder``, which owns the state)."""

    def _init_hands_free(self) -> None:
        """Pick the glove stream and make the detector; raises ``ConfigError`` if none fits."""
        config = self.recording.hands_free
        self._detector = make_detector(config)
        self._trigger_stream = ""
        #: What started each episode still open or last stopped (uuid -> trigger).
        self._trigger_of: dict[str, str] = {}
        #: Task, operator... for the episodes the glove starts (the session sends them).
        self.episode_meta: dict[str, Any] = {}
        self.hands_free_counts = {"started": 0, "stopped": 0, "refused": 0, "unreadable": 0}
        #: Off once the session closes (the ``hands_free`` request) or the recorder does.
        self.hands_free_enabled = True
        if self._detector is not None:
            fields_of = {name: [f.name for f in spec.fields] for name, spec in self.specs.items()}
            self._trigger_stream = config.pick_stream(fields_of)
            log.info("hands-free %s from %s", config.mode, self._trigger_stream)

    def _feed_triggers(self, sample: Sample) -> None:
        """On the receiver thread, after ``sample`` was routed: let the detector see it."""
        if self._detector is None or sample.stream != self._trigger_stream or not self.hands_free_enabled:
            return
        current = self._current
        running = current is not None
        if isinstance(self._detector, ActivityDetector) and running:
            if self._trigger_of.get(current.uuid) != ACTIVITY:
                # An episode of the operator's own runs: activity waits until it ends, and
                # what comes after it is new activity.
                self._detector.stopped_elsewhere()
                return
        try:
            cut = self._detector.feed(sample.t_host_ns, sample.fields, running)
        except (KeyError, TypeError, ValueError) as exc:
            # A sample without the fields the detector reads (the writer rejects it, or keeps
            # it if only the detector minds): counted here, never a receiver failure, which
            # would count it as lost in the ledger.
            self.hands_free_counts["unreadable"] += 1
            if self.hands_free_counts["unreadable"] in (1, 100, 10000):
                log.warning("hands-free: %d samples of %s it cannot read (%s: %s)",
                            self.hands_free_counts["unreadable"], sample.stream,
                            type(exc).__name__, exc)
            return
        if cut is not None:
            self._act_on(cut)

    def _act_on(self, cut: Cut) -> None:
        current = self._current
        if cut.action == "start":
            reply = self.start(dict(self.episode_meta), t_ns=cut.t_ns, trigger=cut.trigger,
                               exact=cut.trigger == ACTIVITY)
        elif cut.trigger == ACTIVITY and (current is None or self._trigger_of.get(current.uuid) != ACTIVITY):
            # Its episode was stopped by hand meanwhile: nothing to stop, nothing refused.
            self._detector.stopped_elsewhere()
            return
        elif current is None:
            reply = {"ok": False, "error": "not recording"}
        else:
            reply = self.stop(t_ns=cut.t_ns, wait=False, trigger=cut.trigger)
        key = {"start": "started", "stop": "stopped"}[cut.action]
        if reply.get("ok"):
            self.hands_free_counts[key] += 1
            log.info("%s %s by %s at %d", cut.action, reply.get("uuid", "")[:8], cut.trigger, cut.t_ns)
            return
        refused = self.hands_free_counts["refused"] = self.hands_free_counts["refused"] + 1
        if isinstance(self._detector, ActivityDetector):
            self._detector.stopped_elsewhere()  # retried after min_episode_s of new activity
        if refused & (refused - 1) == 0:  # 1st, 2nd, 4th, 8th...: a refusal that lasts, once a while
            log.warning("hands-free %s refused (%d so far): %s", cut.action, refused, reply.get("error"))

    def trigger_of(self, uuid: str | None) -> str:
        """What started episode ``uuid`` (``manual`` unless the glove did)."""
        return self._trigger_of.get(uuid or "", MANUAL)

    def hands_free_status(self) -> dict[str, Any]:
        """The mode, the stream it follows and how many cuts it made (for the status)."""
        return {"mode": self.recording.hands_free.mode, "stream": self._trigger_stream,
                "enabled": self.hands_free_enabled, **self.hands_free_counts}
