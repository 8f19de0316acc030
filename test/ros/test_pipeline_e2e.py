"""The whole simulated pipeline over real Fast DDS: sim_camera -> controller -> stack_buffer -> dfd_inference."""

from __future__ import annotations

import numpy as np
import pytest

from rosutil import Collector, Graph, diagnostics_values

from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from dfdnet_core.metrics import depth_metrics
from dfdnet_core.pointcloud import points_reproject
from dfdnet_ros.conversions import image_to_numpy, intrinsics_from_camera_info, time_to_ns
from dfdnet_ros.runner import default_params_file, make_nodes

DEPTH_IMAGES = 10


@pytest.fixture(scope="module")
def pipeline_run():
    graph = Graph(["test", "--ros-args", "--params-file", str(default_params_file("sim")), "--log-level", "error"])
    try:
        nodes = {n.get_name(): graph.add(n) for n in make_nodes("sim", context=graph.context)}
        probe = graph.node("e2e_probe")
        got = Collector(probe, [("/dfd/depth", Image), ("/dfd/camera_info", CameraInfo), ("/dfd/points", PointCloud2),
                                ("/dfd/confidence", Image), ("/dfd/all_in_focus", Image),
                                ("/camera/ground_truth/depth", Image), ("/diagnostics", DiagnosticArray)])
        graph.spin_until(lambda: len(got["/dfd/depth"]) >= DEPTH_IMAGES + 2 and len(got["/dfd/points"]) >= 2, 150.0)
        graph.spin_until(lambda: False, 1.2)  # one more diagnostics period
        yield nodes, got
    finally:
        graph.close()


def test_all_four_nodes_produce_at_least_ten_depth_images(pipeline_run):
    nodes, got = pipeline_run
    assert set(nodes) == {"sim_camera", "focus_sweep_controller", "stack_buffer", "dfd_inference"}
    assert len(got["/dfd/depth"]) >= DEPTH_IMAGES
    for name in nodes:
        assert diagnostics_values(got["/diagnostics"], name), f"{name} published no diagnostics"


def test_depth_is_rep118_and_accurate_where_confident(pipeline_run):
    _, got = pipeline_run
    gt = image_to_numpy(got["/camera/ground_truth/depth"][-1])
    abs_rels, coverages = [], []
    for msg in got["/dfd/depth"][2:]:  # the first stacks may straddle start-up
        assert msg.encoding == "32FC1"
        depth = image_to_numpy(msg)
        assert depth.dtype == np.float32 and depth.shape == gt.shape
        finite = depth[np.isfinite(depth)]
        assert np.all(finite > 0), "depth must be positive metres or NaN"
        m = depth_metrics(depth, gt)
        abs_rels.append(m["abs_rel"])
        coverages.append(m["coverage"])
    assert np.median(abs_rels) <= 0.10, f"AbsRel per image {np.round(abs_rels, 3)}"
    assert np.median(coverages) >= 0.5, f"confident fraction per image {np.round(coverages, 3)}"


def test_camera_info_matches_depth_stamp_and_frame(pipeline_run):
    _, got = pipeline_run
    infos = {(time_to_ns(m.header.stamp), m.header.frame_id) for m in got["/dfd/camera_info"]}
    for msg in got["/dfd/depth"]:
        assert (time_to_ns(msg.header.stamp), msg.header.frame_id) in infos


def test_point_cloud_reprojects_to_the_depth_image(pipeline_run):
    _, got = pipeline_run
    depth_by_stamp = {time_to_ns(m.header.stamp): m for m in got["/dfd/depth"]}
    info_by_stamp = {time_to_ns(m.header.stamp): m for m in got["/dfd/camera_info"]}
    cloud = next(c for c in reversed(got["/dfd/points"]) if time_to_ns(c.header.stamp) in depth_by_stamp)
    stamp = time_to_ns(cloud.header.stamp)
    depth = image_to_numpy(depth_by_stamp[stamp])
    intr = intrinsics_from_camera_info(info_by_stamp[stamp])
    assert (cloud.height, cloud.width) == depth.shape and not cloud.is_dense
    offsets = {f.name: f.offset for f in cloud.fields}
    raw = np.frombuffer(bytes(cloud.data), dtype=np.uint8).reshape(cloud.height, cloud.width, cloud.point_step)
    xyz = np.stack([raw[..., offsets[a]:offsets[a] + 4].copy().view("<f4")[..., 0] for a in "xyz"], axis=-1)
    valid = np.isfinite(depth)
    assert np.array_equal(np.isfinite(xyz[..., 2]), valid)
    u, v, z = points_reproject(xyz, intr)
    rows, cols = np.nonzero(valid)
    np.testing.assert_allclose(z[valid], depth[valid], rtol=1e-6)
    np.testing.assert_allclose(u[valid], cols, atol=1e-3)
    np.testing.assert_allclose(v[valid], rows, atol=1e-3)
