"""Masked depth losses of the monocular / defocus depth family (in canonical depth units).

- Scale-invariant log loss (Eigen et al. 2014, as in AdaBins / Depth-Anything metric / FOSSA):
  with g = log(pred) - log(target) over the valid pixels of one image,
  ``L = sqrt(mean(g^2) - lambda * mean(g)^2)``. lambda = 0 is the log RMSE (scale fully
  penalised), lambda = 1 ignores a global scale error; metric depth needs lambda < 1.
- Multi-scale gradient matching (Li & Snavely 2018, MiDaS): with R = log(pred) - log(target), the
  mean absolute x and y differences of R over pairs of valid neighbours, at strides 1, 2, 4, ...
  It sharpens depth edges without penalising a global scale.

Both are averaged over the images of the batch that have at least two valid pixels; a batch without
any gives 0 (with a gradient path, so DDP stays in step).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

LOG_FLOOR = 1e-4
"""Predictions are clamped to at least this (canonical units) before the logarithm."""


@dataclass(frozen=True)
class LossTerms:
    """The total loss and its parts (scalars; ``total`` carries the gradient)."""

    total: torch.Tensor
    silog: torch.Tensor
    gradient: torch.Tensor


def _log_residual(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    safe_target = torch.where(mask, target, torch.ones_like(target))
    residual = torch.log(pred.clamp_min(LOG_FLOOR)) - torch.log(safe_target.clamp_min(LOG_FLOOR))
    return torch.where(mask, residual, torch.zeros_like(residual))


def silog_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, variance_lambda: float = 0.5
) -> torch.Tensor:
    """Masked scale-invariant log loss, averaged over images.

    Args:
        pred: (B, 1, H, W) predicted depth > 0.
        target: (B, 1, H, W) ground-truth depth, same units.
        mask: (B, 1, H, W) bool, True where ``target`` is valid.
        variance_lambda: lambda in [0, 1].

    Returns:
        Scalar loss (dimensionless).
    """
    g = _log_residual(pred, target, mask).flatten(1)
    count = mask.flatten(1).sum(1).to(g.dtype)
    used = count >= 2
    n = count.clamp_min(1.0)
    mean = g.sum(1) / n
    mean_sq = (g * g).sum(1) / n
    d = (mean_sq - variance_lambda * mean * mean).clamp_min(1e-8)
    per_image = torch.sqrt(d)
    if not bool(used.any()):
        return (pred * 0.0).sum()
    return per_image[used].mean()


def gradient_matching_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, scales: int = 3
) -> torch.Tensor:
    """Masked multi-scale gradient matching of the log-depth residual, averaged over scales.

    Args:
        pred: (B, 1, H, W) predicted depth > 0.
        target: (B, 1, H, W) ground-truth depth, same units.
        mask: (B, 1, H, W) bool valid pixels.
        scales: strides 1, 2, ..., 2**(scales-1).

    Returns:
        Scalar loss (dimensionless).
    """
    residual = _log_residual(pred, target, mask)
    total = (pred * 0.0).sum()
    for k in range(scales):
        step = 2**k
        r = residual[:, :, ::step, ::step]
        m = mask[:, :, ::step, ::step]
        mx = m[..., 1:] & m[..., :-1]
        my = m[..., 1:, :] & m[..., :-1, :]
        gx = (r[..., 1:] - r[..., :-1]).abs() * mx
        gy = (r[..., 1:, :] - r[..., :-1, :]).abs() * my
        pairs = mx.sum() + my.sum()
        if int(pairs) > 0:
            total = total + (gx.sum() + gy.sum()) / pairs.to(gx.dtype)
    return total / scales


def log_l1_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean |log pred - log target| over each image's valid pixels, averaged over images (dimensionless).

    Metric (not scale-invariant) and robust: its optimum is the per-pixel median, which suits AbsRel and delta
    metrics better than a squared log error when a few pixels are far off.
    """
    return _mean_per_image(_log_residual(pred, target, mask).abs(), mask, pred)


def abs_rel_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean |pred - target| / target over each image's valid pixels, averaged over images.

    The AbsRel metric itself (dimensionless). It punishes over-estimates without bound and under-estimates by at
    most 1, so it pulls uncertain pixels towards nearer depths, as the metric rewards.
    """
    safe_target = torch.where(mask, target, torch.ones_like(target)).clamp_min(LOG_FLOOR)
    ratio = torch.where(mask, (pred - safe_target).abs() / safe_target, torch.zeros_like(pred))
    return _mean_per_image(ratio, mask, pred)


def _mean_per_image(values: torch.Tensor, mask: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` (0 outside ``mask``) over each image's valid pixels, then over the images that have any;
    a zero with a gradient path to ``pred`` when none has."""
    flat = values.flatten(1)
    count = mask.flatten(1).sum(1).to(flat.dtype)
    used = count >= 1
    if not bool(used.any()):
        return (pred * 0.0).sum()
    return (flat.sum(1)[used] / count[used]).mean()


def depth_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    variance_lambda: float = 0.5,
    gradient_weight: float = 0.5,
    gradient_scales: int = 3,
    silog_weight: float = 1.0,
    log_l1_weight: float = 0.0,
    abs_rel_weight: float = 0.0,
) -> LossTerms:
    """``silog_weight`` x SILog + ``log_l1_weight`` x log-L1 + ``abs_rel_weight`` x AbsRel
    + ``gradient_weight`` x gradient matching.

    ``LossTerms.silog`` reports the weighted sum of the per-pixel terms.
    """
    pred = pred.float()
    target = target.float()
    silog = (pred * 0.0).sum()
    if silog_weight > 0:
        silog = silog + silog_weight * silog_loss(pred, target, mask, variance_lambda)
    if log_l1_weight > 0:
        silog = silog + log_l1_weight * log_l1_loss(pred, target, mask)
    if abs_rel_weight > 0:
        silog = silog + abs_rel_weight * abs_rel_loss(pred, target, mask)
    if gradient_weight > 0:
        grad = gradient_matching_loss(pred, target, mask, gradient_scales)
    else:
        grad = (pred * 0.0).sum()
    return LossTerms(silog + gradient_weight * grad, silog.detach(), grad.detach())
