"""Classical depth from focus: the baseline back end that needs no model.

For every pixel the sharpness of each slice is measured (a focus measure averaged over a small window), the
sharpest slice is found, and the peak is located between slices by fitting the focus curve *in disparity* (1/d):
slices need not be evenly spaced, and a uniform step in 1/d is a uniform step in defocus.

Peak model. A blur of standard deviation b scales the band-pass energy of a natural texture (power falling like
1/k²) roughly like ``1 / (b0**2 + b**2)**2`` (b0: the in-focus blur plus the measure's own smoothing), and b grows
linearly with ``|1/d - 1/d_f|``. So ``F**-0.5`` is a parabola in disparity and three samples fix its vertex
(``peak_model="lorentzian"``, the default). ``"gaussian"`` (parabola through ln F, exact for a single spatial
frequency) and ``"parabolic"`` (parabola through F) are the textbook alternatives.

Decisions:

* The focus measure is taken on the grey image smoothed by a Gaussian of ``presmooth_px`` (a band-pass measure:
  sensor noise lives at the highest frequencies). The stack's noise level is estimated (Immerkaer's method, least
  noisy slice) and its expected contribution to the measure subtracted before fitting.
* A peak on an interior slice is interpolated from that slice and its two neighbours (always bracketed).
* A peak on the first or last slice is fitted through the three outermost slices. Its depth is kept only if the
  vertex lies inside the swept range (between the end slice and the midpoint to its neighbour), or at most
  ``max_extrapolation`` outer slice steps beyond it; otherwise (or if those samples do not curve downwards) depth
  is NaN: the surface lies outside the swept range and extrapolating the focus curve there is unreliable (a
  surface at 6 m seen by a 0.4-2 m sweep would come out near 2.3 m). Hence the default of 0.
* Confidence in [0, 1] = ``texture / (1 + (resolution / resolution_scale)**2)``. ``resolution`` is the half width at
  half maximum of the fitted focus peak (1/m) divided by the pixel's disparity: roughly the relative depth
  uncertainty, large for flat (low-frequency) textures and far surfaces. ``texture`` ramps from 0 to 1 as the
  focus curve's contrast rises above what noise alone produces. Depth is NaN below ``confidence_threshold``.
* The disparity map is median filtered (``median_px``); a pixel keeps its depth only if more than half of that
  window found a peak, which removes isolated fits in regions without depth.
* All-in-focus: every pixel copied from its sharpest slice.

Needs at least 3 slices with distinct focus distances. float32 throughout, OpenCV filters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np
import numpy.typing as npt

from dfdnet_core.errors import ConfigError, StackError
from dfdnet_core.estimator import DepthResult, register_backend
from dfdnet_core.stack import FocalStack

FOCUS_MEASURES = ("laplacian_energy", "tenengrad")
PEAK_MODELS = ("lorentzian", "gaussian", "parabolic")

_NOISE_MARGIN = 3.0  # noise floors added to F_max in the contrast that gates texture
_FLOOR_CLIP = 0.05  # after subtracting the noise floor, F is kept >= this fraction of it
_TINY = np.float32(1e-12)
_MAX_SLICES = 255  # slice indices are kept as uint8

Array32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ClassicalConfig:
    """Settings of the classical depth-from-focus back end.

    Attributes:
        focus_measure: ``"laplacian_energy"`` (squared 4-neighbour Laplacian of the grey image) or
            ``"tenengrad"`` (squared 3x3 Sobel gradient magnitude).
        window_px: side in pixels of the box window that averages the focus measure (odd, 1 to 63).
        presmooth_px: standard deviation in pixels of the Gaussian applied to the grey image before the measure
            (0 = none).
        peak_model: how the focus curve is interpolated in disparity: ``"lorentzian"``, ``"gaussian"`` or
            ``"parabolic"`` (see the module docstring).
        confidence_threshold: depth is NaN where the confidence is below this (in [0, 1]).
        resolution_scale: relative depth resolution (peak half width / disparity) at which confidence is 0.5 on
            a well textured pixel (0.01 to 100).
        max_extrapolation: how far beyond the first/last slice a peak may be placed, in units of the outer slice
            step in disparity (>= 0; 0 = only inside the swept range).
        noise_floor_factor: multiple of the estimated noise contribution subtracted from the focus measure before
            fitting (0 = none, 1 = the estimate).
        median_px: side of the median filter applied to the disparity map (1 = off, 3 or 5).
    """

    focus_measure: str = field(
        default="laplacian_energy", metadata={"description": "focus measure", "choices": FOCUS_MEASURES}
    )
    window_px: int = field(
        default=11, metadata={"description": "focus-measure window side (pixels, odd)", "range": (1, 63, 2)}
    )
    presmooth_px: float = field(
        default=1.5, metadata={"description": "Gaussian pre-smoothing sigma (pixels)", "range": (0.0, 10.0, 0.0)}
    )
    peak_model: str = field(
        default="lorentzian", metadata={"description": "focus-curve peak model", "choices": PEAK_MODELS}
    )
    confidence_threshold: float = field(
        default=0.5, metadata={"description": "depth is NaN below this confidence", "range": (0.0, 1.0, 0.0)}
    )
    resolution_scale: float = field(
        default=1.25,
        metadata={
            "description": "relative depth resolution at which confidence halves (peak half width / disparity)",
            "range": (0.01, 100.0, 0.0),
        },
    )
    max_extrapolation: float = field(
        default=0.0,
        metadata={
            "description": "how far beyond the end slices a peak may lie (outer slice steps in disparity)",
            "range": (0.0, 10.0, 0.0),
        },
    )
    noise_floor_factor: float = field(
        default=1.0,
        metadata={"description": "multiple of the estimated noise energy subtracted", "range": (0.0, 10.0, 0.0)},
    )
    median_px: int = field(
        default=5, metadata={"description": "median filter side on disparity (pixels; 1 = off)", "range": (1, 5, 2)}
    )

    def __post_init__(self) -> None:
        if self.focus_measure not in FOCUS_MEASURES:
            raise ConfigError(f"focus_measure must be one of {FOCUS_MEASURES!r}, got {self.focus_measure!r}")
        if self.peak_model not in PEAK_MODELS:
            raise ConfigError(f"peak_model must be one of {PEAK_MODELS!r}, got {self.peak_model!r}")
        if isinstance(self.window_px, bool) or not isinstance(self.window_px, int) or not 1 <= self.window_px <= 63:
            raise ConfigError(f"window_px must be an odd integer in [1, 63], got {self.window_px!r}")
        if self.window_px % 2 == 0:
            raise ConfigError(f"window_px must be odd, got {self.window_px!r}")
        if isinstance(self.median_px, bool) or self.median_px not in (1, 3, 5):
            raise ConfigError(f"median_px must be 1 (off), 3 or 5, got {self.median_px!r}")
        ranges = {
            "presmooth_px": (0.0, 10.0),
            "confidence_threshold": (0.0, 1.0),
            "max_extrapolation": (0.0, 10.0),
            "noise_floor_factor": (0.0, 10.0),
        }
        for name, (lo, hi) in ranges.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
                raise ConfigError(f"{name} must be a number in [{lo}, {hi}], got {value!r}")
        scale = self.resolution_scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0.01 <= scale <= 100.0:
            raise ConfigError(f"resolution_scale must be a number in [0.01, 100.0], got {scale!r}")


def _f32(image: object) -> Array32:
    """An OpenCV result as a float32 ndarray (no copy when it already is one)."""
    return np.asarray(image, dtype=np.float32)


def _mask(condition: npt.NDArray[np.bool_]) -> npt.NDArray[np.uint8]:
    """A boolean array as an OpenCV mask (0/1 uint8, no copy)."""
    return condition.view(np.uint8)


def _grey(image_rgb: npt.NDArray[np.uint8]) -> Array32:
    """Luma of an RGB uint8 image as float32 in [0, 1]."""
    grey = _f32(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY))
    grey *= np.float32(1.0 / 255.0)
    return grey


def _noise_sigma(grey: Array32) -> float:
    """Standard deviation of white noise in a grey image (Immerkaer 1996, 3x3 Laplacian-difference mask)."""
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
    response = cv2.filter2D(grey, cv2.CV_32F, kernel, borderType=cv2.BORDER_REFLECT_101)[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2.0) * cv2.mean(np.abs(response))[0] / 6.0)


def _focus_measure(grey: Array32, measure: str, window_px: int, presmooth_px: float) -> Array32:
    """Window-averaged focus measure of one grey slice (float32, grey levels² per px^4 or per px²)."""
    border = cv2.BORDER_REFLECT_101
    if presmooth_px > 0:
        grey = _f32(cv2.GaussianBlur(grey, (0, 0), presmooth_px, borderType=border))
    if measure == "laplacian_energy":
        lap = _f32(cv2.Laplacian(grey, cv2.CV_32F, ksize=1, borderType=border))
        energy = lap * lap
    else:
        gx = _f32(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3, borderType=border))
        gy = _f32(cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3, borderType=border))
        energy = gx * gx + gy * gy
    if window_px == 1:
        return energy
    return _f32(cv2.boxFilter(energy, -1, (window_px, window_px), normalize=True, borderType=border))


@lru_cache(maxsize=16)
def _noise_gain(measure: str, presmooth_px: float) -> float:
    """Expected focus measure of unit-variance white noise: sum of squared weights of the measure's filter(s)."""
    size = 2 * math.ceil(4 * presmooth_px) + 7
    impulse = np.zeros((size, size), dtype=np.float32)
    impulse[size // 2, size // 2] = 1.0
    # A window average leaves the mean of a stationary energy unchanged, so window_px = 1 gives the expectation.
    return float(_focus_measure(impulse, measure, 1, presmooth_px).sum())


def _transform(focus: Array32, model: str) -> Array32:
    """The focus curve mapped so that the peak model is a downward parabola in disparity."""
    if model == "lorentzian":
        return _f32(np.float32(-1.0) / np.sqrt(focus))
    if model == "gaussian":
        return np.log(focus)
    return focus


class ClassicalDfF:
    """Depth from focus by per-pixel focus-curve peak fitting in disparity (see the module docstring)."""

    name = "classical"

    def __init__(self, config: ClassicalConfig | None = None, **options: object) -> None:
        """Build from a :class:`ClassicalConfig` or from its fields given as keyword options.

        Raises:
            ConfigError: both a config and options are given, an option is unknown, or a value is invalid.
        """
        if config is not None and options:
            raise ConfigError(f"give either a ClassicalConfig or options, not both; got options {sorted(options)!r}")
        if config is None:
            known = set(ClassicalConfig.__dataclass_fields__)
            unknown = sorted(set(options) - known)
            if unknown:
                raise ConfigError(f"unknown classical backend option(s) {unknown!r}; known: {sorted(known)!r}")
            config = ClassicalConfig(**options)  # type: ignore[arg-type]
        self.config = config

    def focus_volume(self, stack: FocalStack) -> Array32:
        """(N, H, W) float32 focus measure of every slice, in the stack's order, noise included."""
        return self.focus_volume_images(stack.images)

    def focus_volume_images(self, images: npt.NDArray[np.uint8]) -> Array32:
        """:meth:`focus_volume` of (N, H, W, 3) uint8 RGB images."""
        cfg = self.config
        return np.stack(
            [_focus_measure(_grey(img), cfg.focus_measure, cfg.window_px, cfg.presmooth_px) for img in images]
        )

    def estimate(self, stack: FocalStack) -> DepthResult:
        """Depth (m), confidence in [0, 1] and all-in-focus image of one focal stack.

        Raises:
            StackError: fewer than 3 (or more than 255) slices, or two slices share a focus distance.
        """
        return self.estimate_images(stack.images, stack.focus_distances_m)

    def estimate_images(
        self,
        images: npt.NDArray[np.uint8],
        focus_distances_m: npt.NDArray[np.floating],
        focus_volume: Array32 | None = None,
    ) -> DepthResult:
        """:meth:`estimate` on bare arrays: (N, H, W, 3) uint8 RGB and (N,) focus distances in metres.

        The lens and camera are not needed: the peak is fitted in disparity of the focus distances.
        ``focus_volume`` is this estimator's :meth:`focus_volume_images` of ``images`` when the caller already has
        it (it is then not computed again).

        Raises:
            StackError: fewer than 3 (or more than 255) slices, or two slices share a focus distance.
        """
        cfg = self.config
        n = int(images.shape[0])
        height_px, width_px = int(images.shape[1]), int(images.shape[2])
        if not 3 <= n <= _MAX_SLICES:
            raise StackError(f"classical depth from focus needs 3 to {_MAX_SLICES} slices, got {n}")
        min_side_px = cfg.window_px + 2 * cfg.median_px
        if min(height_px, width_px) < min_side_px:
            raise StackError(
                f"classical depth from focus needs images of at least {min_side_px}x{min_side_px} px (focus window "
                f"and median filter), got {width_px}x{height_px} px"
            )
        focus_m = np.asarray(focus_distances_m, dtype=np.float64)
        disparity = 1.0 / focus_m
        order = np.argsort(disparity)  # far (small 1/d) to near
        s = disparity[order].astype(np.float32)
        if np.any(np.diff(s) <= 0):
            raise StackError(f"focus distances must be distinct, got {focus_m.tolist()!r} m")

        greys = [_grey(images[i]) for i in order]
        if focus_volume is None:
            focus = [_focus_measure(g, cfg.focus_measure, cfg.window_px, cfg.presmooth_px) for g in greys]
        else:
            focus = [focus_volume[i] for i in order]
        sigma = min(_noise_sigma(g) for g in greys)
        floor = np.float32(_noise_gain(cfg.focus_measure, cfg.presmooth_px) * sigma * sigma)

        # Running max / min over the slices (an argmax over axis 0 of an (N, H, W) array is ~10x slower).
        # Masked selects go through cv2.copyTo: numpy's masked where/copyto are ~20x slower.
        peak = np.zeros(focus[0].shape, dtype=np.uint8)
        f_max = focus[0].copy()
        f_min = focus[0].copy()
        for k in range(1, n):
            better = _mask(focus[k] > f_max)
            np.maximum(peak, better * np.uint8(k), out=peak)  # k exceeds every earlier index
            np.maximum(f_max, focus[k], out=f_max)
            np.minimum(f_min, focus[k], out=f_min)
        # Contrast of the focus curve against the noise: <~ 0.25 where only noise varies, -> 1 on texture.
        contrast = (f_max - f_min) / (f_max + np.float32(_NOISE_MARGIN) * floor + _TINY)
        texture = np.clip((contrast - np.float32(0.25)) * np.float32(4.0), 0.0, 1.0)

        noise_floor = float(cfg.noise_floor_factor * floor)
        disp_map, hwhm, ok = fit_focus_peak(focus, peak, s, cfg.peak_model, cfg.max_extrapolation, noise_floor)

        if cfg.median_px > 1:
            # Median over the window; a pixel keeps its depth only if most of its window has a peak, so that
            # isolated fits inside regions without depth (e.g. beyond the swept range) are dropped too.
            disp_map = _f32(cv2.medianBlur(disp_map, cfg.median_px))
            support = _f32(cv2.boxFilter(ok.astype(np.float32), -1, (cfg.median_px, cfg.median_px)))
            ok &= support > np.float32(0.5)
        with np.errstate(divide="ignore", invalid="ignore"):
            ok &= disp_map > 0
            resolution = hwhm / disp_map
            confidence = texture / (np.float32(1.0) + np.square(resolution * np.float32(1.0 / cfg.resolution_scale)))
            depth = np.float32(1.0) / disp_map
        keep = ok & (confidence >= np.float32(cfg.confidence_threshold))
        drop_mask = _mask(~keep)
        depth = _f32(cv2.copyTo(np.full_like(depth, np.nan), drop_mask, depth))
        confidence = _f32(cv2.copyTo(np.zeros_like(confidence), drop_mask, np.clip(confidence, 0.0, 1.0)))

        aif = images[order[0]].copy()
        for k in range(1, n):
            cv2.copyTo(images[order[k]], _mask(peak == k), aif)  # writes into aif
        return DepthResult(depth_m=depth, confidence=confidence, all_in_focus=aif)


def fit_focus_peak(
    focus: Sequence[Array32],
    peak: npt.NDArray[np.uint8],
    disparity: npt.NDArray[np.floating],
    model: str = "lorentzian",
    max_extrapolation: float = 0.0,
    noise_floor: float = 0.0,
) -> tuple[Array32, Array32, npt.NDArray[np.bool_]]:
    """Locate each pixel's focus peak between slices, in disparity.

    Args:
        focus: N >= 3 (H, W) float32 focus measures (>= 0), sorted by increasing disparity.
        peak: (H, W) uint8 index of each pixel's sharpest slice (the argmax of ``focus``).
        disparity: (N,) slice disparities in 1/m, strictly increasing (any spacing).
        model: ``"lorentzian"``, ``"gaussian"`` or ``"parabolic"`` (see the module docstring).
        max_extrapolation: how far beyond an end slice a peak may lie, in outer slice steps.
        noise_floor: focus-measure level subtracted from the samples before fitting (noise energy); results are
            kept >= 5 % of it (and > 0).

    Returns:
        Peak disparity in 1/m (the sharpest slice's where unknown), the peak's half width at half maximum
        in 1/m (inf where unknown), and whether the pixel has a peak (False for end-slice peaks that cannot be
        placed).
    """
    s = np.asarray(disparity, dtype=np.float32)
    n = s.shape[0]
    # Interior peaks use (k-1, k, k+1); end peaks use the three outermost slices.
    centre = np.clip(peak, 1, n - 2).astype(np.uint8)
    f0, f1, f2 = focus[0].copy(), focus[1].copy(), focus[2].copy()
    for k in range(2, n - 1):  # cv2.copyTo writes into its third argument
        here = _mask(centre == k)
        cv2.copyTo(focus[k - 1], here, f0)
        cv2.copyTo(focus[k], here, f1)
        cv2.copyTo(focus[k + 1], here, f2)
    x0, x1, x2 = (_f32(cv2.LUT(centre, _lut(s, shift))) for shift in (-1, 0, 1))
    drop = np.float32(noise_floor)
    keep_min = max(_TINY, np.float32(_FLOOR_CLIP) * drop)
    y0, y1, y2 = (_transform(np.maximum(f - drop, keep_min), model) for f in (f0, f1, f2))
    m01 = (y1 - y0) / (x1 - x0)
    m12 = (y2 - y1) / (x2 - x1)
    a = (m12 - m01) / (x2 - x0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        vertex = np.float32(0.5) * (x0 + x1) - m01 / (np.float32(2.0) * a)
        y_top = y1 - a * np.square(x1 - vertex)  # the parabola's value at its vertex
        if model == "lorentzian":  # y = -F**-0.5: F halves where F**-0.5 has grown by sqrt(2)
            hwhm = np.sqrt(np.float32(math.sqrt(2.0) - 1.0) * y_top / a)
        elif model == "gaussian":  # y = ln F
            hwhm = np.sqrt(np.float32(-math.log(2.0)) / a)
        else:  # y = F
            hwhm = np.sqrt(y_top / (np.float32(-2.0) * a))

    # Where the vertex may lie, per sharpest slice: between the midpoints to its neighbours; for an end slice,
    # from the midpoint to its neighbour out to max_extrapolation steps beyond it.
    ext = float(max_extrapolation)
    mid = 0.5 * (s[:-1] + s[1:])
    lo = _f32(cv2.LUT(peak, _lut(np.concatenate([[s[0] - ext * (s[1] - s[0])], mid]), 0)))
    hi = _f32(cv2.LUT(peak, _lut(np.concatenate([mid, [s[-1] + ext * (s[-1] - s[-2])]]), 0)))
    with np.errstate(invalid="ignore"):
        located = (a < 0) & (vertex >= lo) & (vertex <= hi) & np.isfinite(hwhm)
    # An interior peak is always bracketed; a flat top (a == 0) falls back to the sharpest slice.
    fallback = s.copy()
    disp = _f32(cv2.copyTo(vertex, _mask(located), _f32(cv2.LUT(peak, _lut(fallback, 0)))))
    hwhm = _f32(cv2.copyTo(hwhm, _mask(located), np.full_like(hwhm, np.inf)))
    ok = located | ((peak > 0) & (peak < n - 1))
    return disp, hwhm, ok


def _lut(values: npt.NDArray[np.floating], shift: int) -> Array32:
    """A 256-entry float32 table for cv2.LUT whose entry k is ``values[k + shift]`` (0 outside)."""
    table = np.zeros(256, dtype=np.float32)
    count = values.shape[0]
    k = np.arange(count)
    valid = (k + shift >= 0) & (k + shift < count)
    table[k[valid]] = values[k[valid] + shift]
    return table


register_backend("classical", ClassicalDfF)
