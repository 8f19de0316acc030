"""Parity of DfDNet ``small``/``base`` with FOSSA: checkpoint layout and synthetic-weight outputs.

Fixtures (test/core/fixtures/fossa, see its README): FOSSA's state-dict listings and the outputs
FOSSA produced for regenerated inputs and rule-filled weights. The ~5 s forward passes of ``small``
at 518x700 are the price of an end-to-end check.
"""

from __future__ import annotations

import json
import math
import zlib
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from dfdnet_core.errors import CheckpointError
from dfdnet_core.model import DfDNet, count_parameters, load_fossa_checkpoint
from dfdnet_core.model.checkpoint import check_state_dict, fossa_size_of

FIXTURES = Path(__file__).parent / "fixtures" / "fossa"
INPUTS = json.loads((FIXTURES / "inputs.json").read_text())
PARITY_ATOL = 1e-4
LISTINGS = {"small": "state_dict_vits.tsv", "base": "state_dict_vitb.tsv"}


pytestmark = pytest.mark.usefixtures("two_torch_threads")


def read_listing(name: str) -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) rows of a FOSSA state-dict TSV (``scalar`` = 0-d)."""
    rows = []
    lines = (FIXTURES / name).read_text().splitlines()
    assert lines[0].split("\t")[:3] == ["key", "shape", "dtype"]
    for line in lines[1:]:
        if line:
            key, shape, dtype = line.split("\t")[:3]
            assert dtype == "float32"
            rows.append((key, () if shape == "scalar" else tuple(int(v) for v in shape.split("x"))))
    return rows


def rule_tensor(key: str, shape: tuple[int, ...]) -> torch.Tensor:
    """The deterministic synthetic weight of one key (fill rule of the fixtures README)."""
    generator = torch.Generator(device="cpu").manual_seed(zlib.crc32(key.encode("utf-8")))
    z = torch.randn(shape, generator=generator, dtype=torch.float32)
    leaf = key.split(".")[-1]
    if leaf in ("cls_token", "pos_embed", "mask_token"):
        return 0.5 * z
    if z.dim() >= 2:
        return z / math.sqrt(z.numel() // shape[0])
    return 0.1 * z if leaf == "bias" else 1.0 + 0.1 * z


def regenerated_input(case: str) -> torch.Tensor:
    spec = INPUTS[case]
    generator = torch.Generator().manual_seed(spec["seed"])
    u = torch.rand(tuple(spec["shape"]), generator=generator)
    mean = torch.tensor(INPUTS["imagenet_mean"]).view(1, 1, 3, 1, 1)
    std = torch.tensor(INPUTS["imagenet_std"]).view(1, 1, 3, 1, 1)
    return (u - mean) / std


@pytest.fixture(scope="module")
def small_state_dict() -> OrderedDict[str, torch.Tensor]:
    return OrderedDict((k, rule_tensor(k, s)) for k, s in read_listing(LISTINGS["small"]))


@pytest.fixture(scope="module")
def fossa_small(
    small_state_dict: OrderedDict[str, torch.Tensor], tmp_path_factory: pytest.TempPathFactory
) -> DfDNet:
    """``small`` loaded by the FOSSA loader from a DDP-style {"model": {"module.<key>": ...}}."""
    path = tmp_path_factory.mktemp("fossa") / "model.pth"
    torch.save({"model": {f"module.{k}": v for k, v in small_state_dict.items()}, "epoch": 3}, path)
    model = load_fossa_checkpoint(path)
    path.unlink()
    return model


def test_fill_rule_reproduces_reference_checksum(
    small_state_dict: OrderedDict[str, torch.Tensor],
) -> None:
    expected = INPUTS["fill_checksum_vits"]
    total = sum(float(v.double().sum()) for v in small_state_dict.values())
    abs_total = sum(float(v.double().abs().sum()) for v in small_state_dict.values())
    assert len(small_state_dict) == expected["entries"] == 383
    assert total == pytest.approx(expected["sum"], abs=1e-5)
    assert abs_total == pytest.approx(expected["abs_sum"], abs=1e-5)


@pytest.mark.parametrize("case", ["main", "square"])
def test_regenerated_inputs_match_recorded_checksums(case: str) -> None:
    x = regenerated_input(case).double()
    assert float(x.sum()) == pytest.approx(INPUTS[case]["sum"], abs=1e-6)
    assert float(x.abs().sum()) == pytest.approx(INPUTS[case]["abs_sum"], abs=1e-6)


@pytest.mark.parametrize(
    ("case", "frames", "reference"),
    [
        ("main", 5, "output_depth.npy"),
        ("main", 3, "output_depth_n3.npy"),
        ("square", 5, "output_depth_square.npy"),
    ],
)
def test_small_matches_fossa_output(
    fossa_small: DfDNet, case: str, frames: int, reference: str
) -> None:
    x = regenerated_input(case)[:, :frames].contiguous()
    fd = torch.from_numpy(np.load(FIXTURES / "focus_distances.npy"))[:, :frames].contiguous()
    expected = np.load(FIXTURES / reference)
    with torch.inference_mode():
        out = fossa_small(x, fd).numpy()
    assert out.shape == expected.shape
    assert np.abs(out - expected).max() <= PARITY_ATOL


@pytest.mark.parametrize("size", ["small", "base"])
def test_state_dict_keys_and_shapes_equal_fossa_listing(size: str) -> None:
    with torch.device("meta"):
        model = DfDNet(size)
    ours = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert ours == read_listing(LISTINGS[size])


@pytest.mark.parametrize(("size", "expected"), [("small", 42_539_721), ("base", 168_369_481)])
def test_parameter_count_equals_fossa(size: str, expected: int) -> None:
    with torch.device("meta"):
        model = DfDNet(size)
    assert count_parameters(model) == expected


@pytest.mark.parametrize("size", ["small", "base"])
def test_fossa_size_is_told_from_encoder_width(size: str) -> None:
    width = dict(read_listing(LISTINGS[size]))["pretrained.pos_embed"][-1]
    assert fossa_size_of({"pretrained.pos_embed": torch.zeros(1, 1370, width)}) == size


def test_fossa_size_of_raises_on_unknown_width() -> None:
    with pytest.raises(CheckpointError, match=r"pos_embed width is 512"):
        fossa_size_of({"pretrained.pos_embed": torch.zeros(1, 1370, 512)}, "x.pth")


def test_check_state_dict_names_first_mismatches(
    small_state_dict: OrderedDict[str, torch.Tensor],
) -> None:
    with torch.device("meta"):
        model = DfDNet("small")
    tampered = dict(small_state_dict)
    del tampered["pretrained.blocks.3.ls1.gamma"]
    tampered["pretrained.extra_token"] = torch.zeros(1)
    tampered["depth_head.projects.0.weight"] = torch.zeros(49, 384, 1, 1)
    with pytest.raises(
        CheckpointError, match=r"1 missing keys: \['pretrained\.blocks\.3\.ls1\.gamma'\]"
    ) as info:
        check_state_dict(model, tampered, "'tampered.pth'")
    message = str(info.value)
    assert "'tampered.pth'" in message
    assert "pretrained.extra_token" in message
    assert (
        "depth_head.projects.0.weight: checkpoint (49, 384, 1, 1) vs model (48, 384, 1, 1)"
        in message
    )


def test_load_fossa_checkpoint_refuses_incomplete_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "partial.pth"
    torch.save({"model": {"module.pretrained.pos_embed": torch.zeros(1, 1370, 384)}}, path)
    with pytest.raises(
        CheckpointError, match=r"partial\.pth.*382 missing keys: \['pretrained\.cls_token'"
    ):
        load_fossa_checkpoint(path)
