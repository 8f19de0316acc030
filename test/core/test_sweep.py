"""Tests of dfdnet_core.sweep: focus plans, ping-pong order, adaptive range, config validation."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest

from dfdnet_core.errors import ConfigError
from dfdnet_core.sweep import (
    AdaptiveRange,
    SweepConfig,
    SweepPlanner,
    adaptive_range_from_depth,
    plan_sweep,
)


def test_plan_sweep_is_uniform_in_disparity() -> None:
    np.testing.assert_allclose(plan_sweep(0.5, 2.0, 4), [0.5, 1 / 1.5, 1.0, 2.0])  # 2, 1.5, 1, 0.5 dioptres
    focus = np.array(plan_sweep(0.3, 7.0, 9))
    assert focus[0] == 0.3 and focus[-1] == 7.0
    np.testing.assert_allclose(np.diff(1 / focus), (1 / 7.0 - 1 / 0.3) / 8)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0.5, 2.0, 1), "n_focus >= 2, got 1"),
        ((0.5, 2.0, 2.0), "n_focus >= 2, got 2.0"),
        ((2.0, 0.5, 3), "near_m=2.0, far_m=0.5"),
        ((0.5, math.inf, 3), "far_m=inf"),
        ((0.0, 1.0, 3), "near_m=0.0"),
    ],
)
def test_plan_sweep_rejects_bad_arguments(args: tuple[Any, ...], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        plan_sweep(*args)


def test_pingpong_alternates_direction_and_visits_each_distance_once_per_sweep() -> None:
    planner = SweepPlanner(SweepConfig(near_m=0.5, far_m=2.0, n_focus=4))
    plan = plan_sweep(0.5, 2.0, 4)
    steps = list(itertools.islice(planner, 12))
    assert [(s.sweep_id, s.index, s.length) for s in steps] == [(k // 4, k % 4, 4) for k in range(12)]
    for sweep in range(3):
        focus = [s.focus_m for s in steps[4 * sweep : 4 * sweep + 4]]
        assert focus == (plan if sweep % 2 == 0 else plan[::-1])
    # the turn: the last distance of a sweep starts the next one, without a move
    assert [s.needs_move for s in steps] == [True] * 4 + [False, True, True, True] * 2
    assert all(math.isclose(s.power_diopt, 1 / s.focus_m) for s in steps)
    # never more than one grid step (0.5 dioptres) between consecutive steps
    assert max(abs(a.power_diopt - b.power_diopt) for a, b in itertools.pairwise(steps)) == pytest.approx(0.5)


def test_ascending_order_jumps_back_every_sweep() -> None:
    planner = SweepPlanner(SweepConfig(near_m=0.5, far_m=2.0, n_focus=4, order="ascending"))
    steps = [planner.next_step() for _ in range(8)]
    assert [s.focus_m for s in steps] == plan_sweep(0.5, 2.0, 4) * 2
    assert all(s.needs_move for s in steps)
    assert abs(steps[4].power_diopt - steps[3].power_diopt) == pytest.approx(1.5)  # the long return jump


def _ramp_depth(d_lo: float, d_hi: float, n: int = 1001) -> np.ndarray:
    """Depth image whose disparities are exactly linspace(d_lo, d_hi, n), plus invalid pixels."""
    depth = 1.0 / np.linspace(d_lo, d_hi, n)
    bad = np.array([np.nan, np.inf, -1.0, 0.0] * 10)
    return np.concatenate([depth, bad]).reshape(1, -1).astype(np.float32)


def test_adaptive_range_is_the_disparity_quantiles() -> None:
    found = adaptive_range_from_depth(_ramp_depth(0.2, 2.0))
    assert found.ok and found.reason == ""
    # linear quantiles of linspace(0.2, 2.0): 5 % -> 0.29 dioptres (far), 95 % -> 1.91 dioptres (near)
    assert found.far_m == pytest.approx(1 / 0.29, rel=1e-5)
    assert found.near_m == pytest.approx(1 / 1.91, rel=1e-5)
    assert found.valid_fraction == pytest.approx(1001 / 1041)
    other = adaptive_range_from_depth(_ramp_depth(0.2, 2.0), quantiles=(0.0, 1.0))
    assert (other.near_m, other.far_m) == pytest.approx((0.5, 5.0), rel=1e-5)


def test_adaptive_range_is_clipped_to_the_lens() -> None:
    depth = _ramp_depth(0.005, 20.0)  # 200 m .. 5 cm
    found = adaptive_range_from_depth(depth, quantiles=(0.0, 1.0), limits_m=(0.1, 50.0))
    assert (found.near_m, found.far_m) == pytest.approx((0.1, 50.0))
    found = adaptive_range_from_depth(depth, limits_m=(0.1, 50.0))  # 95 % = 19.0 dioptres: clipped to 10
    assert (found.near_m, found.far_m) == pytest.approx((0.1, 1 / (0.005 + 0.05 * 19.995)))


def test_adaptive_range_of_a_flat_wall_is_widened_to_the_min_span() -> None:
    wall = np.full((8, 8), 2.0, np.float32)  # 0.5 dioptres everywhere
    found = adaptive_range_from_depth(wall, min_span_diopt=0.2)
    assert (found.near_m, found.far_m) == pytest.approx((1 / 0.6, 1 / 0.4))
    at_limit = adaptive_range_from_depth(np.full((8, 8), 0.1, np.float32), limits_m=(0.1, 100.0))
    assert (at_limit.near_m, at_limit.far_m) == pytest.approx((0.1, 1 / 9.8))  # shifted inside the lens range


@pytest.mark.parametrize(
    ("depth", "reason"),
    [
        (np.full((10, 10), np.nan, np.float32), "too_few_valid_px"),
        (np.where(np.arange(100).reshape(10, 10) < 4, 1.0, np.nan), "too_few_valid_px"),  # 4 % < 5 %
        (np.ones((4, 4, 1), np.float32), "bad_depth"),
        (np.ones((4, 4), np.uint16), "bad_depth"),
        (np.ones((0, 4), np.float32), "bad_depth"),
        ([[1.0, 2.0]], "bad_depth"),
        (None, "bad_depth"),
    ],
)
def test_adaptive_range_gives_a_reason_for_unusable_depth(depth: Any, reason: str) -> None:
    found = adaptive_range_from_depth(depth)
    assert not found.ok and found.reason == reason and math.isnan(found.near_m)


def test_adaptive_range_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match=r"adaptive_quantiles need 0 <= low < high <= 1, got \(0.9, 0.1\)"):
        adaptive_range_from_depth(np.ones((2, 2)), quantiles=(0.9, 0.1))
    with pytest.raises(ConfigError, match=r"min_focus_m=0\.0"):
        adaptive_range_from_depth(np.ones((2, 2)), limits_m=(0.0, 1.0))


def test_update_from_depth_changes_only_the_next_sweep() -> None:
    planner = SweepPlanner(SweepConfig(near_m=0.5, far_m=2.0, n_focus=3, mode="adaptive"))
    first = [planner.next_step().focus_m for _ in range(2)]
    update = planner.update_from_depth(_ramp_depth(0.2, 2.0))
    assert update.ok and planner.range_m == (0.5, 2.0)
    assert planner.next_range_m == pytest.approx((1 / 1.91, 1 / 0.29), rel=1e-5)
    rest = planner.next_step().focus_m
    assert [*first, rest] == plan_sweep(0.5, 2.0, 3)  # the current sweep is not touched
    second = [planner.next_step().focus_m for _ in range(3)]
    np.testing.assert_allclose(second, plan_sweep(1 / 1.91, 1 / 0.29, 3)[::-1], rtol=1e-5)
    assert planner.range_m == planner.next_range_m
    # too few valid pixels: the previous range is kept and the reason returned
    kept = planner.update_from_depth(np.full((4, 4), np.nan))
    assert kept.reason == "too_few_valid_px" and (kept.near_m, kept.far_m) == planner.next_range_m
    assert kept.valid_fraction == 0.0


def test_update_from_depth_in_fixed_mode_keeps_the_range() -> None:
    planner = SweepPlanner(SweepConfig(near_m=0.5, far_m=2.0))
    result = planner.update_from_depth(_ramp_depth(0.2, 2.0))
    assert result == AdaptiveRange(0.5, 2.0, result.valid_fraction, "fixed_mode")
    assert planner.next_range_m == (0.5, 2.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"near_m": 2.0, "far_m": 1.0}, "near_m < far_m .* got near_m=2.0, far_m=1.0"),
        ({"near_m": 0.05}, r"near_m=0.05, far_m=5.0 with lens range \[0.1, 100.0\] m"),
        ({"far_m": 200.0}, "far_m=200.0"),
        ({"near_m": math.nan}, "near_m must be a number, got nan"),
        ({"far_m": "2"}, "far_m must be a number, got '2'"),
        ({"max_focus_m": math.inf, "far_m": 5.0}, "max_focus_m=inf"),
        ({"min_focus_m": 0.0}, "min_focus_m=0.0"),
        ({"n_focus": 1}, r"n_focus must be an int in \[2, 64\], got 1"),
        ({"n_focus": 65}, "got 65"),
        ({"n_focus": True}, "got True"),
        ({"settle_time_s": -0.001}, r"settle_time_s must be in \[0, 10\] s, got -0.001"),
        ({"order": "random"}, r"order must be one of \('pingpong', 'ascending'\), got 'random'"),
        ({"mode": "auto"}, "mode must be one of .* got 'auto'"),
        ({"adaptive_quantiles": [0.05, 0.95]}, r"must be a \(low, high\) tuple, got \[0.05, 0.95\]"),
        ({"adaptive_quantiles": (0.5, 0.5)}, "0 <= low < high <= 1"),
        ({"adaptive_quantiles": (-0.1, 0.5)}, "got \\(-0.1, 0.5\\)"),
        ({"adaptive_min_valid_fraction": 0.0}, r"adaptive_min_valid_fraction must be in \(0, 1\], got 0.0"),
        ({"adaptive_min_span_diopt": 20.0}, r"adaptive_min_span_diopt must be in \(0, 9.99\] dioptres"),
    ],
)
def test_sweep_config_rejects_bad_values(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SweepConfig(**kwargs)


def test_sweep_planner_rejects_a_non_config() -> None:
    with pytest.raises(ConfigError, match="must be a SweepConfig, got 5"):
        SweepPlanner(5)  # type: ignore[arg-type]
