"""What the WAM node tests feed it: a stand-in station (one node publishing a small camera and a
glove over the real bus) and a toy predictor that a lab could have written."""

from __future__ import annotations

import threading

import numpy as np

from collector.wire import protocol
from collector.wire.bus import NodePublisher
from collector.wire.protocol import Describe, Sample
from collector.wire.streams import FieldSpec, StreamSpec
from collector.wam.predictor import PredictorSpec

CAMERA = StreamSpec("station/rgb", "color", 30.0, [FieldSpec("rgb", "uint8", (24, 32, 3))])
GLOVE = StreamSpec("station/hand", "state", 30.0, [FieldSpec("wrist_pos", "float32", (3,), "m"),
                                                   FieldSpec("grip", "float32", (1,))])


class ToyPredictor:
    """Predicts that nothing moves, plus ``shift`` on every pixel: the smallest predictor."""

    def __init__(self, shift: int = 0, horizons_s: tuple[float, ...] = (0.25, 0.5, 1.0)) -> None:
        self.shift = shift
        self.spec = PredictorSpec(image_size=16, context=2, dt_s=0.125, horizons_s=tuple(horizons_s),
                                  action_fields=("wrist_pos", "grip"), action_dim=4)
        self.calls = 0

    def predict(self, frames, actions, future_actions=None):
        self.spec.check_inputs(frames, actions)
        self.calls += 1
        last = np.clip(frames[-1].astype(np.int16) + self.shift, 0, 255).astype(np.uint8)
        k = self.spec.horizon
        return np.repeat(last[None], k, axis=0), np.repeat(actions[-1:], k, axis=0).astype(np.float32)


class WrongShapePredictor(ToyPredictor):
    """Answers with one frame too few: the node must refuse and count it."""

    def predict(self, frames, actions, future_actions=None):
        out_frames, out_actions = super().predict(frames, actions)
        return out_frames[1:], out_actions


def make_toy(shift: int = 0) -> ToyPredictor:
    """The factory a config names (``predictor = "tests.collector.wam.live_inputs:make_toy"``)."""
    return ToyPredictor(shift)


class StandInStation:
    """One node, ``station``, publishing a moving 32x24 camera and a glove at 30 Hz."""

    def __init__(self, endpoint: str, curve=None) -> None:
        describe = Describe(node="station", streams=[CAMERA.to_dict(), GLOVE.to_dict()])
        self.publisher = NodePublisher(endpoint, describe, messages_per_second=60, curve=curve)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        seq = 0
        while not self._stop.wait(1 / 30):
            now = protocol.now_ns()
            frame = np.zeros((24, 32, 3), np.uint8)
            frame[:, (seq // 2) % 32] = 255  # a bar that moves
            self.publisher.send(Sample("station", CAMERA.name, seq, now, now, {"rgb": frame}))
            self.publisher.send(Sample("station", GLOVE.name, seq, now, now, {
                "wrist_pos": np.array([0.1, 0.0, seq * 1e-3], np.float32),
                "grip": np.array([0.5], np.float32)}))
            seq += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.publisher.close()
