"""The shipped DfDNet (models/dfdnet_tiny.safetensors) on procedural scenes it never trained on.

The scenes come from the evaluation seed range (training draws seeds below it) and are rendered with the benchmark's
protocol (f/1.4, adaptive focus distances). Accuracy figures against the classical back end are a benchmark
(benchmarks/eval_model.py); these tests check that the shipped weights give sensible metric depth for 3, 5 and 8
slices and that they read the focal stack.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dfdnet_core.backend_torch import TorchDfDNet
from dfdnet_core.evaluation import EvalConfig, EvalItem, RenderProtocol, prepare_rgbd
from dfdnet_core.metrics import depth_metrics
from dfdnet_core.model.checkpoint import load_checkpoint
from dfdnet_core.model.prior import classical_prior
from dfdnet_core.training_samples import ProceduralRgbd

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "dfdnet_tiny.safetensors"
SCENES = 4
SIZE_PX = (120, 160)


pytestmark = pytest.mark.usefixtures("two_torch_threads")


@pytest.fixture(scope="module")
def model() -> TorchDfDNet:
    return TorchDfDNet(str(SHIPPED))


def _items(n_slices: int) -> list[EvalItem]:
    config = EvalConfig(render=RenderProtocol(f_number=1.4, n_slices=n_slices))
    return [prepare_rgbd(scene, config) for scene in ProceduralRgbd(SCENES, SIZE_PX, seed=0, split="eval")]


def _abs_rel(depth: np.ndarray, item: EvalItem) -> float:
    assert item.gt_depth_m is not None
    return depth_metrics(depth, item.gt_depth_m)["abs_rel"]


def test_the_shipped_checkpoint_is_small_safe_and_a_prior_model() -> None:
    assert SHIPPED.stat().st_size <= 25e6
    assert SHIPPED.read_bytes()[8:9] == b"{"  # safetensors: 8-byte header length, then a JSON header
    model = load_checkpoint(SHIPPED)
    assert model.config.depth_prior == "classical"


@pytest.mark.parametrize("n_slices", [3, 5, 8])
def test_sensible_metric_depth_for_3_5_and_8_slices(model: TorchDfDNet, n_slices: int) -> None:
    scores = []
    for item in _items(n_slices):
        result = model.estimate(item.stack)
        assert result.depth_m.shape == item.stack.images.shape[1:3]
        assert np.all(np.isfinite(result.depth_m)) and np.all(result.depth_m > 0)
        assert item.gt_depth_m is not None
        scores.append(depth_metrics(result.depth_m, item.gt_depth_m))
    abs_rel = float(np.mean([s["abs_rel"] for s in scores]))
    delta1 = float(np.mean([s["delta_1.25"] for s in scores]))
    assert abs_rel < ABS_REL_LIMIT, f"{n_slices} slices: AbsRel {abs_rel:.3f}"
    assert delta1 > DELTA1_LIMIT, f"{n_slices} slices: delta<1.25 {delta1:.3f}"


def test_the_network_improves_on_its_own_classical_prior(model: TorchDfDNet) -> None:
    model_scores, prior_scores = [], []
    for item in _items(5):
        model_scores.append(_abs_rel(model.estimate(item.stack).depth_m, item))
        prior_scores.append(_abs_rel(classical_prior(item.stack.images, item.stack.focus_distances_m)[0], item))
    assert np.mean(model_scores) < PRIOR_RATIO_LIMIT * np.mean(prior_scores), (model_scores, prior_scores)


def test_the_model_reads_the_focus_distances(model: TorchDfDNet) -> None:
    """Pairing the images with the wrong focus distances must break the estimate."""
    right, wrong = [], []
    for item in _items(5):
        right.append(_abs_rel(model.estimate(item.stack).depth_m, item))
        stack = item.stack
        swapped = type(stack)(
            images=stack.images,
            focus_distances_m=stack.focus_distances_m[::-1].copy(),
            intrinsics=stack.intrinsics,
            optics=stack.optics,
        )
        wrong.append(_abs_rel(model.estimate(swapped).depth_m, item))
    assert np.mean(wrong) > 2.0 * np.mean(right), (right, wrong)


ABS_REL_LIMIT = 0.45
DELTA1_LIMIT = 0.65
PRIOR_RATIO_LIMIT = 0.9
