"""`dfdnet run`: the nodes of a launch setup in one process, with the same parameter file as the launch files.

``ros2 launch`` is not installable from pip wheels; this runs the same node table (dfdnet_ros/launch_nodes.py)
with the same YAML, in one process (so the 4.6 MB stacks cross DDS without a second process's copy), shows live
progress, and saves pictures of the latest result.

Executors: dfd_inference spins in its own thread with a SingleThreadedExecutor, everything else in the main thread
with another. rclpy's MultiThreadedExecutor busy-waits (thousands of wake-ups per second for ~200 events) and
starves the callbacks of the interpreter lock: measured in benchmarks/pipeline.py, the split layout doubles the depth
rate and keeps the simulated camera at its 30 fps.
"""

from __future__ import annotations

import json
import threading
import time
from importlib import import_module
from pathlib import Path
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from tqdm import tqdm

from dfdnet_core.pointcloud import depth_to_points
from dfdnet_core.visualise import colourise_depth, depth_panel, save_png, write_ply
from dfdnet_ros.launch_nodes import SETUPS
from dfdnet_ros.monitor_node import MonitorNode

_NODE_CLASSES = {
    "sim_camera": ("dfdnet_ros.sim_camera_node", "SimCameraNode"),
    "focus_sweep_controller": ("dfdnet_ros.focus_sweep_controller_node", "FocusSweepControllerNode"),
    "stack_buffer": ("dfdnet_ros.stack_buffer_node", "StackBufferNode"),
    "dfd_inference": ("dfdnet_ros.dfd_inference_node", "DfdInferenceNode"),
}


class PipelineExecutors:
    """dfd_inference spins in its own thread and SingleThreadedExecutor; every other node in the caller's thread.

    Call :meth:`spin_once` in a loop from the caller's thread and :meth:`shutdown` at the end.
    """

    def __init__(self, nodes: list[Node]) -> None:
        self._main = SingleThreadedExecutor()
        self._side = SingleThreadedExecutor()
        for node in nodes:
            (self._side if node.get_name() == "dfd_inference" else self._main).add_node(node)
        self._thread = threading.Thread(target=self._side.spin, name="dfd_inference", daemon=True)
        self._thread.start()

    def spin_once(self, timeout_sec: float) -> None:
        """Run the next ready callback of the caller-thread nodes (waits at most ``timeout_sec``)."""
        self._main.spin_once(timeout_sec=timeout_sec)

    def shutdown(self) -> None:
        """Stop both executors (waits up to 5 s for running callbacks)."""
        self._side.shutdown(timeout_sec=5)
        self._thread.join(timeout=5)
        self._main.shutdown(timeout_sec=5)


def default_params_file(setup: str) -> Path:
    """The setup's parameter file: installed share dir, or the source tree's config/."""
    name = SETUPS[setup][1]
    try:
        from ament_index_python.packages import get_package_share_directory

        path = Path(get_package_share_directory("dfdnet_ros")) / "config" / name
        if path.exists():
            return path
    except Exception:
        pass
    return Path(__file__).resolve().parents[1] / "config" / name


def make_nodes(setup: str, overrides: dict[str, dict[str, Any]] | None = None, **node_kwargs: Any) -> list[Node]:
    """Construct the setup's nodes (rclpy must be initialised with the parameter file).

    ``node_kwargs`` go to every node's constructor (e.g. ``context``).
    """
    nodes: list[Node] = []
    for spec in SETUPS[setup][0]:
        module, cls_name = _NODE_CLASSES[spec.executable]
        cls = getattr(import_module(module), cls_name)
        params = [Parameter(k, value=v) for k, v in ((overrides or {}).get(spec.name, {})).items()]
        nodes.append(cls(parameter_overrides=params, **node_kwargs) if params else cls(**node_kwargs))
    return nodes


def run(
    setup: str = "sim",
    params_file: Path | None = None,
    duration_s: float = 30.0,
    out_dir: Path = Path("out"),
    overrides: dict[str, dict[str, Any]] | None = None,
) -> dict[str, float]:
    """Run the pipeline for ``duration_s`` seconds (0 = until Ctrl-C); returns the monitor's summary."""
    params_file = params_file or default_params_file(setup)
    out_dir.mkdir(parents=True, exist_ok=True)
    args = ["dfdnet", "--ros-args", "--params-file", str(params_file), "--log-level", "warn"]
    summary: dict[str, float] = {}
    with rclpy.init(args=args):
        nodes = make_nodes(setup, overrides)
        monitor = MonitorNode()
        executor = PipelineExecutors([*nodes, monitor])
        print(f"dfdnet: running {setup!r} pipeline ({', '.join(n.get_name() for n in nodes)}) with {params_file}")
        start = time.monotonic()
        bar = tqdm(total=int(duration_s) if duration_s > 0 else None, unit="s", desc="dfdnet", dynamic_ncols=True)
        last_tick = start
        try:
            while duration_s <= 0 or time.monotonic() - start < duration_s:
                executor.spin_once(timeout_sec=0.05)
                now = time.monotonic()
                if now - last_tick >= 1.0:
                    bar.update(int(now - last_tick))
                    last_tick += int(now - last_tick)
                    s = monitor.summary()
                    bar.set_postfix_str(
                        f"depth {int(s['depth_images'])} | {s['depth_rate_hz']:.1f}/s | "
                        f"latency {s['latency_ms_median']:.0f} ms | AbsRel {s['abs_rel_mean']:.3f} | "
                        f"coverage {100 * s['coverage_mean']:.0f}%"
                    )
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            bar.close()
            summary = monitor.summary()
            _save(monitor, out_dir, summary)
            executor.shutdown()
            for node in [*nodes, monitor]:
                node.destroy_node()
    return summary


def _save(monitor: MonitorNode, out_dir: Path, summary: dict[str, float]) -> None:
    """Write depth.png, all_in_focus.png, panel.png, points.ply and summary.json of the latest stack."""
    with monitor.lock:
        latest = monitor.latest
        depth, aif, conf, gt, intr = (
            latest.depth_m, latest.all_in_focus, latest.confidence, latest.ground_truth_m, latest.intrinsics
        )
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if depth is None:
        print("dfdnet: no depth image was received")
        return
    near_far = (float(gt.min()), float(gt.max())) if gt is not None else (None, None)
    save_png(out_dir / "depth.png", colourise_depth(depth, *near_far))
    written = ["depth.png"]
    if aif is not None:
        save_png(out_dir / "all_in_focus.png", aif)
        save_png(out_dir / "panel.png", depth_panel(aif, gt, depth, conf))
        written += ["all_in_focus.png", "panel.png"]
    if intr is not None and (intr.height_px, intr.width_px) == depth.shape:
        n = write_ply(out_dir / "points.ply", depth_to_points(depth, intr), aif)
        written.append(f"points.ply ({n} points)")
    print(f"dfdnet: wrote {', '.join(written)} and summary.json to {out_dir}/")
    print("dfdnet: " + ", ".join(f"{k} {v:.3f}" for k, v in summary.items()))
