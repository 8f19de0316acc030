"""Sensor noise of the simulated camera (dfdnet_core.sim_camera.SimCamera.capture)."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest

from dfdnet_core.sim_camera import SimCamera, SimCameraConfig, _normal_quantiles

W, H = 64, 48


def _camera(noise_std: float, seed: int = 0) -> SimCamera:
    camera = SimCamera(SimCameraConfig(width_px=W, height_px=H, noise_std=noise_std, scene_seed=seed))
    camera._cache[1.0] = np.full((H, W, 3), 100, dtype=np.uint8)  # a flat grey frame at 1 m (1 dpt), no render
    return camera


def test_noise_quantiles_are_those_of_the_standard_normal() -> None:
    q = _normal_quantiles()
    assert q.shape == (65536,) and q.dtype == np.float32 and np.all(np.diff(q) > 0)
    assert q[32768] == pytest.approx(NormalDist().inv_cdf(32768.5 / 65536), abs=1e-7)
    assert q[0] == pytest.approx(-4.33, abs=0.01) and q[-1] == pytest.approx(4.33, abs=0.01)
    assert float(q.mean()) == pytest.approx(0.0, abs=1e-6)
    assert float(q.astype(np.float64).std()) == pytest.approx(1.0, abs=2e-3)  # tails beyond 4.3 sigma are cut


def test_capture_adds_gaussian_noise_of_the_configured_std() -> None:
    camera = _camera(3.0)
    frames = np.stack([camera.capture(1.0) for _ in range(20)]).astype(np.float64)
    noise = frames - 100.0 + 0.5  # the sensor truncates to integers: on average half a grey level low
    assert noise.std() == pytest.approx(3.0, rel=0.02)
    assert noise.mean() == pytest.approx(0.0, abs=0.02)
    # Gaussian shape: the fractions within 1 and 2 sigma (3 and 6 grey levels)
    assert np.mean(np.abs(noise) <= 3.0) == pytest.approx(0.683, abs=0.03)
    assert np.mean(np.abs(noise) <= 6.0) == pytest.approx(0.954, abs=0.01)
    assert frames.min() >= 0 and frames.max() <= 255


def test_capture_is_reproducible_per_seed_and_differs_frame_to_frame() -> None:
    a, b = _camera(2.0, seed=4), _camera(2.0, seed=4)
    first = a.capture(1.0)
    assert np.array_equal(first, b.capture(1.0))
    assert not np.array_equal(first, a.capture(1.0))


def test_capture_clips_to_the_8_bit_range_and_zero_noise_returns_the_clean_image() -> None:
    camera = _camera(50.0)
    camera._cache[1.0] = np.full((H, W, 3), 250, dtype=np.uint8)
    frame = camera.capture(1.0)
    assert frame.dtype == np.uint8 and frame.max() == 255 and np.mean(frame == 255) > 0.3
    quiet = _camera(0.0)
    clean = quiet.capture(1.0)
    assert np.array_equal(clean, quiet.clean_image(1.0)) and clean is not quiet.clean_image(1.0)
