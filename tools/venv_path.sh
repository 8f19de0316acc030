# Sourced by setup.sh and env.sh: where the virtual environment lives.
#
# The venv must lie OUTSIDE the source tree: CMake refuses exported message targets whose include folders (numpy's)
# sit inside the package's source directory. It holds only pinned third-party packages (our code comes from the
# colcon install space), so clones share it; its name carries a hash of the requirement files. DFDNET_VENV overrides.
_dfdnet_here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -n "${ROS_DISTRO:-}" ] && [ -z "${DFDNET_PIP_ROS:-}" ]; then mode=system; else mode=pip; fi
if [ -z "${DFDNET_VENV:-}" ]; then
  _dfdnet_reqs=$(cat "$_dfdnet_here"/requirements/*.txt | sha256sum | cut -c1-12)
  venv="${XDG_CACHE_HOME:-$HOME/.cache}/dfdnet/venv-$(python3 -c 'import sys; print("py%d%d" % sys.version_info[:2])')-$mode-$_dfdnet_reqs"
  unset _dfdnet_reqs
else
  venv=$DFDNET_VENV
fi
unset _dfdnet_here
