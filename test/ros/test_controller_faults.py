"""focus_sweep_controller with the Optotune driver against a fake Lens Driver 4 on a pseudo-terminal, over Fast DDS.

The fake (test/core/fake_optotune.py) speaks the binary protocol and can garble reply CRCs, reject commands as
corrupted, and fall silent. One scenario, in order: the controller sweeps; a garbled reply CRC and a rejected
command are absorbed by the driver's re-synchronisation (no driver error, status stays OK); the device stops
answering mid-sweep, and the node reports ERROR on /diagnostics while staying alive; the device comes back, and
the node re-opens it, reports OK again and sweeps the same disparity-uniform distances it swept before.
"""

from __future__ import annotations

import json
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rosutil import Collector, Graph  # first: skips the module without ROS

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.parameter import Parameter

from dfdnet_core.optics import disparity_uniform_focus_m
from dfdnet_ros.focus_sweep_controller_node import FocusSweepControllerNode
from dfdnet_ros.msg import LensState

pytest.importorskip("serial")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from fake_optotune import FakeOptotune  # test support module in test/core

NEAR_M, FAR_M, N_FOCUS = 0.5, 2.0, 4
NODE = "focus_sweep_controller"
# Short timeouts keep the silent phase brief; 3 attempts of 0.1 s each keep a loaded machine from faking a fault.
DRIVER_TIMEOUT_S, DRIVER_RETRIES, RECONNECT_PERIOD_S = 0.1, 2, 0.2
WAIT_S = 30.0  # generous: the machine is shared


def _level(status: DiagnosticStatus) -> int:
    level = status.level
    return int.from_bytes(level, "little") if isinstance(level, bytes) else int(level)


def _statuses(arrays: list[DiagnosticArray], start: int = 0) -> list[DiagnosticStatus]:
    return [s for a in arrays[start:] for s in a.status if s.name == NODE]


def _values(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def _settled(states: list[LensState], start: int = 0) -> list[LensState]:
    return [m for m in states[start:] if m.settled]


def _commanded_focus_m(commands: list[bytes]) -> list[float]:
    """Focus distances (m) the fake received as PwDA focal-power commands (type-A firmware: +5 dpt offset)."""
    powers = [struct.unpack(">h", c[4:6])[0] / 200.0 - 5.0 for c in commands if c.startswith(b"PwDA")]
    return [1.0 / p for p in powers if p > 0]


@pytest.fixture
def device() -> Iterator[FakeOptotune]:
    fake = FakeOptotune()
    yield fake
    fake.stop()


@pytest.fixture
def graph() -> Iterator[Graph]:
    g = Graph(["test", "--ros-args", "--log-level", "fatal"])
    yield g
    g.close()


def test_controller_survives_crc_faults_and_a_silent_device_and_resumes(graph: Graph, device: FakeOptotune) -> None:
    options = {"port": device.port, "timeout_s": DRIVER_TIMEOUT_S, "max_retries": DRIVER_RETRIES}
    params = [
        Parameter("driver", value="optotune"),
        Parameter("driver_options", value=json.dumps(options)),
        Parameter("reconnect_period_s", value=RECONNECT_PERIOD_S),
        Parameter("near_m", value=NEAR_M),
        Parameter("far_m", value=FAR_M),
        Parameter("n_focus", value=N_FOCUS),
        Parameter("settle_time_s", value=0.01),
        Parameter("dwell_time_s", value=0.02),
    ]
    controller = graph.add(FocusSweepControllerNode(parameter_overrides=params, context=graph.context))
    got = Collector(graph.node("faults_probe"), [("/dfd/lens_state", LensState), ("/diagnostics", DiagnosticArray)])
    states, diags = got["/dfd/lens_state"], got["/diagnostics"]
    plan_m = sorted(disparity_uniform_focus_m(NEAR_M, FAR_M, N_FOCUS))

    # 1. It sweeps: every planned distance settles, the lens is where the message says, status OK.
    assert graph.spin_until(lambda: len(_settled(states)) >= 2 * N_FOCUS and _statuses(diags), WAIT_S)
    assert sorted({round(m.focus_distance_m, 6) for m in _settled(states)}) == pytest.approx(plan_m)
    assert sorted({round(f, 3) for f in _commanded_focus_m(device.commands)}) == pytest.approx(plan_m, abs=2e-3)
    assert all(m.temperature_c == pytest.approx(31.25) and m.driver == "optotune" for m in _settled(states))
    assert device.mode == "C" and device.handshakes >= 1
    assert _level(_statuses(diags)[-1]) == 0  # OK

    # 2. A garbled reply CRC and a command the device rejects as corrupted: absorbed by re-synchronisation.
    resyncs, crc_errors = controller.driver.resync_count, device.crc_errors
    for fault in ("garble_replies", "corrupt_commands"):  # one after the other, so each costs its own re-sync
        setattr(device, fault, 1)
        n = len(states)
        assert graph.spin_until(
            lambda fault=fault, n=n: getattr(device, fault) == 0 and len(_settled(states, n)) >= N_FOCUS, WAIT_S
        )
    assert controller.driver.resync_count >= resyncs + 2 and device.crc_errors == crc_errors + 1
    assert controller.diagnostics.counters["driver_errors"] == 0
    k = len(diags)
    assert graph.spin_until(lambda: len(_statuses(diags, k)) >= 1, WAIT_S)
    assert all(_level(s) == 0 for s in _statuses(diags))  # never left OK
    assert int(_values(_statuses(diags)[-1])["driver_resyncs"]) >= resyncs + 2

    # 3. The device stops answering mid-sweep: ERROR on /diagnostics, lens states stop, the node keeps spinning.
    device.silent = True
    silent_at = time.monotonic()
    k = len(diags)
    assert graph.spin_until(
        lambda: sum(_level(s) == 2 for s in _statuses(diags, k)) >= 2, WAIT_S  # ERROR, published twice: still alive
    )
    error = next(s for s in _statuses(diags, k) if _level(s) == 2)
    assert "optotune" in error.message and "failed" in error.message and "retrying" in error.message
    assert controller.diagnostics.counters["driver_errors"] >= 2  # it kept retrying
    n = len(states)
    graph.spin_until(lambda: False, 3 * RECONNECT_PERIOD_S)
    assert len(states) == n, "lens states published while the device was silent"
    assert time.monotonic() - silent_at < WAIT_S

    # 4. The device comes back: the node re-opens it, says OK, and sweeps the same distances again.
    commands_before = len(device.commands)
    device.silent = False
    k = len(diags)
    assert graph.spin_until(
        lambda: len(_settled(states, n)) >= 2 * N_FOCUS and any(_level(s) == 0 for s in _statuses(diags, k)), WAIT_S
    )
    resumed = _settled(states, n)
    assert sorted({round(m.focus_distance_m, 6) for m in resumed}) == pytest.approx(plan_m)
    assert {m.sweep_id for m in resumed} >= {resumed[-1].sweep_id - 1, resumed[-1].sweep_id}
    resumed_commands = _commanded_focus_m(device.commands[commands_before:])
    assert sorted({round(f, 3) for f in resumed_commands}) == pytest.approx(plan_m, abs=2e-3)
    newest = _statuses(diags, k)[-1]
    assert _level(newest) == 0 and newest.message == "ok"
    assert float(_values(newest)["temperature_c"]) == pytest.approx(31.25)


def test_controller_reports_an_unplugged_device_and_keeps_running(graph: Graph, device: FakeOptotune) -> None:
    """The USB adapter vanishes (the pty closes): pyserial raises its own errors; the node must still survive."""
    options = {"port": device.port, "timeout_s": DRIVER_TIMEOUT_S, "max_retries": DRIVER_RETRIES}
    params = [
        Parameter("driver", value="optotune"),
        Parameter("driver_options", value=json.dumps(options)),
        Parameter("reconnect_period_s", value=RECONNECT_PERIOD_S),
        Parameter("near_m", value=NEAR_M),
        Parameter("far_m", value=FAR_M),
        Parameter("n_focus", value=N_FOCUS),
    ]
    controller = graph.add(FocusSweepControllerNode(parameter_overrides=params, context=graph.context))
    got = Collector(graph.node("unplug_probe"), [("/dfd/lens_state", LensState), ("/diagnostics", DiagnosticArray)])
    states, diags = got["/dfd/lens_state"], got["/diagnostics"]
    assert graph.spin_until(lambda: len(_settled(states)) >= N_FOCUS, WAIT_S)
    device.stop()  # closes both ends of the pseudo-terminal, like pulling the cable
    k = len(diags)
    # spin_until re-raises any exception a callback let escape; two ERROR reports prove the node kept running
    assert graph.spin_until(lambda: sum(_level(s) == 2 for s in _statuses(diags, k)) >= 2, WAIT_S)
    assert controller.diagnostics.counters["driver_errors"] >= 2
    assert "optotune" in _statuses(diags, k)[-1].message
