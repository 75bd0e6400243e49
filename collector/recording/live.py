"""What displays see of the bus: the newest frame of each stream and a short history of the others.

:class:`LiveFeed` reads the nodes' ``live`` endpoints on its own thread, so a display never waits
on a socket: it takes the newest image sample of each stream (older ones are simply replaced,
which is what a 30 fps view of a 30 fps camera wants) and keeps a ring buffer of every sample of
the low-dimensional streams (glove, commands) for scrolling plots. It also keeps the capture times
of the last samples of every stream, from which :meth:`LiveFeed.skew_ms` measures how far apart
two streams' captures are, and the node events (connected, disconnected, stalled, ...).
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from typing import Iterable

import numpy as np
import zmq

from collector.wire.bus import LatestSubscriber
from collector.wire.protocol import Sample

#: Streams whose samples are at most this many bytes get a history (images do not).
HISTORY_MAX_SAMPLE_BYTES = 4096
#: Capture times kept per stream for skew measurements.
CAPTURE_TIMES_KEPT = 256


class RingHistory:
    """The last ``capacity`` samples of one stream, one numpy ring per field."""

    def __init__(self, sample: Sample, capacity: int) -> None:
        self.capacity = capacity
        self.t_host_ns = np.zeros(capacity, np.int64)
        self.fields = {name: np.zeros((capacity, *np.shape(a)), np.asarray(a).dtype)
                       for name, a in sample.fields.items()}
        self.count = 0  # total appended; the ring holds the last min(count, capacity)

    def append(self, sample: Sample) -> None:
        i = self.count % self.capacity
        self.t_host_ns[i] = sample.t_host_ns
        for name, ring in self.fields.items():
            value = sample.fields.get(name)
            if value is not None and np.shape(value) == ring.shape[1:]:
                ring[i] = value
        self.count += 1

    def snapshot(self, since_count: int = 0) -> tuple[int, np.ndarray, dict[str, np.ndarray]]:
        """``(count, t_host_ns, fields)`` in time order: the samples appended after
        ``since_count`` that are still in the ring (all of them with the default)."""
        n = min(self.count - since_count, self.count, self.capacity)
        if n <= 0:
            return self.count, self.t_host_ns[:0].copy(), {k: v[:0].copy() for k, v in self.fields.items()}
        idx = np.arange(self.count - n, self.count) % self.capacity
        return self.count, self.t_host_ns[idx], {k: v[idx] for k, v in self.fields.items()}


class LiveFeed(LatestSubscriber):
    """A background reader of the live endpoints; every public method is thread-safe and quick."""

    def __init__(self, endpoints: Iterable[str], *, history_s: float = 10.0,
                 rates_hz: dict[str, float] | None = None, context: zmq.Context | None = None) -> None:
        self._history_s = history_s
        self._rates = dict(rates_hz or {})
        self._history: dict[str, RingHistory] = {}
        self._captures: dict[str, deque[int]] = {}
        self._received: dict[str, int] = {}
        super().__init__(endpoints, context=context)  # starts the reader thread

    def _on_sample(self, sample: Sample) -> None:
        super()._on_sample(sample)
        self._received[sample.stream] = time.time_ns()
        captures = self._captures.get(sample.stream)
        if captures is None:
            captures = self._captures[sample.stream] = deque(maxlen=CAPTURE_TIMES_KEPT)
        captures.append(sample.t_host_ns)
        if sample.nbytes() <= HISTORY_MAX_SAMPLE_BYTES:
            history = self._history.get(sample.stream)
            if history is None:
                rate = self._rates.get(sample.stream, 1000.0)
                capacity = max(64, int(rate * self._history_s * 1.2))
                history = self._history[sample.stream] = RingHistory(sample, capacity)
            history.append(sample)

    # ---- what displays read ----------------------------------------------------------------
    def history(self, stream: str, since_count: int = 0):
        """``(count, t_host_ns, fields)`` of a low-rate stream's recent samples, or ``None``."""
        with self._lock:
            ring = self._history.get(stream)
            return None if ring is None else ring.snapshot(since_count)

    def received_ns(self, stream: str) -> int | None:
        """When the newest sample of ``stream`` reached this process (host clock, ns)."""
        with self._lock:
            return self._received.get(stream)

    def history_streams(self) -> list[str]:
        with self._lock:
            return sorted(self._history)

    def skew_ms(self, stream: str, reference: str) -> float | None:
        """How far the capture of ``stream`` nearest to ``reference``'s newest capture is from it."""
        with self._lock:
            ref, times = self._captures.get(reference), self._captures.get(stream)
            if not ref or not times:
                return None
            ordered, references = list(times), list(ref)
        # Compare with the newest reference capture that ``stream`` has had time to follow, so
        # that a sample still in transit does not count as skew.
        k = bisect.bisect_right(references, ordered[-1]) - 1
        target = references[max(k, 0)]
        i = bisect.bisect_left(ordered, target)
        nearest = min((abs(ordered[j] - target) for j in (i - 1, i) if 0 <= j < len(ordered)))
        return nearest / 1e6


class RecordButtonWatcher:
    """Finds presses of a glove's ``record`` button in a :class:`LiveFeed`'s history.

    The button is a field ``buttons`` whose channel is named ``record`` (channel 0 otherwise) in
    any stream that has one. A press is a 0 -> 1 edge; edges closer than ``debounce_s`` to the
    previous press are contact bounce.
    """

    def __init__(self, live: LiveFeed, specs: dict, *, debounce_s: float = 0.5) -> None:
        self.live = live
        self.debounce_s = debounce_s
        self._channels = {}
        for name, spec in specs.items():
            fields = {f.name: f for f in spec.fields}
            if "buttons" in fields:
                labels = fields["buttons"].channel_names
                self._channels[name] = labels.index("record") if "record" in labels else 0
        self._seen: dict[str, int] = {}
        self._state: dict[str, int] = {}
        self._last_press = 0.0

    def new_presses(self) -> list[str]:
        """The streams whose record button was pressed since the last call (one entry a press)."""
        presses = []
        for stream, channel in self._channels.items():
            snapshot = self.live.history(stream, self._seen.get(stream, 0))
            if snapshot is None:
                continue
            count, _, fields = snapshot
            previous = self._state.get(stream, 0)
            for value in fields["buttons"][:, channel] if len(fields["buttons"]) else ():
                now = time.monotonic()
                if value and not previous and now - self._last_press > self.debounce_s:
                    self._last_press = now
                    presses.append(stream)
                previous = value
            self._state[stream], self._seen[stream] = previous, count
        return presses
