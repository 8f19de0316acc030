"""What the launch files start, as data: one table used by launch/*.launch.py, `dfdnet run` and the tests.

Only :func:`launch_ros_nodes` needs ``launch``/``launch_ros`` (present on a ROS 2 install, absent from the pip
wheels); the table itself is plain Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

PACKAGE = "dfdnet_ros"


@dataclass(frozen=True)
class NodeSpec:
    """One node of a setup: its executable (scripts/<executable>), node name, and whether it reads camera topics."""

    executable: str
    name: str
    camera_input: bool = False


CAMERA_PIPELINE: tuple[NodeSpec, ...] = (
    NodeSpec("focus_sweep_controller", "focus_sweep_controller"),
    NodeSpec("stack_buffer", "stack_buffer", camera_input=True),
    NodeSpec("dfd_inference", "dfd_inference"),
)
SIM_CAMERA = NodeSpec("sim_camera", "sim_camera")

SETUPS: dict[str, tuple[tuple[NodeSpec, ...], str]] = {
    "camera": (CAMERA_PIPELINE, "dfd_camera.yaml"),
    "sim": ((SIM_CAMERA, *CAMERA_PIPELINE), "dfd_sim.yaml"),
}
"""Setup name -> (nodes, parameter file in config/)."""


def launch_ros_nodes(setup: str, share_dir: str | Path) -> list[Any]:
    """The launch arguments and launch_ros Node actions of ``setup`` (for launch/*.launch.py)."""
    from launch.actions import DeclareLaunchArgument
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    nodes, params_name = SETUPS[setup]
    params_file = LaunchConfiguration("params_file")
    actions: list[Any] = [
        DeclareLaunchArgument("params_file", default_value=str(Path(share_dir) / "config" / params_name),
                              description="ROS 2 parameter file for all dfdnet nodes"),
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw",
                              description="camera images (rgb8/bgr8/mono8, stamped at exposure start)"),
        DeclareLaunchArgument("camera_info_topic", default_value="/camera/camera_info",
                              description="camera intrinsics (P is used)"),
    ]
    remaps = [
        ("camera/image_raw", LaunchConfiguration("image_topic")),
        ("camera/camera_info", LaunchConfiguration("camera_info_topic")),
    ]
    for spec in nodes:
        actions.append(
            Node(package=PACKAGE, executable=spec.executable, name=spec.name, parameters=[params_file],
                 remappings=remaps if spec.camera_input else [], output="screen")
        )
    return actions
