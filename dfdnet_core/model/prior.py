"""The depth prior of a ``depth_prior="classical"`` DfDNet: classical depth from focus, filled and scaled.

Such a model does not regress depth from nothing: it refines a dense prior. Its head predicts two log-corrections
and outputs ``prior * exp((1 - c) * r_fill + c * r_fix)``, c being the prior's confidence at full resolution: r_fill
replaces the prior where it is unsure, r_fix adjusts it where it is confident (both softly bounded to +-3). The prior
is the classical back end's estimate
(:class:`dfdnet_core.backend_classical.ClassicalDfF`, default settings: one implementation of the focus measure
and the peak fit), with every pixel it leaves without depth filled from the nearest pixel that has one. Its
confidence map is a second input, so the network can learn where to trust the prior and where to replace it from
context (texture-less regions, depth edges, outside the swept range).

With each image the network also gets its relative focus measure (:func:`relative_sharpness`), so the focus curve
at every pixel is an input rather than something a small network must learn to compute from raw pixels.

A stack the classical estimator cannot handle (fewer than 3 slices, tiny images, no confident pixel) gets a flat
prior at the geometric mean of the focus distances with confidence 0: the network then works on its own.

Everything here runs in numpy on uint8 images, before the network; an exported network takes the prior as an
input.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from dfdnet_core.backend_classical import ClassicalDfF
from dfdnet_core.errors import StackError

PRIOR_CHANNELS = 2
"""Channels of the prior handed to the network: canonical depth (filled, > 0) and confidence in [0, 1]."""
SHARPNESS_CHANNELS = 1
"""Per-image channels handed to the network with each image: its relative focus measure."""
SHARPNESS_FLOOR = 1e-5
"""Added to the focus measure (grey levels in [0, 1], squared Laplacian) before the log: about the noise level."""
SHARPNESS_RANGE = 4.0
"""Relative log focus measures below -SHARPNESS_RANGE are clipped (e^-4: a slice ~55x less sharp than the best)."""

_CLASSICAL = ClassicalDfF()


def classical_prior(
    images: npt.NDArray[np.uint8],
    focus_distances_m: npt.ArrayLike,
    focus_volume: npt.NDArray[np.float32] | None = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Dense depth prior of one stack.

    Args:
        images: (N, H, W, 3) uint8 RGB, any order.
        focus_distances_m: (N,) focus distance of each image in metres (finite, > 0).
        focus_volume: the classical focus measure of ``images`` if already computed (N, H, W).

    Returns:
        (depth_m, confidence): (H, W) float32 depth in metres, finite and > 0 everywhere (holes filled from the
        nearest confident pixel), and the classical confidence in [0, 1] (0 at filled pixels).
    """
    focus = np.asarray(focus_distances_m, dtype=np.float64)
    flat = sweep_centre_m(focus)
    try:
        result = _CLASSICAL.estimate_images(images, focus, focus_volume)
    except StackError:  # < 3 slices, too small, repeated focus distances: no prior
        shape = (int(images.shape[1]), int(images.shape[2]))
        return np.full(shape, flat, dtype=np.float32), np.zeros(shape, dtype=np.float32)
    # Confidence is 0 wherever classical left NaN, so a map without any depth is flat with confidence 0.
    return fill_from_nearest(result.depth_m, flat), np.ascontiguousarray(result.confidence, dtype=np.float32)


def sweep_centre_m(focus_distances_m: npt.ArrayLike) -> float:
    """Geometric mean of the focus distances in metres (the middle of the sweep in disparity, roughly)."""
    return float(np.exp(np.mean(np.log(np.asarray(focus_distances_m, dtype=np.float64)))))


def fill_from_nearest(depth_m: npt.NDArray[np.float32], fallback_m: float) -> npt.NDArray[np.float32]:
    """(H, W) float32 depth with every NaN replaced by the depth of the nearest pixel that has one (Euclidean).

    A map without any depth becomes ``fallback_m`` everywhere.
    """
    holes = ~np.isfinite(depth_m)
    if holes.all():
        return np.full(depth_m.shape, fallback_m, dtype=np.float32)
    if holes.any():
        nearest = ndimage.distance_transform_edt(holes, return_distances=False, return_indices=True)
        depth_m = depth_m[tuple(nearest)]
    return np.ascontiguousarray(depth_m, dtype=np.float32)


def relative_sharpness(
    images: npt.NDArray[np.uint8], focus_volume: npt.NDArray[np.float32] | None = None
) -> npt.NDArray[np.float32]:
    """(N, H, W) float32 focus measure of each slice relative to the sharpest slice at that pixel, in [0, 1].

    ``1 + clip(log(F_n + floor) - max_k log(F_k + floor), -R, 0) / R`` with F the classical back end's
    window-averaged focus measure (the same implementation), floor :data:`SHARPNESS_FLOOR` and R
    :data:`SHARPNESS_RANGE`: 1 on the sharpest slice, less on the others; all near 1 where there is no texture.
    This is the focus curve the network sees at every pixel.
    """
    volume = focus_volume_of(images) if focus_volume is None else focus_volume
    log_focus = np.log(volume + np.float32(SHARPNESS_FLOOR))
    relative = np.clip(log_focus - log_focus.max(axis=0, keepdims=True), -SHARPNESS_RANGE, 0.0)
    return (1.0 + relative / np.float32(SHARPNESS_RANGE)).astype(np.float32)


def prior_input(
    images: npt.NDArray[np.uint8],
    focus_distances_m: npt.ArrayLike,
    kappa: float,
    focus_volume: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.float32]:
    """The network's prior input for one stack: (2, H, W) float32 [canonical depth, confidence].

    Canonical depth = metres * ``kappa`` (see :mod:`dfdnet_core.model.canonical`).
    """
    depth_m, confidence = classical_prior(images, focus_distances_m, focus_volume)
    return np.stack([depth_m * np.float32(kappa), confidence]).astype(np.float32)


def network_prior(
    images: npt.NDArray[np.uint8],
    focus_distances_m: npt.ArrayLike,
    kappa: float,
    focus_volume: npt.NDArray[np.float32] | None = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Both extra inputs of a prior model for one stack, from one focus-measure pass.

    ``focus_volume`` is the classical focus measure of ``images`` (N, H, W) if the caller already has it.

    Returns:
        ((2, H, W) :func:`prior_input`, (N, H, W) :func:`relative_sharpness`), float32.
    """
    volume = focus_volume_of(images) if focus_volume is None else focus_volume
    return prior_input(images, focus_distances_m, kappa, volume), relative_sharpness(images, volume)


def focus_volume_of(images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """(N, H, W) float32 classical focus measure of each image (the prior's settings)."""
    return _CLASSICAL.focus_volume_images(images)
