# Source this file to use the built workspace in bash: `source tools/env.sh` (after `make setup`).
_dfdnet_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck disable=SC1091
source "$_dfdnet_root/tools/venv_path.sh"
# shellcheck disable=SC1091
source "$venv/bin/activate"
if [ "$mode" = pip ]; then
  export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
else
  # shellcheck disable=SC1090
  source "/opt/ros/$ROS_DISTRO/setup.bash"
fi
# shellcheck disable=SC1091
source "$_dfdnet_root/install/setup.bash"
unset _dfdnet_root
