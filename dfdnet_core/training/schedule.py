"""AdamW with linear warm-up and cosine decay of the learning rate."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn


def learning_rate_factor(step: int, warmup_steps: int, max_steps: int, min_ratio: float) -> float:
    """Multiplier of the peak learning rate at optimiser step ``step`` (0-based).

    Linear from 1/(warmup+1) up to 1 over the first ``warmup_steps`` steps, then a half cosine from 1
    down to ``min_ratio`` at ``max_steps``; ``min_ratio`` after that.
    """
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    span = max(1, max_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, object]]:
    """No weight decay on biases, norms, LayerScale, tokens and position tables (1-D or tokens)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim <= 1 or name.endswith(("pos_embed", "cls_token", "mask_token", "register_tokens")):
            no_decay.append(param)
        else:
            decay.append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_optimizer(
    model: nn.Module,
    learning_rate: float,
    weight_decay: float,
    warmup_steps: int,
    max_steps: int,
    min_ratio: float,
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (betas 0.9/0.999) and a per-step LambdaLR with :func:`learning_rate_factor`.

    Call ``scheduler.step()`` once after every ``optimizer.step()``.
    """
    optimizer = torch.optim.AdamW(_param_groups(model, weight_decay), lr=learning_rate, betas=(0.9, 0.999))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, warmup_steps, max_steps, min_ratio)
    )
    return optimizer, scheduler


def parameters_with_grad(model: nn.Module) -> Iterable[nn.Parameter]:
    """The parameters that received a gradient this step."""
    return (p for p in model.parameters() if p.grad is not None)
