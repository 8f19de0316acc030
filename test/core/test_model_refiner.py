"""The full-resolution refiner of a prior DfDNet (dfdnet_core.model.refiner) and training only it."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dfdnet_core.errors import ConfigError, StackError
from dfdnet_core.evaluation import EvalConfig, EvalItem, RenderProtocol, prepare_rgbd
from dfdnet_core.model import DfDNet
from dfdnet_core.model.checkpoint import load_checkpoint, save_checkpoint
from dfdnet_core.model.refiner import REFINER_DILATIONS, PriorRefiner
from dfdnet_core.training.config import load_train_config
from dfdnet_core.training.loop import freeze_all_but, train
from dfdnet_core.training.pretrained import init_from_pretrained
from dfdnet_core.training_samples import ProceduralRgbd
from micro_model import MICRO

PRIOR_MICRO = dataclasses.replace(MICRO, depth_prior="classical")
REFINED_MICRO = dataclasses.replace(PRIOR_MICRO, refiner_channels=8)
SMOKE = Path(__file__).resolve().parents[2] / "configs" / "train_smoke.yaml"

pytestmark = pytest.mark.usefixtures("two_torch_threads")


@pytest.fixture(scope="module")
def item() -> EvalItem:
    """A procedural evaluation scene rendered with the benchmark protocol (f/1.4, 5 slices, adaptive focus)."""
    scene = ProceduralRgbd(1, (96, 128), seed=1, split="eval")[0]
    return prepare_rgbd(scene, EvalConfig(render=RenderProtocol(f_number=1.4, n_slices=5)))


def _perturbed(model: DfDNet, prefix: str, seed: int) -> DfDNet:
    """``model`` with every parameter under ``prefix`` moved by noise of about its own fan-in scale."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.startswith(prefix):
                fan_in = param[0].numel() if param.dim() > 1 else 1
                param.add_(0.5 * torch.randn(param.shape, generator=gen) / math.sqrt(fan_in))
    return model.eval()


def _infer(model: DfDNet, item: EvalItem, order: np.ndarray | None = None) -> np.ndarray:
    stack = item.stack
    order = np.arange(len(stack.focus_distances_m)) if order is None else order
    return model.infer_stack(
        stack.images[order], stack.focus_distances_m[order], intrinsics=stack.intrinsics, optics=stack.optics
    )


def _refiner_inputs(focus_canonical: torch.Tensor, defocus_scale: torch.Tensor, h: int, w: int) -> dict:
    """Random refiner inputs for B = len(defocus_scale) stacks of N = focus_canonical.shape[1] images of h x w."""
    b, n = focus_canonical.shape
    return {
        "images": torch.randn(b, n, 3, h, w),
        "focus_canonical": focus_canonical,
        "prior": torch.cat((torch.rand(b, 1, h, w) + 0.5, torch.rand(b, 1, h, w)), 1),
        "depth": torch.rand(b, 1, h, w) + 0.5,
        "sharpness": torch.rand(b, n, h, w),
        "defocus_scale": defocus_scale,
        "corrections": torch.randn(b, 2, h, w) * 0.1,
        "log_correction": torch.randn(b, 1, h, w) * 0.1,
    }


def test_a_model_gains_a_refiner_without_changing_what_it_computes(item: EvalItem, tmp_path: Path) -> None:
    base = _perturbed(DfDNet(PRIOR_MICRO), "", seed=0)
    save_checkpoint(base, tmp_path / "base.safetensors")
    refined = DfDNet(REFINED_MICRO).eval()
    report = init_from_pretrained(refined, tmp_path / "base.safetensors")
    assert report.untouched and all(key.startswith("refiner.") for key in report.untouched)
    np.testing.assert_array_equal(_infer(refined, item), _infer(base, item))


def test_a_trained_refiner_changes_depth_independently_of_slice_order_and_count(item: EvalItem) -> None:
    model = _perturbed(_perturbed(DfDNet(REFINED_MICRO), "refiner.", seed=1), "depth_head.", seed=2)
    without = dataclasses.replace(REFINED_MICRO, refiner_channels=0)
    plain = DfDNet(without).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("refiner.")})
    a = _infer(model, item)
    assert np.all(np.isfinite(a)) and np.all(a > 0)
    assert np.abs(np.log(a / _infer(plain, item))).max() > 1e-3  # the refiner contributes
    np.testing.assert_allclose(_infer(model, item, np.array([2, 4, 0, 3, 1])), a, rtol=1e-4)
    for keep in ([0, 2, 4], [0, 1, 2, 3, 4, 0, 2, 4]):  # 3 slices, and 8 (with repeats)
        depth = _infer(model, item, np.array(keep))
        assert depth.shape == a.shape and np.all(np.isfinite(depth)) and np.all(depth > 0)


def test_the_refiner_works_at_full_resolution_within_its_receptive_field() -> None:
    torch.manual_seed(0)
    refiner = PriorRefiner(8)
    torch.nn.init.normal_(refiner.out.weight, std=0.5)
    inputs = _refiner_inputs(torch.tensor([[0.5, 1.0, 2.0, 4.0]]), torch.tensor([3.0]), 24, 200)
    inputs["prior"][:, :1] = 1.5
    inputs["depth"].fill_(1.2)
    with torch.no_grad():
        before = refiner(**inputs)
        inputs["sharpness"][0, 1, 12, 100] += 0.5  # one pixel of one slice
        after = refiner(**inputs)
    changed = (after - before).abs()[0, 0].amax(dim=0) > 0
    reach = 1 + sum(REFINER_DILATIONS)  # the stem's 3x3 reaches 1 px, a 3x3 with dilation d reaches d px
    columns = torch.nonzero(changed).flatten()
    assert changed[100] and changed[99] and changed[101]  # the neighbours at full resolution
    assert int(columns.min()) >= 100 - reach and int(columns.max()) <= 100 + reach
    assert int(columns.max()) - int(columns.min()) > reach  # and it reaches well beyond a 3x3


def test_each_stack_of_a_batch_is_refined_on_its_own_with_its_own_blur_scale() -> None:
    torch.manual_seed(1)
    refiner = PriorRefiner(8)
    torch.nn.init.normal_(refiner.out.weight, std=0.5)
    b, h, w = 2, 20, 28
    inputs = _refiner_inputs(torch.tensor([[0.5, 1.0, 2.0], [0.8, 1.1, 3.0]]), torch.tensor([2.0, 15.0]), h, w)
    with torch.no_grad():
        batch = refiner(**inputs)
        singles = [refiner(**{k: v[i:i + 1] for k, v in inputs.items()}) for i in range(b)]
        swapped_scale = refiner(**{**inputs, "defocus_scale": inputs["defocus_scale"].flip(0)})
    assert batch.shape == (b, 1, h, w)
    for i in range(b):
        torch.testing.assert_close(batch[i:i + 1], singles[i], rtol=1e-5, atol=1e-6)
    assert (swapped_scale - batch).abs().amax() > 1e-3  # k matters, per stack


def test_refiner_config_is_validated_and_survives_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs a depth prior"):
        dataclasses.replace(MICRO, refiner_channels=8)
    with pytest.raises(ConfigError, match="refiner_channels must be an integer"):
        dataclasses.replace(PRIOR_MICRO, refiner_channels=-1)
    model = _perturbed(DfDNet(REFINED_MICRO), "refiner.", seed=3)
    save_checkpoint(model, tmp_path / "m.safetensors")
    loaded = load_checkpoint(tmp_path / "m.safetensors")
    assert loaded.config.refiner_channels == 8
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_freeze_all_but_leaves_only_the_named_parameters_trainable() -> None:
    model = DfDNet(REFINED_MICRO)
    count = freeze_all_but(model, ("refiner.",))
    assert count == sum(p.numel() for p in model.refiner.parameters())
    assert all(p.requires_grad == n.startswith("refiner.") for n, p in model.named_parameters())
    with pytest.raises(ConfigError, match="matches no parameter"):
        freeze_all_but(model, ("decoder.",))


def test_training_only_the_refiner_changes_nothing_else(tmp_path: Path) -> None:
    first = load_train_config(SMOKE, out_dir=str(tmp_path / "a"), max_steps=2, depth_prior="classical",
                              n_slices=(3, 4), validate_every_steps=0)
    train(first, progress=False)
    base = load_checkpoint(tmp_path / "a" / "model.safetensors")
    second = dataclasses.replace(first, out_dir=str(tmp_path / "b"), max_steps=3, refiner_channels=4,
                                 init_checkpoint=str(tmp_path / "a" / "model.safetensors"),
                                 train_only=("refiner.",), learning_rate=1e-2)
    train(second, progress=False)
    refined = load_checkpoint(tmp_path / "b" / "model.safetensors")
    assert refined.config.refiner_channels == 4
    ours = refined.state_dict()
    for key, value in base.state_dict().items():
        assert torch.equal(ours[key], value), key
    assert ours["refiner.out.weight"].abs().sum() > 0  # the zero-initialised output layer moved


def test_a_refiner_model_without_the_lens_optics_fails_clearly(item: EvalItem) -> None:
    model = DfDNet(REFINED_MICRO).eval()
    stack = item.stack
    with pytest.raises(StackError, match="needs the lens optics"):
        model.infer_stack(stack.images, stack.focus_distances_m, intrinsics=stack.intrinsics)
    images, focus = torch.zeros(1, 3, 3, 28, 28), torch.tensor([[0.5, 1.0, 2.0]])
    prior, sharpness = torch.ones(1, 2, 28, 28), torch.ones(1, 3, 28, 28)
    with pytest.raises(StackError, match="needs defocus_scale"):
        model(images, focus, prior, sharpness)
    assert model(images, focus, prior, sharpness, torch.tensor([2.0])).shape == (1, 1, 28, 28)
