"""The classical depth prior of DfDNet ``depth_prior="classical"`` and the model built around it."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from dfdnet_core.backend_classical import ClassicalDfF
from dfdnet_core.errors import ConfigError, StackError
from dfdnet_core.evaluation import EvalConfig, EvalItem, RenderProtocol, prepare_rgbd
from dfdnet_core.model import DfDNet
from dfdnet_core.model.dfdnet import PRIOR_MAX_LOG_CORRECTION
from dfdnet_core.model.prior import classical_prior, prior_input, relative_sharpness
from dfdnet_core.training_samples import ProceduralRgbd, SampleRecipe, make_training_sample
from micro_model import MICRO

PRIOR_MICRO = dataclasses.replace(MICRO, depth_prior="classical")


pytestmark = pytest.mark.usefixtures("two_torch_threads")


@pytest.fixture(scope="module")
def item() -> EvalItem:
    """A procedural evaluation scene rendered with the benchmark protocol (f/1.4, 5 slices, adaptive focus)."""
    scene = ProceduralRgbd(1, (96, 128), seed=0, split="eval")[0]
    return prepare_rgbd(scene, EvalConfig(render=RenderProtocol(f_number=1.4, n_slices=5)))


def test_prior_is_the_classical_depth_with_its_holes_filled_from_confident_pixels(item: EvalItem) -> None:
    stack = item.stack
    classical = ClassicalDfF().estimate(stack)
    depth, confidence = classical_prior(stack.images, stack.focus_distances_m)
    confident = np.isfinite(classical.depth_m)
    assert 0.2 < confident.mean() < 1.0  # the scene has both, so the fill is exercised
    np.testing.assert_array_equal(depth[confident], classical.depth_m[confident])
    np.testing.assert_array_equal(confidence, classical.confidence)
    assert np.all(np.isfinite(depth)) and np.all(depth > 0)
    assert np.all(confidence[~confident] == 0)
    # Every filled value is a depth the classical estimator gave somewhere.
    assert np.isin(depth[~confident], classical.depth_m[confident]).all()


@pytest.mark.parametrize("n", [2, 3])
def test_a_stack_without_classical_depth_gets_a_flat_prior_at_the_mean_disparity(n: int) -> None:
    images = np.full((n, 40, 50, 3), 128, np.uint8)  # no texture: classical finds no peak (or needs 3 slices)
    focus = np.array([0.5, 1.0, 2.0][:n])
    depth, confidence = classical_prior(images, focus)
    np.testing.assert_allclose(depth, math.exp(np.log(focus).mean()), rtol=1e-6)
    assert np.all(confidence == 0)
    kappa = 1.7
    np.testing.assert_allclose(prior_input(images, focus, kappa)[0], depth * kappa, rtol=1e-6)


def test_a_fresh_prior_model_returns_its_prior(item: EvalItem) -> None:
    model = DfDNet(PRIOR_MICRO).eval()
    stack = item.stack
    depth = model.infer_stack(stack.images, stack.focus_distances_m, intrinsics=stack.intrinsics)
    prior, _ = classical_prior(stack.images, stack.focus_distances_m)
    np.testing.assert_allclose(depth, prior, rtol=1e-5)


def _randomised_prior_model(seed: int = 0) -> DfDNet:
    torch.manual_seed(seed)
    model = DfDNet(PRIOR_MICRO).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.3 * torch.randn(param.shape) / math.sqrt(param[0].numel() if param.dim() > 1 else 1.0))
    return model


def test_the_log_correction_is_bounded_and_active_once_trained_weights_are_non_zero(item: EvalItem) -> None:
    model = _randomised_prior_model()
    stack = item.stack
    depth = model.infer_stack(stack.images, stack.focus_distances_m, intrinsics=stack.intrinsics)
    prior, _ = classical_prior(stack.images, stack.focus_distances_m)
    log_ratio = np.log(depth / prior)
    assert np.abs(log_ratio).max() <= PRIOR_MAX_LOG_CORRECTION + 1e-5
    assert np.abs(log_ratio).max() > 1e-3  # the network contributes


def test_prior_model_output_does_not_depend_on_the_slice_order(item: EvalItem) -> None:
    model = _randomised_prior_model(seed=1)
    stack = item.stack
    order = np.array([3, 0, 4, 2, 1])
    a = model.infer_stack(stack.images, stack.focus_distances_m, intrinsics=stack.intrinsics)
    b = model.infer_stack(stack.images[order], stack.focus_distances_m[order], intrinsics=stack.intrinsics)
    np.testing.assert_allclose(a, b, rtol=1e-4)


def test_forward_demands_prior_and_sharpness_exactly_when_the_model_uses_them() -> None:
    images, focus = torch.zeros(1, 3, 3, 28, 28), torch.tensor([[0.5, 1.0, 2.0]])
    prior, sharpness = torch.ones(1, 2, 28, 28), torch.ones(1, 3, 28, 28)
    model = DfDNet(PRIOR_MICRO)
    with pytest.raises(StackError, match="needs a prior and sharpness"):
        model(images, focus)
    with pytest.raises(StackError, match="needs a prior and sharpness"):
        model(images, focus, prior)
    with pytest.raises(StackError, match="takes no prior"):
        DfDNet(dataclasses.replace(PRIOR_MICRO, depth_prior="none"))(images, focus, prior, sharpness)
    with pytest.raises(StackError, match=r"prior must be \(B, 2, H, W\)"):
        model(images, focus, prior[:, :1], sharpness)
    with pytest.raises(StackError, match=r"sharpness must be \(B, N, H, W\)"):
        model(images, focus, prior, sharpness[:, :2])
    assert model(images, focus, prior, sharpness).shape == (1, 1, 28, 28)


def test_relative_sharpness_is_one_on_the_sharpest_slice_and_lower_elsewhere(item: EvalItem) -> None:
    sharp = relative_sharpness(item.stack.images)
    assert sharp.shape == item.stack.images.shape[:3] and sharp.dtype == np.float32
    assert sharp.min() >= 0.0 and np.allclose(sharp.max(axis=0), 1.0)
    # Where the classical estimator is confident, the slices' sharpness really differs.
    confident = np.isfinite(ClassicalDfF().estimate(item.stack).depth_m)
    assert np.median(sharp.min(axis=0)[confident]) < 0.8


def test_model_config_rejects_an_unknown_prior() -> None:
    with pytest.raises(ConfigError, match="depth_prior must be one of"):
        dataclasses.replace(PRIOR_MICRO, depth_prior="lidar")


def test_a_prior_model_differs_only_in_input_channels_and_head_outputs() -> None:
    plain = DfDNet(dataclasses.replace(PRIOR_MICRO, depth_prior="none")).state_dict()
    prior = DfDNet(PRIOR_MICRO).state_dict()
    assert plain.keys() == prior.keys()
    changed = {k for k in plain if plain[k].shape != prior[k].shape}
    # 3 + 3 input channels (prior depth, confidence, sharpness) and two log-corrections out.
    assert changed == {
        "pretrained.patch_embed.proj.weight",
        "depth_head.scratch.output_conv2.2.weight",
        "depth_head.scratch.output_conv2.2.bias",
    }
    assert prior["pretrained.patch_embed.proj.weight"].shape[1] == 6
    assert prior["depth_head.scratch.output_conv2.2.weight"].shape[0] == 2


def test_adaptive_training_focus_follows_the_scene_depth() -> None:
    scene = ProceduralRgbd(1, (96, 128), seed=7)[0]
    recipe = SampleRecipe(f_numbers=(1.4,), n_slices=5, adaptive_focus_probability=1.0, crop_size_px=(80, 112))
    fixed = dataclasses.replace(recipe, adaptive_focus_probability=0.0)
    for seed in range(4):
        sample = make_training_sample(scene, recipe, torch.Generator().manual_seed(seed))
        valid = sample.depth_m[sample.mask]
        disparity = 1.0 / sample.focus_distances_m.double()
        low, high = np.quantile(1.0 / valid.double().numpy(), [0.02, 0.98])
        assert disparity.min() >= low * (1 - 0.05 - 1e-6) and disparity.max() <= high * (1 + 0.05 + 1e-6)
        other = make_training_sample(scene, fixed, torch.Generator().manual_seed(seed))
        # Only the focus distances differ: every other draw is the same.
        torch.testing.assert_close(other.all_in_focus, sample.all_in_focus)
        assert not torch.equal(other.focus_distances_m, sample.focus_distances_m)
