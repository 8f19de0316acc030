"""A small /diagnostics publisher for dfdnet nodes (diagnostic_updater is not available as a wheel).

Each node owns one :class:`NodeDiagnostics`: counters (frames, stacks, drops by reason), rates, latencies, and
an error state that is reported as ERROR until cleared. Published as diagnostic_msgs/DiagnosticArray once per
period; the first occurrence of each drop reason is logged once, later ones only counted.
"""

from __future__ import annotations

import time
from collections import Counter, deque

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node


class NodeDiagnostics:
    """Counters and status of one node, published on ``/diagnostics``."""

    def __init__(self, node: Node, *, period_s: float = 1.0, hardware_id: str = "") -> None:
        self._node = node
        self._pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._name = f"{node.get_name()}"
        self._hardware_id = hardware_id
        self.counters: Counter[str] = Counter()
        self.drops: Counter[str] = Counter()
        self._mirrored: dict[str, int] = {}
        self.values: dict[str, str] = {}
        self._events: dict[str, deque[float]] = {}
        self._latencies_s: deque[float] = deque(maxlen=100)
        self._error: str | None = None
        self._warning: str | None = None
        self._timer = node.create_timer(period_s, self.publish)

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``name`` and record the event time for its rate."""
        self.counters[name] += n
        self._events.setdefault(name, deque(maxlen=200)).append(time.monotonic())

    def drop(self, reason: str, detail: str = "", n: int = 1) -> None:
        """Count a dropped input; log the first occurrence of each reason (with ``detail``) once."""
        if self.drops[reason] == 0:
            self._node.get_logger().warning(f"dropped input ({reason}): {detail}" if detail else f"dropped ({reason})")
        self.drops[reason] += n

    def set_drops(self, drops: dict[str, int], details: dict[str, str] | None = None) -> None:
        """Mirror drop counters kept elsewhere (e.g. by a StackAssembler), logging each new reason once.

        Mirrored counts are added to the node's own counts of the same reason when published.
        """
        for reason, n in drops.items():
            if n > 0 and self._mirrored.get(reason, 0) == 0 and self.drops[reason] == 0:
                extra = (details or {}).get(reason, "")
                self._node.get_logger().warning(f"dropping input ({reason}) {extra}".rstrip())
            self._mirrored[reason] = n

    def total_drops(self) -> Counter[str]:
        """Own and mirrored drops by reason."""
        return self.drops + Counter(self._mirrored)

    def latency(self, seconds: float) -> None:
        """Record one input-to-output latency in seconds."""
        self._latencies_s.append(seconds)

    def rate_hz(self, name: str, window_s: float = 5.0) -> float:
        """Events per second of counter ``name`` over the last ``window_s`` seconds."""
        events = self._events.get(name)
        if not events:
            return 0.0
        now = time.monotonic()
        recent = [t for t in events if now - t <= window_s]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-9)

    def error(self, message: str | None) -> None:
        """Enter (message) or leave (None) the ERROR state; entering is logged once."""
        if message is not None and self._error is None:
            self._node.get_logger().error(message)
        self._error = message

    def warn(self, message: str | None) -> None:
        """Set or clear a WARN message."""
        self._warning = message

    def status(self) -> DiagnosticStatus:
        """The current status (ERROR > WARN > OK)."""
        status = DiagnosticStatus(name=self._name, hardware_id=self._hardware_id)
        if self._error is not None:
            status.level, status.message = DiagnosticStatus.ERROR, self._error
        elif self._warning is not None:
            status.level, status.message = DiagnosticStatus.WARN, self._warning
        else:
            status.level, status.message = DiagnosticStatus.OK, "ok"
        values = [KeyValue(key=k, value=str(v)) for k, v in sorted(self.counters.items())]
        values += [KeyValue(key=f"rate_hz.{k}", value=f"{self.rate_hz(k):.2f}") for k in sorted(self._events)]
        drops = self.total_drops()
        values += [KeyValue(key=f"drops.{k}", value=str(v)) for k, v in sorted(drops.items())]
        values.append(KeyValue(key="drops.total", value=str(sum(drops.values()))))
        if self._latencies_s:
            ordered = sorted(self._latencies_s)
            values.append(KeyValue(key="latency_ms.median", value=f"{1e3 * ordered[len(ordered) // 2]:.1f}"))
            values.append(KeyValue(key="latency_ms.max", value=f"{1e3 * ordered[-1]:.1f}"))
        values += [KeyValue(key=k, value=v) for k, v in sorted(self.values.items())]
        status.values = values
        return status

    def publish(self) -> None:
        """Publish the status now."""
        msg = DiagnosticArray()
        msg.header.stamp = self._node.get_clock().now().to_msg()
        msg.status = [self.status()]
        self._pub.publish(msg)
