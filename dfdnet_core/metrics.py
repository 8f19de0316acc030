"""Depth metrics as the depth-from-focus literature reports them, in metres or in disparity.

One function, :func:`depth_metrics`, turns a predicted and a ground-truth depth image into a dict of floats;
:class:`MetricAccumulator` averages those dicts per sample (each image counts once, as DFV, DDFF-12 and FoD500
evaluations do).

Which pixels count:

* *valid* pixels: ground truth finite, > 0, inside ``[min_depth_m, max_depth_m]`` and inside ``mask``;
* *evaluated* pixels: valid pixels whose prediction is finite and > 0 (REP 118: NaN/inf mean "no depth").
  ``coverage`` = evaluated / valid. Every error metric is computed over the evaluated pixels only, so a sparse
  estimator is judged on what it claims; read the error metrics together with ``coverage``.

``space="disparity"`` evaluates ``disparity_scale / depth`` (inverse depth in 1/m for the default scale of 1; any
disparity proportional to 1/d, e.g. a light-field or stereo disparity in pixels, gives the same AbsRel, logRMSE and
δ values). Bumpiness follows the 4D light-field benchmark as used by DFV: the Frobenius norm of the Hessian of the
error ``pred - gt`` (Scharr derivative filters: difference ``[1, 0, -1]`` across, smoothing ``[3, 10, 3] / 16``
along), clipped at ``bumpiness_clip`` and averaged, times 100. Pixels within 2 px of an unevaluated pixel or of
the image border are left out of bumpiness, so holes never leak into it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import cv2
import numpy as np
import numpy.typing as npt

from dfdnet_core.errors import ConfigError

#: Thresholds of the δ accuracies, in the order of their keys.
DELTA_THRESHOLDS: tuple[tuple[str, float], ...] = (
    ("delta_1.05", 1.05),
    ("delta_1.15", 1.15),
    ("delta_1.25", 1.25),
    ("delta_1.25^2", 1.25**2),
    ("delta_1.25^3", 1.25**3),
)

#: Keys of the dict returned by :func:`depth_metrics`, in reporting order.
METRIC_KEYS: tuple[str, ...] = (
    "abs_rel",
    "sq_rel",
    "rmse",
    "log_rmse",
    "mse",
    *(key for key, _ in DELTA_THRESHOLDS),
    "bumpiness",
    "coverage",
    "valid_px",
    "evaluated_px",
)

SPACES = ("depth", "disparity")

_SCHARR_DIFF = np.array([1.0, 0.0, -1.0], dtype=np.float64)
_SCHARR_SMOOTH = np.array([3.0, 10.0, 3.0], dtype=np.float64) / 16.0


def depth_metrics(
    pred_depth_m: npt.ArrayLike,
    gt_depth_m: npt.ArrayLike,
    *,
    mask: npt.ArrayLike | None = None,
    space: str = "depth",
    min_depth_m: float = 1e-3,
    max_depth_m: float = math.inf,
    clip_prediction: bool = True,
    disparity_scale: float = 1.0,
    bumpiness_clip: float = 0.05,
) -> dict[str, float]:
    """Error metrics of one predicted depth image against its ground truth.

    Args:
        pred_depth_m: (H, W) predicted depth in metres; NaN, inf or <= 0 = no prediction.
        gt_depth_m: (H, W) ground-truth depth in metres; NaN, inf or <= 0 = no ground truth.
        mask: optional (H, W) boolean array; only True pixels are evaluated.
        space: ``"depth"`` (metres) or ``"disparity"`` (``disparity_scale / depth``).
        min_depth_m: ground truth below this (metres) is not evaluated.
        max_depth_m: ground truth above this (metres) is not evaluated.
        clip_prediction: clip finite predictions to ``[min_depth_m, max_depth_m]`` before scoring (the usual
            evaluation protocol).
        disparity_scale: factor k in disparity = k / depth (k in m, e.g. baseline x focal length); 1 gives 1/m.
        bumpiness_clip: upper clip of the per-pixel Hessian norm (in units of ``space`` per px²).

    Returns:
        Dict with the keys of :data:`METRIC_KEYS`: ``abs_rel``, ``sq_rel``, ``rmse``, ``log_rmse``, ``mse``,
        ``delta_*`` (fractions in [0, 1]), ``bumpiness``, ``coverage`` (evaluated / valid pixels),
        ``valid_px`` and ``evaluated_px`` (counts). Error metrics are NaN when no pixel is evaluated;
        ``coverage`` is NaN when no pixel is valid.

    Raises:
        ConfigError: shapes differ, ``space`` is unknown, or a range/scale argument is impossible.
    """
    pred = np.asarray(pred_depth_m, dtype=np.float64)
    gt = np.asarray(gt_depth_m, dtype=np.float64)
    if pred.ndim != 2 or pred.shape != gt.shape:
        raise ConfigError(
            f"pred_depth_m and gt_depth_m must be (H, W) arrays of one shape, got {pred.shape!r} and {gt.shape!r}"
        )
    if space not in SPACES:
        raise ConfigError(f"space must be one of {SPACES!r}, got {space!r}")
    if math.isnan(min_depth_m) or math.isnan(max_depth_m) or not 0.0 <= min_depth_m < max_depth_m:
        raise ConfigError(f"need 0 <= min_depth_m < max_depth_m, got {min_depth_m!r} and {max_depth_m!r}")
    if not (math.isfinite(disparity_scale) and disparity_scale > 0):
        raise ConfigError(f"disparity_scale must be a positive finite number, got {disparity_scale!r}")
    if not (math.isfinite(bumpiness_clip) and bumpiness_clip > 0):
        raise ConfigError(f"bumpiness_clip must be a positive finite number, got {bumpiness_clip!r}")

    valid = np.isfinite(gt) & (gt > 0) & (gt >= min_depth_m) & (gt <= max_depth_m)
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != gt.shape:
            raise ConfigError(f"mask must have the depth's shape {gt.shape!r}, got {m.shape!r}")
        valid &= m.astype(bool)
    evaluated = valid & np.isfinite(pred) & (pred > 0)
    n_valid = int(valid.sum())
    n_eval = int(evaluated.sum())

    out: dict[str, float] = {key: math.nan for key in METRIC_KEYS}
    out["valid_px"] = float(n_valid)
    out["evaluated_px"] = float(n_eval)
    out["coverage"] = n_eval / n_valid if n_valid else math.nan
    if n_eval == 0:
        return out

    p = pred[evaluated]
    g = gt[evaluated]
    if clip_prediction:
        p = np.clip(p, max(min_depth_m, np.finfo(np.float64).tiny), max_depth_m)
    if space == "disparity":
        p = disparity_scale / p
        g = disparity_scale / g

    diff = p - g
    sq = diff * diff
    ratio = np.maximum(p / g, g / p)
    out["abs_rel"] = float(np.mean(np.abs(diff) / g))
    out["sq_rel"] = float(np.mean(sq / g))
    out["mse"] = float(np.mean(sq))
    out["rmse"] = math.sqrt(out["mse"])
    out["log_rmse"] = float(np.sqrt(np.mean(np.square(np.log(p) - np.log(g)))))
    for key, threshold in DELTA_THRESHOLDS:
        out[key] = float(np.mean(ratio < threshold))

    error = np.zeros(gt.shape, dtype=np.float64)
    error[evaluated] = diff
    out["bumpiness"] = _bumpiness(error, evaluated, bumpiness_clip)
    return out


def _scharr(image: npt.NDArray[np.float64], axis: int) -> npt.NDArray[np.float64]:
    """Scharr derivative of ``image`` along ``axis`` (1 = x, 0 = y), 2x the unit-spacing slope."""
    kx, ky = (_SCHARR_DIFF, _SCHARR_SMOOTH) if axis == 1 else (_SCHARR_SMOOTH, _SCHARR_DIFF)
    # sepFilter2D correlates; the sign of a derivative does not matter for a norm of squares.
    return np.asarray(cv2.sepFilter2D(image, cv2.CV_64F, kx, ky, borderType=cv2.BORDER_REFLECT_101), np.float64)


def _bumpiness(error: npt.NDArray[np.float64], evaluated: npt.NDArray[np.bool_], clip: float) -> float:
    """Mean clipped Frobenius norm of the Hessian of ``error`` over fully supported pixels, times 100."""
    dx = _scharr(error, 1)
    dy = _scharr(error, 0)
    norm = np.sqrt(
        np.square(_scharr(dx, 1)) + np.square(_scharr(dx, 0)) + np.square(_scharr(dy, 0)) + np.square(_scharr(dy, 1))
    )
    # Two 3x3 filters reach 2 px: keep pixels whose 5x5 neighbourhood lies inside the image and was evaluated.
    support = np.zeros((error.shape[0] + 4, error.shape[1] + 4), dtype=np.uint8)
    support[2:-2, 2:-2] = evaluated
    support = cv2.erode(support, np.ones((5, 5), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    inside = support[2:-2, 2:-2].astype(bool)
    if not inside.any():
        return math.nan
    return float(np.mean(np.clip(norm[inside], 0.0, clip)) * 100.0)


class MetricAccumulator:
    """Averages :func:`depth_metrics` per sample over a data set.

    Each sample contributes once to each mean (the papers' protocol); a metric that is NaN for a sample (e.g. no
    evaluated pixel) is left out of that metric's mean only. ``valid_px`` and ``evaluated_px`` are summed, and
    ``pixel_coverage`` = summed evaluated / summed valid is reported beside the per-sample mean ``coverage``.
    """

    def __init__(self, **metric_options: object) -> None:
        """Store options passed to every :func:`depth_metrics` call (``space``, ``min_depth_m``, ...)."""
        self._options = dict(metric_options)
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._samples = 0
        self._valid_px = 0.0
        self._evaluated_px = 0.0

    def __len__(self) -> int:
        """Number of samples added so far."""
        return self._samples

    def update(
        self, pred_depth_m: npt.ArrayLike, gt_depth_m: npt.ArrayLike, mask: npt.ArrayLike | None = None
    ) -> dict[str, float]:
        """Score one sample, add it to the means and return its own metrics."""
        sample = depth_metrics(pred_depth_m, gt_depth_m, mask=mask, **self._options)  # type: ignore[arg-type]
        self.add(sample)
        return sample

    def add(self, sample: Mapping[str, float]) -> None:
        """Add already computed per-sample metrics (a dict as :func:`depth_metrics` returns)."""
        self._samples += 1
        for key, value in sample.items():
            if key in ("valid_px", "evaluated_px"):
                continue
            if math.isfinite(value):
                self._sums[key] = self._sums.get(key, 0.0) + float(value)
                self._counts[key] = self._counts.get(key, 0) + 1
        self._valid_px += float(sample.get("valid_px", 0.0))
        self._evaluated_px += float(sample.get("evaluated_px", 0.0))

    def compute(self) -> dict[str, float]:
        """Per-sample means of every metric, plus ``samples``, pixel totals and ``pixel_coverage``."""
        out = {key: math.nan for key in METRIC_KEYS}
        for key, total in self._sums.items():
            out[key] = total / self._counts[key]
        out["valid_px"] = self._valid_px
        out["evaluated_px"] = self._evaluated_px
        out["pixel_coverage"] = self._evaluated_px / self._valid_px if self._valid_px else math.nan
        out["samples"] = float(self._samples)
        return out
