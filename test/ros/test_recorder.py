"""`dfdnet record --sim`: the simulated pipeline recorded over Fast DDS by the recorder node, read back without ROS.

The bag must hold what the pipeline published (lens states, frames, camera infos, ground truth, stacks, depth)
with sane stamps, byte-identical CDR that rclpy deserialises, and the type hashes rosidl generated, so that
``ros2 bag play`` on a ROS 2 install accepts it; and ``dfdnet eval --bag`` must score it.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from rosutil import rclpy  # first: skips the module without ROS

from rclpy.serialization import deserialize_message, serialize_message
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import CameraInfo, Image

from dfdnet_core.bag import KINDS, BagReader, BagTopics
from dfdnet_core.estimator import make_estimator
from dfdnet_core.evaluation import EvalConfig
from dfdnet_core.evaluation_bag import BagEvalOptions, evaluate_bag
from dfdnet_core.sim_camera import SimCameraConfig
from dfdnet_ros.conversions import focal_stack_from_msg, image_to_numpy, intrinsics_from_camera_info, time_to_ns
from dfdnet_ros.msg import FocusStack, LensState
from dfdnet_ros.recorder_node import record

DURATION_S = 8.0
H, W = 120, 160
TOPICS = BagTopics()
ROS_TYPES = {TOPICS.lens_state: LensState, TOPICS.image: Image, TOPICS.camera_info: CameraInfo,
             TOPICS.ground_truth: Image, TOPICS.stack: FocusStack, TOPICS.depth: Image}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int], int, int]:
    bag = tmp_path_factory.mktemp("rec") / "sim_bag"
    start_ns = time.time_ns()
    counts = record("sim", bag, DURATION_S, topics=tuple(ROS_TYPES), overrides={
        "sim_camera": {"width_px": W, "height_px": H},
    })
    return bag, counts, start_ns, time.time_ns()


def test_recording_holds_every_topic_with_sane_stamps(recorded) -> None:
    bag, counts, start_ns, end_ns = recorded
    assert set(counts) == set(ROS_TYPES), counts
    with BagReader(bag) as reader:
        items = list(reader.records(("lens_state", "image", "camera_info", "ground_truth", "depth"), order="log"))
        assert reader.topic_types[TOPICS.stack][1] == counts[TOPICS.stack] >= 1
    by_kind: dict[str, list] = {}
    for item in items:
        by_kind.setdefault(item.kind, []).append(item)
        assert start_ns - 10**9 <= item.record.stamp_ns <= item.log_time_ns <= end_ns, item  # stamped, then received
        assert item.log_time_ns - item.record.stamp_ns < 2 * 10**9
    frames = by_kind["image"]
    assert len(frames) >= 20 and abs(len(by_kind["ground_truth"]) - len(frames)) <= 3
    for kind, got in by_kind.items():
        stamps = [i.record.stamp_ns for i in got]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps), f"{kind} stamps not increasing"
    sim = SimCameraConfig(width_px=W, height_px=H)
    assert all(f.record.encoding == "rgb8" and f.record.image.shape == (H, W, 3) for f in frames)
    assert all(i.record.intrinsics == sim.intrinsics for i in by_kind["camera_info"])
    gt = by_kind["ground_truth"][-1].record.image
    assert gt.dtype == np.float32 and sim.scene_near_m - 1e-3 <= gt.min() and gt.max() <= sim.scene_far_m + 1e-3
    # the controller publishes a move command, then the settled state; each settled state follows its command
    lens = [i.record for i in by_kind["lens_state"]]
    for moving, settled in itertools.pairwise(lens):
        if settled.settled and not moving.settled:
            assert (settled.focus_m, settled.index) == (moving.focus_m, moving.index)
            assert 0 <= settled.stamp_ns - moving.stamp_ns < 10**9
    assert {s.length for s in lens} == {5} and all(s.driver == "sim" for s in lens)
    depth = by_kind["depth"][-1].record
    assert depth.encoding == "32FC1" and depth.image.shape == (H, W)


def test_bag_bytes_are_what_rclpy_serialises_and_hashes_are_rosidl_s(recorded) -> None:
    bag, _, _, _ = recorded
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    for entry in meta["topics_with_message_count"]:
        topic = entry["topic_metadata"]
        package, _, name = topic["type"].split("/")
        description = next(Path(p) / "share" / package / "msg" / f"{name}.json" for p in prefixes
                           if (Path(p) / "share" / package / "msg" / f"{name}.json").is_file())
        hashes = {h["type_name"]: h["hash_string"] for h in json.loads(description.read_text())["type_hashes"]}
        assert topic["type_description_hash"] == hashes[topic["type"]], topic["name"]
        qos = topic["offered_qos_profiles"]
        assert qos and qos[0]["reliability"] == "reliable", topic["name"]
    # the first message of every topic, deserialised by rclpy, equals what dfdnet_core.bag decodes without ROS
    with BagReader(bag) as ours:
        decoded = {(i.topic, i.log_time_ns): i.record for i in ours.records(KINDS, order="log")}
    seen: set[str] = set()
    with Reader(bag) as reader:
        for conn, log_time_ns, raw in reader.messages():
            if conn.topic in seen:
                continue
            seen.add(conn.topic)
            msg = deserialize_message(raw, ROS_TYPES[conn.topic])
            rec = decoded[(conn.topic, log_time_ns)]
            assert time_to_ns(msg.header.stamp) == rec.stamp_ns and msg.header.frame_id == rec.frame_id
            if isinstance(msg, Image):
                np.testing.assert_array_equal(image_to_numpy(msg), rec.image)  # NaN = NaN (no depth)
                assert msg.encoding == rec.encoding
            elif isinstance(msg, CameraInfo):
                assert intrinsics_from_camera_info(msg) == rec.intrinsics
            elif isinstance(msg, LensState):
                assert (msg.focus_distance_m, msg.settled, msg.sweep_id, msg.index, msg.sweep_length, msg.driver) == (
                    rec.focus_m, rec.settled, rec.sweep_id, rec.index, rec.length, rec.driver)
            else:
                stack = focal_stack_from_msg(msg)
                assert np.array_equal(stack.images, rec.images)
                assert np.array_equal(stack.focus_distances_m, rec.focus_distances_m)
                assert stack.optics == rec.optics and stack.intrinsics == rec.intrinsics
            assert deserialize_message(serialize_message(msg), ROS_TYPES[conn.topic]) == msg
    assert seen == set(ROS_TYPES)


def test_recorded_bag_replays_into_stacks_that_score_like_the_live_ones(recorded, tmp_path: Path) -> None:
    bag, counts, _, _ = recorded
    est = {"classical": make_estimator("classical")}
    replay = evaluate_bag(est, bag, EvalConfig(panels=0), tmp_path, progress=False)
    live = evaluate_bag(est, bag, EvalConfig(panels=0), None, progress=False, options=BagEvalOptions(from_stacks=True))
    assert replay.metadata["bag"]["stacks"] >= counts[TOPICS.stack] - 1 >= 0
    assert live.metadata["bag"]["stacks"] == counts[TOPICS.stack]
    for report in (replay, live):
        mean = report.means("classical")["depth"]
        assert report.metadata["bag"]["stacks_with_ground_truth"] == report.metadata["bag"]["stacks"]
        assert mean["abs_rel"] < 0.15 and mean["coverage"] > 0.5, mean
        assert report.samples[0]["focal_length_m"] == pytest.approx(0.008)  # the optics the recorder stored
        assert report.samples[0]["pixel_pitch_m"] == pytest.approx(6e-6)
    assert rclpy.ok() is False  # record() shut its context down
