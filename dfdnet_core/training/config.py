"""The training configuration: one frozen dataclass, read from YAML with the project's loader.

Unknown keys fail (``dfdnet_core.config.config_from_mapping``); defaults live only here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from dfdnet_core.config import config_from_mapping, load_yaml
from dfdnet_core.errors import ConfigError
from dfdnet_core.model.sizes import DEPTH_PRIORS
from dfdnet_core.training_samples import PROCEDURAL_EVAL_SEED, STRONG_DEFOCUS_F_NUMBERS

DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs.

    Attributes:
        model_size: a size of :data:`dfdnet_core.model.sizes.SIZES` (``tiny``, ``small``, ``base``).
        network_short_side_px: overrides the size's ``input_short_side_px`` (the short side, in
            pixels, the network resizes its input to; a multiple of 14); 0 = the size's own.
        init_checkpoint: optional DINOv2 / Depth-Anything-V2 ``.pth``/``.safetensors`` whose ViT
            weights initialise the encoder, or one of our DfDNet checkpoints (every tensor whose name and
            shape match is copied) ('' = train from scratch).
        refiner_channels: overrides the size's ``refiner_channels`` (width of the full-resolution
            refinement stage of a prior model; 0 = keep the size's).
        train_only: parameter-name prefixes that are trained (e.g. ``[refiner.]``); every other
            parameter is frozen. Empty = train everything.
        procedural_scenes: number of procedural training scenes (seeds 0..N-1).
        procedural_size_px: (height, width) of a procedural scene before zoom/crop, pixels.
        validation_scenes: procedural scenes held out for the training log (seeds right after the
            training scenes; never the ``dfdnet eval --procedural`` seeds).
        dfd_indoor_root: folder of DFD-indoor ('' = not used); its ``train`` split (f/8 image +
            depth) is rendered on the fly.
        dfd_indoor_fraction: probability that a sample comes from DFD-indoor, in [0, 1].
        crop_size_px: (height, width) of the training crops, pixels.
        n_slices: inclusive (min, max) slices per training stack; each batch draws one N.
        f_numbers: f-numbers drawn per sample (``.inf`` = all in focus).
        far_bound_diopt: range of the lower focus bound in dioptres.
        near_bound_diopt: range of the upper focus bound in dioptres.
        zoom_range: (min, max) zoom of the crop.
        colour_jitter: brightness/contrast/saturation jitter in [0, 1).
        render_mode: ``gather`` or ``layered`` (renderer mode).
        adaptive_focus_probability: probability that a stack's focus distances follow the scene's
            disparity quantiles (as an adaptive sweep does) instead of the two random bounds.
        depth_prior: overrides the size's ``depth_prior`` (``''`` = keep; ``none`` or
            ``classical``, see :mod:`dfdnet_core.model.prior`).
        batch_size: stacks per optimiser step (per process).
        pool_size: rendered stacks kept in memory per process; batches are drawn from it.
        pool_refresh_per_step: new stacks rendered into the pool per step (the rest are reused
            with a fresh slice subset and flip).
        num_workers: DataLoader worker processes that render stacks (0 = in the main process).
        max_steps: optimiser steps (the cosine decay ends here).
        warmup_steps: steps of linear warm-up from 0 to ``learning_rate``.
        learning_rate: peak AdamW learning rate.
        min_learning_rate_ratio: final learning rate / peak.
        weight_decay: AdamW weight decay.
        grad_clip_norm: gradient clipping norm (0 = none).
        silog_lambda: variance weight of the scale-invariant log loss, in [0, 1].
        silog_weight: weight of the scale-invariant log loss (>= 0).
        log_l1_weight: weight of the metric L1 loss on log depth (>= 0).
        abs_rel_weight: weight of the AbsRel loss |pred - gt| / gt (>= 0).
        gradient_weight: weight of the multi-scale gradient-matching term.
        gradient_scales: number of scales of the gradient-matching term.
        min_depth_m: ground truth below this is masked out of the loss, metres.
        max_depth_m: ground truth above this is masked out of the loss, metres.
        checkpoint_every_steps: save the training state and weights every K steps.
        log_every_steps: write a CSV/JSON log row every K steps.
        validate_every_steps: evaluate on the held-out scenes every K steps (0 = never).
        max_time_s: stop cleanly (with a checkpoint) after this many seconds (0 = no limit).
        seed: seed of every random draw.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        mixed_precision: bfloat16 autocast on CUDA (ignored on CPU).
        num_threads: torch CPU threads per process (0 = torch's default).
        out_dir: folder for checkpoints, logs and the plot.
    """

    model_size: str = "tiny"
    network_short_side_px: int = 0
    init_checkpoint: str = ""
    refiner_channels: int = 0
    train_only: tuple[str, ...] = ()
    procedural_scenes: int = 100_000
    procedural_size_px: tuple[int, int] = (144, 192)
    validation_scenes: int = 8
    dfd_indoor_root: str = ""
    dfd_indoor_fraction: float = 0.3
    crop_size_px: tuple[int, int] = (112, 154)
    n_slices: tuple[int, int] = (2, 8)
    f_numbers: tuple[float, ...] = STRONG_DEFOCUS_F_NUMBERS
    far_bound_diopt: tuple[float, float] = (0.05, 0.6)
    near_bound_diopt: tuple[float, float] = (0.7, 3.3)
    zoom_range: tuple[float, float] = (1.0, 1.5)
    colour_jitter: float = 0.2
    render_mode: str = "layered"
    adaptive_focus_probability: float = 0.0
    depth_prior: str = ""
    batch_size: int = 4
    pool_size: int = 48
    pool_refresh_per_step: int = 1
    num_workers: int = 1
    max_steps: int = 2000
    warmup_steps: int = 100
    learning_rate: float = 3e-4
    min_learning_rate_ratio: float = 0.02
    weight_decay: float = 0.05
    grad_clip_norm: float = 1.0
    silog_lambda: float = 0.5
    silog_weight: float = 1.0
    log_l1_weight: float = 0.0
    abs_rel_weight: float = 0.0
    gradient_weight: float = 0.5
    gradient_scales: int = 3
    min_depth_m: float = 0.1
    max_depth_m: float = 80.0
    checkpoint_every_steps: int = 100
    log_every_steps: int = 10
    validate_every_steps: int = 100
    max_time_s: float = 0.0
    seed: int = 0
    device: str = "auto"
    mixed_precision: bool = True
    num_threads: int = 0
    out_dir: str = "runs/train"

    def __post_init__(self) -> None:
        for name in (
            "procedural_scenes", "batch_size", "pool_size", "pool_refresh_per_step", "max_steps",
            "gradient_scales", "checkpoint_every_steps", "log_every_steps",
        ):  # fmt: skip
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("network_short_side_px", "refiner_channels", "validation_scenes", "num_workers", "warmup_steps",
                     "validate_every_steps", "num_threads", "seed"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.network_short_side_px % 14:
            raise ConfigError(
                f"network_short_side_px must be 0 or a multiple of 14, got {self.network_short_side_px!r}"
            )
        if self.procedural_scenes + self.validation_scenes > PROCEDURAL_EVAL_SEED:
            raise ConfigError(
                f"procedural_scenes + validation_scenes = {self.procedural_scenes + self.validation_scenes}"
                f" reaches the evaluation seeds (>= {PROCEDURAL_EVAL_SEED})"
            )
        if self.pool_size < self.batch_size:
            raise ConfigError(f"pool_size {self.pool_size!r} must be >= batch_size {self.batch_size!r}")
        lo, hi = self.n_slices
        if not 2 <= lo <= hi:
            raise ConfigError(
                f"n_slices must be an inclusive (min, max) range with 2 <= min <= max, got {self.n_slices!r}"
            )
        if not 0.0 <= self.adaptive_focus_probability <= 1.0:
            raise ConfigError(
                f"adaptive_focus_probability must be in [0, 1], got {self.adaptive_focus_probability!r}"
            )
        if self.depth_prior not in ("",) + DEPTH_PRIORS:
            raise ConfigError(f"depth_prior must be '' or one of {DEPTH_PRIORS}, got {self.depth_prior!r}")
        if self.depth_prior == "classical" and self.n_slices[0] < 3:
            raise ConfigError(f"a classical depth prior needs n_slices >= 3, got {self.n_slices!r}")
        if not 0.0 <= self.dfd_indoor_fraction <= 1.0:
            raise ConfigError(f"dfd_indoor_fraction must be in [0, 1], got {self.dfd_indoor_fraction!r}")
        for name in ("learning_rate", "min_depth_m", "max_depth_m"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive finite number, got {value!r}")
        if self.min_depth_m >= self.max_depth_m:
            raise ConfigError(f"min_depth_m {self.min_depth_m!r} must be < max_depth_m {self.max_depth_m!r}")
        if not 0.0 <= self.min_learning_rate_ratio <= 1.0:
            raise ConfigError(f"min_learning_rate_ratio must be in [0, 1], got {self.min_learning_rate_ratio!r}")
        if not 0.0 <= self.silog_lambda <= 1.0:
            raise ConfigError(f"silog_lambda must be in [0, 1], got {self.silog_lambda!r}")
        for name in ("weight_decay", "grad_clip_norm", "gradient_weight", "max_time_s", "silog_weight",
                     "log_l1_weight", "abs_rel_weight"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.silog_weight + self.log_l1_weight + self.abs_rel_weight <= 0:
            raise ConfigError(
                "silog_weight + log_l1_weight + abs_rel_weight must be > 0 (a per-pixel loss term is needed)"
            )
        if self.warmup_steps >= self.max_steps:
            raise ConfigError(f"warmup_steps {self.warmup_steps!r} must be < max_steps {self.max_steps!r}")
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {DEVICES}, got {self.device!r}")
        if not self.out_dir:
            raise ConfigError("out_dir must not be empty")


def load_train_config(path: str | Path, **overrides: object) -> TrainConfig:
    """A :class:`TrainConfig` from a YAML mapping, then ``overrides`` (same keys).

    Raises:
        ConfigError: unreadable YAML, an unknown key, a wrong type or an invalid value (the message
            names the file).
    """
    values = load_yaml(path)
    values.update(overrides)
    return config_from_mapping(TrainConfig, values, source=str(path))
