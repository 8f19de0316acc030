"""Test-wide settings: small thread pools (2-core CI machines) and an isolated ROS graph per test run."""

from __future__ import annotations

import os
import random

# Each test run gets its own DDS domain on loopback only, so concurrent runs and other ROS graphs on the machine
# never see each other. Set before rclpy is imported anywhere.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")
