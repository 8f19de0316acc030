"""Helpers for tests that run dfdnet nodes over real Fast DDS (one process, loopback, isolated domain)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")
try:
    from dfdnet_ros.msg import FocusStack, LensState  # noqa: F401
except ImportError:  # pragma: no cover - depends on the build
    pytest.skip("dfdnet_ros messages are not built (run `make setup`)", allow_module_level=True)

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node


class Graph:
    """An rclpy context with an executor; nodes added to it spin while :meth:`spin_until` runs.

    One SingleThreadedExecutor in the test's own thread: callbacks never overlap what a test calls directly, and
    rclpy's MultiThreadedExecutor busy-waits so hard that it starves the nodes' callbacks of the interpreter lock
    (the simulated camera fell to a few frames in ten seconds; see benchmarks/pipeline.py).
    """

    def __init__(self, args: list[str] | None = None) -> None:
        self.context = rclpy.Context()
        rclpy.init(args=args, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.nodes: list[Node] = []

    def add(self, node: Node) -> Node:
        self.executor.add_node(node)
        self.nodes.append(node)
        return node

    def node(self, name: str) -> Node:
        return self.add(rclpy.create_node(name, context=self.context))

    def spin_until(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """Spin until ``done()`` or the timeout; returns done()."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if done():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return done()

    def close(self) -> None:
        self.executor.shutdown()
        for node in self.nodes:
            node.destroy_node()
        rclpy.shutdown(context=self.context)


class Collector:
    """Subscribes a test node to topics and keeps every message received."""

    def __init__(self, node: Node, topics: Iterable[tuple[str, Any]], depth: int = 50) -> None:
        self.messages: dict[str, list[Any]] = {}
        for topic, msg_type in topics:
            self.messages[topic] = []
            node.create_subscription(msg_type, topic, self.messages[topic].append, depth)

    def __getitem__(self, topic: str) -> list[Any]:
        return self.messages[topic]


def diagnostics_values(arrays: list[DiagnosticArray], node_name: str) -> dict[str, str]:
    """The key/values of the newest status of ``node_name`` in the collected /diagnostics arrays."""
    for array in reversed(arrays):
        for status in array.status:
            if status.name == node_name:
                return {kv.key: kv.value for kv in status.values} | {"_level": str(int.from_bytes(
                    status.level, "little") if isinstance(status.level, bytes) else status.level),
                    "_message": status.message}
    return {}
