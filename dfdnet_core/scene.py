"""Procedural RGB-D scenes with known metric depth, for the simulated camera, tests and CPU-sized training.

A scene is a textured background plane (possibly slanted) and a handful of textured objects in front of it
(fronto-parallel rectangles, discs, spheres and slanted planar patches) at known depths, composited with a
z-buffer so that nearer objects occlude farther ones. Textures mix multi-octave value noise (cells from 1 to 128 px),
checkerboards and stripes in random colours, so every image scale carries contrast and depth from focus works
everywhere. Depth is the distance along the optical axis (z) in metres, exact for every pixel centre:
planes have inverse depth affine in the pixel coordinates, spheres are ray-traced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.errors import ConfigError, DataError

_OCTAVE_CELLS_PX = (1, 2, 4, 8, 16, 32, 64, 128)
_FINE_WEIGHT = 0.6
"""Amplitude of each finer octave relative to the running (upsampled) sum's lattice values."""
_MAX_SIDE_PX = 16384


@dataclass(frozen=True)
class Scene:
    """One RGB-D image with fully valid metric depth.

    Attributes:
        rgb: (H, W, 3) uint8 RGB, all in focus.
        depth_m: (H, W) float32 depth along the optical axis in metres; finite and > 0 everywhere.
    """

    rgb: npt.NDArray[np.uint8]
    depth_m: npt.NDArray[np.float32]

    def __post_init__(self) -> None:
        if self.rgb.ndim != 3 or self.rgb.shape[2] != 3 or self.rgb.dtype != np.uint8:
            raise DataError(f"Scene.rgb must be (H, W, 3) uint8, got {self.rgb.shape!r} {self.rgb.dtype}")
        if self.depth_m.shape != self.rgb.shape[:2] or self.depth_m.dtype != np.float32:
            raise DataError(
                f"Scene.depth_m must be {self.rgb.shape[:2]!r} float32, got {self.depth_m.shape!r} {self.depth_m.dtype}"
            )


def _multi_octave_noise(gen: torch.Generator, height_px: int, width_px: int) -> torch.Tensor:
    """Value noise summed over octaves with cells of 1 to 128 px, (H, W) in [0, 1].

    Built coarse to fine: the running sum is upsampled 2x (bilinear) and a new random lattice is added, so the
    cost is about 1.3 full-size upsamplings whatever the number of octaves.
    """
    coarsest = _OCTAVE_CELLS_PX[-1]
    gh, gw = height_px // coarsest + 2, width_px // coarsest + 2
    noise = torch.rand((1, 1, gh, gw), generator=gen)
    for _ in range(len(_OCTAVE_CELLS_PX)):
        gh, gw = 2 * gh, 2 * gw
        noise = F.interpolate(noise, size=(gh, gw), mode="bilinear", align_corners=False)
        noise += _FINE_WEIGHT * torch.rand((1, 1, gh, gw), generator=gen)
    out = noise[0, 0, :height_px, :width_px]
    out = out - out.min()
    return out / out.max().clamp_min(1e-6)


def _texture(gen: torch.Generator, height_px: int, width_px: int) -> torch.Tensor:
    """A random colour texture (H, W, 3) float32 in [0, 1] with contrast at every scale."""
    noise = _multi_octave_noise(gen, height_px, width_px)
    colours = torch.rand((3, 3), generator=gen)
    # Make the two main colours differ clearly in brightness so the texture has luminance contrast.
    colours[0] *= 0.45
    colours[1] = 0.55 + 0.45 * colours[1]
    tex = colours[0] + noise[..., None] * (colours[1] - colours[0])
    kind = int(torch.randint(0, 3, (1,), generator=gen))
    if kind > 0:
        yy = torch.arange(height_px, dtype=torch.float32)[:, None]
        xx = torch.arange(width_px, dtype=torch.float32)[None, :]
        angle = float(torch.rand((), generator=gen)) * math.pi
        period = 4.0 + 40.0 * float(torch.rand((), generator=gen))
        u = xx * math.cos(angle) + yy * math.sin(angle)
        if kind == 1:  # stripes
            pattern = (torch.remainder(u, period) < period / 2).float()
        else:  # checker
            v = -xx * math.sin(angle) + yy * math.cos(angle)
            pattern = ((torch.floor(u / period) + torch.floor(v / period)) % 2).float()
        weight = 0.35 + 0.4 * float(torch.rand((), generator=gen))
        tex = torch.lerp(tex, colours[2].expand_as(tex), weight * pattern[..., None])
    return tex.clamp(0.0, 1.0)


def _bounding_box(mask: torch.Tensor) -> tuple[int, int, int, int]:
    """(row start, row stop, column start, column stop) of the True pixels of a non-empty (H, W) mask."""
    rows = torch.nonzero(mask.any(dim=1)).flatten()
    cols = torch.nonzero(mask.any(dim=0)).flatten()
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _affine_inv_depth(
    gen: torch.Generator, u: torch.Tensor, v: torch.Tensor, lo: float, hi: float, slant: float
) -> torch.Tensor:
    """Inverse depth of a random plane, affine in pixel coordinates, covering [lo, hi] (1/m) over ``u``, ``v``."""
    du = (2 * float(torch.rand((), generator=gen)) - 1) * slant
    dv = (2 * float(torch.rand((), generator=gen)) - 1) * slant
    plane = du * u + dv * v
    pmin, pmax = float(plane.min()), float(plane.max())
    if pmax - pmin < 1e-9:
        return torch.full_like(u, 0.5 * (lo + hi))
    return lo + (plane - pmin) * ((hi - lo) / (pmax - pmin))


def make_scene(
    width_px: int,
    height_px: int,
    intrinsics: CameraIntrinsics,
    *,
    depth_range_m: tuple[float, float] = (0.3, 20.0),
    seed: int = 0,
) -> Scene:
    """A random textured RGB-D scene with every depth inside ``depth_range_m``.

    The background is a plane filling the image in the far quarter of the disparity range (slanted in 2 of 3
    scenes); 4 to 8 objects (rectangles, discs, spheres, slanted patches) sit in front of it at disparities drawn
    uniformly over the rest of the range, overlapping each other. The same arguments give the same scene.

    Args:
        width_px: image width in pixels.
        height_px: image height in pixels.
        intrinsics: pinhole intrinsics; rescaled to ``width_px`` x ``height_px`` if they describe another size.
        depth_range_m: (near, far) depth bounds in metres, 0 < near < far < inf.
        seed: random seed; the scene is a pure function of the arguments.

    Returns:
        The scene: (H, W, 3) uint8 RGB and (H, W) float32 depth in metres, no holes.

    Raises:
        ConfigError: non-positive or oversized image, or an invalid depth range.
    """
    for name, side in (("width_px", width_px), ("height_px", height_px)):
        if isinstance(side, bool) or not isinstance(side, (int, np.integer)) or not 0 < side <= _MAX_SIDE_PX:
            raise ConfigError(f"{name} must be an integer in [1, {_MAX_SIDE_PX}], got {side!r}")
    near_m, far_m = (float(x) for x in depth_range_m)
    if not (0.0 < near_m < far_m < math.inf):
        raise ConfigError(f"depth_range_m must be (near, far) with 0 < near < far < inf metres, got {depth_range_m!r}")
    if (intrinsics.width_px, intrinsics.height_px) != (width_px, height_px):
        intrinsics = intrinsics.scaled(int(width_px), int(height_px))
    h, w = int(height_px), int(width_px)
    gen = torch.Generator().manual_seed(int(seed))

    inv_near, inv_far = 1.0 / near_m, 1.0 / far_m
    span = inv_near - inv_far
    vv, uu = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")

    # Background plane: far quarter of the disparity range; inverse depth affine in (u, v) = a plane in 3-D.
    slanted = float(torch.rand((), generator=gen)) < 2.0 / 3.0
    bg_hi = inv_far + 0.25 * span * float(torch.rand((), generator=gen)) if slanted else inv_far
    inv_depth = _affine_inv_depth(gen, uu, vv, inv_far, bg_hi, 1.0)
    rgb = _texture(gen, h, w)

    ray_x = (uu - intrinsics.cx_px) / intrinsics.fx_px
    ray_y = (vv - intrinsics.cy_px) / intrinsics.fy_px
    ray_norm2 = ray_x * ray_x + ray_y * ray_y + 1.0
    diag = math.hypot(w, h)
    count = 4 + int(torch.randint(0, 5, (1,), generator=gen))
    for _ in range(count):
        kind = int(torch.randint(0, 4, (1,), generator=gen))
        obj_inv = inv_far + span * (0.3 + 0.7 * float(torch.rand((), generator=gen)))
        cx = float(torch.rand((), generator=gen)) * w
        cy = float(torch.rand((), generator=gen)) * h
        size = diag * (0.08 + 0.17 * float(torch.rand((), generator=gen)))
        angle = float(torch.rand((), generator=gen)) * math.pi
        du, dv = uu - cx, vv - cy
        a = du * math.cos(angle) + dv * math.sin(angle)
        b = -du * math.sin(angle) + dv * math.cos(angle)
        aspect = 0.5 + float(torch.rand((), generator=gen))
        obj_depth_inv: torch.Tensor
        if kind == 0:  # fronto-parallel rectangle
            mask = (a.abs() < size * aspect) & (b.abs() < size / aspect)
            obj_depth_inv = torch.full_like(uu, obj_inv)
        elif kind == 1:  # fronto-parallel disc (ellipse)
            mask = (a / aspect) ** 2 + (b * aspect) ** 2 < size**2
            obj_depth_inv = torch.full_like(uu, obj_inv)
        elif kind == 2:  # sphere, ray-traced; centre depth 1/obj_inv, radius from its image size
            zc = 1.0 / obj_inv
            centre = torch.tensor(
                [(cx - intrinsics.cx_px) / intrinsics.fx_px * zc, (cy - intrinsics.cy_px) / intrinsics.fy_px * zc, zc]
            )
            radius_m = min(size * zc / intrinsics.fx_px, 0.9 * (zc - near_m) + 1e-9)
            vc = ray_x * centre[0] + ray_y * centre[1] + centre[2]
            disc = vc * vc - ray_norm2 * (float(centre.dot(centre)) - radius_m**2)
            mask = disc > 0
            t = (vc - disc.clamp_min(0).sqrt()) / ray_norm2  # nearer intersection; z = t since ray_z = 1
            obj_depth_inv = 1.0 / t.clamp_min(near_m)
        else:  # slanted planar patch (quad) with its own affine inverse depth
            mask = (a.abs() < size * aspect) & (b.abs() < size / aspect)
            lo = max(inv_far, obj_inv - 0.15 * span)
            hi = min(inv_near, obj_inv + 0.15 * span)
            sel_u, sel_v = uu[mask], vv[mask]
            if sel_u.numel() == 0:
                continue
            obj_depth_inv = torch.full_like(uu, obj_inv)
            obj_depth_inv[mask] = _affine_inv_depth(gen, sel_u, sel_v, lo, hi, 1.0)
        nearer = mask & (obj_depth_inv > inv_depth)
        if not bool(nearer.any()):
            continue
        y0, y1, x0, x1 = _bounding_box(nearer)
        tex = _texture(gen, y1 - y0, x1 - x0)
        inv_depth = torch.where(nearer, obj_depth_inv, inv_depth)
        box = nearer[y0:y1, x0:x1, None]
        rgb[y0:y1, x0:x1] = torch.where(box, tex, rgb[y0:y1, x0:x1])

    depth = (1.0 / inv_depth).clamp(near_m, far_m)
    rgb_u8 = (rgb * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).numpy()
    return Scene(rgb=np.ascontiguousarray(rgb_u8), depth_m=depth.numpy().astype(np.float32))
