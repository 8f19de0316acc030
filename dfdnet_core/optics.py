"""Thin-lens optics: circle of confusion, dioptres, focus schedules.

Conventions (used everywhere in dfdnet): distances in metres measured from the lens, optical power in dioptres
(1/m), f-number N = focal length / aperture diameter; ``math.inf`` f-number is a pinhole (no defocus).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.errors import OpticsError

FULL_FRAME_WIDTH_M = 0.036
"""Width of a full-frame (35 mm format) sensor in metres; FOSSA's synthetic-blur sensor width."""


@dataclass(frozen=True)
class LensOptics:
    """The optics of a camera at one resolution.

    Attributes:
        focal_length_m: lens focal length in metres (e.g. 0.016 for a 16 mm lens).
        f_number: aperture f-number (dimensionless); ``math.inf`` for a pinhole.
        pixel_pitch_m: size of one pixel of the image in metres (sensor width / image width).
    """

    focal_length_m: float
    f_number: float
    pixel_pitch_m: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.focal_length_m) and self.focal_length_m > 0):
            raise OpticsError(f"focal_length_m must be a positive number of metres, got {self.focal_length_m!r}")
        if math.isnan(self.f_number) or self.f_number <= 0:
            raise OpticsError(f"f_number must be > 0 (inf = pinhole), got {self.f_number!r}")
        if not (math.isfinite(self.pixel_pitch_m) and self.pixel_pitch_m > 0):
            raise OpticsError(f"pixel_pitch_m must be a positive number of metres, got {self.pixel_pitch_m!r}")


def dioptres_from_focus_m(focus_m: float) -> float:
    """Optical power needed to focus at ``focus_m`` metres, in dioptres (1/m); 0 for infinity."""
    if math.isnan(focus_m) or focus_m <= 0:
        raise OpticsError(f"focus distance must be > 0 m, got {focus_m!r}")
    return 0.0 if math.isinf(focus_m) else 1.0 / focus_m


def focus_m_from_dioptres(power_diopt: float) -> float:
    """Focus distance in metres for an optical power in dioptres; ``math.inf`` for 0 dioptres."""
    if math.isnan(power_diopt) or power_diopt < 0:
        raise OpticsError(f"focus power must be >= 0 dioptres, got {power_diopt!r}")
    return math.inf if power_diopt == 0 else 1.0 / power_diopt


def disparity_uniform_focus_m(near_m: float, far_m: float, count: int) -> list[float]:
    """``count`` focus distances from ``near_m`` to ``far_m`` (metres), uniformly spaced in 1/d.

    A uniform step in disparity is a uniform step in defocus (seed paper, eq. 2). Returned near to far.
    """
    if count < 1:
        raise OpticsError(f"count must be >= 1, got {count!r}")
    if not (0 < near_m < far_m):
        raise OpticsError(f"need 0 < near_m < far_m, got near_m={near_m!r}, far_m={far_m!r}")
    if count == 1:
        return [near_m]
    inv_near, inv_far = 1.0 / near_m, (0.0 if math.isinf(far_m) else 1.0 / far_m)
    step = (inv_far - inv_near) / (count - 1)
    out = []
    for i in range(count):
        inv = inv_near + i * step
        out.append(math.inf if inv <= 0 else 1.0 / inv)
    out[0], out[-1] = near_m, far_m
    return out


# --------------------------------------------------------------------------------------------------------------------
# Circle of confusion (seed paper, eq. 1). All CoC values are RADII (half the blur-disc diameter).
# --------------------------------------------------------------------------------------------------------------------

def _is_tensor(value: object) -> bool:
    return type(value).__module__.startswith("torch")


def _check_lens(focal_length_m: float, f_number: float) -> None:
    if not (math.isfinite(focal_length_m) and focal_length_m > 0):
        raise OpticsError(f"focal_length_m must be a positive number of metres, got {focal_length_m!r}")
    if math.isnan(f_number) or f_number <= 0:
        raise OpticsError(f"f_number must be > 0 (inf = pinhole), got {f_number!r}")


def _check_positive(name: str, value: Any, lower_m: float) -> None:
    """Raise OpticsError unless every element of ``value`` is > ``lower_m`` (inf allowed, NaN not)."""
    if _is_tensor(value):
        bad = bool(((value <= lower_m) | value.isnan()).any())
        shown = value.detach().flatten()[:8].tolist()
    else:
        arr = np.asarray(value, dtype=np.float64)
        bad = bool(np.any((arr <= lower_m) | np.isnan(arr)))
        shown = arr.ravel()[:8].tolist() if arr.ndim else float(arr)
    if bad:
        raise OpticsError(f"{name} must be > {lower_m!r} m everywhere (no NaN), got {shown!r}")


def coc_radius_m(depth_m: Any, focus_m: Any, focal_length_m: float, f_number: float) -> Any:
    """Thin-lens circle-of-confusion RADIUS on the sensor, in metres (seed paper, eq. 1).

    ``r = |d - d_f| * f**2 / (2 * N * d * (d_f - f))``, evaluated as ``f**2 / (2N) * |1/d_f - 1/d| / (1 - f/d_f)``
    so that ``d = inf`` and ``d_f = inf`` are exact limits. The blur-disc *diameter* is twice this.

    Args:
        depth_m: object distance(s) in metres, > 0 (``inf`` allowed); float, numpy array or torch tensor.
        focus_m: focus distance(s) in metres, > focal_length_m (``inf`` allowed); broadcastable to ``depth_m``.
        focal_length_m: lens focal length in metres.
        f_number: aperture f-number; ``math.inf`` (pinhole) gives 0 everywhere.

    Returns:
        The CoC radius in metres, same kind (float / numpy / torch) and broadcast shape as the inputs.

    Raises:
        OpticsError: non-positive focal length or f-number, depth <= 0 or NaN, focus <= focal length or NaN.
    """
    _check_lens(focal_length_m, f_number)
    _check_positive("depth_m", depth_m, 0.0)
    _check_positive("focus_m", focus_m, focal_length_m)
    scale = 0.0 if math.isinf(f_number) else focal_length_m**2 / (2.0 * f_number)
    if _is_tensor(depth_m) or _is_tensor(focus_m):
        import torch

        ref = depth_m if _is_tensor(depth_m) else focus_m
        d = torch.as_tensor(depth_m, dtype=ref.dtype if ref.is_floating_point() else torch.float32, device=ref.device)
        s = torch.as_tensor(focus_m, dtype=d.dtype, device=d.device)
        inv_s = 1.0 / s
        return scale * (inv_s - 1.0 / d).abs() / (1.0 - focal_length_m * inv_s)
    d_np = np.asarray(depth_m, dtype=np.float64)
    s_np = np.asarray(focus_m, dtype=np.float64)
    inv_s_np = 1.0 / s_np
    out = scale * np.abs(inv_s_np - 1.0 / d_np) / (1.0 - focal_length_m * inv_s_np)
    if np.ndim(out) == 0 and not isinstance(depth_m, np.ndarray) and not isinstance(focus_m, np.ndarray):
        return float(out)
    return out


def coc_radius_px(depth_m: Any, focus_m: Any, optics: LensOptics) -> Any:
    """Circle-of-confusion RADIUS in pixels of the image described by ``optics`` (see :func:`coc_radius_m`)."""
    return coc_radius_m(depth_m, focus_m, optics.focal_length_m, optics.f_number) / optics.pixel_pitch_m


def defocus_px_per_diopt(optics: LensOptics) -> float:
    """Circle-of-confusion radius in pixels per dioptre of defocus ``|1/d_f - 1/d|``: ``f**2 / (2 N pitch)``.

    The scale of :func:`coc_radius_px` without its ``1 / (1 - f/d_f)`` factor (within 1 % for focus distances
    beyond 100 focal lengths); 0 for a pinhole. Pixels x metres.
    """
    if math.isinf(optics.f_number):
        return 0.0
    return optics.focal_length_m**2 / (2.0 * optics.f_number * optics.pixel_pitch_m)


def pixel_pitch_m_for_sensor_width(sensor_width_m: float, long_edge_px: int) -> float:
    """Pixel pitch in metres when the image's long edge spans ``sensor_width_m`` metres.

    FOSSA's synthetic-blur convention is a 36 mm (full-frame) sensor across ``max(H, W)`` pixels.

    Raises:
        OpticsError: non-positive sensor width or edge length.
    """
    if not (math.isfinite(sensor_width_m) and sensor_width_m > 0):
        raise OpticsError(f"sensor_width_m must be a positive number of metres, got {sensor_width_m!r}")
    if isinstance(long_edge_px, bool) or not isinstance(long_edge_px, (int, np.integer)) or long_edge_px <= 0:
        raise OpticsError(f"long_edge_px must be a positive integer, got {long_edge_px!r}")
    return sensor_width_m / int(long_edge_px)


def optics_for_intrinsics(
    intrinsics: CameraIntrinsics, f_number: float, sensor_width_m: float = FULL_FRAME_WIDTH_M
) -> LensOptics:
    """FOSSA's synthetic thin lens for an image: sensor across the long edge, f = pitch * (fx + fy) / 2.

    Args:
        intrinsics: pinhole intrinsics of the image (pixels).
        f_number: aperture f-number (``math.inf`` = pinhole).
        sensor_width_m: physical width of the long image edge in metres (36 mm by default).

    Returns:
        LensOptics with the pixel pitch and focal length in metres implied by the convention.
    """
    pitch_m = pixel_pitch_m_for_sensor_width(sensor_width_m, max(intrinsics.width_px, intrinsics.height_px))
    return LensOptics(pitch_m * 0.5 * (intrinsics.fx_px + intrinsics.fy_px), f_number, pitch_m)


def hyperfocal_distance_m(focal_length_m: float, f_number: float, coc_limit_m: float) -> float:
    """Hyperfocal distance in metres for an acceptable CoC RADIUS ``coc_limit_m`` (metres on the sensor).

    Focused there, objects at infinity have exactly ``coc_limit_m`` blur radius (eq. 1 with ``d -> inf``):
    ``H = f**2 / (2 * N * c) + f``. Note the radius: with a *diameter* limit ``c_d`` this is ``f**2/(N c_d) + f``.
    A pinhole (``f_number = inf``) gives ``H = f``.

    Raises:
        OpticsError: non-positive focal length, f-number or CoC limit.
    """
    _check_lens(focal_length_m, f_number)
    if not (math.isfinite(coc_limit_m) and coc_limit_m > 0):
        raise OpticsError(f"coc_limit_m must be a positive number of metres, got {coc_limit_m!r}")
    if math.isinf(f_number):
        return focal_length_m
    return focal_length_m**2 / (2.0 * f_number * coc_limit_m) + focal_length_m
