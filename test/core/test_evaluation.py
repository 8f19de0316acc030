"""Evaluation loop (dfdnet_core.evaluation) and `dfdnet eval`: protocols, metric values, report files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
import torch

from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.cli import main
from dfdnet_core.data.sample import RgbdSample, StackSample
from dfdnet_core.errors import ConfigError, DataError
from dfdnet_core.estimator import DepthResult
from dfdnet_core.evaluation import (
    EvalConfig,
    FocusSchedule,
    RenderProtocol,
    evaluate,
    open_eval_source,
    prepare,
    prepare_rgbd,
)
from dfdnet_core.optics import LensOptics
from dfdnet_core.renderer import render_stack_uint8
from dfdnet_core.stack import FocalStack
from dfdnet_core.training_samples import PROCEDURAL_EVAL_SEED, ProceduralRgbd

torch.set_num_threads(2)

SIZE = (72, 96)


class OracleStub:
    """Returns ``factor`` x the ground truth of the samples, in the order they are evaluated."""

    name = "oracle"

    def __init__(self, depths: list[npt.NDArray[np.float32]], factor: float = 1.0) -> None:
        self._depths = iter(depths)
        self.factor = factor

    def estimate(self, stack: FocalStack) -> DepthResult:
        depth = (next(self._depths) * self.factor).astype(np.float32)
        return DepthResult(depth, np.ones_like(depth), stack.images[0])


def _scenes(n: int = 2) -> ProceduralRgbd:
    return ProceduralRgbd(n, SIZE, split="eval")


def _strict_json(path: Path) -> dict[str, object]:
    def reject(token: str) -> None:
        raise AssertionError(f"non-standard JSON constant {token}")

    doc = json.loads(path.read_text(), parse_constant=reject)
    assert isinstance(doc, dict)
    return doc


def test_perfect_and_ten_percent_estimators_score_what_they_should(tmp_path: Path) -> None:
    scenes = _scenes()
    depths = [s.depth_m for s in scenes]
    estimators = {"perfect": OracleStub(depths), "plus10": OracleStub(depths, 1.1)}
    report = evaluate(estimators, scenes, EvalConfig(panels=1), tmp_path, dataset="proc", progress=False)
    perfect = report.means("perfect")["depth"]
    assert perfect["abs_rel"] == 0.0 and perfect["rmse"] == 0.0 and perfect["delta_1.05"] == 1.0
    assert perfect["coverage"] == 1.0 and perfect["samples"] == 2
    plus = report.means("plus10")["depth"]
    assert plus["abs_rel"] == pytest.approx(0.1, rel=1e-5)
    assert plus["delta_1.05"] == 0.0 and plus["delta_1.15"] == 1.0
    expected_rmse = np.mean([0.1 * math.sqrt(float(np.mean(np.square(d.astype(np.float64))))) for d in depths])
    assert plus["rmse"] == pytest.approx(expected_rmse, rel=1e-5)
    doc = _strict_json(tmp_path / "metrics.json")
    assert {"dataset", "config", "samples", "mean", "samples_total", "samples_with_ground_truth"} <= set(doc)
    assert doc["samples_with_ground_truth"] == 2
    assert doc["mean"]["perfect"]["depth"]["abs_rel"] == 0.0  # type: ignore[index]
    sample = doc["samples"][0]  # type: ignore[index]
    assert sample["name"] == f"procedural_{PROCEDURAL_EVAL_SEED}" and len(sample["focus_distances_m"]) == 5
    assert sorted((tmp_path / "panels").iterdir()) == [
        tmp_path / "panels" / f"000_procedural_{PROCEDURAL_EVAL_SEED}_perfect.png",
        tmp_path / "panels" / f"000_procedural_{PROCEDURAL_EVAL_SEED}_plus10.png",
    ]
    panel = cv2.imread(str(tmp_path / "panels" / f"000_procedural_{PROCEDURAL_EVAL_SEED}_perfect.png"))
    assert panel.shape[0] == SIZE[0] + 22 and panel.shape[1] == 5 * SIZE[1]  # aif, gt, pred, error, confidence
    md = (tmp_path / "metrics.md").read_text()
    assert "| proc | plus10 | depth | 2 | 0.1000 |" in md


def test_classical_estimator_gives_finite_metrics_and_all_report_files(tmp_path: Path) -> None:
    from dfdnet_core.estimator import make_estimator

    report = evaluate({"classical": make_estimator("classical")}, _scenes(1), EvalConfig(), tmp_path,
                      dataset="proc", progress=False)
    mean = report.means("classical")["depth"]
    for key in ("abs_rel", "sq_rel", "rmse", "log_rmse", "delta_1.25", "bumpiness"):
        assert math.isfinite(mean[key]), key
    assert 0.0 < mean["abs_rel"] < 0.5 and 0.05 < mean["coverage"] <= 1.0
    assert (tmp_path / "metrics.md").is_file() and (tmp_path / "metrics.json").is_file()
    assert len(list((tmp_path / "panels").glob("*.png"))) == 1


def test_adaptive_focus_spans_the_5_to_95_percent_disparity_quantiles() -> None:
    disparity = np.linspace(0.2, 2.2, 2001)  # 1/m in steps of 0.001
    depth = np.concatenate([1.0 / disparity, [np.nan, 0.0, -1.0]])[None]  # holes are ignored
    fd = np.asarray(FocusSchedule().distances_for(depth, 5))  # 5 % / 95 % quantiles of U(0.2, 2.2): 0.3 and 2.1
    assert 1.0 / fd[0] == pytest.approx(2.1, rel=1e-4) and 1.0 / fd[-1] == pytest.approx(0.3, rel=1e-4)
    assert np.allclose(np.diff(1.0 / fd), (0.3 - 2.1) / 4, rtol=1e-4)
    flat = FocusSchedule().distances_for(np.full((4, 4), 2.0), 3)  # a flat scene is bracketed +-5 % in disparity
    assert 1.0 / np.asarray(flat) == pytest.approx([0.525, 0.5, 0.475])
    with pytest.raises(DataError, match="no valid pixel"):
        FocusSchedule().distances_for(np.full((4, 4), np.nan), 3)


def test_focus_specs_parse() -> None:
    assert FocusSchedule.parse("fixed:0.5,1,2").distances_for(None, 3) == [0.5, 1.0, 2.0]
    rng = FocusSchedule.parse("range:0.5,2").distances_for(None, 4)
    assert 1.0 / np.asarray(rng) == pytest.approx([2.0, 1.5, 1.0, 0.5])
    assert FocusSchedule.parse("adaptive:0.1,0.9").quantiles == (0.1, 0.9)
    for spec, match in (("fixed:a,b", "not a comma-separated"), ("median", "focus spec must be"),
                        ("range:1", "focus spec must be"), ("range:3,1", "near_m < far_m"),
                        ("fixed:", "finite metres"), ("adaptive:0.9,0.1", "low < high")):
        with pytest.raises(ConfigError, match=match):
            FocusSchedule.parse(spec)
    with pytest.raises(ConfigError, match="focus kind"):
        FocusSchedule("best")


def test_lens_conventions_of_rendered_stacks() -> None:
    scene = _scenes(1)[0]
    fossa = prepare_rgbd(scene, EvalConfig(max_side_px=48)).stack  # 36 mm across the long edge, f = pitch * fx
    k = scene.intrinsics
    assert k is not None
    assert (fossa.height_px, fossa.width_px) == (36, 48)
    assert fossa.optics.pixel_pitch_m == pytest.approx(0.036 / 48)
    assert fossa.optics.focal_length_m == pytest.approx(0.036 / 48 * k.fx_px * 0.5)
    assert fossa.intrinsics.fx_px == pytest.approx(k.fx_px * 0.5)
    no_k = RgbdSample(scene.rgb, scene.depth_m, None, "no_intrinsics")
    fixed = prepare(no_k, EvalConfig(render=RenderProtocol(focal_length_m=0.035, sensor_width_m=0.02322)))
    assert fixed.stack.optics.focal_length_m == 0.035 and fixed.assumed == ()
    assert fixed.stack.intrinsics.fx_px == pytest.approx(0.035 / (0.02322 / SIZE[1]))
    assumed = prepare(no_k, EvalConfig(fallback_hfov_deg=90.0))
    assert assumed.assumed == ("intrinsics",) and assumed.stack.intrinsics.fx_px == pytest.approx(SIZE[1] / 2)


def test_pinhole_protocol_renders_the_input_unchanged() -> None:
    scene = _scenes(1)[0]
    item = prepare_rgbd(scene, EvalConfig(render=RenderProtocol(f_number=math.inf)))
    assert all(np.array_equal(img, scene.rgb) for img in item.stack.images)
    assert np.array_equal(item.gt_depth_m, scene.depth_m, equal_nan=True) and item.rendered


def _write_stack_folder(folder: Path) -> None:
    """A real-format focal-stack folder: 5 PNGs named by focus distance, rendered from a procedural scene."""
    folder.mkdir()
    scene = _scenes(1)[0]
    focus = [0.4, 0.6, 1.0, 2.0, 5.0]
    images = render_stack_uint8(scene.rgb, scene.depth_m, focus, LensOptics(0.01, 1.4, 3e-5), mode="gather")
    for i, (img, d) in enumerate(zip(images, focus, strict=True)):
        cv2.imwrite(str(folder / f"img_{i}_{d:.2f}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))


def test_stacks_without_ground_truth_give_panels_and_say_so(tmp_path: Path) -> None:
    _write_stack_folder(tmp_path / "stack")
    code = main(["eval", "--root", str(tmp_path / "stack"), "--out", str(tmp_path / "out"), "--no-progress",
                 "--max-side", "48"])
    assert code == 0
    doc = _strict_json(tmp_path / "out" / "metrics.json")
    assert doc["samples_with_ground_truth"] == 0 and doc["mean"] == {"classical": None}
    sample = doc["samples"][0]  # type: ignore[index]
    assert sample["ground_truth"] is False and sample["estimators"]["classical"]["metrics"] is None
    assert sample["focus_distances_m"] == [0.4, 0.6, 1.0, 2.0, 5.0] and "intrinsics" in sample["assumed"]
    assert sample["size_px"] == [36, 48]  # shrunk on load by the loader's max_side_px
    assert "no ground truth" in (tmp_path / "out" / "metrics.md").read_text()
    panel = cv2.imread(str(tmp_path / "out" / "panels" / "000_stack_classical.png"))
    assert panel.shape == (36 + 22, 3 * 48, 3)  # all-in-focus, prediction, confidence


def test_disparity_ground_truth_is_scored_in_disparity(tmp_path: Path) -> None:
    k = 0.14124  # metres x pixels, as DDFF-12
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 5.0, (32, 40)).astype(np.float32)
    stack = StackSample(rng.integers(0, 255, (3, 32, 40, 3), dtype=np.uint8), np.array([0.5, 1.0, 2.0]), "ddff",
                        depth_m=depth, disparity_px=(k / depth).astype(np.float32), gt_is_disparity=True,
                        intrinsics=CameraIntrinsics(40, 32, 40.0, 40.0, 19.5, 15.5))
    report = evaluate({"plus10": OracleStub([depth], 1.1)}, [stack], EvalConfig(panels=0), tmp_path,
                      dataset="ddff-like", progress=False)
    mean = report.means("plus10")["disparity"]
    gt_disp = k / depth.astype(np.float64)
    assert mean["abs_rel"] == pytest.approx(1.0 - 1.0 / 1.1, rel=1e-5)
    assert mean["rmse"] == pytest.approx(math.sqrt(np.mean(np.square(gt_disp / 1.1 - gt_disp))), rel=1e-4)
    assert report.samples[0]["space"] == "disparity"
    broken = StackSample(stack.images, stack.focus_distances_m, "no_depth", disparity_px=stack.disparity_px,
                         gt_is_disparity=True)
    with pytest.raises(DataError, match="without metric depth"):
        prepare(broken, EvalConfig())


def test_cli_procedural_run_and_estimator_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "proc"
    code = main(["eval", "--procedural", "1", "--procedural-size", "48x64", "--focus", "range:0.5,10",
                 "--out", str(out), "--no-progress", "--panels", "1"])
    assert code == 0
    doc = _strict_json(out / "metrics.json")
    assert doc["samples_total"] == 1 and doc["mean"]["classical"]["depth"]["samples"] == 1  # type: ignore[index]
    assert "command" in doc and "date" in doc and "machine" in doc
    assert (out / "panels" / f"000_procedural_{PROCEDURAL_EVAL_SEED}_classical.png").is_file()
    assert main(["eval", "--procedural", "1", "--checkpoint", "x.pt", "--out", str(out)]) == 1
    assert "takes no checkpoint" in capsys.readouterr().err
    assert main(["eval", "--procedural", "1", "--backend", "nope", "--out", str(out)]) == 1
    assert "unknown depth backend 'nope'" in capsys.readouterr().err
    assert main(["eval", "--procedural", "1", "--focus", "fixed:1,2", "--n-slices", "3", "--out", str(out)]) == 1
    assert "fixed focus list has 2" in capsys.readouterr().err


def test_wrong_sized_prediction_and_bad_inputs_are_rejected(tmp_path: Path) -> None:
    class Tiny:
        name = "tiny"

        def estimate(self, stack: FocalStack) -> DepthResult:
            return DepthResult(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), stack.images[0])

    with pytest.raises(ConfigError, match="returned depth of shape"):
        evaluate({"tiny": Tiny()}, _scenes(1), EvalConfig(), None, dataset="x", progress=False)
    with pytest.raises(ConfigError, match="at least one estimator"):
        evaluate({}, _scenes(1), EvalConfig(), None, dataset="x", progress=False)
    with pytest.raises(ConfigError, match="cannot evaluate a str"):
        prepare("sample", EvalConfig())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: RenderProtocol(f_number=0.0), "f_number"),
        (lambda: RenderProtocol(n_slices=0), "n_slices"),
        (lambda: RenderProtocol(render_mode="splat"), "render_mode"),  # type: ignore[arg-type]
        (lambda: RenderProtocol(psf="disc"), "psf must be"),  # type: ignore[arg-type]
        (lambda: RenderProtocol(sensor_width_m=-1.0), "sensor_width_m"),
        (lambda: RenderProtocol(focal_length_m=0.0), "focal_length_m"),
        (lambda: EvalConfig(max_side_px=4), "max_side_px"),
        (lambda: EvalConfig(panels=-1), "panels"),
        (lambda: EvalConfig(min_depth_m=5.0, max_depth_m=1.0), "min_depth_m < max_depth_m"),
        (lambda: EvalConfig(fallback_hfov_deg=0.0), "fallback_hfov_deg"),
        (lambda: open_eval_source("middlebury2014", None, {}), "needs a root"),
        (lambda: open_eval_source("middlebury2014", "/x", {}, procedural=2), "not both"),
        (lambda: open_eval_source("x", None, {}, procedural=2, procedural_size="big"), "HxW"),
    ],
)
def test_configs_reject_invalid_values(make: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make()  # type: ignore[operator]
