"""Training samples with the seed paper's recipe: focal stacks rendered on the fly from RGB-D images.

One sample = one RGB-D image, geometrically augmented (zoom, random crop, horizontal flip), colour jittered, then
rendered by the thin-lens renderer at focus distances uniform in disparity between random bounds, with an f-number
drawn from a set. Every random choice comes from one ``torch.Generator`` in a fixed order, so a sample is a pure
function of (image, recipe, generator state).

Lens convention (FOSSA's): the output image's long edge spans ``sensor_width_m`` (36 mm by default), so the pixel
pitch is ``sensor_width_m / max(H, W)``; the focal length is that pitch times the mean of fx and fy of the
augmented image (zooming in is a longer lens on the same sensor), unless the recipe fixes ``focal_length_m``.

Seed split of the procedural scenes: training uses scene seeds ``[0, PROCEDURAL_EVAL_SEED)``; evaluation (``dfdnet
eval --procedural N``) uses seeds from ``PROCEDURAL_EVAL_SEED`` up, so no validation scene is ever trained on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.data.sample import RgbdSample
from dfdnet_core.errors import ConfigError
from dfdnet_core.optics import FULL_FRAME_WIDTH_M, LensOptics, disparity_uniform_focus_m
from dfdnet_core.renderer import PsfKind, RenderMode, render_focal_stack
from dfdnet_core.scene import make_scene

PAPER_F_NUMBERS: tuple[float, ...] = (10.0, 11.0, 12.0, 13.0, 14.0, 18.0, math.inf)
"""The seed paper's f-number set, chosen to generalise to DDFF-12 (``inf`` = all in focus)."""
STRONG_DEFOCUS_F_NUMBERS: tuple[float, ...] = (1.4, 2.0, 2.8, 4.0)
"""A strong-defocus set (wide apertures), as FOSSA trains with."""
PROCEDURAL_EVAL_SEED = 1_000_000_000
"""First scene seed reserved for evaluation; training scenes use seeds below it."""
PROCEDURAL_HFOV_DEG = 60.0
"""Horizontal field of view of the procedural scenes' camera, degrees."""
PROCEDURAL_DEPTH_RANGE_M = (0.3, 20.0)
"""Depth range of the procedural scenes, metres."""


def _pair(name: str, value: Any, lower: float, upper: float = math.inf) -> tuple[float, float]:
    """Validate a (low, high) pair of floats with lower <= low <= high <= upper."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a (low, high) pair of numbers, got {value!r}") from None
    if not (lower <= lo <= hi <= upper) or math.isnan(lo) or math.isnan(hi):
        raise ConfigError(f"{name} must satisfy {lower!r} <= low <= high <= {upper!r}, got {value!r}")
    return lo, hi


@dataclass(frozen=True)
class SampleRecipe:
    """How a training sample is drawn and rendered (the seed paper's recipe by default).

    Attributes:
        f_numbers: f-numbers drawn uniformly per sample; ``math.inf`` = pinhole (every slice all in focus).
        n_slices: slices per stack, fixed (int) or drawn uniformly from an inclusive (min, max) range.
        far_bound_diopt: range of the LOWER focus bound in dioptres (farthest focus = 1 / bound); paper U(0.05, 0.25).
        near_bound_diopt: range of the UPPER focus bound in dioptres (nearest focus = 1 / bound); paper U(1, 2).
        sensor_width_m: physical width of the output image's long edge in metres (pixel pitch = it / long edge).
        focal_length_m: fixed lens focal length in metres; None = pitch x mean(fx, fy) (FOSSA's convention).
        fallback_hfov_deg: horizontal field of view (degrees) assumed for RGB-D samples without intrinsics.
        zoom_range: (min, max) zoom factor >= 1, drawn uniformly; 1 = the crop just fits inside the image.
        crop_size_px: (height, width) of the output in pixels; None = the input's size.
        flip_probability: probability of a horizontal flip, in [0, 1].
        colour_jitter: brightness, contrast and saturation factors are drawn from [1 - j, 1 + j], j in [0, 1).
        render_mode: renderer mode, ``"gather"`` or ``"layered"``.
        psf: ``"gaussian"`` or ``"generalised_gaussian"``.
        psf_exponent: exponent p of the generalised Gaussian (2 for ``"gaussian"``).
        hole_depth_m: depth in metres at which depth holes are rendered (they are masked in the loss).
        adaptive_focus_probability: probability that the focus distances follow the scene instead of the two
            bounds: uniform in disparity between the q_lo and q_hi quantiles of the crop's ground-truth disparity,
            q_lo ~ U(0.02, 0.10), q_hi ~ U(0.90, 0.98) (what an adaptive sweep and ``dfdnet eval``'s adaptive
            protocol do).
    """

    f_numbers: tuple[float, ...] = PAPER_F_NUMBERS
    n_slices: int | tuple[int, int] = 5
    far_bound_diopt: tuple[float, float] = (0.05, 0.25)
    near_bound_diopt: tuple[float, float] = (1.0, 2.0)
    sensor_width_m: float = FULL_FRAME_WIDTH_M
    focal_length_m: float | None = None
    fallback_hfov_deg: float = PROCEDURAL_HFOV_DEG
    zoom_range: tuple[float, float] = (1.0, 1.5)
    crop_size_px: tuple[int, int] | None = None
    flip_probability: float = 0.5
    colour_jitter: float = 0.2
    render_mode: RenderMode = "gather"
    psf: PsfKind = "gaussian"
    psf_exponent: float = 2.0
    hole_depth_m: float = 1000.0
    adaptive_focus_probability: float = 0.0

    def __post_init__(self) -> None:
        try:
            f_numbers = tuple(float(f) for f in self.f_numbers)
        except (TypeError, ValueError):
            raise ConfigError(f"f_numbers must be a sequence of numbers, got {self.f_numbers!r}") from None
        if not f_numbers or any(math.isnan(f) or f <= 0 for f in f_numbers):
            raise ConfigError(
                f"f_numbers must be a non-empty set of f-numbers > 0 (inf allowed), got {self.f_numbers!r}"
            )
        object.__setattr__(self, "f_numbers", f_numbers)
        n = self.n_slices
        if isinstance(n, (int, np.integer)) and not isinstance(n, bool):
            n_range = (int(n), int(n))
        elif isinstance(n, (tuple, list)) and len(n) == 2 and all(isinstance(v, (int, np.integer)) for v in n):
            n_range = (int(n[0]), int(n[1]))
        else:
            raise ConfigError(f"n_slices must be an int or an inclusive (min, max) pair of ints, got {n!r}")
        if not 1 <= n_range[0] <= n_range[1]:
            raise ConfigError(f"n_slices must satisfy 1 <= min <= max, got {n!r}")
        object.__setattr__(self, "n_slices", n_range[0] if n_range[0] == n_range[1] else n_range)
        far = _pair("far_bound_diopt", self.far_bound_diopt, 0.0)
        near = _pair("near_bound_diopt", self.near_bound_diopt, 0.0)
        if not far[1] < near[0]:
            raise ConfigError(
                f"far_bound_diopt {self.far_bound_diopt!r} must lie below near_bound_diopt {self.near_bound_diopt!r}"
            )
        object.__setattr__(self, "far_bound_diopt", far)
        object.__setattr__(self, "near_bound_diopt", near)
        for name in ("sensor_width_m", "hole_depth_m", "psf_exponent"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive finite number, got {value!r}")
        if self.focal_length_m is not None and not (math.isfinite(self.focal_length_m) and self.focal_length_m > 0):
            raise ConfigError(
                f"focal_length_m must be None or a positive number of metres, got {self.focal_length_m!r}"
            )
        if not 0.0 < self.fallback_hfov_deg < 180.0:
            raise ConfigError(f"fallback_hfov_deg must be in (0, 180) degrees, got {self.fallback_hfov_deg!r}")
        object.__setattr__(self, "zoom_range", _pair("zoom_range", self.zoom_range, 1.0))
        if self.crop_size_px is not None:
            crop = self.crop_size_px
            if not (
                isinstance(crop, (tuple, list))
                and len(crop) == 2
                and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in crop)
            ):
                raise ConfigError(f"crop_size_px must be None or a (height, width) pair of ints >= 1, got {crop!r}")
            object.__setattr__(self, "crop_size_px", (int(crop[0]), int(crop[1])))
        if not 0.0 <= self.flip_probability <= 1.0:
            raise ConfigError(f"flip_probability must be in [0, 1], got {self.flip_probability!r}")
        if not 0.0 <= self.adaptive_focus_probability <= 1.0:
            raise ConfigError(
                f"adaptive_focus_probability must be in [0, 1], got {self.adaptive_focus_probability!r}"
            )
        if not 0.0 <= self.colour_jitter < 1.0:
            raise ConfigError(f"colour_jitter must be in [0, 1), got {self.colour_jitter!r}")
        if self.render_mode not in get_args(RenderMode):
            raise ConfigError(f"render_mode must be one of {get_args(RenderMode)}, got {self.render_mode!r}")
        if self.psf not in get_args(PsfKind):
            raise ConfigError(f"psf must be one of {get_args(PsfKind)}, got {self.psf!r}")
        if self.psf == "gaussian" and self.psf_exponent != 2.0:
            raise ConfigError(f"psf='gaussian' has exponent 2, got psf_exponent={self.psf_exponent!r}")

    @property
    def n_slices_range(self) -> tuple[int, int]:
        """Inclusive (min, max) number of slices."""
        n = self.n_slices
        return (n, n) if isinstance(n, int) else (int(n[0]), int(n[1]))


@dataclass(frozen=True)
class TrainingSample:
    """A rendered focal stack with its ground truth, ready for a loss.

    Attributes:
        stack: (N, 3, H, W) float32 RGB in [0, 1], slice n focused at ``focus_distances_m[n]``.
        focus_distances_m: (N,) float32 focus distances in metres, near to far, uniform in disparity.
        depth_m: (1, H, W) float32 ground-truth depth along the optical axis in metres; 0 where ``mask`` is False.
        mask: (1, H, W) bool, True where the depth is valid (holes and invalid depth False).
        all_in_focus: (3, H, W) float32 RGB in [0, 1], the augmented image the stack was rendered from.
        f_number: f-number of the stack (``math.inf`` = all in focus).
        focal_length_m: lens focal length in metres.
        pixel_pitch_m: size of one output pixel on the sensor in metres.
        intrinsics: pinhole intrinsics of the output image (after zoom, crop and flip), pixels.
        name: the source sample's name.
    """

    stack: torch.Tensor
    focus_distances_m: torch.Tensor
    depth_m: torch.Tensor
    mask: torch.Tensor
    all_in_focus: torch.Tensor
    f_number: float
    focal_length_m: float
    pixel_pitch_m: float
    intrinsics: CameraIntrinsics
    name: str


def _uniform(gen: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=gen, dtype=torch.float64))


def _randint(gen: torch.Generator, lo: int, hi: int) -> int:
    """Uniform integer in the inclusive range [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=gen))


def _jitter(rgb: torch.Tensor, brightness: float, contrast: float, saturation: float) -> torch.Tensor:
    """Scale brightness, then contrast about the mean grey, then saturation about each pixel's grey; clamp to [0, 1]."""
    luma = torch.tensor([0.299, 0.587, 0.114], dtype=rgb.dtype).view(3, 1, 1)
    out = rgb * brightness
    mean = (out * luma).sum(0).mean()
    out = (out - mean) * contrast + mean
    grey = (out * luma).sum(0, keepdim=True)
    return ((out - grey) * saturation + grey).clamp(0.0, 1.0)


def make_training_sample(rgbd: RgbdSample, recipe: SampleRecipe, generator: torch.Generator) -> TrainingSample:
    """Draw one training sample from an RGB-D image with ``recipe`` (see the module docstring).

    Random draws, in this order: f-number, N, far and near focus bounds, zoom, crop offset (y, x), flip, colour
    jitter (brightness, contrast, saturation), adaptive focus (whether, q_lo, q_hi). All draws happen whatever the
    recipe's probabilities, so two recipes that differ only in, e.g., ``flip_probability`` make the same other choices
    under the same seed.

    Args:
        rgbd: all-in-focus colour image and depth in metres (NaN = hole).
        recipe: the sampling recipe.
        generator: CPU torch.Generator; it is advanced.

    Returns:
        The rendered sample (CPU tensors).

    Raises:
        ConfigError: an input the recipe cannot use.
        OpticsError: a focus distance inside the focal length (only with an absurd fixed ``focal_length_m``).
    """
    gen = generator
    f_number = recipe.f_numbers[_randint(gen, 0, len(recipe.f_numbers) - 1)]
    n_slices = _randint(gen, *recipe.n_slices_range)
    far_diopt = _uniform(gen, *recipe.far_bound_diopt)
    near_diopt = _uniform(gen, *recipe.near_bound_diopt)
    zoom = _uniform(gen, *recipe.zoom_range)

    h, w = rgbd.rgb.shape[:2]
    crop_h, crop_w = recipe.crop_size_px or (h, w)
    scale = max(crop_h / h, crop_w / w) * zoom
    new_h, new_w = max(crop_h, round(h * scale)), max(crop_w, round(w * scale))
    top, left = _randint(gen, 0, new_h - crop_h), _randint(gen, 0, new_w - crop_w)
    flip = _uniform(gen, 0.0, 1.0) < recipe.flip_probability
    j = recipe.colour_jitter
    brightness, contrast, saturation = (_uniform(gen, 1.0 - j, 1.0 + j) for _ in range(3))
    adaptive = _uniform(gen, 0.0, 1.0) < recipe.adaptive_focus_probability
    quantiles = (_uniform(gen, 0.02, 0.10), _uniform(gen, 0.90, 0.98))

    rgb = torch.from_numpy(np.ascontiguousarray(rgbd.rgb)).permute(2, 0, 1).to(torch.float32) / 255.0
    depth = torch.from_numpy(np.ascontiguousarray(rgbd.depth_m))[None]
    if (new_h, new_w) != (h, w):
        rgb = F.interpolate(rgb[None], size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)[0]
        depth = F.interpolate(depth[None], size=(new_h, new_w), mode="nearest-exact")[0]
    rgb = rgb[:, top : top + crop_h, left : left + crop_w].clamp(0.0, 1.0)
    depth = depth[:, top : top + crop_h, left : left + crop_w]
    k = rgbd.intrinsics or CameraIntrinsics.from_horizontal_fov(w, h, recipe.fallback_hfov_deg)
    k = k.scaled(new_w, new_h)
    cx, cy = k.cx_px - left, k.cy_px - top
    if flip:
        rgb, depth = rgb.flip(-1), depth.flip(-1)
        cx = crop_w - 1 - cx
    intrinsics = CameraIntrinsics(crop_w, crop_h, k.fx_px, k.fy_px, cx, cy)
    if j > 0:
        rgb = _jitter(rgb, brightness, contrast, saturation)

    pitch_m = recipe.sensor_width_m / max(crop_h, crop_w)
    focal_m = recipe.focal_length_m or pitch_m * 0.5 * (intrinsics.fx_px + intrinsics.fy_px)
    optics = LensOptics(focal_m, f_number, pitch_m)
    focus = disparity_uniform_focus_m(1.0 / near_diopt, 1.0 / far_diopt, n_slices)
    if adaptive and bool(torch.isfinite(depth).any()):
        from dfdnet_core.evaluation import FocusSchedule

        focus = FocusSchedule(kind="adaptive", quantiles=quantiles).distances_for(depth.numpy(), n_slices)
    rendered = render_focal_stack(
        rgb[None],
        depth[None],
        torch.tensor([focus], dtype=torch.float64),
        optics,
        mode=recipe.render_mode,
        psf=recipe.psf,
        psf_exponent=recipe.psf_exponent,
        hole_depth_m=recipe.hole_depth_m,
    )
    mask = rendered.valid_mask[0]
    return TrainingSample(
        stack=rendered.stack[0],
        focus_distances_m=torch.tensor(focus, dtype=torch.float32),
        depth_m=torch.where(mask, depth.to(torch.float32), torch.zeros_like(depth, dtype=torch.float32)),
        mask=mask,
        all_in_focus=rgb,
        f_number=f_number,
        focal_length_m=focal_m,
        pixel_pitch_m=pitch_m,
        intrinsics=intrinsics,
        name=rgbd.name,
    )


class ProceduralRgbd(Sequence[RgbdSample]):
    """``n`` procedural RGB-D scenes (:func:`dfdnet_core.scene.make_scene`), a 60 degree camera, 0.3-20 m.

    Args:
        n: number of scenes.
        size_px: (height, width) in pixels.
        seed: first scene seed; scene i uses seed ``seed + i`` (train) or ``PROCEDURAL_EVAL_SEED + seed + i`` (eval).
        split: ``"train"`` (seeds must stay below :data:`PROCEDURAL_EVAL_SEED`) or ``"eval"``.

    Raises:
        ConfigError: bad count, size, seed or split, or training seeds reaching into the evaluation range.
    """

    def __init__(self, n: int, size_px: tuple[int, int], seed: int = 0, split: str = "train") -> None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigError(f"n must be an integer >= 1, got {n!r}")
        if not (isinstance(size_px, (tuple, list)) and len(size_px) == 2 and all(int(s) >= 8 for s in size_px)):
            raise ConfigError(f"size_px must be a (height, width) pair of ints >= 8, got {size_px!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
        if split not in ("train", "eval"):
            raise ConfigError(f"split must be 'train' or 'eval', got {split!r}")
        if split == "train" and seed + n > PROCEDURAL_EVAL_SEED:
            raise ConfigError(
                f"training scene seeds {seed}..{seed + n - 1} reach the evaluation seeds (>= {PROCEDURAL_EVAL_SEED})"
            )
        self.n = int(n)
        self.height_px, self.width_px = int(size_px[0]), int(size_px[1])
        self.first_seed = int(seed) + (PROCEDURAL_EVAL_SEED if split == "eval" else 0)
        self.split = split
        self.intrinsics = CameraIntrinsics.from_horizontal_fov(self.width_px, self.height_px, PROCEDURAL_HFOV_DEG)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> RgbdSample:  # type: ignore[override]
        if isinstance(index, slice) or not -self.n <= index < self.n:
            raise IndexError(f"procedural scene index {index!r} out of range for {self.n} scenes")
        seed = self.first_seed + index % self.n
        scene = make_scene(
            self.width_px, self.height_px, self.intrinsics, depth_range_m=PROCEDURAL_DEPTH_RANGE_M, seed=seed
        )
        return RgbdSample(scene.rgb, scene.depth_m, self.intrinsics, f"procedural_{seed}")


class TrainingSampleDataset(Dataset[TrainingSample]):
    """A torch Dataset rendering :class:`TrainingSample` on the fly from any sequence of RGB-D samples.

    Sample i of epoch e is drawn with a generator seeded from (``seed``, e, i), so it is reproducible and
    independent of worker count and order; call :meth:`set_epoch` to draw new augmentations each epoch.

    Args:
        source: a sequence of :class:`RgbdSample`, e.g. a registry data set of kind ``"rgbd"`` or
            :class:`ProceduralRgbd`.
        recipe: the sampling recipe.
        seed: base seed of the augmentation draws.

    Raises:
        ConfigError: ``source`` is a focal-stack data set or empty.
    """

    def __init__(self, source: Sequence[RgbdSample], recipe: SampleRecipe, seed: int = 0) -> None:
        kind = getattr(source, "kind", "rgbd")
        if kind != "rgbd":
            raise ConfigError(f"training samples are rendered from RGB-D data, got a {kind!r} data set {source!r}")
        if len(source) == 0:
            raise ConfigError(f"the RGB-D source {source!r} is empty")
        self.source, self.recipe, self.seed, self.epoch = source, recipe, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s augmentation draws from now on."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> TrainingSample:
        mixed = (self.seed * 1_000_003 + self.epoch) * 1_000_000_007 + int(index)
        gen = torch.Generator().manual_seed(mixed % (2**63 - 1))
        return make_training_sample(self.source[index], self.recipe, gen)


def collate_training_samples(samples: Sequence[TrainingSample]) -> dict[str, Any]:
    """Batch samples of one shape for a DataLoader (``collate_fn``).

    Returns:
        Dict of batched tensors ``stack`` (B, N, 3, H, W), ``focus_distances_m`` (B, N), ``depth_m`` and ``mask``
        (B, 1, H, W), ``all_in_focus`` (B, 3, H, W), ``f_number``, ``focal_length_m``, ``pixel_pitch_m`` (B,)
        float64, and lists ``intrinsics`` and ``name``.

    Raises:
        ConfigError: the samples differ in N or in image size (use a fixed N and crop size, or batch size 1).
    """
    if not samples:
        raise ConfigError("cannot collate an empty list of training samples")
    shapes = {tuple(s.stack.shape) for s in samples}
    if len(shapes) != 1:
        raise ConfigError(f"training samples of one batch must share (N, 3, H, W), got {sorted(shapes)!r}")
    return {
        "stack": torch.stack([s.stack for s in samples]),
        "focus_distances_m": torch.stack([s.focus_distances_m for s in samples]),
        "depth_m": torch.stack([s.depth_m for s in samples]),
        "mask": torch.stack([s.mask for s in samples]),
        "all_in_focus": torch.stack([s.all_in_focus for s in samples]),
        "f_number": torch.tensor([s.f_number for s in samples], dtype=torch.float64),
        "focal_length_m": torch.tensor([s.focal_length_m for s in samples], dtype=torch.float64),
        "pixel_pitch_m": torch.tensor([s.pixel_pitch_m for s in samples], dtype=torch.float64),
        "intrinsics": [s.intrinsics for s in samples],
        "name": [s.name for s in samples],
    }
