"""Offline evaluation of a rosbag2 recording (``dfdnet eval --bag``): the bag's frames become focal stacks, scored.

Two sources of stacks:

* replay (default): lens states, camera frames and camera infos go through the same
  :class:`~dfdnet_core.stack_assembler.StackAssembler` as the live stack_buffer node (configured from the
  ``stack_buffer`` section of a ROS 2 parameter file, if given). By default in recording order, which is what
  stack_buffer saw live and what ``ros2 bag play`` replays (the sim's replay then gives the recorded stacks);
  ``order="stamp"`` sorts by header stamp instead (pairing independent of transport delays);
* recorded stacks (``from_stacks``): the ``FocusStack`` messages stack_buffer published while recording.

Each stack is scored against the ground-truth depth image nearest in time to its stamp (the newest frame's
exposure start), if one lies within ``max_gt_offset_s``; 32FC1 ground truth is in metres, 16UC1 in millimetres
(REP 118), resized (nearest) to the stack when the sizes differ. The stacks then go through
:func:`dfdnet_core.evaluation.evaluate` as :class:`~dfdnet_core.data.sample.StackSample` objects, so the report,
panels, downscaling and the assumptions about unknown optics are those of every other focal-stack data set.

Optics (focal length, f-number): explicit options, else the parameter file's stack_buffer optics, else the
recorded stack's, else what ``dfdnet record`` stored in the bag's custom data; unknown ones are assumed as
:func:`dfdnet_core.evaluation.prepare_stack` does (and listed in the report). The pixel pitch follows from the
focal length and the camera info's fx.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections import deque
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from dfdnet_core.bag import (
    OPTIONAL_KINDS,
    BagItem,
    BagReader,
    BagTopics,
    CameraInfoRecord,
    ImageRecord,
    Kind,
    LensStateRecord,
    StackRecord,
)
from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.config import config_from_mapping, load_yaml, node_parameters
from dfdnet_core.data.files import mm_to_m
from dfdnet_core.data.sample import StackSample
from dfdnet_core.errors import ConfigError, DataError
from dfdnet_core.estimator import DepthEstimator
from dfdnet_core.evaluation import EvalConfig, EvalReport, evaluate, write_report
from dfdnet_core.node_configs import CameraOpticsConfig
from dfdnet_core.stack_assembler import CompletedStack, FrameSample, StackAssembler, StackAssemblerConfig

ORDERS = ("stamp", "log")


@dataclass(frozen=True)
class BagEvalOptions:
    """How a bag is turned into scored stacks.

    Attributes:
        topics: topic of each kind.
        from_stacks: use the recorded FocusStack messages instead of replaying frames and lens states.
        order: ``"log"`` (as recorded: what the live node saw) or ``"stamp"`` (sorted by header stamp).
        max_gt_offset_s: a ground-truth image further than this from the stack's stamp is not used (seconds).
        focal_length_m: lens focal length in metres overriding the bag's (0 = from the bag).
        f_number: aperture f-number overriding the bag's (0 = from the bag).
        assembler: the stack assembler's settings (replay only).
    """

    topics: BagTopics = field(default_factory=BagTopics)
    from_stacks: bool = False
    order: str = "log"
    max_gt_offset_s: float = 0.1
    focal_length_m: float = 0.0
    f_number: float = 0.0
    assembler: StackAssemblerConfig = field(default_factory=StackAssemblerConfig)

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise ConfigError(f"bag order must be one of {ORDERS}, got {self.order!r}")
        if not (math.isfinite(self.max_gt_offset_s) and self.max_gt_offset_s >= 0):
            raise ConfigError(f"max_gt_offset_s must be >= 0 s, got {self.max_gt_offset_s!r}")
        for name in ("focal_length_m", "f_number"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be a finite number >= 0 (0 = from the bag), got {value!r}")


def bag_eval_options(
    options: Mapping[str, Any] | None = None,
    *,
    params_file: str | Path | None = None,
    from_stacks: bool | None = None,
    focal_length_m: float | None = None,
) -> BagEvalOptions:
    """Options from ``key=value`` pairs (``image_topic``, ``camera_info_topic``, ``lens_state_topic``,
    ``stack_topic``, ``ground_truth_topic``, ``order``, ``max_gt_offset_s``, ``focal_length_m``, ``f_number``,
    ``from_stacks``) and the ``stack_buffer`` section of a ROS 2 parameter file (assembler settings and optics).

    Keyword arguments, when not None, override both.

    Raises:
        ConfigError: an unknown key, a bad value, or an unreadable parameter file.
    """
    opts = dict(options or {})
    topic_keys = {f"{f.name}_topic": f.name for f in dataclasses.fields(BagTopics)}
    topics = BagTopics(**{topic_keys[k]: str(opts.pop(k)) for k in list(opts) if k in topic_keys})
    flat_fields = {f.name for f in dataclasses.fields(BagEvalOptions)} - {"topics", "assembler"}
    unknown = sorted(set(opts) - flat_fields)
    if unknown:
        raise ConfigError(f"unknown bag option(s) {unknown}; known: {sorted(flat_fields | set(topic_keys))}")
    assembler = StackAssemblerConfig()
    if params_file is not None:
        section = node_parameters(load_yaml(params_file), "stack_buffer")
        source = f"{str(params_file)!r} [stack_buffer]"
        fields_a = {f.name for f in dataclasses.fields(StackAssemblerConfig)}
        fields_o = {f.name for f in dataclasses.fields(CameraOpticsConfig)}
        assembler = config_from_mapping(StackAssemblerConfig, {k: v for k, v in section.items() if k in fields_a},
                                        source=source)
        optics = config_from_mapping(CameraOpticsConfig, {k: v for k, v in section.items() if k in fields_o},
                                     source=source)
        if optics.focal_length_m > 0:
            opts.setdefault("focal_length_m", optics.focal_length_m)
        if optics.f_number > 0 and math.isfinite(optics.f_number):
            opts.setdefault("f_number", optics.f_number)
    if from_stacks is not None:
        opts["from_stacks"] = from_stacks
    if focal_length_m is not None:
        opts["focal_length_m"] = focal_length_m
    return config_from_mapping(BagEvalOptions, {**opts, "topics": topics, "assembler": assembler},
                               source="bag options")


@dataclass
class BagEvalStats:
    """What happened while reading the bag (goes into metrics.json under ``"bag"``)."""

    path: str
    source: str
    stacks: int = 0
    stacks_with_ground_truth: int = 0
    messages: dict[str, int] = field(default_factory=dict)
    assembler: dict[str, Any] = field(default_factory=dict)


def depth_image_to_m(record: ImageRecord, where: str) -> npt.NDArray[np.float32]:
    """A ground-truth depth image in float32 metres, NaN where there is no depth (REP 118 encodings).

    Raises:
        DataError: the encoding is neither 32FC1 (metres) nor 16UC1/mono16 (millimetres).
    """
    if record.encoding == "32FC1":
        depth = np.array(record.image, dtype=np.float32)
    elif record.encoding in ("16UC1", "mono16"):
        depth = mm_to_m(record.image)
    else:
        raise DataError(f"{where}: ground-truth depth must be 32FC1 (m) or 16UC1 (mm), got {record.encoding!r}")
    depth[~(np.isfinite(depth) & (depth > 0))] = np.nan
    return depth


class _GroundTruth:
    """Recent ground-truth images; finds the one nearest in time to a stamp."""

    def __init__(self, max_offset_ns: int, topic: str) -> None:
        self.max_offset_ns = max_offset_ns
        self.topic = topic
        self.images: deque[ImageRecord] = deque(maxlen=64)

    def nearest(self, stamp_ns: int, hw: tuple[int, int]) -> npt.NDArray[np.float32] | None:
        best = min(self.images, key=lambda r: abs(r.stamp_ns - stamp_ns), default=None)
        if best is None or abs(best.stamp_ns - stamp_ns) > self.max_offset_ns:
            return None
        depth = depth_image_to_m(best, f"ground truth {self.topic!r} at {best.stamp_ns} ns")
        if depth.shape == hw:
            return depth
        gh, gw = depth.shape
        if abs(gw / gh - hw[1] / hw[0]) > 0.01 * hw[1] / hw[0]:
            raise DataError(f"ground truth {self.topic!r} is {gw}x{gh} px, the images {hw[1]}x{hw[0]} px: "
                            "not the same view (aspect ratios differ)")
        return np.asarray(cv2.resize(depth, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST), dtype=np.float32)

    def trim(self, before_ns: int) -> None:
        while len(self.images) > 1 and self.images[1].stamp_ns <= before_ns - self.max_offset_ns:
            self.images.popleft()


class _Stacks:
    """Turns bag items into stacks: frames and lens states through the assembler, or recorded stacks as they are."""

    def __init__(self, assembler: StackAssembler) -> None:
        self.assembler = assembler
        self.intrinsics: CameraIntrinsics | None = None

    def feed(self, item: BagItem) -> list[CompletedStack | StackRecord]:
        rec = item.record
        if isinstance(rec, StackRecord):
            return [rec]
        if isinstance(rec, LensStateRecord):
            return list(self.assembler.add_lens_state(rec.to_sample()))
        if isinstance(rec, CameraInfoRecord):
            self.intrinsics = rec.intrinsics
            return []
        if isinstance(rec, ImageRecord) and item.kind == "image":
            frame = FrameSample(rec.stamp_ns, rec.image, rec.encoding, rec.frame_id, self.intrinsics, None)
            return list(self.assembler.add_frame(frame))
        return []


def bag_stack_samples(
    bag: BagReader, options: BagEvalOptions, stats: BagEvalStats, assembler: StackAssembler | None = None
) -> Generator[StackSample, None, None]:
    """The bag's focal stacks as StackSamples with their nearest ground truth, in the order they complete.

    Args:
        bag: the open bag.
        options: topics, stack source, optics overrides.
        stats: counters, updated while iterating.
        assembler: the assembler to replay through (default: a new one with ``options.assembler``); its
            :meth:`~dfdnet_core.stack_assembler.StackAssembler.stats` tell what happened to the frames.

    Raises:
        DataError: missing topics or wrong message types, undecodable messages, unusable ground truth.
    """
    kinds: tuple[Kind, ...] = ("stack", "ground_truth") if options.from_stacks else (
        "lens_state", "image", "camera_info", "ground_truth")
    bag_optics = bag.optics_values()
    gt = _GroundTruth(round(options.max_gt_offset_s * 1e9), options.topics.ground_truth)
    source = _Stacks(assembler or StackAssembler(options.assembler))
    pending: deque[CompletedStack | StackRecord] = deque()
    newest_ns = 0
    order: Literal["stamp", "log"] = "log" if options.order == "log" else "stamp"
    for item in bag.records(kinds, optional=OPTIONAL_KINDS, order=order):
        stats.messages[item.kind] = stats.messages.get(item.kind, 0) + 1
        newest_ns = max(newest_ns, item.record.stamp_ns)
        if item.kind == "ground_truth" and isinstance(item.record, ImageRecord):
            gt.images.append(item.record)
        pending.extend(source.feed(item))
        while pending and pending[0].stamp_ns + gt.max_offset_ns < newest_ns:
            yield _sample(pending.popleft(), gt, options, bag_optics, stats, source.intrinsics)
        gt.trim(pending[0].stamp_ns if pending else newest_ns)
    while pending:
        yield _sample(pending.popleft(), gt, options, bag_optics, stats, source.intrinsics)


def _sample(
    stack: CompletedStack | StackRecord,
    gt: _GroundTruth,
    options: BagEvalOptions,
    bag_optics: Mapping[str, float],
    stats: BagEvalStats,
    latest_intrinsics: CameraIntrinsics | None,
) -> StackSample:
    hw = (int(stack.images.shape[1]), int(stack.images.shape[2]))
    depth = gt.nearest(stack.stamp_ns, hw)
    recorded = isinstance(stack, StackRecord)

    def pick(name: str) -> float | None:
        explicit = float(getattr(options, name))
        in_stack = float(getattr(stack, name)) if isinstance(stack, StackRecord) else 0.0
        for value in (explicit, in_stack, bag_optics.get(name, 0.0)):
            if math.isfinite(value) and value > 0:
                return value
        return None

    intr = next((k for k in (stack.intrinsics, latest_intrinsics)  # a first frame may precede its camera info
                 if k is not None and (k.height_px, k.width_px) == hw), None)
    stats.stacks += 1
    stats.stacks_with_ground_truth += depth is not None
    return StackSample(
        images=stack.images, focus_distances_m=stack.focus_distances_m,
        name=f"{'stack' if recorded else 'replay'}{stats.stacks - 1:04d}_sweep{stack.sweep_id}_"
             f"t{stack.stamp_ns / 1e9:.3f}",
        depth_m=depth, intrinsics=intr, f_number=pick("f_number"), focal_length_m=pick("focal_length_m"),
    )


def evaluate_bag(
    estimators: Mapping[str, DepthEstimator],
    bag_path: str | Path,
    config: EvalConfig,
    out_dir: str | Path | None,
    *,
    options: BagEvalOptions | None = None,
    limit: int | None = None,
    progress: bool = True,
    metadata: Mapping[str, Any] | None = None,
) -> EvalReport:
    """Evaluate ``estimators`` on the focal stacks of a rosbag2 recording and write the usual report.

    Args:
        estimators: label -> estimator; all see the same stacks.
        bag_path: the rosbag2 folder (mcap or sqlite3).
        config: the evaluation settings (``max_side_px``, panels, depth range, fallback camera).
        out_dir: folder for metrics.json, metrics.md and panels/; None writes nothing.
        options: topics, stack source, optics overrides.
        limit: evaluate at most this many stacks.
        progress: show a progress bar.
        metadata: extra top-level JSON entries; ``"bag"`` (:class:`BagEvalStats`) is added.

    Returns:
        The report; ``report.metadata["bag"]`` holds the bag statistics.

    Raises:
        DataError: the bag is missing or unreadable, lacks the topics, or yields no focal stack.
        ConfigError: bad options.
    """
    options = options or BagEvalOptions()
    if limit is not None and (isinstance(limit, bool) or limit < 1):
        raise ConfigError(f"limit must be None or >= 1 stacks, got {limit!r}")
    with BagReader(bag_path, options.topics) as bag:
        stats = BagEvalStats(str(bag_path), "recorded FocusStack messages" if options.from_stacks
                             else "frames + lens states replayed through StackAssembler")
        assembler = StackAssembler(options.assembler)
        samples = bag_stack_samples(bag, options, stats, assembler)
        first = next(samples, None)
        if first is None:
            raise DataError(f"bag {str(bag_path)!r} yielded no focal stack ({stats.source}); messages read: "
                            f"{stats.messages}, frame drops: {dict(assembler.frame_drops)}")
        stream = itertools.islice(itertools.chain([first], samples), limit)
        label = f"rosbag2: {Path(bag_path).name}"
        report = evaluate(estimators, stream, config, out_dir, dataset=label, progress=progress,
                          metadata=metadata)
        samples.close()
    if not options.from_stacks:
        stats.assembler = dataclasses.asdict(assembler.stats())
    report.metadata["bag"] = dataclasses.asdict(stats)
    if out_dir is not None:
        write_report(report, out_dir)
    return report
