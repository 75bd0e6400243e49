"""Checkpoint files and the numpy-in, numpy-out :class:`Predictor` the node and eval use (the
built-in implementation of :class:`collector.wam.predictor.WorldActionPredictor`).

A checkpoint is a ``torch.save`` dictionary of plain data and tensors (loaded with
``weights_only=True``: no pickled code runs): the model config, the weights (matrices as int8
with a float16 scale per output row, the rest float16), the action normalizer, the action fields
and camera it was trained on, and the training report. Version 1 files (all float16) still load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from collector.wam.data import DEFAULT_ACTION_FIELDS, Normalizer
from collector.wam.model import WamConfig, WorldActionModel
from collector.wam.predictor import SHIPPED_CHECKPOINT, PredictorSpec

FORMAT = "collector-wam"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
#: Weight tensors with at least this many elements are stored as int8 (a quarter of float32).
QUANTIZE_MIN_ELEMENTS = 4096


def quantize(state_dict: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """``(tensors, scales)``: large float matrices as int8 with a float16 scale per output row
    (symmetric, absmax / 127), other float tensors as float16, the rest unchanged."""
    tensors, scales = {}, {}
    for name, value in state_dict.items():
        value = value.detach().cpu()
        if value.is_floating_point() and value.ndim >= 2 and value.numel() >= QUANTIZE_MIN_ELEMENTS:
            rows = value.float().reshape(value.shape[0], -1)
            scale = rows.abs().amax(dim=1).clamp_min(1e-12) / 127.0
            tensors[name] = torch.round(rows / scale[:, None]).clamp(-127, 127).to(torch.int8) \
                .reshape(value.shape)
            scales[name] = scale.to(torch.float16)
        else:
            tensors[name] = value.to(torch.float16) if value.is_floating_point() else value
    return tensors, scales


def dequantize(tensors: dict[str, torch.Tensor], scales: dict[str, torch.Tensor]) -> dict:
    """The float weights that :func:`quantize` stored."""
    out = dict(tensors)
    for name, scale in scales.items():
        q = tensors[name]
        out[name] = (q.float().reshape(q.shape[0], -1) * scale.float()[:, None]).reshape(q.shape)
    return out


class CheckpointError(ValueError):
    """A file that is not a usable WAM checkpoint; the message says why."""


@dataclass
class Checkpoint:
    config: WamConfig
    state_dict: dict[str, torch.Tensor]
    normalizer: Normalizer
    action_fields: tuple[str, ...] = DEFAULT_ACTION_FIELDS
    camera: str | None = None
    report: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # int8 matrices keep the shipped checkpoint small enough for git; the model runs in
        # float32 after loading.
        tensors, scales = quantize(self.state_dict)
        data = {"format": FORMAT, "version": FORMAT_VERSION, "config": self.config.to_dict(),
                "state_dict": tensors, "int8_scales": scales,
                "normalizer": self.normalizer.to_dict(), "action_fields": list(self.action_fields),
                "camera": self.camera, "report": self.report}
        tmp = path.with_name(path.name + ".tmp")
        torch.save(data, tmp)
        tmp.replace(path)  # never leave a half-written checkpoint under the real name

    @classmethod
    def load(cls, path: str | Path) -> "Checkpoint":
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise CheckpointError(f"{path}: no such file") from None
        except Exception as exc:  # torch raises many types for a damaged or foreign file
            raise CheckpointError(f"{path}: not a readable checkpoint: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CheckpointError(f"{path}: not a collector WAM checkpoint")
        if data.get("version") not in READABLE_VERSIONS:
            raise CheckpointError(f"{path}: checkpoint version {data.get('version')} "
                                  f"(this collector reads {', '.join(map(str, READABLE_VERSIONS))})")
        weights = dequantize(data["state_dict"], data.get("int8_scales") or {})
        return cls(WamConfig.from_dict(data["config"]), weights,
                   Normalizer.from_dict(data["normalizer"]), tuple(data["action_fields"]),
                   data.get("camera"), data.get("report") or {})

    def build_model(self) -> WorldActionModel:
        model = WorldActionModel(self.config)
        try:
            model.load_state_dict({k: v.float() if v.is_floating_point() else v
                                   for k, v in self.state_dict.items()})
        except RuntimeError as exc:
            raise CheckpointError(f"weights do not fit the stored config: {exc}") from None
        return model.eval()


class Predictor:
    """Runs a checkpoint on numpy inputs in raw units; no gradients, float32, one window a call."""

    def __init__(self, checkpoint: Checkpoint, device: str = "cpu", path: str | Path | None = None) -> None:
        self.checkpoint = checkpoint
        self.config = checkpoint.config
        self.normalizer = checkpoint.normalizer
        self.device = torch.device(device)
        self.model = checkpoint.build_model().to(self.device)
        if self.device.type == "cpu":
            # oneDNN's convolutions then skip reordering activations: one thread, 64x64, p50
            # 52.4 -> 45.3 ms over 120 interleaved calls each, the same uint8 frames.
            self.model = self.model.to(memory_format=torch.channels_last)
        #: The file it was loaded from, if any (the node reports it).
        self.path = str(path) if path is not None else None
        c = checkpoint.config
        self.spec = PredictorSpec(c.image_size, c.context, c.dt_s, tuple(c.horizons_s),
                                  tuple(checkpoint.action_fields), c.action_dim, checkpoint.camera)

    @classmethod
    def from_file(cls, path: str | Path, device: str = "cpu") -> "Predictor":
        return cls(Checkpoint.load(path), device, path)

    @torch.inference_mode()
    def predict(self, frames: np.ndarray, actions: np.ndarray,
                future_actions: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Predict the future.

        Args:
            frames: (C, S, S, 3) uint8, oldest first, the last is "now".
            actions: (C, A) float, raw units, at the frames' times.
            future_actions: (K, A) raw units to condition on, or ``None`` to let the model
                predict them (the live preview).

        Returns:
            ``(frames (K, S, S, 3) uint8, actions (K, A) float32 raw units)``.
        """
        self.spec.check_inputs(frames, actions)
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        x = x.permute(0, 3, 1, 2).float().div_(255).unsqueeze(0)
        a = torch.from_numpy(self.normalizer(np.asarray(actions, np.float32))).unsqueeze(0).to(self.device)
        fa = None
        if future_actions is not None:
            fa = torch.from_numpy(self.normalizer(np.asarray(future_actions, np.float32)))
            fa = fa.unsqueeze(0).to(self.device)
        images, pred_actions, _ = self.model(x, a, fa)
        out = (images[0].permute(0, 2, 3, 1).clamp(0, 1) * 255 + 0.5).to(torch.uint8)
        return out.cpu().numpy(), self.normalizer.inverse(pred_actions[0].cpu().numpy())


def checkpoint_predictor(checkpoint: str = "", device: str = "cpu") -> Predictor:
    """The built-in predictor factory (``predictor = ""`` in the WAM node's options): the model
    in ``checkpoint`` (empty: the one shipped with collector) on ``device`` (``auto``: CUDA when
    torch sees it)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return Predictor.from_file(checkpoint or SHIPPED_CHECKPOINT, device)
