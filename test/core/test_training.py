"""Training (dfdnet_core.training): loss, schedule, config, canonical consistency with inference, loop, resume."""

from __future__ import annotations

import csv
import itertools
import dataclasses
import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.cli import main as cli_main
from dfdnet_core.data.sample import RgbdSample
from dfdnet_core.errors import CheckpointError, ConfigError
from dfdnet_core.model.canonical import canonical_scale, depth_m_from_canonical, prepare_stack
from dfdnet_core.model.checkpoint import load_checkpoint
from dfdnet_core.model.dfdnet import DfDNet
from dfdnet_core.model.prior import prior_input, relative_sharpness
from dfdnet_core.optics import LensOptics, coc_radius_px
from dfdnet_core.training.config import TrainConfig, load_train_config
from dfdnet_core.training.loop import batch_prior, build_model, forward_loss, normalise_stack, train
from dfdnet_core.training.losses import (
    abs_rel_loss,
    depth_loss,
    gradient_matching_loss,
    log_l1_loss,
    silog_loss,
)
from dfdnet_core.training.pretrained import init_from_pretrained
from dfdnet_core.training.schedule import learning_rate_factor, make_optimizer
from dfdnet_core.training.stream import make_batch, recipe_from_config, sample_kappa
from dfdnet_core.training_samples import ProceduralRgbd, make_training_sample

torch.set_num_threads(1)

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "train_smoke.yaml"
TINY = Path(__file__).resolve().parents[2] / "configs" / "train_tiny.yaml"


def _smoke(tmp_path: Path, **overrides: object) -> TrainConfig:
    return load_train_config(SMOKE, out_dir=str(tmp_path / "run"), **overrides)


def _sample(config: TrainConfig, seed: int = 3) -> object:
    source = ProceduralRgbd(1, config.procedural_size_px, seed=seed)
    return make_training_sample(source[0], recipe_from_config(config), torch.Generator().manual_seed(seed))


# --- losses -------------------------------------------------------------------------------------------------------


def test_silog_is_log_rmse_at_lambda_0_and_scale_free_at_lambda_1() -> None:
    gen = torch.Generator().manual_seed(0)
    gt = torch.rand(2, 1, 8, 9, generator=gen) * 5 + 0.5
    mask = torch.ones_like(gt, dtype=torch.bool)
    pred = gt * 1.5
    assert float(silog_loss(pred, gt, mask, 0.0)) == pytest.approx(math.log(1.5), rel=1e-5)
    assert float(silog_loss(pred, gt, mask, 1.0)) == pytest.approx(0.0, abs=2e-4)
    # lambda = 0.5: sqrt(c^2 - 0.5 c^2) = c / sqrt(2) for a pure scale error c = log 1.5
    assert float(silog_loss(pred, gt, mask, 0.5)) == pytest.approx(math.log(1.5) / math.sqrt(2), rel=1e-4)


def test_losses_ignore_masked_pixels() -> None:
    gen = torch.Generator().manual_seed(1)
    gt = torch.rand(1, 1, 10, 12, generator=gen) + 1.0
    pred = gt * torch.exp(0.1 * torch.randn(gt.shape, generator=gen))
    mask = torch.zeros_like(gt, dtype=torch.bool)
    mask[..., 2:8, 3:10] = True
    wild = pred.clone()
    wild[~mask] = 1e4
    garbage_gt = torch.where(mask, gt, torch.zeros_like(gt))
    assert float(depth_loss(wild, garbage_gt, mask).total) == pytest.approx(float(depth_loss(pred, gt, mask).total))


def test_gradient_matching_is_zero_for_a_global_scale_and_positive_for_a_ramp() -> None:
    gt = torch.linspace(1, 3, 16).repeat(1, 1, 12, 1)
    mask = torch.ones_like(gt, dtype=torch.bool)
    assert float(gradient_matching_loss(gt * 2.0, gt, mask)) == pytest.approx(0.0, abs=1e-6)
    ramp = gt * torch.exp(torch.linspace(0, 1, 16)).view(1, 1, 1, 16)
    # log-residual rises 1/15 per pixel in x at stride 1, 2/15 at stride 2, 4/15 at stride 4; y pairs add 0
    got = float(gradient_matching_loss(ramp, gt, mask, scales=1))
    pairs_x, pairs_y = 12 * 15, 11 * 16
    assert got == pytest.approx((pairs_x / 15) / (pairs_x + pairs_y), rel=1e-4)


def test_log_l1_and_abs_rel_have_their_closed_forms() -> None:
    gt = torch.full((1, 1, 4, 5), 2.0)
    mask = torch.ones_like(gt, dtype=torch.bool)
    mask[..., 0, :] = False
    pred = gt.clone()
    pred[..., 1:, :2] = 3.0  # +50 % on 6 of the 15 valid pixels
    pred[..., 0, :] = 1e3  # masked
    assert float(log_l1_loss(pred, gt, mask)) == pytest.approx(6 / 15 * math.log(1.5), rel=1e-5)
    assert float(abs_rel_loss(pred, gt, mask)) == pytest.approx(6 / 15 * 0.5, rel=1e-5)
    # Over-estimates cost AbsRel more than under-estimates by the same factor; log-L1 is symmetric.
    over, under = gt * 2.0, gt / 2.0
    assert float(abs_rel_loss(over, gt, mask)) == pytest.approx(1.0)
    assert float(abs_rel_loss(under, gt, mask)) == pytest.approx(0.5)
    assert float(log_l1_loss(over, gt, mask)) == pytest.approx(float(log_l1_loss(under, gt, mask)))
    terms = depth_loss(pred, gt, mask, gradient_weight=0.0, silog_weight=0.0, log_l1_weight=0.5, abs_rel_weight=2.0)
    expected = 0.5 * float(log_l1_loss(pred, gt, mask)) + 2.0 * float(abs_rel_loss(pred, gt, mask))
    assert float(terms.total) == pytest.approx(expected, rel=1e-5)


def test_an_empty_mask_gives_zero_loss_with_a_gradient_path() -> None:
    pred = torch.ones(1, 1, 4, 4, requires_grad=True)
    terms = depth_loss(pred, torch.ones(1, 1, 4, 4), torch.zeros(1, 1, 4, 4, dtype=torch.bool))
    assert float(terms.total.detach()) == 0.0
    terms.total.backward()
    assert pred.grad is not None


# --- schedule ----------------------------------------------------------------------------------------------------


def test_schedule_warms_up_linearly_then_decays_by_a_cosine_to_the_floor() -> None:
    f = [learning_rate_factor(s, 10, 110, 0.1) for s in range(120)]
    assert f[0] == pytest.approx(1 / 11) and f[4] == pytest.approx(5 / 11)
    assert f[10] == pytest.approx(1.0)
    assert f[60] == pytest.approx(0.1 + 0.9 * 0.5)  # half way through the cosine
    assert f[110] == pytest.approx(0.1) and f[119] == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(f[10:]))


def test_optimizer_does_not_decay_norms_biases_or_position_table() -> None:
    model = build_model(TrainConfig(network_short_side_px=28))
    optimizer, _ = make_optimizer(model, 1e-3, 0.05, 1, 10, 0.0)
    no_decay = {id(p) for p in optimizer.param_groups[1]["params"]}
    assert id(model.pretrained.pos_embed) in no_decay
    assert id(model.pretrained.blocks[0].norm1.weight) in no_decay
    assert id(model.pretrained.blocks[0].attn.qkv.weight) not in no_decay
    assert optimizer.param_groups[0]["weight_decay"] == 0.05 and optimizer.param_groups[1]["weight_decay"] == 0.0


# --- config -------------------------------------------------------------------------------------------------------


def test_shipped_configs_load() -> None:
    tiny = load_train_config(TINY)
    assert tiny.model_size == "tiny" and tiny.network_short_side_px % 14 == 0
    assert tiny.crop_size_px[0] == tiny.network_short_side_px  # crops are not resampled inside the network
    assert load_train_config(SMOKE).max_steps < 10
    refine = load_train_config(TINY.with_name("train_tiny_refine.yaml"))
    assert refine.train_only == ("refiner.",) and refine.refiner_channels > 0
    assert refine.init_checkpoint == tiny.out_dir + "/model.safetensors"  # stage 2 starts from stage 1


def test_config_with_an_unknown_key_fails_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("model_size: tiny\nlearning_rat: 0.001\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['learning_rat'\]"):
        load_train_config(path)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"network_short_side_px": 100}, "multiple of 14"),
        ({"n_slices": (1, 4)}, "2 <= min"),
        ({"warmup_steps": 50, "max_steps": 50}, "warmup_steps"),
        ({"device": "tpu"}, "device must be one of"),
        ({"pool_size": 1, "batch_size": 2}, "pool_size"),
        ({"dfd_indoor_fraction": 1.5}, "dfd_indoor_fraction"),
        ({"procedural_scenes": 1_000_000_000}, "evaluation seeds"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"depth_prior": "lidar"}, "depth_prior must be"),
        ({"depth_prior": "classical", "n_slices": (2, 5)}, "needs n_slices >= 3"),
        ({"adaptive_focus_probability": 1.5}, "adaptive_focus_probability"),
        ({"silog_weight": 0.0}, "a per-pixel loss term is needed"),
        ({"abs_rel_weight": -1.0}, "abs_rel_weight must be >= 0"),
    ],
)
def test_config_rejects_invalid_values(overrides: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**overrides)  # type: ignore[arg-type]


# --- canonical convention: training inputs == inference inputs ---------------------------------------------------


def test_training_batch_matches_what_inference_feeds_the_network(tmp_path: Path) -> None:
    config = _smoke(tmp_path)
    sample = _sample(config)
    n = int(sample.stack.shape[0])
    batch = make_batch([sample], n, torch.Generator().manual_seed(0), 1e-3, 1e3, flip=False)
    images_u8 = (sample.stack.permute(0, 2, 3, 1).numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8)
    inputs = prepare_stack(images_u8, sample.focus_distances_m.numpy(), intrinsics=sample.intrinsics)
    # same canonical factor, focus distances and (8-bit quantised, normalised) images as inference
    assert float(batch.kappa[0]) == pytest.approx(inputs.kappa, rel=1e-6)
    np.testing.assert_allclose(batch.focus_canonical.numpy(), inputs.focus_canonical, rtol=1e-6)
    np.testing.assert_allclose(normalise_stack(batch.stack).numpy(), inputs.images, atol=1e-5)
    # and the target is the ground truth in the same canonical units: metric = canonical / kappa
    k = sample.intrinsics
    assert inputs.kappa == pytest.approx(k.width_px / max(k.fx_px, k.fy_px))
    valid = batch.mask[0, 0].numpy()
    back = depth_m_from_canonical(batch.depth_canonical[0, 0].numpy(), inputs.kappa)
    np.testing.assert_allclose(back[valid], sample.depth_m[0].numpy()[valid], rtol=1e-5)


def test_training_prior_and_sharpness_match_what_inference_computes(tmp_path: Path) -> None:
    config = _smoke(tmp_path, depth_prior="classical", n_slices=(3, 5), network_short_side_px=28)
    sample = _sample(config)
    n = int(sample.stack.shape[0])
    batch = make_batch([sample], n, torch.Generator().manual_seed(0), 1e-3, 1e3, flip=False)
    model = build_model(config)
    assert model.config.depth_prior == "classical"
    prior, sharpness, defocus = batch_prior(model, batch)
    images_u8 = (sample.stack.permute(0, 2, 3, 1).numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8)
    inputs = prepare_stack(images_u8, sample.focus_distances_m.numpy(), intrinsics=sample.intrinsics)
    expected = prior_input(images_u8, sample.focus_distances_m.numpy(), inputs.kappa)
    np.testing.assert_allclose(prior[0].numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(sharpness[0].numpy(), relative_sharpness(images_u8), atol=1e-6)
    # The refiner's blur scale: the renderer's CoC radius in px per dioptre, in canonical units.
    optics = LensOptics(sample.focal_length_m, sample.f_number, sample.pixel_pitch_m)
    near, far = float(sample.focus_distances_m[0]), float(sample.focus_distances_m[-1])
    coc_px = coc_radius_px(near, far, optics)
    assert defocus is not None and defocus.shape == (1,)
    np.testing.assert_allclose(float(defocus[0]) / inputs.kappa * abs(1 / near - 1 / far), coc_px, rtol=0.01)
    assert batch_prior(build_model(_smoke(tmp_path, network_short_side_px=28)), batch) == (None, None, None)


def test_canonical_factor_does_not_depend_on_resolution() -> None:
    k = CameraIntrinsics.from_horizontal_fov(320, 240, 60.0)
    half = k.scaled(160, 120)
    assert canonical_scale(320, k.fx_px) == pytest.approx(canonical_scale(160, half.fx_px))
    assert canonical_scale(320, k.fx_px) == pytest.approx(2 * math.tan(math.radians(30)))


def test_a_flipped_batch_keeps_depth_and_mask_with_the_images() -> None:
    config = TrainConfig(crop_size_px=(28, 42), procedural_size_px=(40, 56), n_slices=(2, 3), f_numbers=(1.4,),
                         network_short_side_px=28, render_mode="gather")
    sample = _sample(config, seed=5)
    flips = [make_batch([sample], 3, torch.Generator().manual_seed(s), 1e-3, 1e3) for s in range(8)]
    kappa = sample_kappa(sample)
    straight = (sample.depth_m * kappa).numpy()
    for b in flips:
        d = b.depth_canonical[0].numpy()
        assert np.allclose(d, straight) or np.allclose(d, straight[..., ::-1])
        same_way = np.allclose(d, straight)
        aif_side = b.stack[0, 0].numpy()
        ref = sample.stack[0].numpy() if same_way else sample.stack[0].numpy()[..., ::-1]
        assert np.allclose(aif_side, ref) or not np.allclose(d, d[..., ::-1])  # images follow the depth
    assert {bool(np.allclose(b.depth_canonical[0].numpy(), straight)) for b in flips} == {True, False}


# --- the loop -----------------------------------------------------------------------------------------------------


def test_a_few_steps_on_one_fixed_batch_reduce_the_loss(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = _smoke(tmp_path)
    sample = _sample(config)
    batch = make_batch([sample], 3, torch.Generator().manual_seed(0), config.min_depth_m, config.max_depth_m,
                       flip=False)
    small = dataclasses.replace(
        build_model(config).config, embed_dim=48, depth=4, num_heads=2, stack_num_heads=2, stack_norm_groups=8,
        dpt_layers=(0, 1, 2, 3), dpt_features=16, dpt_out_channels=(8, 16, 32, 48), dpt_head_hidden_channels=8,
    )  # a narrow DfDNet: same code path, a fraction of the cost
    model = DfDNet(small)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        _, terms = forward_loss(model, batch, config, torch.device("cpu"))
        optimizer.zero_grad()
        terms.total.backward()
        optimizer.step()
        losses.append(float(terms.total))
    assert losses[-1] < 0.7 * losses[0], losses


def test_train_writes_logs_and_checkpoints_and_resumes(tmp_path: Path) -> None:
    config = _smoke(tmp_path, max_steps=2)
    first = train(config, progress=False)
    out = Path(config.out_dir)
    assert first["steps"] == 2 and first["stop_reason"] == "max_steps"
    state = torch.load(out / "state.pt", weights_only=True)
    assert state["step"] == 2 and state["scheduler"]["last_epoch"] == 2
    second = train(dataclasses.replace(config, max_steps=4), progress=False)
    assert second["steps"] == 4
    with (out / "log.csv").open() as handle:
        steps = [int(row["step"]) for row in csv.DictReader(handle)]
    assert steps[:2] == [1, 2] and steps[-1] == 4 and sorted(set(steps)) == [1, 2, 3, 4]
    log = json.loads((out / "log.json").read_text())
    assert log["summary"]["steps"] == 4 and log["config"]["max_steps"] == 4
    assert any("val_abs_rel" in row for row in log["rows"])
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model = load_checkpoint(out / "model.safetensors")
    assert model.config.input_short_side_px == 28
    resumed = torch.load(out / "state.pt", weights_only=True)["model"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, resumed[key])


def test_a_prior_model_trains_and_its_checkpoint_rebuilds_the_prior_model(tmp_path: Path) -> None:
    config = _smoke(tmp_path, max_steps=2, depth_prior="classical", n_slices=(3, 4), adaptive_focus_probability=1.0)
    summary = train(config, progress=False)
    assert summary["steps"] == 2 and math.isfinite(summary["last"]["loss"])
    model = load_checkpoint(Path(config.out_dir) / "model.safetensors")
    assert model.config.depth_prior == "classical"
    images = np.random.default_rng(0).integers(0, 256, (4, 30, 40, 3), dtype=np.uint8)
    depth = model.infer_stack(images, [0.5, 0.8, 1.3, 2.0], focal_length_px=40.0)
    assert depth.shape == (30, 40) and np.all(np.isfinite(depth)) and np.all(depth > 0)


def test_resume_refuses_a_pickle_that_runs_code(tmp_path: Path) -> None:
    config = _smoke(tmp_path)
    out = Path(config.out_dir)
    out.mkdir(parents=True)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (Path.touch, (str(marker),))  # type: ignore[return-value]

    with (out / "state.pt").open("wb") as handle:
        pickle.dump({"model": Payload()}, handle)
    with pytest.raises(CheckpointError, match="cannot resume from"):
        train(config, progress=False)
    assert not marker.exists()


def test_time_limit_stops_cleanly_with_a_checkpoint(tmp_path: Path) -> None:
    summary = train(_smoke(tmp_path, max_time_s=1e-6, max_steps=50, validate_every_steps=0), progress=False)
    assert summary["steps"] == 1 and summary["stop_reason"] == "max_time_s"
    assert (Path(summary["files"][0])).is_file()


def test_cli_train_runs_and_reports_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(["train", "--config", str(SMOKE), "--out-dir", str(tmp_path / "cli"), "--set", "max_steps=2",
                     "--set", "validate_every_steps=0", "--no-progress"])
    assert code == 0 and (tmp_path / "cli" / "model.safetensors").is_file()
    assert "trained 2 steps" in capsys.readouterr().out
    code = cli_main(["train", "--config", str(SMOKE), "--set", "bogus_key=1"])
    assert code == 1 and "unknown key(s) ['bogus_key']" in capsys.readouterr().err


# --- initialisation from DINOv2 / Depth-Anything-V2 ---------------------------------------------------------------


def test_init_from_a_dinov2_state_dict_maps_keys_and_resamples_the_position_table(tmp_path: Path) -> None:
    config = TrainConfig(network_short_side_px=28)
    donor = build_model(dataclasses.replace(config, network_short_side_px=56))
    blocks = {k: v for k, v in donor.state_dict().items() if k.startswith("pretrained.blocks")}
    dino = {k.removeprefix("pretrained."): v for k, v in blocks.items()}
    dino["pos_embed"] = donor.pretrained.pos_embed.detach().clone()  # 4x4 grid -> our 2x2
    dino["head.weight"] = torch.zeros(3, 3)
    path = tmp_path / "dinov2.pth"
    torch.save({"model": {"module." + k: v for k, v in dino.items()}}, path)
    model = build_model(config)
    report = init_from_pretrained(model, path)
    assert "pretrained.pos_embed" in report.resampled
    assert report.skipped == {"head.weight": "no such key in the model"}
    assert torch.equal(model.pretrained.blocks[3].mlp.fc1.weight, donor.pretrained.blocks[3].mlp.fc1.weight)
    assert model.pretrained.pos_embed.shape == (1, 5, 192)
    assert "pretrained.patch_embed.proj.weight" in report.untouched


def test_init_refuses_a_pickle_that_runs_code_and_a_file_without_matching_tensors(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (Path.touch, (str(marker),))  # type: ignore[return-value]

    evil = tmp_path / "evil.pth"
    with evil.open("wb") as handle:
        pickle.dump(Payload(), handle)
    model = build_model(TrainConfig(network_short_side_px=28))
    with pytest.raises(CheckpointError, match="refused init checkpoint"):
        init_from_pretrained(model, evil)
    assert not marker.exists()
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(CheckpointError, match="no tensor matches the model"):
        init_from_pretrained(model, other)
    with pytest.raises(CheckpointError, match="does not exist"):
        init_from_pretrained(model, tmp_path / "missing.pth")


def test_rgbd_sources_without_intrinsics_get_the_fallback_camera_consistently() -> None:
    rgb = (np.random.default_rng(0).random((40, 56, 3)) * 255).astype(np.uint8)
    depth = np.full((40, 56), 2.0, dtype=np.float32)
    config = TrainConfig(crop_size_px=(28, 42), n_slices=(2, 3), network_short_side_px=28, zoom_range=(1.0, 1.0))
    sample = make_training_sample(RgbdSample(rgb, depth, None, "x"), recipe_from_config(config),
                                  torch.Generator().manual_seed(0))
    kappa = sample_kappa(sample)
    assert kappa == pytest.approx(2 * math.tan(math.radians(30)), rel=1e-6)  # 60 degree fallback, any crop
