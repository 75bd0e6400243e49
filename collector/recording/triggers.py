"""Hands-free episodes: start and stop from the glove itself, or cut from the operator's activity.

Two detectors read a glove's state stream, one sample at a time, on the capture clock
(``t_host_ns``), and say when an episode should start or stop; the recorder
(:mod:`collector.recording.recorder`) feeds them the samples it receives and acts on what they say,
so this works the same headless (``collector record``) and in the window.

* :class:`GestureDetector` (``mode = "gesture"``): a fist (grip aperture below
  ``grip_below_m`` with no object pressing the fingertips) held for ``hold_s`` toggles recording.
  A start takes effect when the hold is complete (the episode then begins ``pre_roll_s`` before,
  as for any trigger); a stop cuts the episode where the fist began, so the stop gesture is not
  part of the demonstration. The hand must open again before the next gesture counts.
* :class:`ActivityDetector` (``mode = "always_on"``): the operator is *active* while the wrist
  moves faster than ``motion_m_s``, the grip opens or closes faster than ``grip_m_s``, or the
  fingertips press harder than ``pressure_n`` (an object in the hand). Activity that lasts
  ``min_episode_s`` becomes an episode that starts where it began (in the past: the recorder
  holds every stream's recent samples) and stops where it ended once ``idle_s`` passed without
  any; shorter bursts and the idle stretches between episodes are not recorded. An edge is placed
  where the signal last left the quiet level (a quarter of the threshold), not where it crossed
  the threshold, so a cut lands on the boundary of the motion rather than a moment into it.

Each decision is a :class:`Cut`: ``start`` or ``stop``, the capture instant, and the trigger
written into the episode (its ``trigger`` attribute: ``gesture`` or ``activity``).
"""

from __future__ import annotations

import typing
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from collector.wire.options import ConfigError

#: The held buffer reaches back ``pre_roll_s`` plus this (collector.recording.receiving.UNROUTED_S);
#: an activity episode starts ``min_episode_s + pad_s`` in the past, which must still be held.
MAX_LOOKBACK_S = 4.5
#: Of a motion threshold, the level below which the hand counts as still (where edges are placed).
QUIET_FRACTION = 0.25

MANUAL, GESTURE, ACTIVITY = "manual", "gesture", "activity"


@dataclass
class GestureConfig:
    """``[recording.hands_free.gesture]``: the held fist that starts and stops an episode."""

    #: Grip aperture (m) below which the hand is a fist.
    grip_below_m: float = 0.015
    #: Aperture (m) above which the hand is open again (re-arms the gesture).
    release_above_m: float = 0.03
    #: Fingertip force (N, all fingers together) above which something is held: not a fist.
    max_pressure_n: float = 2.0
    #: How long the fist must be held.
    hold_s: float = 1.0

    def validate(self) -> None:
        if not 0 < self.grip_below_m < self.release_above_m:
            raise ConfigError("gesture.grip_below_m must be > 0 and below release_above_m, got "
                              f"{self.grip_below_m} and {self.release_above_m}")
        if not 0.2 <= self.hold_s <= 10:
            raise ConfigError(f"gesture.hold_s must be in [0.2, 10] s, got {self.hold_s}")
        if self.max_pressure_n < 0:
            raise ConfigError(f"gesture.max_pressure_n must be >= 0, got {self.max_pressure_n}")


@dataclass
class ActivityConfig:
    """``[recording.hands_free.activity]``: what counts as activity and how episodes are cut."""

    #: Wrist speed (m/s) above which the hand is moving.
    motion_m_s: float = 0.08
    #: Grip aperture rate (m/s) above which the hand is closing or opening.
    grip_m_s: float = 0.05
    #: Fingertip force (N, all fingers) above which an object is held.
    pressure_n: float = 0.5
    #: Rates are measured over this window (s): long enough to average sensor noise out.
    smooth_s: float = 0.05
    #: This long without activity ends an episode; shorter pauses stay inside it.
    idle_s: float = 3.0
    #: Activity shorter than this is not an episode (a scratch, a gesture, a stray grab).
    min_episode_s: float = 1.0
    #: Margin added before the start and after the end of each cut.
    pad_s: float = 0.0

    def validate(self) -> None:
        for name in ("motion_m_s", "grip_m_s", "pressure_n", "smooth_s", "idle_s", "min_episode_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"activity.{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.pad_s <= 2:
            raise ConfigError(f"activity.pad_s must be in [0, 2] s, got {self.pad_s}")
        if self.smooth_s > 0.5:
            raise ConfigError(f"activity.smooth_s must be <= 0.5 s, got {self.smooth_s}")
        if self.min_episode_s + self.pad_s > MAX_LOOKBACK_S:
            raise ConfigError(f"activity.min_episode_s + pad_s must be <= {MAX_LOOKBACK_S} s (an "
                              "episode starts that far in the past, from the samples held), got "
                              f"{self.min_episode_s + self.pad_s:g}")


@dataclass
class HandsFreeConfig:
    """``[recording.hands_free]``: episodes started and stopped by the glove, not a key."""

    #: "off"; "gesture": a held fist starts and stops; "always_on": episodes cut from activity.
    mode: typing.Literal["off", "gesture", "always_on"] = "off"
    #: The glove stream that drives it ("" = the first stream with the fields below).
    stream: str = ""
    #: Field names in that stream: wrist position (m), grip aperture (m), fingertip forces (N).
    motion_field: str = "wrist_pos"
    grip_field: str = "grip"
    pressure_field: str = "pressure"
    gesture: GestureConfig = field(default_factory=GestureConfig)
    activity: ActivityConfig = field(default_factory=ActivityConfig)

    def validate(self) -> None:
        self.gesture.validate()
        self.activity.validate()

    def pick_stream(self, fields_of: Mapping[str, list[str]]) -> str:
        """The stream to follow, given each declared stream's field names; raises ``ConfigError``."""
        needed = {self.grip_field} | ({self.motion_field} if self.mode == "always_on" else set())
        if self.stream:
            if self.stream not in fields_of:
                raise ConfigError(f"hands_free.stream {self.stream!r} is not declared by any node "
                                  f"(streams: {', '.join(sorted(fields_of))})")
            missing = needed - set(fields_of[self.stream])
            if missing:
                raise ConfigError(f"hands_free.stream {self.stream!r} has no field "
                                  f"{', '.join(sorted(missing))}")
            return self.stream
        for name in sorted(fields_of):
            if needed <= set(fields_of[name]):
                return name
        raise ConfigError(f"hands_free mode {self.mode!r} needs a glove stream with fields "
                          f"{', '.join(sorted(needed))}; none declares them")


@dataclass(frozen=True)
class Cut:
    """A detector's decision: ``action`` (``start``/``stop``) at capture instant ``t_ns``."""

    action: str
    t_ns: int
    trigger: str


def _scalar(value: Any) -> float:
    return float(np.sum(np.asarray(value, dtype=np.float64)))


class GestureDetector:
    """Finds held fists in a glove stream; see the module docstring. ``recording`` says whether
    an episode runs (the detector toggles)."""

    def __init__(self, config: HandsFreeConfig) -> None:
        self.config = config
        self._fist_since: int | None = None
        self._armed = True

    def feed(self, t_ns: int, fields: Mapping[str, Any], recording: bool) -> Cut | None:
        """One sample (capture time ``t_ns``); ``recording``: whether an episode runs. Returns
        the :class:`Cut` a completed gesture makes, else ``None``."""
        c = self.config.gesture
        grip = _scalar(fields[self.config.grip_field])
        pressure = _scalar(fields.get(self.config.pressure_field, 0.0))
        if grip > c.release_above_m:
            self._armed = True
        fist = grip < c.grip_below_m and pressure <= c.max_pressure_n
        if not fist:
            self._fist_since = None
            return None
        if self._fist_since is None:
            self._fist_since = t_ns
        if not self._armed or t_ns - self._fist_since < c.hold_s * 1e9:
            return None
        self._armed = False  # once per fist: the hand must open before the next one
        if recording:
            return Cut("stop", self._fist_since, GESTURE)
        return Cut("start", t_ns, GESTURE)


class ActivityDetector:
    """Cuts episodes from activity; see the module docstring. Feed samples in capture order."""

    def __init__(self, config: HandsFreeConfig) -> None:
        self.config = config
        self._history: deque[tuple[int, np.ndarray, float]] = deque()
        self._quiet = True
        self._left_quiet: int | None = None   # where the signal last rose above the quiet level
        self._end_edge: int | None = None     # where it fell below it after the last activity
        self._onset: int | None = None        # start of the current activity
        self._last_active: int | None = None
        self.recording = False                # an activity episode is running

    def activity(self, t_ns: int, fields: Mapping[str, Any]) -> float:
        """This sample's activity as a fraction of the thresholds (>= 1: active)."""
        c = self.config.activity
        pos = np.asarray(fields[self.config.motion_field], dtype=np.float64).reshape(-1)
        grip = _scalar(fields[self.config.grip_field])
        pressure = _scalar(fields.get(self.config.pressure_field, 0.0))
        history = self._history
        history.append((t_ns, pos, grip))
        window_ns = c.smooth_s * 1e9
        while len(history) > 2 and t_ns - history[1][0] >= window_ns:
            history.popleft()
        t0, pos0, grip0 = history[0]
        dt = (t_ns - t0) / 1e9
        if dt <= 0:
            return pressure / c.pressure_n
        speed = float(np.linalg.norm(pos - pos0)) / dt
        grip_rate = abs(grip - grip0) / dt
        return max(speed / c.motion_m_s, grip_rate / c.grip_m_s, pressure / c.pressure_n)

    def feed(self, t_ns: int, fields: Mapping[str, Any], recording: bool | None = None) -> Cut | None:
        """One sample; returns a :class:`Cut` when an episode should start or stop. ``recording``
        is unused (the detector knows the episodes it started)."""
        c = self.config.activity
        level = self.activity(t_ns, fields)
        # A rate over the past smooth_s describes the motion half of that window back.
        t_mid = t_ns - int(c.smooth_s * 5e8)
        quiet = level < QUIET_FRACTION
        if self._quiet and not quiet:
            self._left_quiet = t_mid
        if quiet and self._end_edge is None:
            self._end_edge = t_mid
        self._quiet = quiet
        if level >= 1.0:
            if self._onset is None:
                self._onset = self._left_quiet if self._left_quiet is not None else t_mid
            self._last_active = t_mid
            self._end_edge = None
        if self._onset is None:
            return None
        pad = int(c.pad_s * 1e9)
        idle = t_mid - self._last_active >= c.idle_s * 1e9
        if not self.recording:
            if idle:  # a burst that ended too short: not an episode
                self._onset = self._last_active = None
            elif self._last_active - self._onset >= c.min_episode_s * 1e9:
                self.recording = True
                return Cut("start", self._onset - pad, ACTIVITY)
            return None
        if idle:
            end = self._end_edge if self._end_edge is not None else self._last_active
            self.recording = False
            self._onset = self._last_active = None
            return Cut("stop", end + pad, ACTIVITY)
        return None

    def stopped_elsewhere(self) -> None:
        """Its episode was stopped (or its start refused) elsewhere, or an episode of another
        trigger runs: the activity from the next sample on is a new one."""
        self.recording = False
        self._onset = self._last_active = self._left_quiet = None
        self._quiet = True


def make_detector(config: HandsFreeConfig) -> GestureDetector | ActivityDetector | None:
    """The detector of ``config.mode`` (``None`` when off)."""
    if config.mode == "gesture":
        return GestureDetector(config)
    if config.mode == "always_on":
        return ActivityDetector(config)
    return None

