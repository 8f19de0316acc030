#!/usr/bin/env bash
# Run a command inside the built workspace: tools/in_env.sh dfdnet run --sim
set -eo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck disable=SC1091
source "$root/tools/env.sh"
exec "$@"
