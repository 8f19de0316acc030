"""Depth from defocus on a real camera: focus_sweep_controller + stack_buffer + dfd_inference.

    ros2 launch dfdnet_ros dfd_camera.launch.py params_file:=/path/to/my_camera.yaml \
        image_topic:=/my_camera/image_raw camera_info_topic:=/my_camera/camera_info

The camera driver is yours (usb_cam, v4l2_camera, camera_ros, a GigE driver...); it must publish rgb8/bgr8/mono8
images stamped at the start of exposure. Output: /dfd/depth (32FC1 metres), /dfd/camera_info, /dfd/points,
/dfd/all_in_focus, /dfd/confidence, /diagnostics. The node table lives in dfdnet_ros/launch_nodes.py.
"""

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription

from dfdnet_ros.launch_nodes import PACKAGE, launch_ros_nodes


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(launch_ros_nodes("camera", get_package_share_directory(PACKAGE)))
