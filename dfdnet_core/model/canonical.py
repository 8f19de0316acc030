"""Inference pre- and post-processing in numpy (no torch): normalisation and canonical depth.

Canonical depth convention (FOSSA, ``training_with_canonical_depth``): let W be the width in pixels
of the images handed to the network and f = max(fx, fy) their focal length in pixels. The
dimensionless factor ``kappa = W / f`` (sensor width over focal length) maps metres to canonical
units:

- network focus input = focus distance in metres * kappa;
- metric depth = network output / kappa.

Resizing an image scales W and f alike, so kappa, and hence the canonical scene, does not depend on
resolution. Training uses the same factor on ground-truth depth and on the focus list. Every back
end (torch, ONNX, TensorRT) shares these functions so that the contract is implemented once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.errors import ConfigError, StackError

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
"""Per-channel RGB mean of ImageNet, images scaled to [0, 1]."""
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
"""Per-channel RGB standard deviation of ImageNet, images scaled to [0, 1]."""


@dataclass(frozen=True)
class NetworkInputs:
    """One stack ready for ``DfDNet.forward``.

    Attributes:
        images: (1, N, 3, H, W) float32, ImageNet-normalised RGB, C-contiguous.
        focus_canonical: (1, N) float32 canonical focus distances (metres * kappa), same order as
            the images.
        kappa: W / f, dimensionless; metric depth = canonical depth / kappa.
    """

    images: npt.NDArray[np.float32]
    focus_canonical: npt.NDArray[np.float32]
    kappa: float


def resolve_focal_length_px(
    focal_length_px: float | None = None, intrinsics: CameraIntrinsics | None = None
) -> float:
    """The focal length in pixels used for canonical scaling: the number given, or max(fx, fy).

    Exactly one of the two arguments must be given.

    Raises:
        ConfigError: neither or both given, or the focal length is not a positive finite number.
    """
    if (focal_length_px is None) == (intrinsics is None):
        raise ConfigError(
            "give exactly one of focal_length_px and intrinsics, got "
            f"focal_length_px={focal_length_px!r}, intrinsics={intrinsics!r}"
        )
    value = max(intrinsics.fx_px, intrinsics.fy_px) if intrinsics is not None else focal_length_px
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (math.isfinite(value) and value > 0)
    ):
        raise ConfigError(f"focal length must be a positive finite number of pixels, got {value!r}")
    return float(value)


def canonical_scale(width_px: int, focal_length_px: float) -> float:
    """Kappa = width_px / focal_length_px (dimensionless): metres * kappa = canonical units.

    Raises:
        ConfigError: a non-positive width or focal length.
    """
    if width_px <= 0 or not (math.isfinite(focal_length_px) and focal_length_px > 0):
        raise ConfigError(
            f"need width_px > 0 and a positive focal length, got width_px={width_px!r}, "
            f"focal_length_px={focal_length_px!r}"
        )
    return width_px / focal_length_px


def normalise_images(images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """(N, H, W, 3) uint8 RGB -> (N, 3, H, W) float32, scaled to [0, 1] then ImageNet-normalised.

    Raises:
        StackError: not an (N, H, W, 3) uint8 array with N >= 1.
    """
    if (
        not isinstance(images, np.ndarray)
        or images.ndim != 4
        or images.shape[-1] != 3
        or images.shape[0] < 1
    ):
        shape = getattr(images, "shape", None)
        raise StackError(f"images must be an (N, H, W, 3) array with N >= 1, got shape {shape!r}")
    if images.dtype != np.uint8:
        raise StackError(f"images must be uint8 RGB, got dtype {images.dtype}")
    scaled = images.astype(np.float32) / np.float32(255.0)
    normalised = (scaled - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(normalised.transpose(0, 3, 1, 2), dtype=np.float32)


def prepare_stack(
    images: npt.NDArray[np.uint8],
    focus_distances_m: npt.ArrayLike,
    focal_length_px: float | None = None,
    intrinsics: CameraIntrinsics | None = None,
) -> NetworkInputs:
    """Normalise a stack and put its focus distances into canonical units.

    Args:
        images: (N, H, W, 3) uint8 RGB, N >= 1, any order.
        focus_distances_m: (N,) focus distance of each image in metres (finite, > 0), same order as
            ``images``.
        focal_length_px: focal length in pixels at this resolution, or
        intrinsics: the intrinsics of these images (f = max(fx, fy)); give exactly one.

    Returns:
        The network inputs and kappa.

    Raises:
        StackError: malformed images or focus distances, or intrinsics of another image size.
        ConfigError: an invalid focal length, or not exactly one of focal_length_px / intrinsics.
    """
    focal_px = resolve_focal_length_px(focal_length_px, intrinsics)
    chw = normalise_images(images)
    n, _, height, width = chw.shape
    focus = np.asarray(focus_distances_m, dtype=np.float64)
    if focus.shape != (n,):
        raise StackError(
            f"focus_distances_m must have shape ({n},) to match the images, got {focus.shape!r}"
        )
    if not np.all(np.isfinite(focus)) or np.any(focus <= 0):
        raise StackError(f"focus distances must be finite and > 0 m, got {focus.tolist()!r}")
    if intrinsics is not None and (intrinsics.width_px, intrinsics.height_px) != (width, height):
        raise StackError(
            f"images are {width}x{height} px but the intrinsics describe "
            f"{intrinsics.width_px}x{intrinsics.height_px} px"
        )
    kappa = canonical_scale(width, focal_px)
    return NetworkInputs(
        images=chw[None],
        focus_canonical=(focus * kappa).astype(np.float32)[None],
        kappa=kappa,
    )


def depth_m_from_canonical(canonical_depth: npt.ArrayLike, kappa: float) -> npt.NDArray[np.float32]:
    """Canonical network output -> metric depth in metres (float32): depth_m = canonical / kappa."""
    return (np.asarray(canonical_depth, dtype=np.float64) / kappa).astype(np.float32)
