"""Pictures people look at: colourised depth, comparison panels, PNG and PLY files.

Colour convention: near is the *high* end of the colour map (red/yellow for ``turbo``, white for ``gray``), far
the low end; pixels without depth (NaN, inf, <= 0) are black.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache

import cv2
import numpy as np
import numpy.typing as npt

from dfdnet_core.errors import ConfigError, DataError

_LUT_SIZE = 256
_LABEL_HEIGHT_PX = 22


@lru_cache(maxsize=16)
def _colour_lut(cmap: str) -> npt.NDArray[np.uint8]:
    """(256, 3) uint8 RGB look-up table of a matplotlib colour map."""
    import matplotlib  # imported lazily: only pictures need it

    try:
        colour_map = matplotlib.colormaps[cmap]
    except KeyError:
        raise ConfigError(f"unknown colour map {cmap!r}; use a matplotlib colour map name such as 'turbo'") from None
    rgba = colour_map(np.linspace(0.0, 1.0, _LUT_SIZE))
    lut: npt.NDArray[np.uint8] = np.round(np.asarray(rgba)[:, :3] * 255.0).astype(np.uint8)
    lut.setflags(write=False)
    return lut


def _valid_depth(depth: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    return np.isfinite(depth) & (depth > 0)


def colourise_depth(
    depth_m: npt.ArrayLike,
    near_m: float | None = None,
    far_m: float | None = None,
    cmap: str = "turbo",
    inverse: bool = True,
) -> npt.NDArray[np.uint8]:
    """Colour a depth image for display.

    Args:
        depth_m: (H, W) depth in metres; NaN, inf or <= 0 = no depth (drawn black).
        near_m: depth (m) drawn with the high end of the map; default the 2nd percentile of the valid depths.
        far_m: depth (m) drawn with the low end; default the 98th percentile of the valid depths.
        cmap: matplotlib colour map name.
        inverse: scale linearly in inverse depth (1/d, which spends the colours on near things, like the
            eye and like defocus do) instead of in depth.

    Returns:
        (H, W, 3) uint8 RGB.

    Raises:
        ConfigError: depth not 2-D, unknown colour map, or ``near_m``/``far_m`` not positive with near < far.
    """
    depth = np.asarray(depth_m, dtype=np.float64)
    if depth.ndim != 2:
        raise ConfigError(f"depth_m must be an (H, W) array, got shape {depth.shape!r}")
    valid = _valid_depth(depth)
    lut = _colour_lut(cmap)
    if near_m is None or far_m is None:
        values = depth[valid]
        lo, hi = np.percentile(values, [2.0, 98.0]) if values.size else (1.0, 2.0)
        near_m = float(lo) if near_m is None else near_m
        far_m = float(hi) if far_m is None else far_m
        if not far_m > near_m:
            far_m = near_m * 1.01 + 1e-6
    if not (math.isfinite(near_m) and math.isfinite(far_m) and 0 < near_m < far_m):
        raise ConfigError(f"need 0 < near_m < far_m (finite metres), got near_m={near_m!r}, far_m={far_m!r}")
    safe = np.where(valid, depth, far_m)
    if inverse:
        t = (1.0 / safe - 1.0 / far_m) / (1.0 / near_m - 1.0 / far_m)
    else:
        t = (far_m - safe) / (far_m - near_m)
    index = np.clip(np.round(t * (_LUT_SIZE - 1)), 0, _LUT_SIZE - 1).astype(np.intp)
    out = lut[index]
    out[~valid] = 0
    return out


def colourise_scalar(values: npt.ArrayLike, vmin: float, vmax: float, cmap: str = "magma") -> npt.NDArray[np.uint8]:
    """Colour a scalar image linearly from ``vmin`` (low end) to ``vmax`` (high end); NaN black.

    Raises:
        ConfigError: values not 2-D, unknown colour map or ``vmin >= vmax``.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2:
        raise ConfigError(f"values must be an (H, W) array, got shape {arr.shape!r}")
    if not (math.isfinite(vmin) and math.isfinite(vmax) and vmin < vmax):
        raise ConfigError(f"need finite vmin < vmax, got vmin={vmin!r}, vmax={vmax!r}")
    lut = _colour_lut(cmap)
    finite = np.isfinite(arr)
    t = (np.where(finite, arr, vmin) - vmin) / (vmax - vmin)
    out = lut[np.clip(np.round(t * (_LUT_SIZE - 1)), 0, _LUT_SIZE - 1).astype(np.intp)]
    out[~finite] = 0
    return out


def _label(image: npt.NDArray[np.uint8], text: str) -> npt.NDArray[np.uint8]:
    """Image with a black title bar holding ``text`` on top."""
    bar = np.zeros((_LABEL_HEIGHT_PX, image.shape[1], 3), dtype=np.uint8)
    cv2.putText(bar, text, (4, _LABEL_HEIGHT_PX - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([bar, image], axis=0)


def depth_panel(
    all_in_focus: npt.ArrayLike,
    gt_depth_m: npt.ArrayLike | None,
    pred_depth_m: npt.ArrayLike,
    confidence: npt.ArrayLike | None = None,
    max_rel_error: float = 0.25,
) -> npt.NDArray[np.uint8]:
    """Side-by-side comparison: all-in-focus | ground truth | prediction | error | confidence.

    Ground truth and prediction share one colour scale (from the ground truth when given). The error panel
    shows |pred - gt| / gt from 0 (black) to ``max_rel_error`` (white-yellow), NaN where either is missing; it
    and the ground-truth panel are left out without ground truth, the confidence panel without confidence.

    Args:
        all_in_focus: (H, W, 3) uint8 RGB.
        gt_depth_m: (H, W) ground-truth depth in metres, or None.
        pred_depth_m: (H, W) predicted depth in metres (NaN = no depth).
        confidence: (H, W) confidence in [0, 1], or None.
        max_rel_error: relative error drawn at the top of the error colour map.

    Returns:
        (H + 22, k * W, 3) uint8 RGB with a text label above each panel.

    Raises:
        ConfigError: the images do not share one H x W, or the all-in-focus image is not uint8 RGB.
    """
    aif = np.asarray(all_in_focus)
    pred = np.asarray(pred_depth_m, dtype=np.float64)
    if aif.dtype != np.uint8 or aif.ndim != 3 or aif.shape[-1] != 3:
        raise ConfigError(f"all_in_focus must be (H, W, 3) uint8, got dtype {aif.dtype} and shape {aif.shape!r}")
    size = aif.shape[:2]
    arrays = {"pred_depth_m": pred}
    gt = None if gt_depth_m is None else np.asarray(gt_depth_m, dtype=np.float64)
    conf = None if confidence is None else np.asarray(confidence, dtype=np.float64)
    if gt is not None:
        arrays["gt_depth_m"] = gt
    if conf is not None:
        arrays["confidence"] = conf
    for name, arr in arrays.items():
        if arr.shape != size:
            raise ConfigError(f"{name} has shape {arr.shape!r} but all_in_focus is {size!r}")

    reference = gt if gt is not None else pred
    ref_valid = reference[_valid_depth(reference)]
    if ref_valid.size:
        near, far = (float(x) for x in np.percentile(ref_valid, [1.0, 99.0]))
    else:
        near, far = 0.5, 2.0
    if not far > near:
        far = near * 1.01 + 1e-6
    panels = [_label(aif, "all-in-focus")]
    if gt is not None:
        panels.append(_label(colourise_depth(gt, near, far), "ground truth"))
    panels.append(_label(colourise_depth(pred, near, far), "prediction"))
    if gt is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.abs(pred - gt) / gt
        rel[~(_valid_depth(pred) & _valid_depth(gt))] = np.nan
        panels.append(_label(colourise_scalar(rel, 0.0, max_rel_error, "magma"), f"|error|/gt 0..{max_rel_error:g}"))
    if conf is not None:
        panels.append(_label(colourise_scalar(conf, 0.0, 1.0, "gray"), "confidence 0..1"))
    return np.concatenate(panels, axis=1)


def save_png(path: str | os.PathLike[str], rgb: npt.ArrayLike) -> None:
    """Write an (H, W, 3) uint8 RGB or (H, W) uint8/uint16 image as PNG.

    Raises:
        ConfigError: the array is not such an image.
        DataError: the file cannot be written.
    """
    image = np.asarray(rgb)
    if image.dtype not in (np.uint8, np.uint16) or not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 3)):
        raise ConfigError(
            f"save_png needs (H, W, 3) uint8 RGB or (H, W) uint8/uint16, got {image.dtype} {image.shape!r}"
        )
    if image.ndim == 3:
        image = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
    try:
        ok = cv2.imwrite(os.fspath(path), image)
    except cv2.error as exc:
        raise DataError(f"cannot write PNG {os.fspath(path)!r}: {exc}") from exc
    if not ok:
        raise DataError(f"cannot write PNG {os.fspath(path)!r} (missing folder or no permission?)")


def write_ply(path: str | os.PathLike[str], points: npt.ArrayLike, rgb: npt.ArrayLike | None = None) -> int:
    """Write points (and colours) as a binary little-endian PLY, skipping points with a non-finite coordinate.

    The vertex element has float x, y, z (metres) and, with colours, uchar red, green, blue.

    Args:
        path: output file.
        points: (..., 3) points in metres (an organised (H, W, 3) cloud is fine).
        rgb: optional uint8 colours with the same leading shape as ``points`` and a last dimension of 3.

    Returns:
        The number of vertices written.

    Raises:
        ConfigError: shapes or dtypes do not fit.
        DataError: the file cannot be written.
    """
    pts = np.asarray(points, dtype=np.float32)
    if pts.ndim < 1 or pts.shape[-1] != 3:
        raise ConfigError(f"points must have shape (..., 3), got {pts.shape!r}")
    flat = pts.reshape(-1, 3)
    keep = np.all(np.isfinite(flat), axis=1)
    header = [
        "ply",
        "format binary_little_endian 1.0",
        "comment written by dfdnet",
        f"element vertex {int(keep.sum())}",
    ]
    header += ["property float x", "property float y", "property float z"]
    if rgb is None:
        vertex = np.empty(int(keep.sum()), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
    else:
        colours = np.asarray(rgb)
        if colours.dtype != np.uint8 or colours.shape != pts.shape:
            raise ConfigError(
                f"rgb must be uint8 with the points' shape {pts.shape!r}, got {colours.dtype} {colours.shape!r}"
            )
        header += ["property uchar red", "property uchar green", "property uchar blue"]
        vertex = np.empty(
            int(keep.sum()),
            dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")],
        )
        col = colours.reshape(-1, 3)[keep]
        vertex["red"], vertex["green"], vertex["blue"] = col[:, 0], col[:, 1], col[:, 2]
    kept = flat[keep]
    vertex["x"], vertex["y"], vertex["z"] = kept[:, 0], kept[:, 1], kept[:, 2]
    header.append("end_header")
    try:
        with open(path, "wb") as handle:
            handle.write(("\n".join(header) + "\n").encode("ascii"))
            handle.write(vertex.tobytes())
    except OSError as exc:
        raise DataError(f"cannot write PLY {os.fspath(path)!r}: {exc}") from exc
    return int(keep.sum())
