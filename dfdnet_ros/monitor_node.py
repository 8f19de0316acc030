"""dfd_monitor: watches /dfd/depth for `dfdnet run` — rate, latency, AbsRel against simulated ground truth.

Keeps the latest depth, all-in-focus image, confidence and ground truth so the runner can save pictures.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.errors import DfdError
from dfdnet_core.metrics import depth_metrics
from dfdnet_ros.conversions import image_to_numpy, intrinsics_from_camera_info, time_to_ns


@dataclass
class Latest:
    """The newest outputs (None until received)."""

    depth_m: npt.NDArray[np.float32] | None = None
    all_in_focus: npt.NDArray[np.uint8] | None = None
    confidence: npt.NDArray[np.float32] | None = None
    ground_truth_m: npt.NDArray[np.float32] | None = None
    intrinsics: CameraIntrinsics | None = None


class MonitorNode(Node):
    """Subscribes to the pipeline's outputs and keeps running statistics."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__("dfd_monitor", **kwargs)
        self.latest = Latest()
        self.lock = threading.Lock()
        self.depth_count = 0
        self.abs_rel: deque[float] = deque(maxlen=50)
        self.coverage: deque[float] = deque(maxlen=50)
        self.latency_s: deque[float] = deque(maxlen=50)
        self._arrivals: deque[float] = deque(maxlen=50)
        self.create_subscription(Image, "/dfd/depth", self._on_depth, 2)
        self.create_subscription(Image, "/dfd/all_in_focus", self._on_aif, 2)
        self.create_subscription(Image, "/dfd/confidence", self._on_conf, 2)
        self.create_subscription(CameraInfo, "/dfd/camera_info", self._on_info, 2)
        self.create_subscription(Image, "camera/ground_truth/depth", self._on_gt, 1)

    def _on_depth(self, msg: Image) -> None:
        try:
            depth = image_to_numpy(msg)
        except DfdError:
            return
        now = time.monotonic()
        with self.lock:
            self.latest.depth_m = depth
            self.depth_count += 1
            self._arrivals.append(now)
            self.latency_s.append((self.get_clock().now().nanoseconds - time_to_ns(msg.header.stamp)) * 1e-9)
            gt = self.latest.ground_truth_m
        if gt is not None and gt.shape == depth.shape:
            m = depth_metrics(depth, gt)
            with self.lock:
                self.abs_rel.append(m["abs_rel"])
                self.coverage.append(m["coverage"])

    def _on_aif(self, msg: Image) -> None:
        with self.lock:
            self.latest.all_in_focus = image_to_numpy(msg)

    def _on_conf(self, msg: Image) -> None:
        with self.lock:
            self.latest.confidence = image_to_numpy(msg)

    def _on_info(self, msg: CameraInfo) -> None:
        with self.lock:
            self.latest.intrinsics = intrinsics_from_camera_info(msg)

    def _on_gt(self, msg: Image) -> None:
        with self.lock:
            self.latest.ground_truth_m = image_to_numpy(msg)


    def summary(self) -> dict[str, float]:
        """Depth count, rate (Hz), median latency (ms), mean AbsRel and coverage over the recent images."""
        with self.lock:
            lat = sorted(self.latency_s)
            return {
                "depth_images": float(self.depth_count),
                "depth_rate_hz": self._rate_hz(),
                "latency_ms_median": 1e3 * lat[len(lat) // 2] if lat else float("nan"),
                "abs_rel_mean": float(np.nanmean(self.abs_rel)) if self.abs_rel else float("nan"),
                "coverage_mean": float(np.nanmean(self.coverage)) if self.coverage else float("nan"),
            }

    def _rate_hz(self) -> float:
        """Depth images per second over the last arrivals (call with the lock held)."""
        arrivals = list(self._arrivals)
        if len(arrivals) < 2:
            return 0.0
        return (len(arrivals) - 1) / max(arrivals[-1] - arrivals[0], 1e-9)
