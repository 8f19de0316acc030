"""rosbag2 I/O without ROS (dfdnet_core.bag, bag_writer, bag_messages) and `dfdnet eval --bag` (evaluation_bag).

The recording is what the simulated pipeline would record: ping-pong sweeps of lens states (a move command, then
the settled state), frames rendered by SimCamera at the focus the lens had at exposure start (one exposed while
the lens moves), camera infos and ground-truth depth with every frame.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from dfdnet_core.bag import (
    BagReader,
    BagTopics,
    BagWriter,
    CameraInfoRecord,
    ImageRecord,
    LensStateRecord,
    RecorderConfig,
    StackRecord,
    offered_qos,
    read_bag,
)
from dfdnet_core.bag_messages import decode_image, dfdnet_typestore, encode_image, find_msg_dir
from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.cli import main
from dfdnet_core.errors import ConfigError, DataError
from dfdnet_core.estimator import DepthResult, make_estimator
from dfdnet_core.evaluation import EvalConfig
from dfdnet_core.evaluation_bag import BagEvalOptions, bag_eval_options, evaluate_bag
from dfdnet_core.optics import disparity_uniform_focus_m
from dfdnet_core.sim_camera import SimCamera, SimCameraConfig
from dfdnet_core.stack import FocalStack
from dfdnet_core.stack_assembler import FrameSample, StackAssembler

H, W = 96, 128
FOCUS_M = disparity_uniform_focus_m(0.4, 2.0, 5)
SWEEPS = 3
T0_NS = 1_700_000_000_000_000_000
STEP_NS = 80_000_000  # one focus step: command, settle after 15 ms, frames at +5, +25, +58 ms
FRAME_OFFSETS_NS = (5_000_000, 25_000_000, 58_000_000)
SETTLE_NS = 15_000_000
IMAGE_RIHS01 = "RIHS01_d31d41a9a4c4bc8eae9be757b0beed306564f7526c88ea6a4588fb9582527d47"  # rosidl, Jazzy/Kilted


class ConstantDepth:
    """Estimator stub: the same depth everywhere."""

    name = "constant"

    def __init__(self, depth_m: float) -> None:
        self.depth_m = depth_m

    def estimate(self, stack: FocalStack) -> DepthResult:
        depth = np.full((stack.height_px, stack.width_px), self.depth_m, np.float32)
        return DepthResult(depth, np.ones_like(depth), stack.images[0])


def _recording() -> tuple[dict[str, list], SimCamera]:
    """The records of a simulated recording, per kind, in stamp order."""
    cam = SimCamera(SimCameraConfig(width_px=W, height_px=H))
    out: dict[str, list] = {"lens_state": [], "image": [], "camera_info": [], "ground_truth": []}
    t = T0_NS
    for sweep in range(SWEEPS):
        order = range(5) if sweep % 2 == 0 else range(4, -1, -1)
        for index, i in enumerate(order):
            f = FOCUS_M[i]
            out["lens_state"].append(LensStateRecord(t, "cam", f, 1 / f, False, sweep, index, 5, 21.5, "sim"))
            out["lens_state"].append(LensStateRecord(t + SETTLE_NS, "cam", f, 1 / f, True, sweep, index, 5, 21.5,
                                                     "sim"))
            for dt in FRAME_OFFSETS_NS:
                # a frame exposed before the lens settled shows the previous focus (blur is what a moving lens gives)
                focus = f if dt >= SETTLE_NS else (FOCUS_M[0] if t == T0_NS else out["lens_state"][-3].focus_m)
                out["camera_info"].append(CameraInfoRecord(t + dt, "cam", W, H, cam.intrinsics))
                out["image"].append(ImageRecord(t + dt, "cam", cam.capture(focus), "rgb8"))
                out["ground_truth"].append(ImageRecord(t + dt, "cam", cam.depth_m, "32FC1"))
            t += STEP_NS
    # the command to the next sweep's first focus confirms the last frames
    out["lens_state"].append(LensStateRecord(t, "cam", FOCUS_M[0], 1 / FOCUS_M[0], False, SWEEPS, 0, 5, 21.5, "sim"))
    return out, cam


def _write(path: Path, records: dict[str, list], stacks: list[StackRecord] = (), storage: str = "mcap") -> None:
    with BagWriter(path, storage=storage) as bag:
        bag.set_optics(0.008, 1.4, 6e-6)
        for kind, recs in records.items():
            for rec in recs:
                bag.write(kind, rec)
        for stack in stacks:
            bag.write("stack", stack)


def _replayed_stacks(records: dict[str, list]) -> list[StackRecord]:
    """The stacks the assembler makes of the recording, as stack_buffer would publish them."""
    events = sorted([(r.stamp_ns, 1, r) for r in records["lens_state"]] +
                    [(r.stamp_ns, 2, r) for r in records["image"]], key=lambda e: (e[0], e[1]))
    intr = records["camera_info"][0].intrinsics
    assembler, stacks = StackAssembler(), []
    for _, _, rec in events:
        done = (assembler.add_lens_state(rec.to_sample()) if isinstance(rec, LensStateRecord) else
                assembler.add_frame(FrameSample(rec.stamp_ns, rec.image, rec.encoding, rec.frame_id, intr)))
        stacks += [StackRecord(s.stamp_ns, s.frame_id, s.images, s.focus_distances_m, s.stamps_ns, s.intrinsics,
                               1.4, 0.008, 6e-6, s.sweep_id) for s in done]
    return stacks


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list], list[StackRecord]]:
    records, _ = _recording()
    stacks = _replayed_stacks(records)
    path = tmp_path_factory.mktemp("bags") / "sim"
    _write(path, records, stacks)
    return path, records, stacks


def _assert_images_equal(got: ImageRecord, want: ImageRecord) -> None:
    assert (got.stamp_ns, got.frame_id, got.encoding) == (want.stamp_ns, want.frame_id, want.encoding)
    assert got.image.dtype == want.image.dtype and np.array_equal(got.image, want.image)


# ------------------------------------------------------------------------------------------------------ round trips
def test_bag_reads_back_every_record_exactly_in_stamp_order(recording) -> None:
    path, records, stacks = recording
    items = list(read_bag(path, ("lens_state", "image", "camera_info", "ground_truth", "stack")))
    by_kind: dict[str, list] = {}
    for item in items:
        by_kind.setdefault(item.kind, []).append(item.record)
        assert item.topic == getattr(BagTopics(), item.kind)
        assert item.log_time_ns == item.record.stamp_ns  # written with log time = stamp
    stamps = [i.record.stamp_ns for i in items]
    assert stamps == sorted(stamps)
    # on equal stamps the camera info comes before its frame, the frame before its ground truth
    first = [i.kind for i in items if i.record.stamp_ns == records["image"][0].stamp_ns]
    assert first == ["camera_info", "image", "ground_truth"]
    assert by_kind["lens_state"] == records["lens_state"]
    assert by_kind["camera_info"] == records["camera_info"]
    for kind in ("image", "ground_truth"):
        assert len(by_kind[kind]) == len(records[kind]) == SWEEPS * 5 * len(FRAME_OFFSETS_NS)
        for got, want in zip(by_kind[kind], records[kind]):
            _assert_images_equal(got, want)
    assert len(by_kind["stack"]) == len(stacks) == SWEEPS
    for got, want in zip(by_kind["stack"], stacks):
        assert np.array_equal(got.images, want.images) and got.images.dtype == np.uint8
        assert np.array_equal(got.focus_distances_m, want.focus_distances_m)
        assert got.image_stamps_ns == want.image_stamps_ns and got.sweep_id == want.sweep_id
        assert got.intrinsics == want.intrinsics and got.optics == want.optics


def test_bag_metadata_names_types_with_rosidl_hashes_and_optics(recording) -> None:
    path, _, _ = recording
    meta = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["version"] == 9 and meta["storage_identifier"] == "mcap"
    topics = {t["topic_metadata"]["name"]: t["topic_metadata"] for t in meta["topics_with_message_count"]}
    assert topics["/camera/image_raw"]["type"] == "sensor_msgs/msg/Image"
    assert topics["/camera/image_raw"]["type_description_hash"] == IMAGE_RIHS01
    assert topics["/dfd/lens_state"]["type"] == "dfdnet_ros/msg/LensState"
    assert topics["/dfd/lens_state"]["type_description_hash"].startswith("RIHS01_")
    qos = topics["/camera/image_raw"]["offered_qos_profiles"][0]
    assert (qos["reliability"], qos["durability"], qos["deadline"]) == (
        "reliable", "volatile", {"sec": 9223372036, "nsec": 854775807})
    with BagReader(path) as bag:
        assert bag.optics_values() == {"focal_length_m": 0.008, "f_number": 1.4, "pixel_pitch_m": 6e-6}
        assert bag.topic_types["/dfd/lens_state"] == ("dfdnet_ros/msg/LensState", 2 * 5 * SWEEPS + 1)


def test_sqlite3_bag_round_trips_too(tmp_path: Path) -> None:
    k = CameraIntrinsics(W, H, 200.0, 210.0, 63.5, 47.5)
    lens = LensStateRecord(5, "cam", 0.7, 1 / 0.7, True, 2**32 - 1, 4, 5, math.inf, "optotune")
    with BagWriter(tmp_path / "db", storage="sqlite3") as bag:
        bag.write("lens_state", lens)
        bag.write("camera_info", CameraInfoRecord(7, "cam", W, H, None, "equidistant", (0.1, -0.2, 0.0, 0.01)))
        bag.write("camera_info", CameraInfoRecord(8, "cam", W, H, k))
    assert list((tmp_path / "db").glob("*.db3"))
    items = list(read_bag(tmp_path / "db", ("lens_state", "camera_info"), optional=()))
    assert [i.record for i in items] == [lens, CameraInfoRecord(7, "cam", W, H, None, "equidistant",
                                                                (0.1, -0.2, 0.0, 0.01)),
                                         CameraInfoRecord(8, "cam", W, H, k)]


def test_reading_sorts_by_header_stamp_or_keeps_recording_order(tmp_path: Path) -> None:
    img = np.zeros((2, 3), np.uint8)
    with BagWriter(tmp_path / "b") as bag:  # a frame logged 40 ms after its exposure, after a later lens state
        bag.write("lens_state", LensStateRecord(100_000_000, "", 1.0, 1.0, True, 0, 0, 2), log_time_ns=100_000_000)
        bag.write("lens_state", LensStateRecord(130_000_000, "", 2.0, 0.5, True, 0, 1, 2), log_time_ns=130_000_000)
        bag.write("lens_state", LensStateRecord(200_000_000, "", 1.0, 1.0, False, 1, 0, 2), log_time_ns=140_000_000)
        bag.write("image", ImageRecord(110_000_000, "", img, "mono8"), log_time_ns=150_000_000)
    with BagReader(tmp_path / "b") as bag:
        by_stamp = [i.record.stamp_ns for i in bag.records(("lens_state", "image"))]
        by_log = [i.log_time_ns for i in bag.records(("lens_state", "image"), order="log")]
        too_small = [i.record.stamp_ns for i in bag.records(("lens_state", "image"), reorder_window_s=0.001)]
    assert by_stamp == [100_000_000, 110_000_000, 130_000_000, 200_000_000]
    assert by_log == [100_000_000, 130_000_000, 140_000_000, 150_000_000]
    # the frame came 90 ms after a message stamped later, more than the window: released out of order
    assert too_small == [100_000_000, 130_000_000, 110_000_000, 200_000_000]


def test_compressed_frames_decode_to_bgr8(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    bgr = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    store = dfdnet_typestore()
    t = store.types
    msg = t["sensor_msgs/msg/CompressedImage"](
        header=t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=3, nanosec=7), frame_id="c"),
        format="bgr8; png compressed bgr8", data=np.frombuffer(cv2.imencode(".png", bgr)[1].tobytes(), np.uint8))
    with BagWriter(tmp_path / "c") as bag:
        bag.write_raw("/cam/image_raw/compressed", "sensor_msgs/msg/CompressedImage",
                      bytes(store.serialize_cdr(msg, "sensor_msgs/msg/CompressedImage")), 10)
    items = list(read_bag(tmp_path / "c", ("image",), topics=BagTopics(image="/cam/image_raw/compressed")))
    assert len(items) == 1 and items[0].record.encoding == "bgr8"
    assert items[0].record.stamp_ns == 3_000_000_007 and np.array_equal(items[0].record.image, bgr)


def test_decode_image_honours_step_padding_and_byte_order() -> None:
    depth_mm = np.array([[1, 2, 3], [400, 500, 65535]], dtype=np.uint16)
    rows = [np.concatenate([r.astype(">u2").view(np.uint8), np.full(4, 0xAB, np.uint8)]) for r in depth_mm]
    got = decode_image(3, 2, "16UC1", True, 10, np.concatenate(rows).tobytes())
    assert got.dtype == np.uint16 and np.array_equal(got, depth_mm)
    width, height, step, data = encode_image(depth_mm.astype(">u2"), "16UC1")
    assert (width, height, step) == (3, 2, 6)
    assert np.array_equal(decode_image(width, height, "16UC1", False, step, data), depth_mm)


# ------------------------------------------------------------------------------------------------------ evaluation
@pytest.mark.parametrize("order", ["log", "stamp"])
def test_eval_from_bag_replays_the_sweeps_and_scores_the_classical_baseline(recording, tmp_path: Path, order) -> None:
    path, records, _ = recording
    report = evaluate_bag({"classical": make_estimator("classical")}, path, EvalConfig(panels=1), tmp_path,
                          progress=False, options=BagEvalOptions(order=order))
    bag = report.metadata["bag"]
    assert bag["stacks"] == bag["stacks_with_ground_truth"] == SWEEPS
    stats = bag["assembler"]
    # one frame per focus step was exposed before the lens settled; of the two settled ones the newer is kept
    assert stats["frames_in"] == len(records["image"])
    assert stats["frame_drops"] == {"lens_moving": SWEEPS * 5, "superseded": SWEEPS * 5}
    assert stats["frames_used"] == SWEEPS * 5
    mean = report.means("classical")["depth"]
    assert all(math.isfinite(mean[k]) for k in ("abs_rel", "rmse", "log_rmse", "delta_1.25", "coverage"))
    assert mean["abs_rel"] < 0.2 and mean["coverage"] > 0.5 and mean["samples"] == SWEEPS
    sample = report.samples[0]
    assert sample["focus_distances_m"] == pytest.approx(FOCUS_M)
    assert sample["focal_length_m"] == pytest.approx(0.008) and sample["pixel_pitch_m"] == pytest.approx(6e-6)
    assert sample["f_number"] == 1.4 and sample["assumed"] == []
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert doc["bag"]["stacks"] == SWEEPS and (tmp_path / sample["estimators"]["classical"]["panel"]).is_file()


def test_recorded_stacks_score_exactly_like_the_replay(recording) -> None:
    path, _, _ = recording
    est = {"classical": make_estimator("classical")}
    replay = evaluate_bag(est, path, EvalConfig(panels=0), None, progress=False)
    stacks = evaluate_bag(est, path, EvalConfig(panels=0), None, progress=False,
                          options=BagEvalOptions(from_stacks=True), limit=2)
    assert stacks.metadata["bag"]["source"] == "recorded FocusStack messages" and len(stacks.samples) == 2
    for a, b in zip(replay.samples, stacks.samples):
        assert a["focus_distances_m"] == b["focus_distances_m"]
        assert a["estimators"]["classical"]["metrics"] == b["estimators"]["classical"]["metrics"]


def test_each_stack_is_scored_against_the_ground_truth_nearest_in_time(tmp_path: Path) -> None:
    k = CameraIntrinsics(W, H, 200.0, 200.0, 63.5, 47.5)
    stack_ns = 1_000_000_000
    with BagWriter(tmp_path / "gt") as bag:
        for offset_ns, depth_mm in ((-60_000_000, 1000), (20_000_000, 2000), (500_000_000, 4000)):
            gt_mm = np.full((H // 2, W // 2), depth_mm, np.uint16)  # half size: resized to the stack
            bag.write("ground_truth", ImageRecord(stack_ns + offset_ns, "", gt_mm, "16UC1"))
        images = np.zeros((3, H, W, 3), np.uint8)
        bag.write("stack", StackRecord(stack_ns, "", images, np.array([0.5, 1.0, 2.0]), (1, 2, stack_ns), k))
        bag.write("stack", StackRecord(stack_ns + 2_000_000_000, "", images, np.array([0.5, 1.0, 2.0]), (1, 2, 3), k))
    options = BagEvalOptions(from_stacks=True, max_gt_offset_s=0.1)
    report = evaluate_bag({"two": ConstantDepth(2.0)}, tmp_path / "gt", EvalConfig(panels=0), None, progress=False,
                          options=options)
    first, second = report.samples
    assert first["estimators"]["two"]["metrics"]["abs_rel"] == pytest.approx(0.0)  # the 2 m image, 20 ms away
    assert second["ground_truth"] is False  # the nearest is 1.5 s away
    assert set(first["assumed"]) == {"f_number", "focal_length"}  # the stacks carried no optics


def test_params_file_and_options_set_topics_pairing_and_optics(tmp_path: Path) -> None:
    params = tmp_path / "p.yaml"
    params.write_text("stack_buffer:\n  ros__parameters:\n    focal_length_m: 0.016\n    f_number: 2.0\n"
                      "    pixel_pitch_m: 3.45e-6\n    require_intrinsics: true\n    rolling: true\n")
    opts = bag_eval_options({"image_topic": "cam/image_raw", "f_number": 2.8, "order": "stamp"}, params_file=params)
    assert opts.topics.image == "/cam/image_raw" and opts.topics.lens_state == "/dfd/lens_state"
    assert opts.assembler.require_intrinsics and opts.assembler.rolling
    assert (opts.focal_length_m, opts.f_number, opts.order) == (0.016, 2.8, "stamp")


def test_dfdnet_eval_bag_command_writes_the_report(recording, tmp_path: Path, capsys) -> None:
    path, _, _ = recording
    out = tmp_path / "eval"
    assert main(["eval", "--bag", str(path), "--out", str(out), "--panels", "0", "--limit", "1", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "bag: 1 stack(s), 1 with ground truth" in text and "rosbag2: sim" in text
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["samples_total"] == 1 and doc["bag"]["source"].startswith("frames + lens states")
    assert main(["eval", "--from-stacks", "--procedural", "1"]) == 1
    assert "add --bag PATH" in capsys.readouterr().err
    assert main(["eval", "--bag", str(path), "--procedural", "1", "--no-progress"]) == 1
    assert "drop --root / --procedural" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------------ errors
def test_missing_or_foreign_folders_are_reported(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"recording '.*nowhere' does not exist"):
        BagReader(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not a rosbag2 folder: it has no metadata.yaml"):
        BagReader(tmp_path / "empty")
    with pytest.raises(DataError, match="exists already"):
        BagWriter(tmp_path / "empty")
    with pytest.raises(DataError, match="cannot find the dfdnet_ros .msg files"):
        find_msg_dir(tmp_path)


def test_unknown_topics_list_what_the_bag_has(recording) -> None:
    path, _, _ = recording
    with BagReader(path, BagTopics(image="/my_cam/image_raw")) as bag:
        with pytest.raises(DataError, match=r"no messages on the image topic '/my_cam/image_raw' .*it has: "
                                             r"/camera/camera_info \(sensor_msgs/msg/CameraInfo, 45 msgs\)"):
            next(bag.records())
        assert list(bag.records(("lens_state",)))  # other kinds still read


def test_wrong_message_types_are_rejected(recording) -> None:
    path, _, _ = recording
    with pytest.raises(DataError, match=r"topic '/camera/camera_info' carries 'sensor_msgs/msg/CameraInfo', but the "
                                        r"image topic must carry 'sensor_msgs/msg/Image'"):
        next(read_bag(path, ("image",), topics=BagTopics(image="/camera/camera_info")))


def test_bad_records_encodings_and_options_raise(tmp_path: Path) -> None:
    with BagWriter(tmp_path / "w") as bag:
        with pytest.raises(DataError, match="a 'lens_state' record must be a LensStateRecord, got ImageRecord"):
            bag.write("lens_state", ImageRecord(0, "", np.zeros((2, 2), np.uint8), "mono8"))
        with pytest.raises(DataError, match="rgb8 needs a non-empty array of 3 channel"):
            bag.write("image", ImageRecord(0, "", np.zeros((2, 2), np.uint8), "rgb8"))
        bag.write("ground_truth", ImageRecord(0, "", np.zeros((2, 2, 3), np.uint8), "rgb8"))
        bag.write("stack", StackRecord(0, "", np.zeros((2, 2, 2, 3), np.uint8), np.array([1.0, 2.0]), (0, 0), None))
    with pytest.raises(DataError, match="is closed"):
        bag.write_raw("/x", "std_msgs/msg/String", b"", 0)
    with pytest.raises(DataError, match="ground-truth depth must be 32FC1 .m. or 16UC1 .mm., got 'rgb8'"):
        evaluate_bag({"c": ConstantDepth(1.0)}, tmp_path / "w", EvalConfig(panels=0), None, progress=False,
                     options=BagEvalOptions(from_stacks=True, max_gt_offset_s=1.0))
    with pytest.raises(DataError, match=r"image encoding 'yuv422' is not supported"):
        decode_image(2, 2, "yuv422", False, 4, b"\0" * 8)
    with pytest.raises(DataError, match=r"needs step >= 6 and 12 bytes, got step 6 and 11 bytes"):
        decode_image(2, 2, "rgb8", False, 6, b"\0" * 11)
    with pytest.raises(ConfigError, match=r"unknown bag option\(s\) \['image_topics'\]"):
        bag_eval_options({"image_topics": "/x"})
    with pytest.raises(ConfigError, match="image topic must be a ROS topic name"):
        BagTopics(image="/")
    with pytest.raises(ConfigError, match="storage must be one of"):
        BagWriter(tmp_path / "s", storage="rosbag1")
    with pytest.raises(ConfigError, match="topics must be a non-empty list of absolute topic names"):
        RecorderConfig(topics=("camera/image_raw",))
    with pytest.raises(ConfigError, match="QoS value not defined by rmw"):
        offered_qos(9, 10, 1, 2, 0, 0, 1, 0)
    with pytest.raises(ConfigError, match="order must be 'stamp' or 'log'"), BagReader(tmp_path / "w") as reader:
        next(reader.records(("stack",), order="time"))  # type: ignore[arg-type]


def test_a_bag_without_complete_sweeps_yields_no_stack(tmp_path: Path) -> None:
    records, _ = _recording()
    records["lens_state"] = [r for r in records["lens_state"] if not r.settled]  # the lens never settled
    _write(tmp_path / "moving", records)
    with pytest.raises(DataError, match=r"yielded no focal stack .*frame drops: \{'lens_moving': 45\}"):
        evaluate_bag({"c": ConstantDepth(1.0)}, tmp_path / "moving", EvalConfig(panels=0), None, progress=False)

