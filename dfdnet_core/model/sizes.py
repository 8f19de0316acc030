"""The one model-size table of DfDNet.

``tiny`` is ours (trains and runs on a CPU); ``small`` and ``base`` have the shapes of FOSSA's
released ViT-S and ViT-B checkpoints, so those load strictly. Everything else (CLI, export, nodes,
docs) imports this table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dfdnet_core.errors import ConfigError

COLLAPSE_MODES = ("mean", "max")
"""How the per-image token streams are reduced to one after the stack stage."""
DEPTH_PRIORS = ("none", "classical")
"""What the network's output is relative to (see :mod:`dfdnet_core.model.prior`)."""


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a DfDNet (ViT encoder + stack attention + DPT head).

    Attributes:
        embed_dim: ViT width C.
        depth: number of ViT blocks.
        num_heads: ViT attention heads (C must divide evenly).
        mlp_ratio: ViT MLP hidden width / C.
        patch_size_px: patch side in pixels.
        input_short_side_px: the short image side the network resizes to, in pixels; the learned
            position table is a square grid of ``input_short_side_px / patch_size_px`` patches.
        layer_scale_init: initial value of the LayerScale vectors (only for freshly built models).
        num_layers_until_collapse: K. A stack-attention module follows each of blocks 0..K-1, blocks
            0..K run on every image, the streams are collapsed after block K, blocks K+1.. run once
            per stack.
        collapse: ``"mean"`` (FOSSA) or ``"max"`` over the images of the stack.
        stack_num_heads: heads of the attention across the stack.
        stack_norm_groups: GroupNorm groups at the entry of each stack-attention module.
        stack_attention_layers: attention sub-blocks per stack-attention module.
        focus_hidden_ratio: hidden width / C of the focus-distance embedding MLP.
        stack_ff_ratio: hidden width / C of the gated (GEGLU) feed-forward of the stack-attention
            module.
        dpt_layers: the four ViT blocks whose outputs feed the DPT head, increasing.
        dpt_features: DPT fusion width F (even).
        dpt_out_channels: DPT projection widths of the four taps.
        dpt_head_hidden_channels: width of the last 3x3 convolution of the DPT output stage.
        max_depth: factor on the softplus output (canonical depth units).
        depth_prior: ``"none"`` (FOSSA: the head's softplus output is the depth) or ``"classical"`` (ours: the
            classical depth-from-focus estimate and its confidence c are two more input channels of every image;
            the head predicts two log-corrections, and depth = prior * exp((1 - c) * r_fill + c * r_fix), see
            :mod:`dfdnet_core.model.prior`).
        refiner_channels: width of the full-resolution refinement stage of a prior model
            (:mod:`dfdnet_core.model.refiner`); 0 = none (FOSSA's sizes, the first shipped tiny).
    """

    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    patch_size_px: int = 14
    input_short_side_px: int = 518
    layer_scale_init: float = 1.0
    num_layers_until_collapse: int = 4
    collapse: str = "mean"
    stack_num_heads: int = 8
    stack_norm_groups: int = 32
    stack_attention_layers: int = 2
    focus_hidden_ratio: int = 4
    stack_ff_ratio: int = 4
    dpt_layers: tuple[int, int, int, int] = (2, 5, 8, 11)
    dpt_features: int = 64
    dpt_out_channels: tuple[int, int, int, int] = (48, 96, 192, 384)
    dpt_head_hidden_channels: int = 32
    max_depth: float = 1.0
    depth_prior: str = "none"
    refiner_channels: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "dpt_layers", tuple(self.dpt_layers))
        object.__setattr__(self, "dpt_out_channels", tuple(self.dpt_out_channels))
        positive_ints = (
            "embed_dim", "depth", "num_heads", "patch_size_px", "input_short_side_px",
            "stack_num_heads", "stack_norm_groups", "stack_attention_layers", "focus_hidden_ratio",
            "stack_ff_ratio", "dpt_features", "dpt_head_hidden_channels",
        )  # fmt: skip
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"model config {name} must be a positive integer, got {value!r}")
        for name in ("mlp_ratio", "layer_scale_init", "max_depth"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise ConfigError(f"model config {name} must be a positive number, got {value!r}")
        c = self.embed_dim
        for name in ("num_heads", "stack_num_heads", "stack_norm_groups"):
            if c % getattr(self, name):
                raise ConfigError(
                    f"model config embed_dim={c!r} is not divisible by "
                    f"{name}={getattr(self, name)!r}"
                )
        if self.input_short_side_px % self.patch_size_px:
            raise ConfigError(
                "model config input_short_side_px="
                f"{self.input_short_side_px!r} is not a multiple of "
                f"patch_size_px={self.patch_size_px!r}"
            )
        k = self.num_layers_until_collapse
        if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k < self.depth:
            raise ConfigError(
                "model config num_layers_until_collapse must be an integer in "
                f"[0, depth-1={self.depth - 1}], got {k!r}"
            )
        if self.collapse not in COLLAPSE_MODES:
            raise ConfigError(
                f"model config collapse must be one of {COLLAPSE_MODES}, got {self.collapse!r}"
            )
        if self.depth_prior not in DEPTH_PRIORS:
            raise ConfigError(
                f"model config depth_prior must be one of {DEPTH_PRIORS}, got {self.depth_prior!r}"
            )
        refiner = self.refiner_channels
        if not isinstance(refiner, int) or isinstance(refiner, bool) or not 0 <= refiner <= 256:
            raise ConfigError(f"model config refiner_channels must be an integer in [0, 256], got {refiner!r}")
        if refiner and self.depth_prior == "none":
            raise ConfigError("model config refiner_channels > 0 needs a depth prior (depth_prior='classical')")
        layers = self.dpt_layers
        if (
            len(layers) != 4
            or any(not isinstance(i, int) or not 0 <= i < self.depth for i in layers)
            or list(layers) != sorted(set(layers))
        ):
            raise ConfigError(
                "model config dpt_layers must be 4 increasing block indices in "
                f"[0, {self.depth - 1}], got {layers!r}"
            )
        channels = self.dpt_out_channels
        if len(channels) != 4 or any(not isinstance(v, int) or v <= 0 for v in channels):
            raise ConfigError(
                f"model config dpt_out_channels must be 4 positive integers, got {channels!r}"
            )
        if self.dpt_features % 2:
            raise ConfigError(f"model config dpt_features must be even, got {self.dpt_features!r}")

    @property
    def pos_grid_size(self) -> int:
        """Side of the square grid of learned position embeddings, in patches."""
        return self.input_short_side_px // self.patch_size_px

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of every field (tuples become lists)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "<dict>") -> ModelConfig:
        """Build a config from :meth:`to_dict` output.

        Args:
            values: field name -> value; fields with a default may be left out.
            source: where the values came from (file name), quoted in errors.

        Raises:
            ConfigError: a key is not a field, a field without default is missing, or a value is
                invalid.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            if key not in known:
                raise ConfigError(
                    f"unknown model config key {key!r} in {source}; known keys: {sorted(known)}"
                )
        try:
            return cls(**dict(values))
        except TypeError as exc:
            raise ConfigError(f"incomplete model config in {source}: {exc}") from None


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


SIZES: dict[str, ModelConfig] = {
    # Ours: ~4.8 M parameters; a 224 px short side, so a 5 x 256x320 stack runs on 2 CPU threads.
    "tiny": ModelConfig(
        embed_dim=192,
        depth=6,
        num_heads=3,
        input_short_side_px=224,
        layer_scale_init=0.1,
        num_layers_until_collapse=2,
        stack_num_heads=4,
        stack_norm_groups=32,
        focus_hidden_ratio=1,
        stack_ff_ratio=2,
        dpt_layers=(1, 2, 4, 5),
        dpt_features=32,
        dpt_out_channels=(24, 48, 96, 192),
        dpt_head_hidden_channels=16,
    ),
    # FOSSA ViT-S (42,539,721 parameters).
    "small": ModelConfig(embed_dim=384, depth=12, num_heads=6),
    # FOSSA ViT-B (168,369,481 parameters).
    "base": ModelConfig(
        embed_dim=768,
        depth=12,
        num_heads=12,
        dpt_features=128,
        dpt_out_channels=(96, 192, 384, 768),
    ),
}
"""Size name -> config. ``small``/``base`` match FOSSA's ``vits``/``vitb`` checkpoints exactly."""


def config_for_size(name: str) -> ModelConfig:
    """The config of a named size.

    Raises:
        ConfigError: ``name`` is not in :data:`SIZES`.
    """
    try:
        return SIZES[name]
    except KeyError:
        raise ConfigError(f"unknown model size {name!r}; known sizes: {sorted(SIZES)}") from None


def size_name_of(config: ModelConfig) -> str | None:
    """The table name whose config equals ``config``, or None for a custom config."""
    for name, candidate in SIZES.items():
        if candidate == config:
            return name
    return None
