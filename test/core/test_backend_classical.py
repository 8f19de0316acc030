"""Tests of the classical depth-from-focus back end (dfdnet_core.backend_classical)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from dfdnet_core.backend_classical import ClassicalConfig, ClassicalDfF, fit_focus_peak
from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.errors import ConfigError, StackError
from dfdnet_core.estimator import BACKENDS, DepthEstimator, make_estimator
from dfdnet_core.metrics import depth_metrics
from dfdnet_core.optics import LensOptics, coc_radius_px, disparity_uniform_focus_m
from dfdnet_core.stack import FocalStack

# The simulated camera's lens at full resolution (6 um pixels); the test images are crops of it.
OPTICS = LensOptics(focal_length_m=0.008, f_number=1.4, pixel_pitch_m=6e-6)
FOCUS_M = disparity_uniform_focus_m(0.4, 2.0, 5)
H, W = 120, 200
STRIP_PX = 40
MARGIN_PX = 12  # blur (<= ~4 px sigma) + window (11 px) + presmoothing reach at strip borders


def _texture(rng: np.random.Generator, h: int, w: int) -> npt.NDArray[np.float32]:
    """Multi-octave value noise in [0, 1] with contrast from 2 to 32 px."""
    tex = np.zeros((h, w), np.float32)
    for cell in (2, 4, 8, 16, 32):
        lattice = rng.random((h // cell + 2, w // cell + 2)).astype(np.float32)
        size = ((w // cell + 2) * cell, (h // cell + 2) * cell)
        tex += cv2.resize(lattice, size, interpolation=cv2.INTER_LINEAR)[:h, :w] * cell**0.2
    tex -= tex.min()
    return tex / tex.max()


def _strip_stack(
    depths_m: tuple[float, ...],
    focus_m: list[float],
    noise_grey: float = 0.0,
    flat_strips: tuple[int, ...] = (),
    seed: int = 0,
) -> tuple[FocalStack, npt.NDArray[np.float32]]:
    """Vertical strips of fronto-parallel texture, each blurred with the thin-lens Gaussian PSF of its depth.

    Same PSF as the renderer (sigma = CoC radius / 2); strips are blurred independently (no occlusion).
    """
    rng = np.random.default_rng(seed)
    tex = _texture(rng, H, W)
    gt = np.zeros((H, W), np.float32)
    for i, d in enumerate(depths_m):
        gt[:, i * STRIP_PX : (i + 1) * STRIP_PX] = d
    images = []
    for fd in focus_m:
        img = np.zeros((H, W), np.float32)
        for i, d in enumerate(depths_m):
            sigma = coc_radius_px(d, fd, OPTICS) / 2.0
            blurred = cv2.GaussianBlur(tex, (0, 0), sigma) if sigma > 0.05 else tex
            img[:, i * STRIP_PX : (i + 1) * STRIP_PX] = blurred[:, i * STRIP_PX : (i + 1) * STRIP_PX]
        for i in flat_strips:
            img[:, i * STRIP_PX : (i + 1) * STRIP_PX] = 0.5
        img = img * 255.0 + rng.normal(0.0, noise_grey, img.shape)
        grey = np.clip(np.round(img), 0, 255).astype(np.uint8)
        images.append(np.repeat(grey[..., None], 3, axis=2))
    intrinsics = CameraIntrinsics(W, H, 1333.3, 1333.3, (W - 1) / 2, (H - 1) / 2)
    return FocalStack(np.stack(images), np.array(focus_m), intrinsics, OPTICS), gt


def _strip(image: npt.NDArray[np.float32], i: int) -> npt.NDArray[np.float32]:
    """Interior of strip i, away from strip and image borders."""
    return image[MARGIN_PX:-MARGIN_PX, i * STRIP_PX + MARGIN_PX : (i + 1) * STRIP_PX - MARGIN_PX]


DEPTHS_M = (0.5, 0.62, 0.85, 1.15, 1.45)


@pytest.mark.parametrize("noise_grey", [0.0, 2.0])
def test_classical_recovers_depth_of_textured_strips(noise_grey: float) -> None:
    stack, _ = _strip_stack(DEPTHS_M, FOCUS_M, noise_grey=noise_grey)
    result = ClassicalDfF().estimate(stack)
    for i, d in enumerate(DEPTHS_M):
        strip = _strip(result.depth_m, i)
        assert np.isfinite(strip).mean() >= 0.9, (d, np.isfinite(strip).mean())
        assert np.nanmedian(strip) == pytest.approx(d, rel=0.04)
        assert np.nanmean(np.abs(strip - d)) / d < 0.06


def test_classical_interpolates_between_unevenly_spaced_slices() -> None:
    # Focus distances not uniform in disparity: 1/d = 0.6, 1.0, 1.25, 1.8, 2.2 dioptres; depths between slices.
    focus_m = [1 / 0.6, 1.0, 0.8, 1 / 1.8, 1 / 2.2]
    depths = (0.5, 0.6, 0.7, 0.9, 1.25)
    stack, _ = _strip_stack(depths, focus_m)
    result = ClassicalDfF().estimate(stack)
    for i, d in enumerate(depths):
        assert np.nanmedian(_strip(result.depth_m, i)) == pytest.approx(d, rel=0.04)
    # Picking the nearest slice alone would miss 0.7 m by > 10 % (nearest slice 0.8 m).
    assert abs(np.nanmedian(_strip(result.depth_m, 2)) - 0.7) < 0.03


def test_classical_result_does_not_depend_on_slice_order() -> None:
    stack, _ = _strip_stack(DEPTHS_M, FOCUS_M, noise_grey=1.0)
    perm = np.array([3, 0, 4, 1, 2])
    shuffled = FocalStack(stack.images[perm], stack.focus_distances_m[perm], stack.intrinsics, stack.optics)
    a = ClassicalDfF().estimate(stack)
    b = ClassicalDfF().estimate(shuffled)
    np.testing.assert_array_equal(a.depth_m, b.depth_m)
    np.testing.assert_array_equal(a.confidence, b.confidence)
    np.testing.assert_array_equal(a.all_in_focus, b.all_in_focus)


def test_classical_output_contract() -> None:
    stack, _ = _strip_stack(DEPTHS_M, FOCUS_M, noise_grey=1.0, flat_strips=(2,))
    result = ClassicalDfF().estimate(stack)
    assert result.depth_m.shape == (H, W) and result.depth_m.dtype == np.float32
    assert result.confidence.shape == (H, W) and result.confidence.dtype == np.float32
    assert result.all_in_focus.shape == (H, W, 3) and result.all_in_focus.dtype == np.uint8
    assert np.all((result.confidence >= 0) & (result.confidence <= 1))
    nan = np.isnan(result.depth_m)
    assert nan.any() and (~nan).any()
    assert np.all(result.confidence[nan] == 0)
    assert np.all(result.confidence[~nan] >= ClassicalConfig().confidence_threshold)
    assert np.all(result.depth_m[~nan] > 0)


@pytest.mark.parametrize("noise_grey", [0.0, 2.0, 4.0])
def test_classical_gives_no_depth_on_textureless_surface(noise_grey: float) -> None:
    stack, _ = _strip_stack(DEPTHS_M, FOCUS_M, noise_grey=noise_grey, flat_strips=(1, 3))
    result = ClassicalDfF().estimate(stack)
    for i in (1, 3):
        assert np.isnan(_strip(result.depth_m, i)).all()
        assert (_strip(result.confidence, i) == 0).all()
    # The textured strips next to them keep their depth.
    assert np.isfinite(_strip(result.depth_m, 2)).mean() > 0.9


def test_classical_gives_no_depth_without_defocus() -> None:
    # A pinhole (or a lens that never moved): every slice is the same image, so nothing peaks.
    stack, _ = _strip_stack(DEPTHS_M, FOCUS_M, noise_grey=1.0)
    same = np.repeat(stack.images[2:3], 5, axis=0)
    result = ClassicalDfF().estimate(FocalStack(same, stack.focus_distances_m, stack.intrinsics, stack.optics))
    assert np.isnan(result.depth_m).all()
    assert (result.confidence == 0).all()


def test_classical_gives_no_depth_far_beyond_the_swept_range() -> None:
    # 6 m is 1/6 dioptre; the sweep ends at 0.5 dioptre (2 m) and may extrapolate 0.25 dioptre beyond.
    stack, _ = _strip_stack((0.6, 6.0, 0.9), FOCUS_M, noise_grey=1.0)
    result = ClassicalDfF().estimate(stack)
    assert np.isnan(_strip(result.depth_m, 1)).mean() > 0.95
    assert np.isfinite(_strip(result.depth_m, 0)).mean() > 0.9


def test_classical_all_in_focus_takes_the_sharpest_slice() -> None:
    # Strip depths equal to focus distances 0 (0.4 m), 2 (0.667 m) and 3 (1.0 m).
    depths = (FOCUS_M[0], FOCUS_M[2], FOCUS_M[3])
    stack, _ = _strip_stack(depths, FOCUS_M)
    aif = ClassicalDfF().estimate(stack).all_in_focus
    for i, k in enumerate((0, 2, 3)):
        np.testing.assert_array_equal(_strip(aif, i), _strip(stack.images[k], i))


@pytest.mark.parametrize(
    ("model", "curve"),
    [
        ("lorentzian", lambda s, mu: 1.0 / (0.3 + 2.0 * (s - mu) ** 2) ** 2),
        ("gaussian", lambda s, mu: 3.0 * np.exp(-((s - mu) ** 2) / (2 * 0.35**2))),
        ("parabolic", lambda s, mu: 5.0 - 4.0 * (s - mu) ** 2),
    ],
)
def test_fit_focus_peak_is_exact_for_its_model_with_uneven_slices(model: str, curve: object) -> None:
    s = np.array([0.5, 0.8, 1.5, 1.7, 2.5], dtype=np.float32)  # dioptres, uneven
    mu = np.linspace(0.55, 2.45, 50, dtype=np.float32).reshape(5, 10)
    focus = [np.asarray(curve(sk, mu), dtype=np.float32) for sk in s]  # type: ignore[operator]
    peak = np.argmax(np.stack(focus), axis=0).astype(np.uint8)
    disp, hwhm, ok = fit_focus_peak(focus, peak, s, model, max_extrapolation=0.5)
    assert ok.all()
    np.testing.assert_allclose(disp, mu, atol=2e-4)
    if model == "lorentzian":  # F halves where (0.3 + 2 x**2) grows by sqrt(2)
        np.testing.assert_allclose(hwhm, math.sqrt((math.sqrt(2) - 1) * 0.3 / 2.0), rtol=1e-3)
    if model == "gaussian":
        np.testing.assert_allclose(hwhm, 0.35 * math.sqrt(2 * math.log(2)), rtol=1e-3)


def test_fit_focus_peak_rejects_end_peaks_beyond_the_extrapolation_limit() -> None:
    s = np.array([0.5, 1.0, 1.5, 2.0], dtype=np.float32)
    mu = np.array([[0.3, 0.1, 2.2, 2.4]], dtype=np.float32)  # limits: 0.25 and 2.25 dioptres
    focus = [(1.0 / (0.3 + 2.0 * (sk - mu) ** 2) ** 2).astype(np.float32) for sk in s]
    peak = np.argmax(np.stack(focus), axis=0).astype(np.uint8)
    disp, hwhm, ok = fit_focus_peak(focus, peak, s, "lorentzian", max_extrapolation=0.5)
    np.testing.assert_array_equal(ok, [[True, False, True, False]])
    np.testing.assert_allclose(disp[ok], mu[ok], atol=1e-4)
    assert np.all(np.isinf(hwhm[~ok]))


def test_classical_on_rendered_procedural_scene() -> None:
    """A crop of the simulated camera's scene, rendered by the project's renderer (layered thin lens)."""
    pytest.importorskip("torch")
    from dfdnet_core.renderer import render_stack_uint8
    from dfdnet_core.scene import make_scene

    full = CameraIntrinsics(640, 480, 1333.3, 1333.3, 319.5, 239.5)
    scene = make_scene(640, 480, full, depth_range_m=(0.45, 1.9), seed=3)
    y0, x0, h, w = 150, 200, 180, 240
    rgb = np.ascontiguousarray(scene.rgb[y0 : y0 + h, x0 : x0 + w])
    gt = np.ascontiguousarray(scene.depth_m[y0 : y0 + h, x0 : x0 + w])
    images = render_stack_uint8(rgb, gt, FOCUS_M, OPTICS)
    crop = CameraIntrinsics(w, h, 1333.3, 1333.3, 319.5 - x0, 239.5 - y0)
    result = ClassicalDfF().estimate(FocalStack(images, np.array(FOCUS_M), crop, OPTICS))
    metrics = depth_metrics(result.depth_m, gt)
    assert metrics["coverage"] >= 0.65
    assert metrics["abs_rel"] <= 0.06


def test_classical_is_registered_and_satisfies_the_protocol() -> None:
    import dfdnet_core.backend_classical  # noqa: F401  (registers on import)

    assert BACKENDS["classical"] is ClassicalDfF
    estimator = make_estimator("classical", window_px=7)
    assert isinstance(estimator, ClassicalDfF) and isinstance(estimator, DepthEstimator)
    assert estimator.name == "classical"
    assert estimator.config.window_px == 7


def test_classical_raises_on_too_few_slices() -> None:
    stack, _ = _strip_stack(DEPTHS_M, FOCUS_M)
    two = FocalStack(stack.images[:2], stack.focus_distances_m[:2], stack.intrinsics, stack.optics)
    with pytest.raises(StackError, match="needs 3 to 255 slices, got 2"):
        ClassicalDfF().estimate(two)


def test_classical_raises_on_repeated_focus_distance() -> None:
    stack, _ = _strip_stack(DEPTHS_M, FOCUS_M)
    focus = stack.focus_distances_m.copy()
    focus[3] = focus[1]
    with pytest.raises(StackError, match="focus distances must be distinct"):
        ClassicalDfF().estimate(FocalStack(stack.images, focus, stack.intrinsics, stack.optics))


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"focus_measure": "variance"}, "focus_measure must be one of"),
        ({"peak_model": "spline"}, "peak_model must be one of"),
        ({"window_px": 8}, "window_px must be odd, got 8"),
        ({"window_px": 0}, "window_px must be an odd integer in \\[1, 63\\], got 0"),
        ({"median_px": 7}, "median_px must be 1 \\(off\\), 3 or 5, got 7"),
        ({"confidence_threshold": 1.5}, "confidence_threshold must be a number in \\[0.0, 1.0\\], got 1.5"),
        ({"presmooth_px": -1.0}, "presmooth_px must be a number in"),
        ({"max_extrapolation": float("nan")}, "max_extrapolation must be a number in"),
        ({"noise_floor_factor": -0.5}, "noise_floor_factor must be a number in"),
        ({"resolution_scale": 0.0}, "resolution_scale must be a number in \\[0.01, 100.0\\], got 0.0"),
    ],
)
def test_classical_config_raises_on_invalid_values(options: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ClassicalConfig(**options)  # type: ignore[arg-type]


def test_classical_raises_on_unknown_option_and_on_config_plus_options() -> None:
    with pytest.raises(ConfigError, match="unknown classical backend option\\(s\\) \\['windw_px'\\]"):
        ClassicalDfF(windw_px=9)
    with pytest.raises(ConfigError, match="give either a ClassicalConfig or options"):
        ClassicalDfF(ClassicalConfig(), window_px=9)


def test_tenengrad_measure_also_recovers_depth() -> None:
    stack, _ = _strip_stack(DEPTHS_M, FOCUS_M, noise_grey=1.0)
    result = ClassicalDfF(focus_measure="tenengrad").estimate(stack)
    for i, d in enumerate(DEPTHS_M[:4]):
        assert np.nanmedian(_strip(result.depth_m, i)) == pytest.approx(d, rel=0.06)
