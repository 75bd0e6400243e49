"""Training-time augmentation of WAM windows: one random look per window, the same on every frame.

A preview trained on one station's lighting and colours learns them by heart and then paints
them onto a station that looks different. Each window here gets its own brightness, contrast,
colour balance, channel order and a slight zoom and shift, applied identically to its past and
future frames (so what moves still moves the same way, and the target stays consistent with the
input). Actions are untouched: none of this changes where the hand is in the table frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F


@dataclass
class AugmentOptions:
    """Ranges of the random changes; ``0`` turns one off."""

    brightness: float = 0.25   # added, in [0, 1] pixel units: +-brightness
    contrast: float = 0.3      # multiplied around the window's mean: 1 +- contrast
    color: float = 0.15        # per-channel gain: 1 +- color
    #: Share of windows whose colour channels are put in a random order.
    channel_shuffle_p: float = 0.3
    #: Largest zoom-in (a random crop of 1 / (1 + zoom) of the side, resized back), with a shift.
    zoom: float = 0.15


def augment_windows(frames: torch.Tensor, options: AugmentOptions | None = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """``frames`` (B, T, 3, S, S) in [0, 1] -> the same shape, each window changed as one."""
    o = options or AugmentOptions()
    b, t, c, s, _ = frames.shape
    dev = frames.device

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, device=dev, generator=generator) * 2 - 1

    x = frames
    if o.zoom > 0:
        scale = 1 / (1 + torch.rand(b, device=dev, generator=generator) * o.zoom)
        shift = uniform(b, 2) * (1 - scale)[:, None]
        theta = torch.zeros(b, 2, 3, device=dev)
        theta[:, 0, 0] = theta[:, 1, 1] = scale
        theta[:, :, 2] = shift
        grid = F.affine_grid(theta, (b, c, s, s), align_corners=False)
        grid = grid.repeat_interleave(t, dim=0)
        x = F.grid_sample(x.reshape(b * t, c, s, s), grid, mode="bilinear", padding_mode="border",
                          align_corners=False).view(b, t, c, s, s)
    if o.channel_shuffle_p > 0:
        perms = torch.rand(b, 3, device=dev, generator=generator).argsort(dim=1)
        keep = torch.rand(b, device=dev, generator=generator) >= o.channel_shuffle_p
        perms[keep] = torch.arange(3, device=dev)
        x = torch.gather(x, 2, perms.view(b, 1, 3, 1, 1).expand_as(x))
    gain = 1 + uniform(b, 1, 3, 1, 1) * o.color
    contrast = 1 + uniform(b, 1, 1, 1, 1) * o.contrast
    mean = x.mean(dim=(1, 2, 3, 4), keepdim=True)
    x = (x - mean) * contrast + mean
    x = x * gain + uniform(b, 1, 1, 1, 1) * o.brightness
    return x.clamp(0, 1)
