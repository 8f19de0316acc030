"""Checkpoint I/O: our safetensors format and safe, strict reading of FOSSA ``.pth`` files."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from dfdnet_core.errors import CheckpointError, ConfigError
from dfdnet_core.model import (
    DfDNet,
    ModelConfig,
    load_checkpoint,
    load_model,
    read_fossa_state_dict,
    save_checkpoint,
)
from dfdnet_core.model.checkpoint import read_checkpoint_config, strip_module_prefix

MICRO = ModelConfig(
    embed_dim=32,
    depth=4,
    num_heads=2,
    input_short_side_px=28,
    num_layers_until_collapse=1,
    stack_num_heads=2,
    stack_norm_groups=8,
    dpt_layers=(0, 1, 2, 3),
    dpt_features=8,
    dpt_out_channels=(4, 8, 16, 32),
    dpt_head_hidden_channels=4,
)


class _WritesMarker:
    """Unpickling this runs ``os.system`` (a shell command that creates a marker file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (f"touch '{self.marker}'",))


def _write_safetensors(path: Path, metadata: dict[str, str], model: DfDNet | None = None) -> None:
    tensors = {k: v.contiguous() for k, v in (model or DfDNet(MICRO)).state_dict().items()}
    save_file(tensors, str(path), metadata=metadata)


def _description(**changes: Any) -> str:
    description: dict[str, Any] = {"size": "custom", "config": MICRO.to_dict()}
    description.update(changes)
    return json.dumps(description)


def test_safetensors_round_trip_keeps_config_weights_and_output(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = DfDNet(MICRO).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn(param.shape))
    path = tmp_path / "micro.safetensors"
    save_checkpoint(model, path)
    loaded = load_checkpoint(path)
    assert loaded.config == MICRO
    assert not loaded.training
    for (key, a), (key_b, b) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert key == key_b and torch.equal(a, b)
    images, focus = torch.randn(1, 3, 3, 20, 24), torch.rand(1, 3) + 0.5
    with torch.inference_mode():
        assert torch.equal(model(images, focus), loaded(images, focus))
    with safe_open(str(path), framework="pt") as handle:
        stored = json.loads(handle.metadata()["dfdnet"])
    assert stored == {"size": "custom", "config": MICRO.to_dict()}


def test_tiny_checkpoint_records_its_size_and_fits_25_mb(tmp_path: Path) -> None:
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(DfDNet("tiny"), path)
    assert path.stat().st_size <= 25_000_000
    size, config = read_checkpoint_config(path)
    assert size == "tiny" and config.embed_dim == 192
    assert isinstance(load_model(path), DfDNet)


def test_unknown_config_key_raises_config_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "extra.safetensors"
    _write_safetensors(path, {"dfdnet": _description(config={**MICRO.to_dict(), "use_rope": True})})
    with pytest.raises(
        ConfigError, match=r"unknown model config key 'use_rope' in '.*extra\.safetensors'"
    ):
        load_checkpoint(path)


def test_unknown_metadata_key_raises_config_error(tmp_path: Path) -> None:
    path = tmp_path / "extra_top.safetensors"
    _write_safetensors(path, {"dfdnet": _description(version=2)})
    with pytest.raises(ConfigError, match=r"unknown key 'version' in the 'dfdnet' metadata"):
        load_checkpoint(path)


def test_invalid_config_value_raises_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad_value.safetensors"
    _write_safetensors(
        path, {"dfdnet": _description(config={**MICRO.to_dict(), "collapse": "median"})}
    )
    with pytest.raises(ConfigError, match="collapse must be one of"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("metadata", "match"),
    [
        ({}, r"has no 'dfdnet' metadata entry"),
        ({"dfdnet": "{not json"}, r"metadata 'dfdnet' is not JSON"),
        ({"dfdnet": json.dumps({"size": "tiny"})}, r"must be an object with a 'config' object"),
    ],
)
def test_missing_or_malformed_metadata_raises_checkpoint_error(
    tmp_path: Path, metadata: dict[str, str], match: str
) -> None:
    path = tmp_path / "meta.safetensors"
    _write_safetensors(path, metadata)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


def test_config_that_does_not_fit_the_weights_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "deeper.safetensors"
    deeper = {**MICRO.to_dict(), "depth": 5}
    _write_safetensors(path, {"dfdnet": _description(config=deeper)})
    with pytest.raises(
        CheckpointError, match=r"deeper\.safetensors.*missing keys: \['pretrained\.blocks\.4\."
    ):
        load_checkpoint(path)


@pytest.mark.parametrize("keep_fraction", [0.0, 0.001, 0.5, 0.999])
def test_truncated_safetensors_raises_checkpoint_error_naming_the_file(
    tmp_path: Path, keep_fraction: float
) -> None:
    whole = tmp_path / "whole.safetensors"
    save_checkpoint(DfDNet(MICRO), whole)
    data = whole.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: int(len(data) * keep_fraction)])
    with pytest.raises(
        CheckpointError, match=r"'.*cut\.safetensors' is truncated or not a safetensors file"
    ):
        load_checkpoint(cut)


def test_missing_file_raises_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"'.*nowhere\.safetensors' does not exist"):
        load_checkpoint(tmp_path / "nowhere.safetensors")
    with pytest.raises(CheckpointError, match=r"'.*nowhere\.pth' does not exist"):
        read_fossa_state_dict(tmp_path / "nowhere.pth")


def test_code_running_pickle_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "model.pth"
    torch.save(
        {"model": {"pretrained.cls_token": torch.zeros(1, 1, 4)}, "hook": _WritesMarker(marker)},
        path,
    )
    with pytest.raises(
        CheckpointError, match=r"refused to load checkpoint '.*model\.pth'.*GLOBAL posix\.system"
    ):
        read_fossa_state_dict(path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="refused to load checkpoint"):
        load_model(path)
    assert not marker.exists()


def test_plain_pickle_payload_is_live_but_refused(tmp_path: Path) -> None:
    payload = pickle.dumps({"model": _WritesMarker(tmp_path / "proof")}, protocol=2)
    pickle.loads(payload)  # the payload really runs code when unpickled unsafely
    assert (tmp_path / "proof").exists()
    marker = tmp_path / "marker"
    path = tmp_path / "legacy.pth"
    path.write_bytes(pickle.dumps({"model": _WritesMarker(marker)}, protocol=2))
    with pytest.raises(
        CheckpointError, match=r"refused to load checkpoint '.*legacy\.pth'.*posix\.system"
    ):
        read_fossa_state_dict(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", r"'.*broken\.pth' is truncated or not a PyTorch checkpoint"),
        (b"PK\x03\x04garbage" * 10, r"'.*broken\.pth' is truncated or not a PyTorch checkpoint"),
        (b"\x93NUMPY junk bytes", r"refused to load checkpoint '.*broken\.pth'.*or corrupt"),
    ],
)
def test_malformed_pth_raises_checkpoint_error_naming_the_file(
    tmp_path: Path, content: bytes, match: str
) -> None:
    path = tmp_path / "broken.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        read_fossa_state_dict(path)


def test_truncated_pth_raises_checkpoint_error(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    torch.save({"model": {"pretrained.pos_embed": torch.zeros(1, 1370, 384)}}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        CheckpointError, match=r"'.*model\.pth' is truncated or not a PyTorch checkpoint"
    ):
        read_fossa_state_dict(path)


@pytest.mark.parametrize(
    "payload", [{"model": [1, 2]}, {"model": {}}, torch.zeros(3), {"model": {"a": 1}}]
)
def test_pth_without_tensor_state_dict_is_refused(tmp_path: Path, payload: object) -> None:
    path = tmp_path / "odd.pth"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=r"'.*odd\.pth' holds no state dict of tensors"):
        read_fossa_state_dict(path)


def test_fossa_reader_accepts_bare_state_dict_and_strips_ddp_prefix(tmp_path: Path) -> None:
    path = tmp_path / "bare.pth"
    weights = torch.arange(4.0)
    torch.save(
        {"module.pretrained.motion_modules.0.temporal_transformer.norm.weight": weights}, path
    )
    state_dict = read_fossa_state_dict(path)
    assert list(state_dict) == ["pretrained.motion_modules.0.temporal_transformer.norm.weight"]
    assert torch.equal(
        state_dict["pretrained.motion_modules.0.temporal_transformer.norm.weight"], weights
    )


def test_strip_module_prefix_removes_every_occurrence_only() -> None:
    out = strip_module_prefix(
        {"module.a.module.b": torch.zeros(1), "pretrained.motion_modules.1.x": torch.zeros(1)}
    )
    assert list(out) == ["a.b", "pretrained.motion_modules.1.x"]


def test_load_model_rejects_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"unknown suffix '\.onnx'"):
        load_model(tmp_path / "model.onnx")
