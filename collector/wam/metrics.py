"""Image and action metrics, per sample, on (B, 3, S, S) tensors in [0, 1]."""

from __future__ import annotations

import torch
from torch.nn import functional as F

#: A pixel "moves" when some channel of the true future differs from the last frame by more
#: than this (sensor noise of the simulated camera stays far below it at 64x64).
MOVING_THRESHOLD = 0.06
_EPS = 1e-10


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each sample, (B,)."""
    mse = (pred - target).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / (mse + _EPS))


def moving_mask(target: torch.Tensor, last: torch.Tensor,
                threshold: float = MOVING_THRESHOLD) -> torch.Tensor:
    """(B, 1, S, S) bool: pixels where the true future differs from the last frame."""
    return (target - last).abs().amax(dim=1, keepdim=True) > threshold


def changed_mask(pred: torch.Tensor, target: torch.Tensor, last: torch.Tensor,
                 threshold: float = MOVING_THRESHOLD) -> torch.Tensor:
    """(B, 1, S, S) bool: pixels where the true future **or the prediction** differs from the last
    frame. Symmetric, unlike :func:`moving_mask`: a model that paints the still scene is scored
    on what it painted."""
    return moving_mask(target, last, threshold) | moving_mask(pred, last, threshold)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of squared errors over masked pixels and the count of masked values, each (B,)."""
    m = mask.expand_as(pred).float()
    return ((pred - target).pow(2) * m).flatten(1).sum(1), m.flatten(1).sum(1)


def _gaussian_window(size: int = 7, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-x * x / (2 * sigma * sigma))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(3, 1, size, size).contiguous()


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of each sample (Gaussian 7x7 window, sigma 1.5, per channel), (B,)."""
    w = _gaussian_window().to(pred)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mu_x = F.conv2d(pred, w, groups=3)
    mu_y = F.conv2d(target, w, groups=3)
    sxx = F.conv2d(pred * pred, w, groups=3) - mu_x * mu_x
    syy = F.conv2d(target * target, w, groups=3) - mu_y * mu_y
    sxy = F.conv2d(pred * target, w, groups=3) - mu_x * mu_y
    value = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2))
    return value.flatten(1).mean(1)
