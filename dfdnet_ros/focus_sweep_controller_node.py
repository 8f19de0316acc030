"""focus_sweep_controller: drives the lens through disparity-uniform focus sweeps (see docs/NODES.md)."""

from __future__ import annotations

import math

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.timer import Timer
from sensor_msgs.msg import Image

from dfdnet_core.drivers.driver import LensDriver, make_driver
from dfdnet_core.errors import DfdError
from dfdnet_core.node_configs import ControllerConfig
from dfdnet_core.sweep import SweepConfig, SweepPlanner, SweepStep
from dfdnet_ros.conversions import image_to_numpy, lens_state_msg
from dfdnet_ros.diagnostics import NodeDiagnostics
from dfdnet_ros.msg import LensState
from dfdnet_ros.params import declare_config


class FocusSweepControllerNode(Node):
    """Command -> wait settle_time_s -> publish settled -> dwell -> next focus; survives driver failures."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__("focus_sweep_controller", **kwargs)
        self.sweep_config = declare_config(self, SweepConfig)
        self.config = declare_config(self, ControllerConfig)
        self.planner = SweepPlanner(self.sweep_config)
        self.driver: LensDriver = make_driver(self.config.driver, **self.config.driver_options_dict)
        self._pub = self.create_publisher(LensState, "/dfd/lens_state", 20)
        self.diagnostics = NodeDiagnostics(self, hardware_id=f"lens:{self.config.driver}")
        self.diagnostics.values["driver"] = self.config.driver
        self._timer: Timer | None = None
        self._step: SweepStep | None = None
        self._open = False
        if self.sweep_config.mode == "adaptive":
            self.create_subscription(Image, "/dfd/depth", self._on_depth, 1)
        self._schedule(0.0, self._start_step)
        self.get_logger().info(
            f"sweeping {self.sweep_config.n_focus} focus distances {self.sweep_config.near_m}-"
            f"{self.sweep_config.far_m} m ({self.sweep_config.order}, {self.sweep_config.mode}) with driver "
            f"{self.config.driver!r}"
        )

    def _schedule(self, delay_s: float, callback) -> None:
        if self._timer is not None:
            self.destroy_timer(self._timer)

        def fire() -> None:
            if self._timer is not None:
                self.destroy_timer(self._timer)
                self._timer = None
            callback()

        self._timer = self.create_timer(max(delay_s, 1e-4), fire)

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _publish(self, step: SweepStep, settled: bool, stamp_ns: int) -> None:
        temperature = None
        try:
            temperature = self.driver.status().temperature_c
        except Exception:
            pass
        self.diagnostics.values["temperature_c"] = "unknown" if temperature is None else f"{temperature:.2f}"
        self.diagnostics.values["lens_settled"] = str(settled)
        resyncs = getattr(self.driver, "resync_count", None)  # drivers with a link to re-synchronise
        if resyncs is not None:
            self.diagnostics.values["driver_resyncs"] = str(resyncs)
        self._pub.publish(
            lens_state_msg(stamp_ns, self.config.frame_id, step.focus_m, settled, step.sweep_id, step.index,
                           step.length, temperature, self.config.driver)
        )

    def _fail(self, exc: Exception) -> None:
        detail = str(exc) if isinstance(exc, DfdError) else f"{type(exc).__name__}: {exc}"
        self.diagnostics.error(f"lens driver {self.config.driver!r} failed: {detail}; retrying every "
                               f"{self.config.reconnect_period_s} s")
        self.diagnostics.count("driver_errors")
        self._open = False
        try:
            self.driver.close()
        except Exception:
            pass
        self._schedule(self.config.reconnect_period_s, self._start_step)

    def _start_step(self) -> None:
        try:
            if not self._open:
                self.driver.open()
                self._open = True
                self.diagnostics.error(None)
                self.get_logger().info(f"lens driver {self.config.driver!r} open")
            step = self._step if self._step is not None else self.planner.next_step()
            self._step = step
            if step.needs_move or self.diagnostics.counters["steps"] == 0:
                self.driver.set_focus_m(step.focus_m)
                self._publish(step, False, self._now_ns())
                settle_s = self.sweep_config.settle_time_s
            else:
                settle_s = 0.0
        except Exception as exc:
            self._fail(exc)
            return
        self._schedule(settle_s, self._settled)

    def _settled(self) -> None:
        step = self._step
        if step is None:
            return
        self._publish(step, True, self._now_ns())
        self.diagnostics.count("steps")
        self.diagnostics.values["focus_m"] = f"{step.focus_m:.4f}"
        self.diagnostics.values["sweep_id"] = str(step.sweep_id)
        self._step = None
        self._schedule(self.config.dwell_time_s, self._start_step)

    def _on_depth(self, msg: Image) -> None:
        try:
            depth = image_to_numpy(msg)
        except DfdError as exc:
            self.diagnostics.drop("bad_depth", str(exc))
            return
        found = self.planner.update_from_depth(depth)
        if found.reason:
            self.diagnostics.values["adaptive"] = f"kept range: {found.reason}"
        elif math.isfinite(found.near_m):
            self.diagnostics.values["adaptive"] = f"{found.near_m:.3f}-{found.far_m:.3f} m"

    def destroy_node(self) -> None:
        try:
            self.driver.close()
        except Exception:
            pass
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Run the node until shut down."""
    try:
        with rclpy.init(args=args):
            rclpy.spin(FocusSweepControllerNode())
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0
