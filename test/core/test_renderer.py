"""Thin-lens focal-stack renderer (dfdnet_core.renderer): blur size against eq. 1, exactness, holes, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.errors import ConfigError, OpticsError
from dfdnet_core.optics import LensOptics, coc_radius_px, disparity_uniform_focus_m
from dfdnet_core.renderer import render_focal_stack, render_stack_uint8
from dfdnet_core.scene import make_scene

torch.set_num_threads(2)

SIM = LensOptics(focal_length_m=0.008, f_number=1.4, pixel_pitch_m=6e-6)
MODES = [{"mode": "gather"}, {"mode": "layered"}]


def _plane(h: int, w: int, depth_m: float) -> torch.Tensor:
    return torch.full((1, 1, h, w), depth_m)


def _focus(*values: float) -> torch.Tensor:
    return torch.tensor([list(values)], dtype=torch.float64)


def _gg_second_moment(c_px: float, p: float) -> float:
    """E[r^2] of the 2-D PSF exp(-2 (r/c)^p) (continuous): c^2 * Gamma(4/p) / (Gamma(2/p) * 2^(2/p))."""
    return c_px**2 * math.gamma(4.0 / p) / (math.gamma(2.0 / p) * 2.0 ** (2.0 / p))


@pytest.mark.parametrize("kwargs", MODES)
def test_point_source_spreads_with_the_coc_predicted_by_eq1(kwargs: dict[str, str]) -> None:
    # A plane at 1.0 m seen focused at 0.4 m: eq. 1 predicts r = 5.83 px, i.e. a Gaussian with sigma = r / 2.
    size = 41
    rgb = torch.zeros((1, 3, size, size))
    rgb[0, :, size // 2, size // 2] = 1.0
    c_px = coc_radius_px(1.0, 0.4, SIM)
    out = render_focal_stack(rgb, _plane(size, size, 1.0), _focus(0.4), SIM, **kwargs).stack[0, 0, 0].double()
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    r2 = (yy - size // 2) ** 2 + (xx - size // 2) ** 2
    sigma_measured = math.sqrt(float((out * r2).sum() / out.sum()) / 2.0)
    assert sigma_measured == pytest.approx(c_px / 2.0, rel=0.05)
    assert float(out.sum()) == pytest.approx(1.0, rel=1e-3)  # the PSF conserves energy


@pytest.mark.parametrize("kwargs", MODES)
def test_step_edge_spread_matches_the_coc_sigma(kwargs: dict[str, str]) -> None:
    # Focused at 0.5 m, a plane at 2.0 m: r = 5.5 px. The edge profile's derivative (line spread) has variance
    # sigma^2 + 1/12 (unit sampling of a Gaussian CDF).
    h, w = 8, 64
    rgb = torch.zeros((1, 3, h, w))
    rgb[..., w // 2 :] = 1.0
    c_px = coc_radius_px(2.0, 0.5, SIM)
    out = render_focal_stack(rgb, _plane(h, w, 2.0), _focus(0.5), SIM, **kwargs).stack[0, 0, 1, h // 2].double()
    lsf = torch.diff(out)
    x = torch.arange(lsf.numel(), dtype=torch.float64)
    mean = float((lsf * x).sum() / lsf.sum())
    var = float((lsf * (x - mean) ** 2).sum() / lsf.sum())
    assert math.sqrt(var - 1.0 / 12.0) == pytest.approx(c_px / 2.0, rel=0.05)


@pytest.mark.parametrize("p", [4.0, 8.0])
def test_generalised_gaussian_point_source_has_its_second_moment(p: float) -> None:
    size = 41
    rgb = torch.zeros((1, 3, size, size))
    rgb[0, :, size // 2, size // 2] = 1.0
    c_px = coc_radius_px(1.0, 0.4, SIM)
    for mode in ("gather", "layered"):
        out = render_focal_stack(
            rgb, _plane(size, size, 1.0), _focus(0.4), SIM, mode=mode, psf="generalised_gaussian", psf_exponent=p
        ).stack[0, 0, 0].double()
        yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        r2 = (yy - size // 2) ** 2 + (xx - size // 2) ** 2
        m2 = float((out * r2).sum() / out.sum())
        assert m2 == pytest.approx(_gg_second_moment(c_px, p), rel=0.05), mode


@pytest.mark.parametrize("kwargs", MODES)
def test_surface_at_the_focus_distance_stays_sharp(kwargs: dict[str, str]) -> None:
    gen = torch.Generator().manual_seed(3)
    rgb = torch.rand((1, 3, 24, 32), generator=gen)
    out = render_focal_stack(rgb, _plane(24, 32, 0.8), _focus(0.8, 0.5), SIM, **kwargs).stack
    assert float((out[0, 0] - rgb[0]).abs().max()) < 1e-5
    assert float((out[0, 1] - rgb[0]).abs().max()) > 0.1  # the other slice is blurred


def test_layered_keeps_a_sharp_foreground_free_of_background_blur() -> None:
    # Left half: near plane in focus; right half: far plane, heavily blurred. Occlusion-aware rendering must not
    # leak the blurred background into the sharp foreground.
    gen = torch.Generator().manual_seed(4)
    rgb = torch.rand((1, 3, 20, 40), generator=gen)
    depth = torch.full((1, 1, 20, 40), 5.0)
    depth[..., :20] = 0.5
    out = render_focal_stack(rgb, depth, _focus(0.5), SIM, mode="layered").stack[0, 0]
    assert float((out[..., :20] - rgb[0, :, :, :20]).abs().max()) < 1e-5
    assert float((out[..., 24:] - rgb[0, :, :, 24:]).abs().mean()) > 0.05


@pytest.mark.parametrize("kwargs", [*MODES, {"mode": "gather", "gather_weights": "neighbour"}])
def test_pinhole_returns_the_input_exactly(kwargs: dict[str, str]) -> None:
    gen = torch.Generator().manual_seed(5)
    rgb = torch.rand((2, 3, 12, 16), generator=gen)
    depth = 0.3 + 5 * torch.rand((2, 1, 12, 16), generator=gen)
    pinhole = LensOptics(0.008, math.inf, 6e-6)
    out = render_focal_stack(rgb, depth, torch.tensor([[0.4, 1.0, 3.0]] * 2), pinhole, **kwargs)
    assert out.stack.shape == (2, 3, 3, 12, 16) and out.stack.dtype == torch.float32
    assert torch.equal(out.stack, rgb[:, None].expand(-1, 3, -1, -1, -1))


def _reference_gather(rgb: np.ndarray, coc: np.ndarray, p: float, radius: int) -> np.ndarray:
    """Straightforward double loop: each pixel = normalised sum over its window with the OUTPUT pixel's PSF."""
    _, h, w = rgb.shape
    out = np.zeros_like(rgb, dtype=np.float64)
    for y in range(h):
        for x in range(w):
            num = np.zeros(3)
            den = 0.0
            c = max(float(coc[y, x]), 1e-12)
            for dy in range(-radius, radius + 1):
                for dx in range(-radius, radius + 1):
                    if 0 <= y + dy < h and 0 <= x + dx < w:
                        wgt = math.exp(-2.0 * (math.hypot(dy, dx) / c) ** p)
                        num += wgt * rgb[:, y + dy, x + dx]
                        den += wgt
            out[:, y, x] = num / den
    return out


def _reference_fossa(rgb: np.ndarray, coc: np.ndarray, p: float, radius: int) -> np.ndarray:
    """FOSSA's CUDA kernel as ARCHITECTURE.md section 7 describes it (neighbour's own CoC, sharp pixels skipped)."""
    _, h, w = rgb.shape
    out = rgb.astype(np.float64).copy()
    for y in range(h):
        for x in range(w):
            if coc[y, x] <= 1.0:
                continue
            num = np.zeros(3)
            den = 0.0
            for dy in range(-radius, radius + 1):
                for dx in range(-radius, radius + 1):
                    qy, qx = y + dy, x + dx
                    if 0 <= qy < h and 0 <= qx < w and coc[qy, qx] > 1.0:
                        cq = float(coc[qy, qx])
                        wgt = cq**-2 * math.exp(-2.0 * ((dy * dy + dx * dx) / cq**2) ** (p / 2.0))
                        num += wgt * rgb[:, qy, qx]
                        den += wgt
            out[:, y, x] = num / den
    return out


@pytest.mark.parametrize(("psf", "p"), [("gaussian", 2.0), ("generalised_gaussian", 5.0)])
def test_gather_matches_a_double_loop_reference(psf: str, p: float) -> None:
    gen = torch.Generator().manual_seed(6)
    h, w = 14, 18
    rgb = torch.rand((1, 3, h, w), generator=gen)  # white noise: the hardest case for interpolation
    depth = 0.35 + 2.0 * torch.rand((1, 1, h, w), generator=gen)
    focus = _focus(0.4, 1.2)
    result = render_focal_stack(rgb, depth, focus, SIM, mode="gather", psf=psf, psf_exponent=p, window_radius_px=6)
    for n in range(2):
        coc = result.coc_radius_px[0, n, 0].numpy()
        assert coc.max() > 3.0  # the test covers real blur
        want = _reference_gather(rgb[0].double().numpy(), coc, p, radius=6)
        np.testing.assert_allclose(result.stack[0, n].numpy(), want, atol=1e-3, rtol=0)


def test_gather_neighbour_weights_reproduce_fossa_kernel() -> None:
    gen = torch.Generator().manual_seed(7)
    h, w = 14, 18
    rgb = torch.rand((1, 3, h, w), generator=gen)
    depth = 0.35 + 2.0 * torch.rand((1, 1, h, w), generator=gen)
    result = render_focal_stack(
        rgb, depth, _focus(0.45), SIM, mode="gather", gather_weights="neighbour", window_radius_px=7
    )
    coc = result.coc_radius_px[0, 0, 0].numpy()
    assert (coc <= 1.0).any() and (coc > 3.0).any()
    want = _reference_fossa(rgb[0].double().numpy(), coc, 2.0, radius=7)
    np.testing.assert_allclose(result.stack[0, 0].numpy(), want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kwargs", MODES)
def test_holes_are_masked_rendered_at_hole_depth_and_deterministic(kwargs: dict[str, str]) -> None:
    gen = torch.Generator().manual_seed(8)
    rgb = torch.rand((1, 3, 16, 20), generator=gen)
    depth = 0.5 + torch.rand((1, 1, 16, 20), generator=gen)
    holes = torch.zeros_like(depth, dtype=torch.bool)
    for (y, x), value in zip([(2, 3), (5, 5), (9, 12), (15, 19)], [0.0, math.nan, math.inf, -1.0], strict=True):
        depth[0, 0, y, x] = value
        holes[0, 0, y, x] = True
    first = render_focal_stack(rgb, depth, _focus(0.4, 2.0), SIM, hole_depth_m=1000.0, **kwargs)
    second = render_focal_stack(rgb, depth, _focus(0.4, 2.0), SIM, hole_depth_m=1000.0, **kwargs)
    filled = torch.where(holes, torch.full_like(depth, 1000.0), depth)
    explicit = render_focal_stack(rgb, filled, _focus(0.4, 2.0), SIM, **kwargs)
    assert first.valid_mask.dtype == torch.bool and torch.equal(first.valid_mask, ~holes)
    assert torch.equal(first.stack, second.stack)
    assert torch.equal(first.stack, explicit.stack)
    assert bool(torch.isfinite(first.stack).all())


@pytest.mark.parametrize("kwargs", MODES)
def test_batch_items_render_independently(kwargs: dict[str, str]) -> None:
    gen = torch.Generator().manual_seed(9)
    rgb = torch.rand((2, 3, 12, 14), generator=gen)
    depth = 0.4 + 1.5 * torch.rand((2, 1, 12, 14), generator=gen)
    focus = torch.tensor([[0.4, 1.0], [0.6, 2.0]])
    both = render_focal_stack(rgb, depth, focus, SIM, **kwargs).stack
    for i in range(2):
        one = render_focal_stack(rgb[i : i + 1], depth[i : i + 1], focus[i : i + 1], SIM, **kwargs).stack
        assert float((both[i] - one[0]).abs().max()) < 1e-5


def test_render_stack_uint8_matches_the_tensor_renderer_and_changes_between_slices() -> None:
    intr = CameraIntrinsics(640, 480, 1333.3, 1333.3, 319.5, 239.5)
    scene = make_scene(640, 480, intr, depth_range_m=(0.45, 1.9), seed=2)
    rgb, depth = scene.rgb[200:296, 280:408], scene.depth_m[200:296, 280:408]  # crop keeps the test fast
    focus = disparity_uniform_focus_m(0.4, 2.0, 5)
    stack = render_stack_uint8(rgb, depth, focus, SIM)
    assert stack.shape == (5, 96, 128, 3) and stack.dtype == np.uint8
    rgb_t = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0
    ref = render_focal_stack(rgb_t, torch.from_numpy(depth)[None, None], _focus(*focus), SIM, mode="layered")
    ref_u8 = (ref.stack[0] * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.abs(stack.astype(int) - ref_u8.astype(int)).max() <= 1
    steps = [np.abs(stack[i].astype(float) - stack[i + 1].astype(float)).mean() for i in range(4)]
    assert min(steps) > 1.0  # adjacent slices differ visibly (grey levels, mean over the crop)


def test_render_stack_uint8_rejects_bad_arrays() -> None:
    rgb = np.zeros((8, 8, 3), np.uint8)
    depth = np.ones((8, 8), np.float32)
    with pytest.raises(ConfigError, match=r"rgb_uint8 must be \(H, W, 3\) uint8, got \(8, 8, 3\) float32"):
        render_stack_uint8(rgb.astype(np.float32), depth, [1.0], SIM)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"depth_m must have shape \(8, 8\), got \(8, 7\)"):
        render_stack_uint8(rgb, depth[:, :7], [1.0], SIM)
    with pytest.raises(ConfigError, match="focus_distances_m must hold at least one distance"):
        render_stack_uint8(rgb, depth, [], SIM)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"mode": "scatter"}, ConfigError, r"mode must be one of \('gather', 'layered'\), got 'scatter'"),
        ({"psf": "disc"}, ConfigError, "psf must be one of .*got 'disc'"),
        ({"gather_weights": "input"}, ConfigError, "gather_weights must be one of .*got 'input'"),
        ({"psf_exponent": 4.0}, ConfigError, "psf='gaussian' has exponent 2.*psf_exponent=4.0"),
        ({"psf": "generalised_gaussian", "psf_exponent": -1.0}, ConfigError, "psf_exponent must be .* got -1.0"),
        ({"hole_depth_m": 0.0}, OpticsError, "hole_depth_m must be a positive finite number of metres, got 0.0"),
        ({"window_radius_px": -1}, ConfigError, "window_radius_px must be None or an integer >= 0, got -1"),
        ({"num_layers": 0}, ConfigError, "num_layers must be an integer >= 1, got 0"),
    ],
)
def test_render_focal_stack_rejects_bad_options(kwargs: dict[str, object], error: type, match: str) -> None:
    rgb = torch.zeros((1, 3, 4, 4))
    with pytest.raises(error, match=match):
        render_focal_stack(rgb, _plane(4, 4, 1.0), _focus(1.0), SIM, **kwargs)  # type: ignore[arg-type]


def test_render_focal_stack_rejects_bad_shapes_and_focus() -> None:
    rgb = torch.zeros((1, 3, 4, 4))
    with pytest.raises(ConfigError, match=r"rgb must be a \(B, 3, H, W\) float tensor, got shape \(3, 4, 4\)"):
        render_focal_stack(rgb[0], _plane(4, 4, 1.0), _focus(1.0), SIM)
    with pytest.raises(ConfigError, match=r"depth_m must have shape \(1, 1, 4, 4\), got \(1, 1, 4, 5\)"):
        render_focal_stack(rgb, _plane(4, 5, 1.0), _focus(1.0), SIM)
    with pytest.raises(ConfigError, match=r"focus_distances_m must have shape \(1, N>=1\), got \(2,\)"):
        render_focal_stack(rgb, _plane(4, 4, 1.0), torch.tensor([1.0, 2.0]), SIM)
    with pytest.raises(ConfigError, match="depth_m must be a torch.Tensor, got ndarray"):
        render_focal_stack(rgb, np.ones((1, 1, 4, 4)), _focus(1.0), SIM)  # type: ignore[arg-type]
    with pytest.raises(OpticsError, match=r"must be > the focal length 0.008 m \(inf allowed\), got \[0.005\]"):
        render_focal_stack(rgb, _plane(4, 4, 1.0), _focus(0.005), SIM)
