"""A DfDNet config small enough for many forward passes in tests; same code paths as the real sizes."""

from __future__ import annotations

from dfdnet_core.model import ModelConfig

MICRO = ModelConfig(
    embed_dim=64,
    depth=4,
    num_heads=2,
    input_short_side_px=56,
    num_layers_until_collapse=2,
    stack_num_heads=4,
    stack_norm_groups=8,
    dpt_layers=(0, 1, 2, 3),
    dpt_features=16,
    dpt_out_channels=(8, 16, 32, 64),
    dpt_head_hidden_channels=8,
)
