"""The World Action Model: past frames and actions in, K future frames and actions out, one pass.

Design (about 3M parameters at 64x64, K = 16; see ``docs/wam.md``):

* a conv encoder maps each past frame to a latent vector and hands the last frame's feature maps
  to the decoder as skips, so the decoder only has to draw what changes;
* a small transformer reads interleaved past (latent, action) tokens and K query tokens, each
  carrying its future action or a learned "unknown" token, and predicts residual latents (added
  to the last frame's latent) and residual actions (added to the last action);
* the decoder turns each future latent into a colour change plus a mask and composites it onto
  the last frame, which makes "nothing moves" the easy default and spends capacity on what moves.

Future actions are masked at random in training, so one model serves the live preview ("predict
frames and actions") and the action-conditioned use ("predict frames given these actions").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class WamConfig:
    """Shape of the model and of its inputs; stored in every checkpoint."""

    #: Frames are resized to ``image_size`` x ``image_size`` RGB.
    image_size: int = 64
    #: Past frames (and actions) the model sees, ``dt_s`` apart, the last one being "now".
    context: int = 4
    #: Future steps predicted, ``dt_s`` apart: K = 16 at 0.125 s reaches 2 s ahead.
    horizon: int = 16
    dt_s: float = 0.125
    action_dim: int = 8
    latent: int = 256
    widths: tuple[int, ...] = (32, 64, 96, 128)
    layers: int = 4
    heads: int = 4
    ff: int = 512
    #: Share of training windows whose future actions are hidden from the model.
    action_mask_p: float = 0.5

    def to_dict(self) -> dict:
        data = asdict(self)
        data["widths"] = list(self.widths)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "WamConfig":
        data = dict(data)
        data["widths"] = tuple(data.get("widths", cls.widths))
        return cls(**data)

    @property
    def horizons_s(self) -> list[float]:
        return [(k + 1) * self.dt_s for k in range(self.horizon)]


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.GroupNorm(8, c_out),
                         nn.GELU())


class FrameEncoder(nn.Module):
    """(N, 3, S, S) in [0, 1] -> latent (N, L) and the feature maps of every scale."""

    def __init__(self, config: WamConfig) -> None:
        super().__init__()
        widths = (3, *config.widths)
        self.blocks = nn.ModuleList(_block(a, b) for a, b in zip(widths[:-1], widths[1:]))
        side = config.image_size >> len(config.widths)
        self.to_latent = nn.Linear(config.widths[-1] * side * side, config.latent)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = images * 2 - 1
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return self.to_latent(x.flatten(1)), features


class FrameDecoder(nn.Module):
    """Future latents plus the last frame's skips -> composited frames (N, 3, S, S)."""

    def __init__(self, config: WamConfig) -> None:
        super().__init__()
        w = config.widths
        self.side = config.image_size >> len(w)
        self.from_latent = nn.Linear(config.latent, w[-1] * self.side * self.side)
        # Stage i adds the last frame's skip at scale i+1, then upsamples to scale i. Adding
        # rather than concatenating halves the cost of the stages that run K times per call.
        self.ups = nn.ModuleList()
        for i in reversed(range(len(w))):
            c_out = w[i - 1] if i > 0 else 16
            self.ups.append(nn.Sequential(nn.ConvTranspose2d(w[i], c_out, 4, stride=2, padding=1),
                                          nn.GELU()))
        self.head = nn.Conv2d(16 + 3, 4, 3, padding=1)
        # Start as "copy the last frame": no change, mask small (but inside the hard sigmoid's
        # sloped range, -3..3, so it learns).
        nn.init.zeros_(self.head.weight)
        with torch.no_grad():
            self.head.bias.copy_(torch.tensor([0.0, 0.0, 0.0, -2.5]))

    def forward(self, latents: torch.Tensor, skips: list[torch.Tensor],
                last: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``latents`` (N, L); ``skips`` per scale (N, C, s, s); ``last`` (N, 3, S, S)."""
        x = self.from_latent(latents).view(latents.shape[0], -1, self.side, self.side)
        for up, skip in zip(self.ups, reversed(skips)):
            x = up(x + skip)
        out = self.head(torch.cat([x, last * 2 - 1], dim=1))
        # A hard sigmoid reaches exactly 0: pixels the model leaves alone are the last frame's,
        # bit for bit, instead of a faint blur. mask * (last + change) + (1 - mask) * last:
        mask = F.hardsigmoid(out[:, 3:])
        return (last + mask * torch.tanh(out[:, :3])).clamp(0, 1), mask


class WorldActionModel(nn.Module):
    """See the module docstring. Inputs and outputs are batched tensors:

    * ``frames`` (B, C, 3, S, S) float in [0, 1], oldest first;
    * ``actions`` (B, C, A) normalized past actions (the last is "now");
    * ``future_actions`` (B, K, A) or ``None`` (unknown: the model predicts them);
    * ``action_known`` (B,) bool: per window, whether ``future_actions`` may be used.

    * ``steps``: indices of the future steps to decode into frames (all when ``None``);
      training decodes a few per batch, which makes a step several times cheaper.

    Returns ``(frames (B, K', 3, S, S), actions (B, K, A), masks (B, K', 1, S, S))`` with K' the
    number of decoded steps.
    """

    def __init__(self, config: WamConfig) -> None:
        super().__init__()
        self.config = c = config
        d = c.latent
        self.encoder = FrameEncoder(c)
        self.decoder = FrameDecoder(c)
        self.action_in = nn.Linear(c.action_dim, d)
        self.future_action_in = nn.Linear(c.action_dim, d)
        self.unknown_action = nn.Parameter(torch.zeros(d))
        self.past_pos = nn.Parameter(torch.randn(2 * c.context, d) * 0.02)
        self.query_pos = nn.Parameter(torch.randn(c.horizon, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, c.heads, c.ff, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, c.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.latent_out = nn.Linear(d, d)
        self.action_out = nn.Linear(d, c.action_dim)
        for head in (self.latent_out, self.action_out):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def forward(self, frames: torch.Tensor, actions: torch.Tensor,
                future_actions: torch.Tensor | None = None,
                action_known: torch.Tensor | None = None, steps: torch.Tensor | None = None):
        c = self.config
        b, n_ctx = frames.shape[:2]
        size = c.image_size
        latents, features = self.encoder(frames.reshape(b * n_ctx, 3, size, size))
        latents = latents.view(b, n_ctx, -1)
        past = torch.stack([latents, self.action_in(actions)], dim=2).reshape(b, 2 * n_ctx, -1)
        past = past + self.past_pos
        queries = self.unknown_action.expand(b, c.horizon, -1)
        if future_actions is not None:
            known = self.future_action_in(future_actions)
            if action_known is not None:
                known = torch.where(action_known.view(b, 1, 1), known, queries)
            queries = known
        queries = queries + self.query_pos
        out = self.norm(self.transformer(torch.cat([past, queries], dim=1))[:, 2 * n_ctx:])
        future_latents = latents[:, -1:] + self.latent_out(out)
        future_actions_pred = actions[:, -1:] + self.action_out(out)
        # Every future frame is decoded against the last frame and its skip features.
        if steps is not None:
            future_latents = future_latents[:, steps]
        k = future_latents.shape[1]
        last = frames[:, -1]
        skips = [f.view(b, n_ctx, *f.shape[1:])[:, -1] for f in features]
        skips = [s.unsqueeze(1).expand(b, k, *s.shape[1:]).reshape(b * k, *s.shape[1:]) for s in skips]
        last_k = last.unsqueeze(1).expand(b, k, *last.shape[1:]).reshape(b * k, *last.shape[1:])
        images, masks = self.decoder(future_latents.reshape(b * k, -1), skips, last_k)
        return (images.view(b, k, 3, size, size), future_actions_pred,
                masks.view(b, k, 1, size, size))


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def frame_loss(pred: torch.Tensor, target: torch.Tensor, last: torch.Tensor,
               moving_weight: float = 4.0, threshold: float = 0.06) -> torch.Tensor:
    """L1 with extra weight where the true future differs from the last frame (what moves)."""
    moving = ((target - last.unsqueeze(1)).abs().amax(dim=2, keepdim=True) > threshold).float()
    weight = 1.0 + moving_weight * moving
    return (weight * (pred - target).abs()).mean()


def action_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(pred, target)


@dataclass
class LossWeights:
    """The terms of :func:`preview_loss`. The defaults are what the shipped checkpoint was trained
    with (scripts/train_sim_wam.py); a fine-tune that optimises anything else pulls the model
    away from what it learned and from what its skill is scored on."""

    #: Extra L1 weight where the true future differs from the last frame (:func:`frame_loss`):
    #: sharper moving parts, but halos where the model is unsure, which whole-frame PSNR punishes.
    moving: float = 1.0
    #: Squared error on the whole frame: what PSNR, and so the preview's skill, scores.
    squared: float = 2.0
    action: float = 0.1
    #: Weight of the mean composite mask: keeps the static scene an exact copy of the last frame.
    mask: float = 0.005

    @classmethod
    def of(cls, report: dict) -> "LossWeights":
        """The weights a checkpoint's training report says it was trained with (the defaults,
        the shipped checkpoint's, where it does not say)."""
        return cls(**{k: float(v) for k, v in (report.get("loss") or {}).items() if k in cls.__dataclass_fields__})


def preview_loss(pred: torch.Tensor, target: torch.Tensor, last: torch.Tensor,
                 pred_actions: torch.Tensor, future_actions: torch.Tensor, masks: torch.Tensor,
                 weights: LossWeights | None = None) -> torch.Tensor:
    """The training objective: ``pred``/``target`` (B, K', 3, S, S) decoded future frames and
    their truth, ``last`` (B, 3, S, S) the "now" frame, actions (B, K, A) normalized,
    ``masks`` the decoder's composite masks."""
    w = weights or LossWeights()
    return (frame_loss(pred, target, last, w.moving) + w.squared * (pred - target).pow(2).mean()
            + w.action * action_loss(pred_actions, future_actions) + w.mask * masks.mean())
