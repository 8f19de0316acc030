"""Tests of dfdnet_core.metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dfdnet_core.errors import ConfigError
from dfdnet_core.metrics import METRIC_KEYS, MetricAccumulator, depth_metrics

NAN = float("nan")
# 2 x 2 example: ground truth 1, 2.4, 2, 3 m; prediction 1, 2, 4 m and one NaN (no depth).
GT = np.array([[1.0, 2.4], [2.0, 3.0]])
PRED = np.array([[1.0, 2.0], [4.0, NAN]])


def test_metrics_match_hand_computed_example_in_metres() -> None:
    m = depth_metrics(PRED, GT)
    # Evaluated pairs (pred, gt): (1, 1), (2, 2.4), (4, 2); errors 0, -0.4, +2.
    assert m["valid_px"] == 4 and m["evaluated_px"] == 3
    assert m["coverage"] == pytest.approx(0.75)
    assert m["abs_rel"] == pytest.approx((0 + 0.4 / 2.4 + 2 / 2) / 3)  # 0.388889
    assert m["sq_rel"] == pytest.approx((0 + 0.16 / 2.4 + 4 / 2) / 3)  # 0.688889
    assert m["mse"] == pytest.approx((0 + 0.16 + 4) / 3)  # 1.386667
    assert m["rmse"] == pytest.approx(math.sqrt(4.16 / 3))  # 1.177568
    assert m["log_rmse"] == pytest.approx(math.sqrt((math.log(2 / 2.4) ** 2 + math.log(2) ** 2) / 3))  # 0.413801
    # max(p/g, g/p) = 1, 1.2, 2
    assert m["delta_1.05"] == pytest.approx(1 / 3)
    assert m["delta_1.15"] == pytest.approx(1 / 3)
    assert m["delta_1.25"] == pytest.approx(2 / 3)
    assert m["delta_1.25^2"] == pytest.approx(2 / 3)
    assert m["delta_1.25^3"] == pytest.approx(2 / 3)  # 2 > 1.953
    assert set(m) == set(METRIC_KEYS)


def test_metrics_in_disparity_space() -> None:
    m = depth_metrics(PRED, GT, space="disparity")
    # Disparities (1/m): pred 1, 0.5, 0.25; gt 1, 5/12, 0.5.
    assert m["abs_rel"] == pytest.approx((0 + (0.5 - 5 / 12) / (5 / 12) + 0.25 / 0.5) / 3)  # 0.233333
    assert m["rmse"] == pytest.approx(math.sqrt(((1 / 12) ** 2 + 0.25**2) / 3))
    # AbsRel and delta are unchanged by a disparity scale (baseline x focal); RMSE scales with it.
    scaled = depth_metrics(PRED, GT, space="disparity", disparity_scale=40.0)
    assert scaled["abs_rel"] == pytest.approx(m["abs_rel"])
    assert scaled["delta_1.25"] == pytest.approx(m["delta_1.25"])
    assert scaled["rmse"] == pytest.approx(40.0 * m["rmse"])


def test_metrics_depth_caps_and_prediction_clipping() -> None:
    # gt 3 m is above the cap: not valid. The 4 m prediction is clipped to 2.5 m.
    m = depth_metrics(PRED, GT, max_depth_m=2.5)
    assert m["valid_px"] == 3 and m["evaluated_px"] == 3 and m["coverage"] == 1.0
    assert m["abs_rel"] == pytest.approx((0 + 0.4 / 2.4 + 0.5 / 2) / 3)
    unclipped = depth_metrics(PRED, GT, max_depth_m=2.5, clip_prediction=False)
    assert unclipped["abs_rel"] == pytest.approx((0 + 0.4 / 2.4 + 2 / 2) / 3)
    low = depth_metrics(PRED, GT, min_depth_m=1.5)  # drops gt 1 m
    assert low["valid_px"] == 3 and low["evaluated_px"] == 2


def test_metrics_mask_and_invalid_ground_truth() -> None:
    mask = np.array([[True, True], [False, True]])
    m = depth_metrics(PRED, GT, mask=mask)
    assert m["valid_px"] == 3 and m["evaluated_px"] == 2
    assert m["abs_rel"] == pytest.approx((0 + 0.4 / 2.4) / 2)
    gt = GT.copy()
    gt[0, 1] = 0.0  # no ground truth there
    gt[1, 0] = np.inf
    m2 = depth_metrics(PRED, gt)
    assert m2["valid_px"] == 2 and m2["evaluated_px"] == 1 and m2["abs_rel"] == 0.0


def test_metrics_nan_when_nothing_is_evaluated() -> None:
    m = depth_metrics(np.full((2, 2), NAN), GT)
    assert m["coverage"] == 0.0 and m["evaluated_px"] == 0
    assert math.isnan(m["abs_rel"]) and math.isnan(m["bumpiness"])
    m2 = depth_metrics(PRED, np.zeros((2, 2)))
    assert math.isnan(m2["coverage"]) and m2["valid_px"] == 0


def _grid(n: int = 14) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:n, 0:n].astype(np.float64)
    return x, y


@pytest.mark.parametrize(
    ("error_fn", "expected"),
    [
        # e = a x²/2: Scharr [1,0,-1] twice gives 4a on dxx, 0 elsewhere -> |H|_F = 4a = 0.02 -> x100 = 2.
        (lambda x, y: 0.005 * x**2 / 2, 2.0),
        # e = b x y: dxy = dyx = 4b -> |H|_F = sqrt(2) 4b.
        (lambda x, y: 0.002 * x * y, 100 * math.sqrt(2) * 4 * 0.002),
        # Curvature above the clip: 4a = 0.4 is clipped to 0.05 -> 5.
        (lambda x, y: 0.1 * x**2 / 2, 5.0),
        # A plane of error (tilt + offset) has no curvature.
        (lambda x, y: 0.01 + 0.003 * x - 0.002 * y, 0.0),
    ],
)
def test_bumpiness_matches_hessian_of_the_error(error_fn: object, expected: float) -> None:
    x, y = _grid()
    gt = np.full_like(x, 1.5)
    pred = gt + error_fn(x, y)  # type: ignore[operator]
    assert depth_metrics(pred, gt)["bumpiness"] == pytest.approx(expected, abs=1e-9)


def test_bumpiness_ignores_pixels_next_to_holes() -> None:
    x, _ = _grid()
    gt = np.full_like(x, 1.5)
    pred = gt + 0.2 + 0.01 * x  # a large but planar error: bumpiness 0 if the hole does not leak
    pred[7, 7] = NAN
    m = depth_metrics(pred, gt)
    assert m["evaluated_px"] == 14 * 14 - 1
    assert m["bumpiness"] == pytest.approx(0.0, abs=1e-9)
    tiny = depth_metrics(pred[:4, :4], gt[:4, :4])  # no pixel has a full 5x5 support
    assert math.isnan(tiny["bumpiness"])


def test_accumulator_averages_per_sample() -> None:
    acc = MetricAccumulator()
    one = acc.update(np.array([[1.1]]), np.array([[1.0]]))  # 1 pixel, abs_rel 0.1
    acc.update(np.full((2, 2), 1.3), np.ones((2, 2)))  # 4 pixels, abs_rel 0.3
    acc.update(np.array([[NAN, 2.0]]), np.array([[1.0, 2.0]]))  # 2 valid, 1 evaluated, abs_rel 0
    assert one["abs_rel"] == pytest.approx(0.1)
    out = acc.compute()
    assert len(acc) == 3 and out["samples"] == 3
    assert out["abs_rel"] == pytest.approx((0.1 + 0.3 + 0.0) / 3)  # per sample, not per pixel (0.13)
    assert out["coverage"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert out["pixel_coverage"] == pytest.approx(6 / 7)
    assert out["valid_px"] == 7 and out["evaluated_px"] == 6


def test_accumulator_skips_nan_metrics_and_passes_options() -> None:
    acc = MetricAccumulator(space="disparity")
    acc.update(np.array([[NAN]]), np.array([[1.0]]))  # nothing evaluated: abs_rel NaN
    acc.update(np.array([[0.5]]), np.array([[1.0]]))  # disparity 2 vs 1: abs_rel 1
    out = acc.compute()
    assert out["abs_rel"] == pytest.approx(1.0)
    assert out["coverage"] == pytest.approx(0.5)
    assert math.isnan(MetricAccumulator().compute()["abs_rel"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"pred_depth_m": np.ones((2, 3))}, "must be \\(H, W\\) arrays of one shape, got \\(2, 3\\) and \\(2, 2\\)"),
        ({"space": "log"}, "space must be one of \\('depth', 'disparity'\\), got 'log'"),
        ({"min_depth_m": 3.0, "max_depth_m": 2.0}, "need 0 <= min_depth_m < max_depth_m, got 3.0 and 2.0"),
        ({"disparity_scale": 0.0}, "disparity_scale must be a positive finite number, got 0.0"),
        ({"bumpiness_clip": -1.0}, "bumpiness_clip must be a positive finite number, got -1.0"),
        ({"mask": np.ones((3, 3), bool)}, "mask must have the depth's shape \\(2, 2\\), got \\(3, 3\\)"),
    ],
)
def test_metrics_raise_on_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"pred_depth_m": PRED, "gt_depth_m": GT}
    args.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        depth_metrics(**args)  # type: ignore[arg-type]
