"""Work around a packaging bug of the ROS 2 PyPI wheels (see docs/BUILD.md).

The exported CMake targets of the message wheels name two include folders of the machine the wheels were built on
(``/opt/python/cp3XX-cp3XX/include/python3.XX`` and ``.../site-packages/numpy/_core/include``). CMake refuses
imported targets with non-existent include paths, so ``colcon build`` of any package with messages fails. This
script rewrites those paths, inside the virtual environment only, to this interpreter's include folder and numpy's.

Usage: python tools/patch_ros_wheels.py VENV_PREFIX
"""

from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

import numpy

_NUMPY_INCLUDE = re.compile(r"/opt/python/cp3\d+-cp3\d+/lib/python3\.\d+/site-packages/numpy/_core/include")
_PYTHON_INCLUDE = re.compile(r"/opt/python/cp3\d+-cp3\d+/include/python3\.\d+")


def patch(prefix: Path) -> int:
    """Rewrite the build-machine paths in every CMake file under ``prefix/share``; returns the files changed."""
    python_include = sysconfig.get_paths()["include"]
    numpy_include = numpy.get_include()
    changed = 0
    for path in (prefix / "share").rglob("*.cmake"):
        text = path.read_text(errors="surrogateescape")
        if "/opt/python/" not in text:
            continue
        new = _NUMPY_INCLUDE.sub(numpy_include, text)
        new = _PYTHON_INCLUDE.sub(python_include, new)
        if new != text:
            path.write_text(new, errors="surrogateescape")
            changed += 1
    return changed


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(f"patched {patch(Path(sys.argv[1]))} CMake files under {sys.argv[1]}/share")
