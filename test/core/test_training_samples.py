"""Training samples (dfdnet_core.training_samples): the seed paper's recipe, determinism, masks, flips, optics."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.data.sample import RgbdSample
from dfdnet_core.errors import ConfigError
from dfdnet_core.optics import LensOptics, coc_radius_px
from dfdnet_core.training_samples import (
    PAPER_F_NUMBERS,
    PROCEDURAL_EVAL_SEED,
    ProceduralRgbd,
    SampleRecipe,
    TrainingSampleDataset,
    collate_training_samples,
    make_training_sample,
)

torch.set_num_threads(2)

H, W = 48, 64
K = CameraIntrinsics(W, H, 60.0, 60.0, 31.5, 23.5)
# Small blur so the tests stay fast: strong-defocus f-numbers on a short lens.
FAST = SampleRecipe(f_numbers=(2.8,), colour_jitter=0.0, sensor_width_m=0.006)


def _rgbd(seed: int = 0, holes: bool = False) -> RgbdSample:
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    depth = np.linspace(0.6, 6.0, W, dtype=np.float32)[None].repeat(H, 0)
    if holes:
        depth[10:20, 5:15] = np.nan
    return RgbdSample(rgb, depth, K, f"synthetic_{seed}")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_same_seed_gives_the_same_sample_and_another_seed_another() -> None:
    recipe = SampleRecipe(f_numbers=(1.4, 2.8), n_slices=(2, 6), colour_jitter=0.3, crop_size_px=(32, 40))
    a = make_training_sample(_rgbd(), recipe, _gen(7))
    b = make_training_sample(_rgbd(), recipe, _gen(7))
    c = make_training_sample(_rgbd(), recipe, _gen(8))
    assert torch.equal(a.stack, b.stack) and torch.equal(a.depth_m, b.depth_m)
    assert torch.equal(a.focus_distances_m, b.focus_distances_m) and a.f_number == b.f_number
    assert a.stack.shape[1:] == (3, 32, 40) and a.depth_m.shape == (1, 32, 40)
    assert not (a.stack.shape == c.stack.shape and torch.equal(a.stack, c.stack))


def test_focus_distances_are_sorted_disparity_uniform_and_inside_the_drawn_bounds() -> None:
    recipe = replace(FAST, n_slices=(3, 7), zoom_range=(1.0, 1.0))
    counts = set()
    for seed in range(12):
        fd = make_training_sample(_rgbd(), recipe, _gen(seed)).focus_distances_m.double()
        counts.add(len(fd))
        disparity = 1.0 / fd
        assert 1.0 <= float(disparity[0]) <= 2.0  # nearest focus: U(1, 2) dioptres
        assert 0.05 <= float(disparity[-1]) <= 0.25  # farthest focus: U(0.05, 0.25) dioptres
        assert torch.all(torch.diff(fd) > 0)  # near to far
        steps = torch.diff(disparity)
        assert torch.allclose(steps, steps[0].expand_as(steps), rtol=1e-5, atol=1e-6)
    assert len(counts) > 1 and counts <= set(range(3, 8))  # N really varies inside the range


def test_loss_mask_is_false_exactly_on_depth_holes() -> None:
    recipe = replace(FAST, zoom_range=(1.0, 1.0), flip_probability=0.0)
    sample = make_training_sample(_rgbd(holes=True), recipe, _gen(0))
    expected = torch.ones((1, H, W), dtype=torch.bool)
    expected[0, 10:20, 5:15] = False
    assert torch.equal(sample.mask, expected)
    assert torch.all(sample.depth_m[~sample.mask] == 0) and torch.all(sample.depth_m[sample.mask] > 0)
    assert torch.isfinite(sample.stack).all()


def test_flip_mirrors_stack_depth_mask_and_principal_point_together() -> None:
    base = replace(FAST, crop_size_px=(40, 48), zoom_range=(1.2, 1.4), colour_jitter=0.2)
    plain = make_training_sample(_rgbd(holes=True), replace(base, flip_probability=0.0), _gen(3))
    flipped = make_training_sample(_rgbd(holes=True), replace(base, flip_probability=1.0), _gen(3))
    assert torch.allclose(flipped.stack, plain.stack.flip(-1), atol=1e-5)
    assert torch.equal(flipped.depth_m, plain.depth_m.flip(-1))
    assert torch.equal(flipped.mask, plain.mask.flip(-1))
    assert not torch.equal(flipped.depth_m, plain.depth_m)  # the depth ramp is not symmetric
    assert flipped.intrinsics.cx_px == pytest.approx(47 - plain.intrinsics.cx_px)


def test_pinhole_f_number_gives_identical_slices_equal_to_the_input() -> None:
    recipe = SampleRecipe(f_numbers=(math.inf,), n_slices=4, zoom_range=(1.0, 1.0), flip_probability=0.0,
                          colour_jitter=0.0)
    sample = make_training_sample(_rgbd(), recipe, _gen(1))
    rgb = torch.from_numpy(_rgbd().rgb).permute(2, 0, 1).float() / 255.0
    for n in range(4):
        assert torch.equal(sample.stack[n], sample.stack[0])
    assert torch.allclose(sample.stack[0], rgb, atol=1e-6)


def test_default_recipe_is_the_paper_set() -> None:
    assert SampleRecipe().f_numbers == PAPER_F_NUMBERS == (10.0, 11.0, 12.0, 13.0, 14.0, 18.0, math.inf)
    assert SampleRecipe().far_bound_diopt == (0.05, 0.25) and SampleRecipe().near_bound_diopt == (1.0, 2.0)


def test_fossa_lens_convention_and_zoom_scale_the_focal_length() -> None:
    # 36 mm across the long edge; f = pitch * fx. Zoom 1.5 = 1.5x the focal length in pixels and in metres.
    one = make_training_sample(_rgbd(), replace(SampleRecipe(), zoom_range=(1.0, 1.0)), _gen(0))
    zoomed = make_training_sample(_rgbd(), replace(SampleRecipe(), zoom_range=(1.5, 1.5)), _gen(0))
    assert one.pixel_pitch_m == pytest.approx(0.036 / W)
    assert one.focal_length_m == pytest.approx(0.036 / W * 60.0)
    assert zoomed.intrinsics.fx_px == pytest.approx(90.0)
    assert zoomed.focal_length_m == pytest.approx(1.5 * one.focal_length_m)


def test_blur_follows_the_thin_lens_of_the_sample() -> None:
    # A far plane rendered at the nearest focus: the blurred image's pixel variance drops as a Gaussian of
    # sigma = CoC / 2 predicts for white noise (variance factor 1 / (4 pi sigma^2) for sigma >> 1).
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    depth = np.full((96, 96), 10.0, dtype=np.float32)
    sample_in = RgbdSample(rgb, depth, CameraIntrinsics(96, 96, 200.0, 200.0, 47.5, 47.5), "plane")
    recipe = SampleRecipe(f_numbers=(1.4,), n_slices=2, zoom_range=(1.0, 1.0), colour_jitter=0.0,
                          flip_probability=0.0)
    sample = make_training_sample(sample_in, recipe, _gen(2))
    optics = LensOptics(sample.focal_length_m, sample.f_number, sample.pixel_pitch_m)
    sigma = coc_radius_px(10.0, float(sample.focus_distances_m[0]), optics) / 2.0
    assert sigma > 2.0
    centre = sample.stack[0, :, 30:66, 30:66]
    ratio = float(centre.var()) / float(sample.all_in_focus.var())
    assert ratio == pytest.approx(1.0 / (4.0 * math.pi * sigma**2), rel=0.1)


def test_procedural_train_and_eval_scenes_are_disjoint_and_reproducible() -> None:
    train = ProceduralRgbd(2, (32, 48), seed=0)
    evaluation = ProceduralRgbd(2, (32, 48), seed=0, split="eval")
    assert train[0].name == "procedural_0" and evaluation[0].name == f"procedural_{PROCEDURAL_EVAL_SEED}"
    assert np.array_equal(train[1].rgb, ProceduralRgbd(2, (32, 48))[1].rgb)
    assert not np.array_equal(train[0].rgb, evaluation[0].rgb)
    assert train[0].depth_m.shape == (32, 48) and np.all(np.isfinite(train[0].depth_m))
    with pytest.raises(ConfigError, match="reach the evaluation seeds"):
        ProceduralRgbd(10, (32, 48), seed=PROCEDURAL_EVAL_SEED - 5)
    with pytest.raises(IndexError, match="out of range"):
        train[2]


def test_dataset_is_reproducible_per_index_and_epoch_and_collates() -> None:
    recipe = replace(FAST, crop_size_px=(24, 32))
    ds = TrainingSampleDataset(ProceduralRgbd(2, (32, 48), seed=5), recipe, seed=1)
    first = ds[1]
    assert torch.equal(first.stack, ds[1].stack)
    ds.set_epoch(1)
    assert not torch.equal(first.stack, ds[1].stack)
    batch = collate_training_samples([ds[0], ds[1]])
    assert batch["stack"].shape == (2, 5, 3, 24, 32) and batch["mask"].dtype == torch.bool
    assert batch["name"] == ["procedural_5", "procedural_6"]
    with pytest.raises(ConfigError, match="must share"):
        collate_training_samples([ds[0], make_training_sample(_rgbd(), replace(FAST, n_slices=3), _gen(0))])
    with pytest.raises(ConfigError, match="empty list"):
        collate_training_samples([])


def test_dataset_rejects_focal_stack_sources() -> None:
    class StackSet(list[RgbdSample]):
        kind = "stack"

    with pytest.raises(ConfigError, match="rendered from RGB-D"):
        TrainingSampleDataset(StackSet([_rgbd()]), FAST)
    with pytest.raises(ConfigError, match="is empty"):
        TrainingSampleDataset([], FAST)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"f_numbers": ()}, "non-empty set"),
        ({"f_numbers": (1.4, -2.0)}, "non-empty set"),
        ({"n_slices": 0}, "1 <= min <= max"),
        ({"n_slices": (5, 3)}, "1 <= min <= max"),
        ({"n_slices": 2.5}, "an int or"),
        ({"far_bound_diopt": (0.5, 1.5)}, "must lie below"),
        ({"near_bound_diopt": (2.0, 1.0)}, "low <= high"),
        ({"zoom_range": (0.5, 1.0)}, "1.0 <= low <= high"),
        ({"crop_size_px": (0, 4)}, "crop_size_px"),
        ({"flip_probability": 1.5}, "flip_probability"),
        ({"colour_jitter": 1.0}, "colour_jitter"),
        ({"render_mode": "splat"}, "render_mode"),
        ({"psf": "disc"}, "psf must be"),
        ({"psf_exponent": 4.0}, "has exponent 2"),
        ({"sensor_width_m": 0.0}, "sensor_width_m"),
        ({"focal_length_m": -0.01}, "focal_length_m"),
        ({"fallback_hfov_deg": 180.0}, "fallback_hfov_deg"),
    ],
)
def test_recipe_rejects_invalid_values(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SampleRecipe(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "match"),
    [((0, (32, 32)), "n must be"), ((1, (4, 32)), "size_px"), ((1, (32, 32), -1), "seed"),
     ((1, (32, 32), 0, "test"), "split")],
)
def test_procedural_rejects_invalid_arguments(args: tuple[object, ...], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ProceduralRgbd(*args)  # type: ignore[arg-type]
