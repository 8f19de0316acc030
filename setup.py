"""Plain-pip installation of dfdnet_core and the `dfdnet` command (no ROS needed).

The ROS 2 package (messages, nodes, launch files) is built with colcon from CMakeLists.txt / package.xml.
"""

from pathlib import Path

from setuptools import find_packages, setup


def _requirements() -> list[str]:
    lines = Path(__file__).with_name("requirements").joinpath("core.txt").read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


setup(
    name="dfdnet",
    version="0.1.0",
    description="Depth from defocus for robots: optics, focal-stack rendering, DfDNet, evaluation",
    python_requires=">=3.10",
    packages=find_packages(include=["dfdnet_core", "dfdnet_core.*"]),
    package_data={"dfdnet_core": ["py.typed"]},
    install_requires=_requirements(),
    entry_points={"console_scripts": ["dfdnet = dfdnet_core.cli:main"]},
)
