"""The launch files are correct for a real ROS 2 install, and checkable without one.

With launch_ros importable (a ROS 2 distribution), each launch file is loaded and must build a LaunchDescription
naming our executables. Without it (pip wheels), the node table the launch files use is checked instead: every
executable exists and is installed, every parameter file exists, and every parameter in it is one the node declares.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.py"))


def _launch_table():
    spec = importlib.util.spec_from_file_location("launch_nodes", ROOT / "dfdnet_ros" / "launch_nodes.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("launch_nodes", module)
    spec.loader.exec_module(module)
    return module


def test_launch_files_are_valid_python_using_the_node_table():
    assert {p.name for p in LAUNCH_FILES} >= {"dfd_camera.launch.py", "dfd_sim.launch.py"}
    for path in LAUNCH_FILES:
        tree = ast.parse(path.read_text(), filename=str(path))
        functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert "generate_launch_description" in functions, path.name


def test_every_executable_exists_is_executable_and_installed():
    table = _launch_table()
    cmake = (ROOT / "CMakeLists.txt").read_text()
    for setup, (nodes, params) in table.SETUPS.items():
        assert (ROOT / "config" / params).is_file(), f"{setup}: config/{params} is missing"
        for spec in nodes:
            script = ROOT / "scripts" / spec.executable
            assert script.is_file() and script.stat().st_mode & 0o111, f"scripts/{spec.executable}"
            assert re.search(rf"scripts/{spec.executable}\b", cmake), f"{spec.executable} not installed by CMake"
            module = re.search(r"from (dfdnet_ros\.\w+) import main", script.read_text()).group(1)
            assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), module


def test_parameter_files_only_name_parameters_the_nodes_declare():
    from dfdnet_core.config import config_from_mapping, node_parameters
    from dfdnet_core.node_configs import node_config_classes

    table = _launch_table()
    classes = node_config_classes()
    for nodes, params_name in table.SETUPS.values():
        params = yaml.safe_load((ROOT / "config" / params_name).read_text())
        node_names = {spec.name for spec in nodes}
        assert set(params) <= node_names, f"{params_name} configures unknown nodes {set(params) - node_names}"
        for name in node_names:
            values = node_parameters(params, name)
            declared = {f.name for cls in classes[name] for f in dataclasses.fields(cls)}
            assert set(values) <= declared, f"{params_name} [{name}]: undeclared {sorted(set(values) - declared)}"
            for cls in classes[name]:  # and the values are valid for the node
                fields = {f.name for f in dataclasses.fields(cls)}
                config_from_mapping(cls, {k: v for k, v in values.items() if k in fields}, source=params_name)


def test_launch_descriptions_build_with_launch_ros():
    pytest.importorskip("launch_ros", reason="launch_ros is not installable from pip; checked on ROS 2 installs")
    from launch import LaunchDescription
    from launch.launch_description_sources import get_launch_description_from_python_launch_file

    for path in LAUNCH_FILES:
        description = get_launch_description_from_python_launch_file(str(path))
        assert isinstance(description, LaunchDescription)
        executables = {getattr(e, "node_executable", None) for e in description.entities}
        assert executables & {"focus_sweep_controller", "stack_buffer", "dfd_inference"}, path.name
