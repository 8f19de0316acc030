"""Thin-lens circle of confusion, pixel pitch and hyperfocal distance (dfdnet_core.optics)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.errors import OpticsError
from dfdnet_core.optics import (
    LensOptics,
    coc_radius_m,
    coc_radius_px,
    disparity_uniform_focus_m,
    hyperfocal_distance_m,
    optics_for_intrinsics,
    pixel_pitch_m_for_sensor_width,
)

F_M, N = 0.008, 1.4
SIM = LensOptics(focal_length_m=0.008, f_number=1.4, pixel_pitch_m=6e-6)


def _eq1(d: float, s: float, f: float, n: float) -> float:
    """Seed paper eq. 1, written out literally (radius)."""
    return abs(d - s) * f * f / (2 * n * d * (s - f))


@pytest.mark.parametrize(("d", "s"), [(0.45, 0.4), (1.0, 0.4), (1.9, 2.0), (0.3, 1.0), (7.0, 0.5)])
def test_coc_radius_m_matches_eq1_for_floats(d: float, s: float) -> None:
    got = coc_radius_m(d, s, F_M, N)
    assert isinstance(got, float)
    assert got == pytest.approx(_eq1(d, s, F_M, N), rel=1e-12)


def test_coc_radius_m_numpy_and_torch_agree_with_eq1() -> None:
    depths = np.array([0.4, 0.6, 1.0, 3.0])
    want = np.array([_eq1(d, 0.8, F_M, N) for d in depths])
    np.testing.assert_allclose(coc_radius_m(depths, 0.8, F_M, N), want, rtol=1e-12)
    got_t = coc_radius_m(torch.tensor(depths), torch.tensor(0.8, dtype=torch.float64), F_M, N)
    assert isinstance(got_t, torch.Tensor)
    np.testing.assert_allclose(got_t.numpy(), want, rtol=1e-12)


def test_coc_is_zero_at_focus_and_exact_limits_at_infinity() -> None:
    assert coc_radius_m(1.3, 1.3, F_M, N) == 0.0
    # d -> inf: r = f^2 / (2 N (s - f)); s -> inf: r = f^2 / (2 N d).
    assert coc_radius_m(math.inf, 1.0, F_M, N) == pytest.approx(F_M**2 / (2 * N * (1.0 - F_M)), rel=1e-12)
    assert coc_radius_m(2.0, math.inf, F_M, N) == pytest.approx(F_M**2 / (2 * N * 2.0), rel=1e-12)


def test_pinhole_has_zero_coc_everywhere() -> None:
    depths = np.array([0.1, 0.5, 3.0, math.inf])
    assert np.all(coc_radius_m(depths, 0.7, F_M, math.inf) == 0.0)
    pin = LensOptics(F_M, math.inf, 6e-6)
    assert torch.all(coc_radius_px(torch.tensor([0.2, 9.0]), torch.tensor(1.0), pin) == 0)


def test_coc_radius_px_divides_by_pixel_pitch() -> None:
    assert coc_radius_px(1.0, 0.4, SIM) == pytest.approx(_eq1(1.0, 0.4, F_M, N) / 6e-6, rel=1e-12)


def test_sim_camera_defaults_give_pixel_level_steps_between_slices() -> None:
    # 640x480, f = 8 mm, 6 um pixels, f/1.4, focus 0.4-2.0 m in 5 disparity-uniform steps, depths 0.45-1.9 m:
    # every depth must see a clear change of blur radius between neighbouring slices.
    focus = np.array(disparity_uniform_focus_m(0.4, 2.0, 5))
    depths = np.linspace(0.45, 1.9, 50)
    radii = coc_radius_px(depths[:, None], focus[None, :], SIM)  # (depth, slice)
    assert radii.max() == pytest.approx(7.67, abs=0.02)  # 1.9 m seen while focused at 0.4 m
    step = np.abs(np.diff(radii, axis=1))
    # Between two adjacent slices the radius changes by ~1.9 px unless the depth lies between the two foci.
    assert np.median(step) > 1.5
    assert np.all(step.max(axis=1) > 1.5)


def test_pixel_pitch_for_fossa_full_frame_convention() -> None:
    assert pixel_pitch_m_for_sensor_width(0.036, 640) == pytest.approx(5.625e-5)
    optics = optics_for_intrinsics(CameraIntrinsics(640, 480, 500.0, 520.0, 320.0, 240.0), 2.8)
    assert optics.pixel_pitch_m == pytest.approx(0.036 / 640)
    assert optics.focal_length_m == pytest.approx(0.036 / 640 * 510.0)
    assert optics.f_number == 2.8


def test_hyperfocal_distance_puts_infinity_at_the_coc_limit() -> None:
    limit_m = 3e-6
    h_m = hyperfocal_distance_m(F_M, N, limit_m)
    assert h_m == pytest.approx(F_M**2 / (2 * N * limit_m) + F_M)
    assert coc_radius_m(math.inf, h_m, F_M, N) == pytest.approx(limit_m, rel=1e-9)
    assert hyperfocal_distance_m(F_M, math.inf, limit_m) == F_M


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"focal_length_m": 0.0}, "focal_length_m must be a positive number of metres, got 0.0"),
        ({"f_number": -2.0}, r"f_number must be > 0 \(inf = pinhole\), got -2.0"),
        ({"f_number": math.nan}, "f_number must be > 0"),
        ({"depth_m": 0.0}, r"depth_m must be > 0.0 m everywhere \(no NaN\), got 0.0"),
        ({"depth_m": np.array([1.0, math.nan])}, r"depth_m must be > 0.0 m everywhere.*nan"),
        ({"depth_m": torch.tensor([1.0, -1.0])}, r"depth_m must be > 0.0 m everywhere.*-1.0"),
        ({"focus_m": 0.005}, "focus_m must be > 0.008 m everywhere"),
    ],
)
def test_coc_radius_m_rejects_impossible_values(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"depth_m": 1.0, "focus_m": 0.5, "focal_length_m": F_M, "f_number": N}
    args.update(kwargs)
    with pytest.raises(OpticsError, match=match):
        coc_radius_m(**args)


def test_helpers_reject_bad_values() -> None:
    with pytest.raises(OpticsError, match="sensor_width_m must be a positive number of metres, got -0.036"):
        pixel_pitch_m_for_sensor_width(-0.036, 640)
    with pytest.raises(OpticsError, match="long_edge_px must be a positive integer, got 0"):
        pixel_pitch_m_for_sensor_width(0.036, 0)
    with pytest.raises(OpticsError, match="coc_limit_m must be a positive number of metres, got 0.0"):
        hyperfocal_distance_m(F_M, N, 0.0)
    with pytest.raises(OpticsError, match="focal_length_m must be a positive number of metres, got -0.008"):
        hyperfocal_distance_m(-F_M, N, 1e-6)
