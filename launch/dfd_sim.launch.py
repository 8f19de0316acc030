"""The whole pipeline without hardware: sim_camera + the nodes of dfd_camera.launch.py.

    ros2 launch dfdnet_ros dfd_sim.launch.py
    ros2 topic echo /dfd/depth --no-arr

The simulated camera renders a procedural scene with thin-lens defocus for the focus the simulated lens is at, and
publishes ground-truth depth on /camera/ground_truth/depth for evaluation.
"""

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription

from dfdnet_ros.launch_nodes import PACKAGE, launch_ros_nodes


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(launch_ros_nodes("sim", get_package_share_directory(PACKAGE)))
