"""The WAM node's receiver: the last few seconds of one camera (resized) and one action stream,
read from the device nodes' latest-only ``live`` endpoints by the bus's reader thread."""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import zmq

from collector.wire import protocol
from collector.wire.bus import LatestSubscriber, fetch_describe, node_endpoints
from collector.storage.codecs import decode_jpeg
from collector.wire.protocol import Describe, Sample
from collector.wire.streams import StreamSpec
from collector.wam.data import resize_frame

log = logging.getLogger("collector.wam.node")

#: Seconds of frames and actions kept for the model's context and for scoring surprise.
HISTORY_S = 4.0


@dataclass
class Frame:
    seq: int
    #: Capture time on the camera's host clock.
    t_host_ns: int
    small: np.ndarray  # (S, S, 3) uint8
    #: When it arrived here (this host's clock): staleness is judged by it, since a node on
    #: another host does not share the camera's clock.
    received_ns: int = 0


class LiveHistory(LatestSubscriber):
    """The last few seconds of one camera (resized) and one action stream, kept by the bus's
    :class:`~collector.wire.bus.LatestSubscriber` reader thread."""

    def __init__(self, bases: dict[str, str], image_size: int, action_fields: tuple[str, ...],
                 camera: str | None, context: zmq.Context) -> None:
        self.image_size = image_size
        self.action_fields = action_fields
        self.camera = camera
        self.action_stream: str | None = None
        self.camera_meta: dict = {}
        self.action_layout: list[tuple[str, int]] = []
        self.frames: deque[Frame] = deque()
        self.actions: deque[tuple[int, np.ndarray]] = deque()
        self.received = 0
        self._learned: dict[str, Describe] = {}
        for base in bases.values():
            try:
                self._learn(fetch_describe(node_endpoints(base).ctl, timeout_s=2.0))
            except (TimeoutError, RuntimeError) as exc:
                log.warning("no describe from %s yet: %s", base, exc)
        super().__init__([node_endpoints(b).live for b in bases.values()], context=context)

    def _learn(self, describe: Describe) -> None:
        self._learned[describe.node] = describe
        for data in describe.streams:
            spec = StreamSpec.from_dict(data)
            if spec.kind == "color" and (self.camera is None or self.camera == spec.name):
                self.camera = spec.name
                self.camera_meta = dict(spec.meta)
            names = {f.name: f for f in spec.fields}
            if spec.kind == "state" and self.action_stream is None and all(f in names for f in self.action_fields):
                self.action_stream = spec.name
                self.action_layout = [(f, int(np.prod(names[f].shape, dtype=np.int64)))
                                      for f in self.action_fields]

    def _on_sample(self, sample: Sample) -> None:
        # On the reader thread, under the lock. A node that (re)announced itself on the bus
        # since the last sample may bring the camera or the action stream.
        if len(self.describes) != len(self._learned) or any(
                self._learned.get(n) is not d for n, d in self.describes.items()):
            for describe in list(self.describes.values()):
                if self._learned.get(describe.node) is not describe:
                    self._learn(describe)
        horizon_ns = int(HISTORY_S * 1e9)
        if sample.stream == self.camera:
            name = next((n for n, a in sample.fields.items()
                         if a.dtype == np.uint8 and (a.ndim == 3 or sample.encodings.get(n) == protocol.JPEG)), None)
            if name is None:
                return
            rgb = sample.fields[name]
            if sample.encodings.get(name) == protocol.JPEG:
                rgb = decode_jpeg(rgb)
            frame = Frame(sample.seq, sample.t_host_ns, resize_frame(rgb, self.image_size),
                          time.time_ns())
            self.frames.append(frame)
            while self.frames and frame.t_host_ns - self.frames[0].t_host_ns > horizon_ns:
                self.frames.popleft()
            self.received += 1
        elif sample.stream == self.action_stream:
            try:
                vector = np.concatenate([np.asarray(sample.fields[f], np.float32).reshape(-1)
                                         for f in self.action_fields])
            except KeyError:
                return
            self.actions.append((sample.t_host_ns, vector))
            while self.actions and sample.t_host_ns - self.actions[0][0] > horizon_ns:
                self.actions.popleft()

    def snapshot(self) -> tuple[list[Frame], np.ndarray, np.ndarray]:
        """Frames, action times and action vectors as they are now (copies of the lists)."""
        with self._lock:
            frames = list(self.frames)
            actions = list(self.actions)
        if not actions:
            return frames, np.empty(0, np.int64), np.empty((0, 0), np.float32)
        return (frames, np.array([t for t, _ in actions], np.int64),
                np.stack([a for _, a in actions]))
