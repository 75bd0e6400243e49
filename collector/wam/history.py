"""The WAM node's receiver: the last few seconds of one camera (resized) and one action stream,
read from the device nodes' latest-only ``live`` endpoints on a background thread."""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np
import zmq

from collector.wire import protocol
from collector.wire.bus import LIVE_HWM, Subscriber, fetch_describe, node_endpoints
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
    t_host_ns: int
    small: np.ndarray  # (S, S, 3) uint8


class LiveHistory:
    """Receiver thread: the last few seconds of one camera (resized) and one action stream."""

    def __init__(self, bases: dict[str, str], image_size: int, action_fields: tuple[str, ...],
                 camera: str | None, context: zmq.Context) -> None:
        self.image_size = image_size
        self.action_fields = action_fields
        self.camera = camera
        self.action_stream: str | None = None
        self.camera_meta: dict = {}
        self.action_layout: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        self.frames: deque[Frame] = deque()
        self.actions: deque[tuple[int, np.ndarray]] = deque()
        self.received = 0
        self._bases = bases
        self._context = context
        self._stop = threading.Event()
        for base in bases.values():
            try:
                self._learn(fetch_describe(node_endpoints(base).ctl, timeout_s=2.0))
            except (TimeoutError, RuntimeError) as exc:
                log.warning("no describe from %s yet: %s", base, exc)
        self._thread = threading.Thread(target=self._run, name="live-history", daemon=True)
        self._thread.start()

    def _learn(self, describe: Describe) -> None:
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

    def _run(self) -> None:
        sub = Subscriber([node_endpoints(b).live for b in self._bases.values()], hwm=LIVE_HWM,
                         context=self._context)
        try:
            while not self._stop.is_set():
                message = sub.receive(100)
                if isinstance(message, Describe):
                    self._learn(message)
                elif isinstance(message, Sample):
                    self._on_sample(message)
        finally:
            sub.close()

    def _on_sample(self, sample: Sample) -> None:
        horizon_ns = int(HISTORY_S * 1e9)
        if sample.stream == self.camera:
            name = next((n for n, a in sample.fields.items()
                         if a.dtype == np.uint8 and (a.ndim == 3 or sample.encodings.get(n) == protocol.JPEG)), None)
            if name is None:
                return
            rgb = sample.fields[name]
            if sample.encodings.get(name) == protocol.JPEG:
                rgb = decode_jpeg(rgb)
            frame = Frame(sample.seq, sample.t_host_ns, resize_frame(rgb, self.image_size))
            with self._lock:
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
            with self._lock:
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

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
