"""Depth from a recording: `ros2 bag play --clock` feeding stack_buffer + dfd_inference on simulated time.

    ros2 launch dfdnet_ros dfd_bag_eval.launch.py bag:=/path/to/rosbag2_folder \
        params_file:=/path/to/the_params_used_when_recording.yaml rate:=1.0

The bag holds what `ros2 bag record /dfd/lens_state /camera/image_raw /camera/camera_info` (or `dfdnet record`)
wrote; only those input topics (and ground truth) are played, so recorded /dfd/stack or /dfd/depth never collide
with the live outputs. The nodes run with use_sim_time:=true on the bag's /clock. The default parameter file is
the real camera's (its stack_buffer optics); pass the one used for recording (config/dfd_sim.yaml for bags of
`dfdnet record --sim`). Offline, without ROS: `dfdnet eval --bag /path/to/rosbag2_folder`.
This file is standalone (not a setup of dfdnet_ros/launch_nodes.py: it adds a process and simulated time), but
uses the same node names, executables and parameter files as the table.
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from dfdnet_ros.launch_nodes import CAMERA_PIPELINE, PACKAGE, SETUPS

PLAYED_NODES = ("stack_buffer", "dfd_inference")


def generate_launch_description() -> LaunchDescription:
    share = Path(get_package_share_directory(PACKAGE))
    image_topic = LaunchConfiguration("image_topic")
    camera_info_topic = LaunchConfiguration("camera_info_topic")
    params_file = LaunchConfiguration("params_file")
    actions = [
        DeclareLaunchArgument("bag", description="rosbag2 folder to play (mcap or sqlite3)"),
        DeclareLaunchArgument("params_file", default_value=str(share / "config" / SETUPS["camera"][1]),
                              description="ROS 2 parameter file of stack_buffer and dfd_inference"),
        DeclareLaunchArgument("rate", default_value="1.0", description="playback rate (1.0 = as recorded)"),
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw",
                              description="camera images in the bag (rgb8/bgr8/mono8, stamped at exposure start)"),
        DeclareLaunchArgument("camera_info_topic", default_value="/camera/camera_info",
                              description="camera intrinsics in the bag"),
        DeclareLaunchArgument("lens_state_topic", default_value="/dfd/lens_state",
                              description="lens states in the bag (dfdnet_ros/msg/LensState)"),
        ExecuteProcess(
            cmd=["ros2", "bag", "play", LaunchConfiguration("bag"), "--clock", "--rate", LaunchConfiguration("rate"),
                 "--topics", LaunchConfiguration("lens_state_topic"), image_topic, camera_info_topic,
                 "/camera/ground_truth/depth"],
            output="screen",
        ),
    ]
    remaps = [("camera/image_raw", image_topic), ("camera/camera_info", camera_info_topic),
              ("/dfd/lens_state", LaunchConfiguration("lens_state_topic"))]
    for spec in CAMERA_PIPELINE:
        if spec.name in PLAYED_NODES:
            actions.append(Node(package=PACKAGE, executable=spec.executable, name=spec.name,
                                parameters=[params_file, {"use_sim_time": True}],
                                remappings=remaps if spec.camera_input else [], output="screen"))
    return LaunchDescription(actions)
