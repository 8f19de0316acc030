"""The torch back end (dfdnet_core.backend_torch): registry, metric contract, options, shipped-model lookup."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dfdnet_core import backend_torch
from dfdnet_core.backend_torch import TorchDfDNet, all_in_focus, shipped_model_path
from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.errors import CheckpointError, ConfigError, StackError
from dfdnet_core.estimator import BACKENDS, make_estimator
from dfdnet_core.model.checkpoint import save_checkpoint
from dfdnet_core.model.dfdnet import DfDNet
from dfdnet_core.model.sizes import config_for_size
from dfdnet_core.optics import LensOptics
from dfdnet_core.stack import FocalStack

torch.set_num_threads(1)

H, W = 30, 40


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = DfDNet(dataclasses.replace(config_for_size("tiny"), input_short_side_px=28))
    # a non-trivial output: wake the zero-initialised stack modules up a little
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "proj_out" in name:
                p.normal_(0.0, 0.02)
    path = tmp_path_factory.mktemp("ckpt") / "tiny28.safetensors"
    save_checkpoint(model, path)
    return path


def _stack(focal_px: float = 40.0, focus_m: tuple[float, ...] = (0.5, 1.0, 2.0)) -> FocalStack:
    rng = np.random.default_rng(0)
    sharp = (rng.random((H, W, 3)) * 255).astype(np.uint8)
    images = [sharp] + [cv2.GaussianBlur(sharp, (0, 0), 1.5 * (i + 1)) for i in range(len(focus_m) - 1)]
    k = CameraIntrinsics(W, H, focal_px, focal_px, (W - 1) / 2, (H - 1) / 2)
    return FocalStack(np.stack(images), np.asarray(focus_m), k, LensOptics(0.01, 2.0, 1e-5))


def test_torch_is_a_registered_backend(checkpoint: Path) -> None:
    estimator = make_estimator("torch", checkpoint_path=str(checkpoint))
    assert "torch" in BACKENDS and estimator.name == "torch"


def test_estimate_follows_the_contract(checkpoint: Path) -> None:
    result = TorchDfDNet(str(checkpoint)).estimate(_stack())
    assert result.depth_m.shape == (H, W) and result.depth_m.dtype == np.float32
    valid = np.isfinite(result.depth_m)
    assert valid.mean() > 0.99 and np.all(result.depth_m[valid] > 0)
    np.testing.assert_array_equal(result.confidence, valid.astype(np.float32))
    assert result.all_in_focus.shape == (H, W, 3) and result.all_in_focus.dtype == np.uint8


def test_depth_is_metric_through_the_canonical_scaling(checkpoint: Path) -> None:
    # Doubling the focal length halves kappa = W / f; doubling the focus distances keeps the canonical focus
    # inputs, so the network sees the same inputs and the metric depth must exactly double.
    estimator = TorchDfDNet(str(checkpoint))
    near = estimator.estimate(_stack(40.0, (0.5, 1.0, 2.0))).depth_m
    far = estimator.estimate(_stack(80.0, (1.0, 2.0, 4.0))).depth_m
    np.testing.assert_allclose(far, 2.0 * near, rtol=1e-4)


def test_backend_agrees_with_the_models_infer_stack(checkpoint: Path) -> None:
    estimator = TorchDfDNet(str(checkpoint))
    stack = _stack()
    direct = estimator.model.infer_stack(
        stack.images, stack.focus_distances_m, intrinsics=stack.intrinsics, optics=stack.optics
    )
    np.testing.assert_array_equal(estimator.estimate(stack).depth_m, direct)


def test_slice_order_does_not_matter(checkpoint: Path) -> None:
    estimator = TorchDfDNet(str(checkpoint))
    stack = _stack()
    order = np.array([2, 0, 1])
    shuffled = dataclasses.replace(stack, images=stack.images[order], focus_distances_m=stack.focus_distances_m[order])
    np.testing.assert_allclose(estimator.estimate(shuffled).depth_m, estimator.estimate(stack).depth_m, rtol=1e-4)


def test_all_in_focus_takes_the_sharp_slice() -> None:
    stack = _stack()
    aif = all_in_focus(stack)
    inner = (slice(3, -3), slice(3, -3))
    assert np.mean(aif[inner] == stack.images[0][inner]) > 0.95


def test_empty_checkpoint_path_uses_the_shipped_model(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / backend_torch.SHIPPED_MODEL).write_bytes(checkpoint.read_bytes())
    monkeypatch.setenv(backend_torch.MODELS_DIR_ENV, str(folder))
    assert shipped_model_path() == folder / backend_torch.SHIPPED_MODEL
    assert TorchDfDNet().checkpoint_path == folder / backend_torch.SHIPPED_MODEL


def test_missing_shipped_model_names_the_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend_torch, "model_search_dirs", lambda: [tmp_path / "nowhere"])
    with pytest.raises(CheckpointError, match="is in none of .*nowhere"):
        TorchDfDNet()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"num_threads": -1}, "num_threads must be"),
        ({"device": "not-a-device"}, "torch device string"),
        ({"batch": 3}, r"unknown torch backend option\(s\) \['batch'\]"),
    ],
)
def test_invalid_options_fail_at_construction(checkpoint: Path, options: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TorchDfDNet(str(checkpoint), **options)  # type: ignore[arg-type]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_fails_clearly(checkpoint: Path) -> None:
    with pytest.raises(ConfigError, match="CUDA is not available"):
        TorchDfDNet(str(checkpoint), device="cuda")


def test_a_malformed_checkpoint_fails_clearly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        TorchDfDNet(str(bad))


def test_focus_at_infinity_is_refused(checkpoint: Path) -> None:
    stack = _stack(focus_m=(0.5, 1.0, float("inf")))
    with pytest.raises(StackError, match="finite"):
        TorchDfDNet(str(checkpoint)).estimate(stack)
