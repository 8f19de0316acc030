"""Evaluation of depth estimators on data sets: rendering protocol, the loop, JSON / Markdown / PNG reports.

RGB-D samples are turned into focal stacks by the thin-lens renderer with a :class:`RenderProtocol` (f-number,
N, focus distances, lens convention); focal-stack samples are used as they are. Every estimator sees the same
uint8 stacks. Metrics come from :mod:`dfdnet_core.metrics`: in metres, or in disparity for data sets whose ground
truth is a disparity (DDFF-12), with the data set's own disparity scale.

Lens convention (FOSSA's, by default): the image's long edge spans ``sensor_width_m`` (36 mm), so the pixel pitch
is ``sensor_width_m / max(H, W)`` and the focal length is pitch x mean(fx, fy). A fixed ``focal_length_m`` overrides
the latter; a sample without intrinsics then gets the consistent camera fx = fy = focal_length_m / pitch,
otherwise a ``fallback_hfov_deg`` camera (reported as assumed).
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, get_args

import cv2
import numpy as np
import numpy.typing as npt
import torch
from tqdm import tqdm

from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.data.base import IndexedDataset
from dfdnet_core.data.files import downscale_max_side
from dfdnet_core.data.sample import RgbdSample, StackSample
from dfdnet_core.errors import ConfigError, DataError
from dfdnet_core.estimator import DepthEstimator
from dfdnet_core.metrics import MetricAccumulator, depth_metrics
from dfdnet_core.optics import FULL_FRAME_WIDTH_M, LensOptics, disparity_uniform_focus_m
from dfdnet_core.renderer import PsfKind, RenderMode, render_focal_stack
from dfdnet_core.stack import FocalStack
from dfdnet_core.visualise import depth_panel, save_png

FOCUS_KINDS = ("fixed", "range", "adaptive")
_MIN_ADAPTIVE_SPAN = 0.1  # relative disparity span forced on (nearly) flat scenes by the adaptive schedule


@dataclass(frozen=True)
class FocusSchedule:
    """Where the rendered slices are focused.

    Attributes:
        kind: ``"fixed"`` (``distances_m`` as given), ``"range"`` (uniform in disparity from ``near_m`` to
            ``far_m``) or ``"adaptive"`` (uniform in disparity between the ``quantiles`` of each scene's
            ground-truth disparity, FOSSA's iBims-1 protocol).
        distances_m: fixed focus distances in metres (``kind="fixed"``).
        near_m: nearest focus distance in metres (``kind="range"``).
        far_m: farthest focus distance in metres (``kind="range"``).
        quantiles: (low, high) quantiles of 1/depth over the valid ground truth (``kind="adaptive"``).
    """

    kind: str = "adaptive"
    distances_m: tuple[float, ...] = ()
    near_m: float = 0.0
    far_m: float = 0.0
    quantiles: tuple[float, float] = (0.05, 0.95)

    def __post_init__(self) -> None:
        if self.kind not in FOCUS_KINDS:
            raise ConfigError(f"focus kind must be one of {FOCUS_KINDS}, got {self.kind!r}")
        object.__setattr__(self, "distances_m", tuple(float(d) for d in self.distances_m))
        if self.kind == "fixed" and (
            len(self.distances_m) < 1 or not all(math.isfinite(d) and d > 0 for d in self.distances_m)
        ):
            raise ConfigError(f"fixed focus distances must be finite metres > 0, got {list(self.distances_m)!r}")
        if self.kind == "range" and not 0 < self.near_m < self.far_m < math.inf:
            raise ConfigError(f"a focus range needs 0 < near_m < far_m < inf, got {self.near_m!r}, {self.far_m!r}")
        lo, hi = self.quantiles
        if not 0.0 <= lo < hi <= 1.0:
            raise ConfigError(f"adaptive quantiles must satisfy 0 <= low < high <= 1, got {self.quantiles!r}")

    @classmethod
    def parse(cls, spec: str) -> FocusSchedule:
        """From ``"fixed:0.5,1,2"``, ``"range:0.3,3"``, ``"adaptive"`` or ``"adaptive:0.05,0.95"`` (metres).

        Raises:
            ConfigError: an unknown kind or values that are not numbers.
        """
        kind, _, values = spec.partition(":")
        try:
            numbers = [float(v) for v in values.split(",")] if values.strip() else []
        except ValueError:
            raise ConfigError(f"focus spec {spec!r}: {values!r} is not a comma-separated list of numbers") from None
        if kind == "fixed":
            return cls("fixed", distances_m=tuple(numbers))
        if kind == "range" and len(numbers) == 2:
            return cls("range", near_m=numbers[0], far_m=numbers[1])
        if kind == "adaptive" and len(numbers) in (0, 2):
            return cls("adaptive", quantiles=(numbers[0], numbers[1]) if numbers else (0.05, 0.95))
        raise ConfigError(f"focus spec must be fixed:D1,D2,... | range:NEAR,FAR | adaptive[:LO,HI], got {spec!r}")

    def distances_for(self, depth_m: npt.NDArray[np.floating] | None, n_slices: int) -> list[float]:
        """Focus distances in metres, near to far (fixed lists keep their order).

        Raises:
            DataError: ``kind="adaptive"`` without any valid ground-truth depth.
        """
        if self.kind == "fixed":
            return list(self.distances_m)
        if self.kind == "range":
            return disparity_uniform_focus_m(self.near_m, self.far_m, n_slices)
        depth = np.asarray(depth_m if depth_m is not None else [], dtype=np.float64)
        valid = depth[np.isfinite(depth) & (depth > 0)]
        if valid.size == 0:
            raise DataError("adaptive focus distances need ground-truth depth, but the sample has no valid pixel")
        lo, hi = (float(q) for q in np.quantile(1.0 / valid, self.quantiles))
        if hi < lo * (1.0 + _MIN_ADAPTIVE_SPAN):  # a (nearly) flat scene: spread the slices around it
            mid = 0.5 * (lo + hi)
            lo, hi = mid * (1.0 - _MIN_ADAPTIVE_SPAN / 2), mid * (1.0 + _MIN_ADAPTIVE_SPAN / 2)
        return disparity_uniform_focus_m(1.0 / hi, 1.0 / lo, n_slices)


@dataclass(frozen=True)
class RenderProtocol:
    """How RGB-D samples become focal stacks (see the module docstring for the lens convention).

    Attributes:
        f_number: aperture f-number (``math.inf`` = all in focus).
        n_slices: slices per stack (must equal the list's length for a fixed focus schedule).
        focus: where the slices are focused.
        render_mode: ``"gather"`` (the literature's per-pixel PSF) or ``"layered"`` (occlusion-aware).
        psf: ``"gaussian"`` or ``"generalised_gaussian"``; ``psf_exponent`` its p.
        psf_exponent: exponent p of the generalised Gaussian PSF (2 for ``"gaussian"``).
        sensor_width_m: physical width of the image's long edge in metres.
        focal_length_m: fixed focal length in metres; None = pitch x mean(fx, fy).
    """

    f_number: float = 1.4
    n_slices: int = 5
    focus: FocusSchedule = field(default_factory=FocusSchedule)
    render_mode: RenderMode = "gather"
    psf: PsfKind = "gaussian"
    psf_exponent: float = 2.0
    sensor_width_m: float = FULL_FRAME_WIDTH_M
    focal_length_m: float | None = None

    def __post_init__(self) -> None:
        if math.isnan(self.f_number) or self.f_number <= 0:
            raise ConfigError(f"f_number must be > 0 (inf = all in focus), got {self.f_number!r}")
        if isinstance(self.n_slices, bool) or not isinstance(self.n_slices, int) or self.n_slices < 1:
            raise ConfigError(f"n_slices must be an integer >= 1, got {self.n_slices!r}")
        if self.focus.kind == "fixed" and len(self.focus.distances_m) != self.n_slices:
            raise ConfigError(
                f"n_slices={self.n_slices} but the fixed focus list has {len(self.focus.distances_m)} distances"
            )
        if self.render_mode not in get_args(RenderMode):
            raise ConfigError(f"render_mode must be one of {get_args(RenderMode)}, got {self.render_mode!r}")
        if self.psf not in get_args(PsfKind):
            raise ConfigError(f"psf must be one of {get_args(PsfKind)}, got {self.psf!r}")
        if not (math.isfinite(self.sensor_width_m) and self.sensor_width_m > 0):
            raise ConfigError(f"sensor_width_m must be a positive number of metres, got {self.sensor_width_m!r}")
        if self.focal_length_m is not None and not (math.isfinite(self.focal_length_m) and self.focal_length_m > 0):
            raise ConfigError(
                f"focal_length_m must be None or a positive number of metres, got {self.focal_length_m!r}"
            )


@dataclass(frozen=True)
class EvalConfig:
    """Everything about an evaluation run except the estimators and the data.

    Attributes:
        render: protocol for RGB-D samples (ignored for focal stacks).
        max_side_px: shrink every sample so that its longer side is at most this (pixels); None keeps it.
        panels: write a PNG panel for the first this many samples.
        min_depth_m: ground truth below this (metres) is not scored.
        max_depth_m: ground truth above this (metres) is not scored.
        fallback_hfov_deg: horizontal field of view (degrees) assumed when a sample has no intrinsics.
        device: torch device for rendering (``"cpu"``, ``"cuda"``).
    """

    render: RenderProtocol = field(default_factory=RenderProtocol)
    max_side_px: int | None = None
    panels: int = 4
    min_depth_m: float = 1e-3
    max_depth_m: float = math.inf
    fallback_hfov_deg: float = 60.0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.max_side_px is not None and (isinstance(self.max_side_px, bool) or self.max_side_px < 8):
            raise ConfigError(f"max_side_px must be None or an integer >= 8, got {self.max_side_px!r}")
        if self.panels < 0:
            raise ConfigError(f"panels must be >= 0, got {self.panels!r}")
        if math.isnan(self.min_depth_m) or math.isnan(self.max_depth_m) or not 0 <= self.min_depth_m < self.max_depth_m:
            raise ConfigError(f"need 0 <= min_depth_m < max_depth_m, got {self.min_depth_m!r}, {self.max_depth_m!r}")
        if not 0.0 < self.fallback_hfov_deg < 180.0:
            raise ConfigError(f"fallback_hfov_deg must be in (0, 180) degrees, got {self.fallback_hfov_deg!r}")


@dataclass(frozen=True)
class EvalItem:
    """One stack ready for the estimators, with what it is scored against.

    Attributes:
        name: sample name.
        stack: the uint8 focal stack with its focus distances, intrinsics and optics.
        gt_depth_m: (H, W) ground-truth depth in metres (NaN = none), or None.
        space: ``"depth"`` or ``"disparity"`` (metrics space).
        disparity_scale: k in disparity = k / depth (metres x disparity unit), for ``space="disparity"``.
        all_in_focus: (H, W, 3) uint8 sharp reference image, or None (then the estimator's own is shown).
        rendered: True when the stack was rendered from RGB-D by this module.
        assumed: what had to be assumed about the camera (e.g. ``["intrinsics", "f_number"]``).
    """

    name: str
    stack: FocalStack
    gt_depth_m: npt.NDArray[np.float32] | None
    space: str = "depth"
    disparity_scale: float = 1.0
    all_in_focus: npt.NDArray[np.uint8] | None = None
    rendered: bool = False
    assumed: tuple[str, ...] = ()


def _resize_nearest(arr: npt.NDArray[Any], hw: tuple[int, int]) -> npt.NDArray[Any]:
    if arr.shape[:2] == hw:
        return arr
    return np.asarray(cv2.resize(arr, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST))


def _camera(
    intrinsics: CameraIntrinsics | None, hw: tuple[int, int], config: EvalConfig
) -> tuple[CameraIntrinsics, float, bool]:
    """Rendering camera at size ``hw``: (intrinsics, pixel pitch in metres, whether the intrinsics were assumed)."""
    h, w = hw
    pitch_m = config.render.sensor_width_m / max(h, w)
    if intrinsics is not None:
        return intrinsics.scaled(w, h), pitch_m, False
    if config.render.focal_length_m is not None:
        f_px = config.render.focal_length_m / pitch_m
        return CameraIntrinsics(w, h, f_px, f_px, (w - 1) / 2.0, (h - 1) / 2.0), pitch_m, False
    return CameraIntrinsics.from_horizontal_fov(w, h, config.fallback_hfov_deg), pitch_m, True


def prepare_rgbd(sample: RgbdSample, config: EvalConfig) -> EvalItem:
    """Render an RGB-D sample into a focal stack with ``config.render``.

    Raises:
        DataError: adaptive focus on a sample without valid depth.
        OpticsError: a focus distance inside the focal length.
    """
    rgb = downscale_max_side(sample.rgb, config.max_side_px)
    hw = (int(rgb.shape[0]), int(rgb.shape[1]))
    depth = _resize_nearest(sample.depth_m, hw)
    k, pitch_m, assumed = _camera(sample.intrinsics, hw, config)
    proto = config.render
    focal_m = proto.focal_length_m or pitch_m * 0.5 * (k.fx_px + k.fy_px)
    optics = LensOptics(focal_m, proto.f_number, pitch_m)
    focus = proto.focus.distances_for(depth, proto.n_slices)
    device = torch.device(config.device)
    rgb_t = torch.from_numpy(np.ascontiguousarray(rgb)).to(device).permute(2, 0, 1)[None].float() / 255.0
    rendered = render_focal_stack(
        rgb_t,
        torch.from_numpy(np.ascontiguousarray(depth)).to(device)[None, None],
        torch.tensor([focus], dtype=torch.float64, device=device),
        optics,
        mode=proto.render_mode,
        psf=proto.psf,
        psf_exponent=proto.psf_exponent,
    ).stack[0]
    images = (rendered * 255.0 + 0.5).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    stack = FocalStack(np.ascontiguousarray(images), np.asarray(focus), k, optics)
    return EvalItem(sample.name, stack, depth, all_in_focus=rgb, rendered=True,
                    assumed=("intrinsics",) if assumed else ())


def prepare_stack(sample: StackSample, config: EvalConfig) -> EvalItem:
    """Wrap a focal-stack sample (downscaled to ``config.max_side_px``) for the estimators.

    A known focal length fixes the pixel pitch (focal length / fx). Unknown optics are filled for the FocalStack
    contract and listed in ``EvalItem.assumed``: intrinsics from ``config.fallback_hfov_deg``, the f-number from
    ``config.render.f_number``, the focal length from the sensor-width convention (pitch x fx).

    Raises:
        DataError: disparity ground truth without the metric depth that fixes its scale.
        StackError: fewer than 2 images.
    """
    images = np.stack([downscale_max_side(img, config.max_side_px) for img in sample.images])
    hw = (int(images.shape[1]), int(images.shape[2]))
    h, w = hw
    if sample.intrinsics is not None:
        k = sample.intrinsics.scaled(w, h)
    else:
        k = CameraIntrinsics.from_horizontal_fov(w, h, config.fallback_hfov_deg)
    assumed = [] if sample.intrinsics is not None else ["intrinsics"]
    if sample.f_number is None:
        assumed.append("f_number")
    f_px = 0.5 * (k.fx_px + k.fy_px)
    if sample.focal_length_m is not None:  # a real lens: the pitch follows from it and the intrinsics
        focal_m, pitch_m = sample.focal_length_m, sample.focal_length_m / f_px
    else:
        assumed.append("focal_length")
        pitch_m = config.render.sensor_width_m / max(h, w)
        focal_m = pitch_m * f_px
    optics = LensOptics(focal_m, sample.f_number or config.render.f_number, pitch_m)
    stack = FocalStack(images, sample.focus_distances_m, k, optics)
    aif = None if sample.all_in_focus is None else downscale_max_side(sample.all_in_focus, config.max_side_px)
    gt = None if sample.depth_m is None else _resize_nearest(sample.depth_m, hw)
    if not sample.gt_is_disparity:
        return EvalItem(sample.name, stack, gt, all_in_focus=aif, assumed=tuple(assumed))
    if sample.depth_m is None or sample.disparity_px is None:
        raise DataError(f"{sample.name}: disparity ground truth without metric depth cannot score metric predictions")
    with np.errstate(invalid="ignore"):
        scale = float(np.nanmedian(sample.depth_m.astype(np.float64) * sample.disparity_px))
    return EvalItem(sample.name, stack, gt, "disparity", scale, aif, assumed=tuple(assumed))


def prepare(sample: RgbdSample | StackSample, config: EvalConfig) -> EvalItem:
    """:func:`prepare_rgbd` or :func:`prepare_stack`, by the sample's type."""
    if isinstance(sample, RgbdSample):
        return prepare_rgbd(sample, config)
    if isinstance(sample, StackSample):
        return prepare_stack(sample, config)
    raise ConfigError(f"cannot evaluate a {type(sample).__name__}; expected RgbdSample or StackSample")


def open_eval_source(
    dataset: str,
    root: str | Path | None,
    options: Mapping[str, Any],
    procedural: int | None = None,
    procedural_size: str = "240x320",
    max_side_px: int | None = None,
) -> tuple[Sequence[RgbdSample] | IndexedDataset[Any, Any], str]:
    """The samples to evaluate and their label: a registry data set, or ``procedural`` validation scenes.

    Procedural scenes use the evaluation seeds (:data:`dfdnet_core.training_samples.PROCEDURAL_EVAL_SEED` up),
    which training never draws. ``max_side_px`` is handed to loaders that shrink on load (cheaper than later).

    Raises:
        ConfigError: neither or both of ``root`` and ``procedural``, a bad size, unknown data set or option.
        DataError: the data set's files are missing or malformed.
    """
    from dfdnet_core.data.registry import dataset_options, open_dataset
    from dfdnet_core.training_samples import PROCEDURAL_EVAL_SEED, ProceduralRgbd

    if procedural is not None:
        if root is not None:
            raise ConfigError(f"give either a data set root or procedural scenes, not both (root {str(root)!r})")
        match = re.fullmatch(r"(\d+)x(\d+)", procedural_size)
        if match is None:
            raise ConfigError(f"procedural size must be HxW in pixels, e.g. '240x320', got {procedural_size!r}")
        size = (int(match.group(1)), int(match.group(2)))
        return ProceduralRgbd(procedural, size, split="eval"), (
            f"procedural validation scenes {size[0]}x{size[1]} (seeds {PROCEDURAL_EVAL_SEED}+)"
        )
    if root is None:
        raise ConfigError(f"data set {dataset!r} needs a root folder (--root), or use procedural scenes")
    opts = dict(options)
    if max_side_px is not None and "max_side_px" not in opts and "max_side_px" in dataset_options(dataset):
        opts["max_side_px"] = max_side_px
    return open_dataset(dataset, root, **opts), f"{dataset}: {root}"


def _json_safe(value: Any) -> Any:
    """Strict-JSON copy: NaN -> None, +-inf -> "inf"/"-inf", numpy scalars -> Python, tuples -> lists."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return None if math.isnan(v) else ("inf" if v == math.inf else "-inf" if v == -math.inf else v)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "sample"


@dataclass
class EvalReport:
    """Results of one evaluation run; :meth:`to_json` is what ``metrics.json`` holds."""

    dataset: str
    config: EvalConfig
    estimators: list[str]
    samples: list[dict[str, Any]] = field(default_factory=list)
    accumulators: dict[tuple[str, str], MetricAccumulator] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def means(self, estimator: str) -> dict[str, dict[str, float]]:
        """Per-sample means of one estimator's metrics, keyed by space (``"depth"`` / ``"disparity"``)."""
        return {space: acc.compute() for (label, space), acc in self.accumulators.items() if label == estimator}

    def to_json(self) -> dict[str, Any]:
        """The report as a strict-JSON-ready dict."""
        with_gt = sum(1 for s in self.samples if s["ground_truth"])
        doc = {
            "dataset": self.dataset,
            **self.metadata,
            "config": asdict(self.config),
            "samples_total": len(self.samples),
            "samples_with_ground_truth": with_gt,
            "samples": self.samples,
            "mean": {label: self.means(label) or None for label in self.estimators},
        }
        return dict(_json_safe(doc))


def evaluate(
    estimators: Mapping[str, DepthEstimator],
    samples: Iterable[RgbdSample | StackSample | EvalItem],
    config: EvalConfig,
    out_dir: str | Path | None,
    *,
    dataset: str,
    total: int | None = None,
    progress: bool = True,
    metadata: Mapping[str, Any] | None = None,
) -> EvalReport:
    """Run every estimator on every sample (each stack prepared once), score, and write the report.

    Args:
        estimators: label -> estimator; all see the same stacks.
        samples: RGB-D samples (rendered with ``config.render``), focal stacks, or already prepared items.
        config: the evaluation settings.
        out_dir: folder for ``metrics.json``, ``metrics.md`` and ``panels/*.png``; None writes nothing.
        dataset: data set label for the report.
        total: number of samples, for the progress bar.
        progress: show a tqdm progress bar on stderr.
        metadata: extra top-level JSON entries (command, machine, date...).

    Returns:
        The report (also written to ``out_dir``).

    Raises:
        ConfigError: no estimator, or an estimator returned depth of the wrong size.
        DataError: a sample cannot be prepared or a file cannot be written.
    """
    if not estimators:
        raise ConfigError("evaluate needs at least one estimator")
    report = EvalReport(dataset, config, list(estimators), metadata=dict(metadata or {}))
    panel_dir = None if out_dir is None else Path(out_dir) / "panels"
    if panel_dir is not None and config.panels > 0:
        try:
            panel_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"cannot create the panel folder {str(panel_dir)!r}: {exc}") from exc
    bar = tqdm(samples, total=total, desc=f"eval {dataset}", unit="stack", disable=not progress, file=sys.stderr)
    for index, sample in enumerate(bar):
        start = time.perf_counter()
        item = sample if isinstance(sample, EvalItem) else prepare(sample, config)
        entry: dict[str, Any] = {
            "index": index,
            "name": item.name,
            "ground_truth": item.gt_depth_m is not None,
            "space": item.space,
            "rendered": item.rendered,
            "assumed": list(item.assumed),
            "size_px": [item.stack.height_px, item.stack.width_px],
            "focus_distances_m": item.stack.focus_distances_m.tolist(),
            "f_number": item.stack.optics.f_number,
            "focal_length_m": item.stack.optics.focal_length_m,
            "pixel_pitch_m": item.stack.optics.pixel_pitch_m,
            "prepare_s": time.perf_counter() - start,
            "estimators": {},
        }
        for label, estimator in estimators.items():
            entry["estimators"][label] = _run_one(label, estimator, item, index, config, report, panel_dir)
        report.samples.append(entry)
    if out_dir is not None:
        write_report(report, out_dir)
    return report


def _run_one(
    label: str,
    estimator: DepthEstimator,
    item: EvalItem,
    index: int,
    config: EvalConfig,
    report: EvalReport,
    panel_dir: Path | None,
) -> dict[str, Any]:
    start = time.perf_counter()
    result = estimator.estimate(item.stack)
    seconds = time.perf_counter() - start
    hw = (item.stack.height_px, item.stack.width_px)
    if result.depth_m.shape != hw:
        raise ConfigError(f"estimator {label!r} returned depth of shape {result.depth_m.shape!r} for a {hw!r} stack")
    out: dict[str, Any] = {"estimate_s": seconds, "metrics": None, "panel": None}
    if item.gt_depth_m is not None:
        metrics = depth_metrics(
            result.depth_m,
            item.gt_depth_m,
            space=item.space,
            disparity_scale=item.disparity_scale,
            min_depth_m=config.min_depth_m,
            max_depth_m=config.max_depth_m,
        )
        report.accumulators.setdefault((label, item.space), MetricAccumulator()).add(metrics)
        out["metrics"] = metrics
    if panel_dir is not None and index < config.panels:
        aif = item.all_in_focus if item.all_in_focus is not None else result.all_in_focus
        path = panel_dir / f"{index:03d}_{_safe_name(item.name)}_{_safe_name(label)}.png"
        save_png(path, depth_panel(aif, item.gt_depth_m, result.depth_m, result.confidence))
        out["panel"] = f"panels/{path.name}"
    return out


_COLUMNS = (
    ("abs_rel", "AbsRel", "{:.4f}"),
    ("sq_rel", "SqRel", "{:.4f}"),
    ("rmse", "RMSE", "{:.4f}"),
    ("log_rmse", "logRMSE", "{:.4f}"),
    ("delta_1.05", "δ<1.05", "{:.3f}"),
    ("delta_1.25", "δ<1.25", "{:.3f}"),
    ("delta_1.25^2", "δ<1.25²", "{:.3f}"),
    ("delta_1.25^3", "δ<1.25³", "{:.3f}"),
    ("bumpiness", "Bump.", "{:.3f}"),
    ("coverage", "coverage", "{:.3f}"),
)


def _cell(value: Any, fmt: str) -> str:
    return "–" if value is None or (isinstance(value, float) and not math.isfinite(value)) else fmt.format(value)


def metrics_table(rows: Sequence[tuple[str, str, str, Mapping[str, float]]]) -> str:
    """Markdown table of mean metrics; one row per (data set, estimator, space, means).

    RMSE is in metres for ``space="depth"`` and in the data set's disparity unit for ``"disparity"``.
    """
    head = ["data set", "estimator", "space", "samples"] + [title for _, title, _ in _COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for dataset, label, space, mean in rows:
        cells = [dataset, label, space, _cell(mean.get("samples"), "{:.0f}")]
        cells += [_cell(mean.get(key), fmt) for key, _, fmt in _COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def report_markdown(report: EvalReport) -> str:
    """The Markdown summary: mean table, then one line per sample per estimator."""
    rows = [(report.dataset, label, space, mean)
            for label in report.estimators for space, mean in report.means(label).items()]
    proto = report.config.render
    focus = proto.focus.kind if proto.focus.kind != "fixed" else f"fixed {list(proto.focus.distances_m)} m"
    text = [f"## Evaluation: {report.dataset}", ""]
    if any(s["rendered"] for s in report.samples):
        lens = "36 mm" if proto.sensor_width_m == FULL_FRAME_WIDTH_M else f"{proto.sensor_width_m * 1e3:.3g} mm"
        focal = "pitch x fx" if proto.focal_length_m is None else f"{proto.focal_length_m * 1e3:.4g} mm"
        text.append(f"Rendered stacks: f/{proto.f_number:g}, {proto.n_slices} slices, focus {focus}, "
                    f"{proto.render_mode}/{proto.psf}, long edge = {lens}, focal length {focal}.")
    if report.config.max_side_px is not None:
        text.append(f"Images shrunk to at most {report.config.max_side_px} px on the long side.")
    text += ["", metrics_table(rows) if rows else "No sample has ground truth: no metrics.\n",
             "| sample | estimator | AbsRel | RMSE | δ<1.25 | coverage | s/stack | panel |",
             "|---|---|---|---|---|---|---|---|"]
    for s in report.samples:
        for label, res in s["estimators"].items():
            m = res["metrics"] or {}
            cells = [s["name"], label] if m else [s["name"], label + " (no ground truth)"]
            cells += [_cell(m.get(key), fmt) for key, fmt in
                      (("abs_rel", "{:.4f}"), ("rmse", "{:.4f}"), ("delta_1.25", "{:.3f}"), ("coverage", "{:.3f}"))]
            cells += [f"{res['estimate_s']:.3f}", f"![]({res['panel']})" if res["panel"] else ""]
            text.append("| " + " | ".join(cells) + " |")
    return "\n".join(text) + "\n"


def write_report(report: EvalReport, out_dir: str | Path) -> None:
    """Write ``metrics.json`` (strict JSON) and ``metrics.md`` into ``out_dir``.

    Raises:
        DataError: the files cannot be written.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(report.to_json(), indent=2, allow_nan=False) + "\n")
        (out / "metrics.md").write_text(report_markdown(report))
    except OSError as exc:
        raise DataError(f"cannot write the evaluation report to {str(out)!r}: {exc}") from exc
