"""DfDNet behaviour: any N, permutation invariance, canonical depth, size table, config checks."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.errors import ConfigError, StackError
from dfdnet_core.model import (
    SIZES,
    DfDNet,
    ModelConfig,
    config_for_size,
    count_parameters,
    network_input_size,
)
from dfdnet_core.model.canonical import canonical_scale, prepare_stack
from micro_model import MICRO

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


pytestmark = pytest.mark.usefixtures("two_torch_threads")


def randomised(config: ModelConfig | str, seed: int = 0) -> DfDNet:
    """Build a model whose every parameter is random (so the stack modules are active too)."""
    torch.manual_seed(seed)
    model = DfDNet(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            z = torch.randn(param.shape)
            if param.dim() >= 2:
                param.copy_(z / math.sqrt(param[0].numel()))
            elif name.endswith("bias"):
                param.copy_(0.1 * z)
            else:
                param.copy_(1.0 + 0.1 * z)
    return model


def random_stack(
    n: int, height: int, width: int, seed: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = torch.randn((1, n, 3, height, width), generator=g)
    focus = 0.3 + 3.0 * torch.rand((1, n), generator=g)
    return images, focus


@pytest.fixture(scope="module")
def tiny() -> DfDNet:
    return randomised("tiny", seed=3)


@pytest.fixture(scope="module")
def micro() -> DfDNet:
    return randomised(MICRO, seed=5)


def test_tiny_size_meets_cpu_budget() -> None:
    cfg = SIZES["tiny"]
    assert (cfg.embed_dim, cfg.num_heads, cfg.patch_size_px) == (192, 3, 14)
    assert 6 <= cfg.depth <= 8 and 2 <= cfg.num_layers_until_collapse <= 3
    assert count_parameters(DfDNet("tiny")) * 4 <= 25e6  # float32 safetensors <= 25 MB


@pytest.mark.parametrize("n", [1, 3, 5, 8])
def test_tiny_gives_finite_positive_depth_for_any_stack_size(tiny: DfDNet, n: int) -> None:
    rng = np.random.default_rng(n)
    images = rng.integers(0, 256, size=(n, 40, 52, 3), dtype=np.uint8)
    focus_m = np.linspace(0.4, 3.0, n)
    depth_m = tiny.infer_stack(images, focus_m, focal_length_px=45.0)
    assert depth_m.shape == (40, 52) and depth_m.dtype == np.float32
    assert np.all(np.isfinite(depth_m)) and np.all(depth_m > 0)


def test_tiny_output_is_invariant_to_stack_order_but_not_to_focus_pairing(tiny: DfDNet) -> None:
    images, focus = random_stack(5, 48, 60)
    order = torch.tensor([3, 0, 4, 1, 2])
    with torch.inference_mode():
        reference = tiny(images, focus)
        permuted = tiny(images[:, order], focus[:, order])
        focus_only = tiny(images, focus[:, order])
    assert (permuted - reference).abs().max() <= 1e-5
    assert (
        focus_only - reference
    ).abs().max() > 1e-2  # the focus distances are used, paired with frames


def test_batch_of_stacks_equals_stacks_one_at_a_time(micro: DfDNet) -> None:
    a_images, a_focus = random_stack(3, 30, 40, seed=11)
    b_images, b_focus = random_stack(3, 30, 40, seed=12)
    with torch.inference_mode():
        batch = micro(torch.cat((a_images, b_images)), torch.cat((a_focus, b_focus)))
        one = micro(a_images, a_focus)
        two = micro(b_images, b_focus)
    assert (batch - torch.cat((one, two))).abs().max() <= 1e-5
    assert (one - two).abs().max() > 1e-3


def test_max_collapse_is_permutation_invariant_and_differs_from_mean(micro: DfDNet) -> None:
    max_model = DfDNet(dataclasses.replace(MICRO, collapse="max")).eval()
    max_model.load_state_dict(micro.state_dict())
    images, focus = random_stack(4, 30, 40)
    order = torch.tensor([2, 3, 1, 0])
    with torch.inference_mode():
        out_max = max_model(images, focus)
        out_max_permuted = max_model(images[:, order], focus[:, order])
        out_mean = micro(images, focus)
    assert (out_max - out_max_permuted).abs().max() <= 1e-5
    assert (out_max - out_mean).abs().max() > 1e-3


def test_fresh_stack_modules_start_as_identity() -> None:
    model = DfDNet(MICRO)
    tokens = torch.randn(2 * 3, 1 + 16, MICRO.embed_dim)
    focus = torch.rand(2, 3) + 0.5
    with torch.no_grad():
        out = model.pretrained.motion_modules[0](tokens, focus)
    assert torch.equal(out, tokens)


def test_single_image_stack_runs_through_stack_attention(micro: DfDNet) -> None:
    images, focus = random_stack(1, 30, 40)
    with torch.inference_mode():
        out = micro(images, focus)
    assert out.shape == (1, 1, 30, 40) and torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("size", "short_side", "expected"),
    [
        ((126, 168), 518, (518, 700)),  # FOSSA's worked example
        ((168, 126), 518, (700, 518)),
        ((70, 70), 518, (518, 518)),
        ((256, 320), 224, (224, 280)),
        ((480, 640), 224, (224, 308)),  # 298.67 -> 298 -> next multiple of 14
    ],
)
def test_network_input_size(
    size: tuple[int, int], short_side: int, expected: tuple[int, int]
) -> None:
    assert network_input_size(*size, short_side, 14) == expected


def test_position_table_is_used_unchanged_for_the_square_base_size(tiny: DfDNet) -> None:
    side = SIZES["tiny"].input_short_side_px
    assert tiny.pretrained.interpolate_pos_encoding(side, side) is tiny.pretrained.pos_embed


def _cubic_weights(t: float, a: float = -0.75) -> list[float]:
    def near(x: float) -> float:
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: float) -> float:
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def _bicubic_axis_matrix(in_size: int, scale: float) -> np.ndarray:
    """Resampling matrix (out, in): src = (dst + 0.5) / scale - 0.5, clamped borders, A = -0.75."""
    out_size = math.floor(in_size * scale)
    matrix = np.zeros((out_size, in_size))
    for dst in range(out_size):
        src = (dst + 0.5) / scale - 0.5
        base = math.floor(src)
        for offset, weight in zip(range(-1, 3), _cubic_weights(src - base), strict=True):
            matrix[dst, min(max(base + offset, 0), in_size - 1)] += weight
    return matrix


@pytest.mark.parametrize(("rows", "cols"), [(16, 20), (12, 16), (20, 16)])
def test_position_table_interpolation_matches_scale_factor_bicubic(
    tiny: DfDNet, rows: int, cols: int
) -> None:
    vit = tiny.pretrained
    grid = SIZES["tiny"].pos_grid_size
    table = vit.pos_embed.detach().numpy()[0]
    patches = table[1:].reshape(grid, grid, -1)
    row_matrix = _bicubic_axis_matrix(grid, (rows + 0.1) / grid)
    col_matrix = _bicubic_axis_matrix(grid, (cols + 0.1) / grid)
    expected = np.einsum("ri,cj,ijk->rck", row_matrix, col_matrix, patches).reshape(rows * cols, -1)
    with torch.no_grad():
        got = vit.interpolate_pos_encoding(rows * 14, cols * 14).numpy()[0]
    assert got.shape == (1 + rows * cols, table.shape[1])
    np.testing.assert_array_equal(got[0], table[0])
    np.testing.assert_allclose(got[1:], expected, atol=1e-5)


def test_infer_stack_feeds_canonical_focus_and_divides_depth_by_kappa(micro: DfDNet) -> None:
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, size=(3, 30, 40, 3), dtype=np.uint8)
    focus_m = np.array([2.0, 0.5, 1.0])
    focal_px = 32.0
    kappa = 40 / focal_px
    normalised = ((images / 255.0 - MEAN) / STD).transpose(0, 3, 1, 2)[None]
    with torch.inference_mode():
        canonical = micro(
            torch.from_numpy(normalised.astype(np.float32)),
            torch.from_numpy((focus_m * kappa).astype(np.float32))[None],
        )[0, 0].numpy()
    depth_m = micro.infer_stack(images, focus_m, focal_length_px=focal_px)
    np.testing.assert_allclose(depth_m, canonical / kappa, rtol=1e-5, atol=1e-6)


def test_infer_stack_depth_scales_with_focus_distances_and_focal_length(micro: DfDNet) -> None:
    """Scaling focus distances and f alike keeps canonical inputs, so metric depth scales too."""
    rng = np.random.default_rng(8)
    images = rng.integers(0, 256, size=(4, 30, 40, 3), dtype=np.uint8)
    focus_m = np.array([0.6, 1.2, 2.4, 4.8])
    near = micro.infer_stack(images, focus_m, focal_length_px=50.0)
    far = micro.infer_stack(images, 3.0 * focus_m, focal_length_px=150.0)
    np.testing.assert_allclose(far, 3.0 * near, rtol=1e-4)


def test_infer_stack_uses_the_larger_focal_length_of_intrinsics(micro: DfDNet) -> None:
    rng = np.random.default_rng(9)
    images = rng.integers(0, 256, size=(2, 30, 40, 3), dtype=np.uint8)
    intrinsics = CameraIntrinsics(40, 30, fx_px=30.0, fy_px=36.0, cx_px=19.5, cy_px=14.5)
    by_intrinsics = micro.infer_stack(images, [0.5, 2.0], intrinsics=intrinsics)
    by_focal = micro.infer_stack(images, [0.5, 2.0], focal_length_px=36.0)
    np.testing.assert_array_equal(by_intrinsics, by_focal)


def test_canonical_scale_worked_example() -> None:
    # W = 640 px, f = 500 px: 1 m is fed as 1.28 and an output of 2.56 means 2 m.
    assert canonical_scale(640, 500.0) == pytest.approx(1.28)
    inputs = prepare_stack(np.zeros((1, 2, 640, 3), np.uint8), [1.0], focal_length_px=500.0)
    assert inputs.focus_canonical.tolist() == [[pytest.approx(1.28)]]
    assert inputs.images.shape == (1, 1, 3, 2, 640) and inputs.images.flags.c_contiguous


GOOD_IMAGES = np.zeros((2, 8, 8, 3), np.uint8)


@pytest.mark.parametrize(
    ("images", "focus_m", "camera", "error", "match"),
    [
        (
            np.zeros((2, 8, 8, 3), np.float32),
            [1.0, 2.0],
            {"focal_length_px": 9.0},
            StackError,
            "uint8 RGB, got dtype float32",
        ),
        (
            np.zeros((2, 8, 8), np.uint8),
            [1.0, 2.0],
            {"focal_length_px": 9.0},
            StackError,
            r"\(N, H, W, 3\).*\(2, 8, 8\)",
        ),
        (np.zeros((0, 8, 8, 3), np.uint8), [], {"focal_length_px": 9.0}, StackError, "N >= 1"),
        (GOOD_IMAGES, [1.0], {"focal_length_px": 9.0}, StackError, r"shape \(2,\).*got \(1,\)"),
        (
            GOOD_IMAGES,
            [1.0, -2.0],
            {"focal_length_px": 9.0},
            StackError,
            r"finite and > 0 m.*-2\.0",
        ),
        (
            GOOD_IMAGES,
            [1.0, np.inf],
            {"focal_length_px": 9.0},
            StackError,
            r"finite and > 0 m.*inf",
        ),
        (GOOD_IMAGES, [1.0, 2.0], {"focal_length_px": 0.0}, ConfigError, r"focal length.*got 0\.0"),
        (GOOD_IMAGES, [1.0, 2.0], {}, ConfigError, "exactly one of focal_length_px and intrinsics"),
        (
            GOOD_IMAGES,
            [1.0, 2.0],
            {"focal_length_px": 9.0, "intrinsics": CameraIntrinsics(8, 8, 9.0, 9.0, 3.5, 3.5)},
            ConfigError,
            "exactly one of focal_length_px and intrinsics",
        ),
        (
            GOOD_IMAGES,
            [1.0, 2.0],
            {"intrinsics": CameraIntrinsics(16, 8, 10.0, 10.0, 7.5, 3.5)},
            StackError,
            "images are 8x8 px but the intrinsics describe 16x8 px",
        ),
    ],
)
def test_prepare_stack_rejects_bad_input(
    images: np.ndarray,
    focus_m: list[float],
    camera: dict[str, object],
    error: type[Exception],
    match: str,
) -> None:
    with pytest.raises(error, match=match):
        prepare_stack(images, focus_m, **camera)  # type: ignore[arg-type]


def test_forward_rejects_mismatched_tensors(micro: DfDNet) -> None:
    with pytest.raises(StackError, match=r"\(B, N, 3, H, W\), got shape \(3, 3, 30, 40\)"):
        micro(torch.zeros(3, 3, 30, 40), torch.ones(1, 3))
    with pytest.raises(StackError, match=r"\(B, N\) = \(1, 3\), got shape \(1, 2\)"):
        micro(torch.zeros(1, 3, 3, 30, 40), torch.ones(1, 2))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"num_heads": 5}, "embed_dim=64 is not divisible by num_heads=5"),
        ({"stack_norm_groups": 12}, "embed_dim=64 is not divisible by stack_norm_groups=12"),
        ({"collapse": "median"}, r"collapse must be one of \('mean', 'max'\), got 'median'"),
        ({"num_layers_until_collapse": 4}, r"num_layers_until_collapse.*\[0, depth-1=3\], got 4"),
        ({"dpt_layers": (0, 2, 1, 3)}, r"dpt_layers must be 4 increasing.*\(0, 2, 1, 3\)"),
        ({"dpt_layers": (0, 1, 2, 4)}, r"dpt_layers must be 4 increasing"),
        (
            {"input_short_side_px": 60},
            "input_short_side_px=60 is not a multiple of patch_size_px=14",
        ),
        ({"dpt_features": 15}, "dpt_features must be even, got 15"),
        ({"depth": 0}, "depth must be a positive integer, got 0"),
        ({"max_depth": -1.0}, r"max_depth must be a positive number, got -1\.0"),
        ({"dpt_out_channels": (8, 16, 32)}, "dpt_out_channels must be 4 positive integers"),
    ],
)
def test_model_config_rejects_invalid_fields(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        dataclasses.replace(MICRO, **changes)


def test_unknown_size_name_is_quoted() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown model size 'huge'; known sizes: \['base', 'small', 'tiny'\]"
    ):
        config_for_size("huge")
    with pytest.raises(ConfigError, match="unknown model size 'huge'"):
        DfDNet("huge")


def test_config_dict_round_trip_and_unknown_key() -> None:
    assert ModelConfig.from_dict(MICRO.to_dict()) == MICRO
    with pytest.raises(ConfigError, match=r"unknown model config key 'dim' in 'cfg\.json'"):
        ModelConfig.from_dict({**MICRO.to_dict(), "dim": 3}, source="'cfg.json'")
    with pytest.raises(ConfigError, match="incomplete model config in <dict>"):
        ModelConfig.from_dict({"embed_dim": 64})


def test_size_table_and_canonical_helpers_import_without_torch() -> None:
    """ONNX / TensorRT back ends use these modules on machines that may have no torch."""
    code = (
        "import sys, dfdnet_core.model.canonical, dfdnet_core.model.sizes\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
