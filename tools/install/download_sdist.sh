#!/usr/bin/env bash
# Download source archives (sdists) as they are, for building later.
#
#   download_sdist.sh PYTHON DEST REQUIREMENT...
#
# Even `pip download` runs an sdist's setup.py to read its metadata, in an
# isolated build environment that gets the newest setuptools. mmcv 2.1.0's
# setup.py imports pkg_resources, which setuptools >= 81 no longer has, so
# that environment is held to setuptools < 81: through --build-constraint
# where pip has it (newer pips no longer apply PIP_CONSTRAINT to build
# environments), else through PIP_CONSTRAINT. --use-pep517 makes every pip
# take the isolated path (older pips would otherwise run setup.py with the
# setuptools of PYTHON's own environment, whatever its version).
set -euo pipefail
usage="usage: download_sdist.sh PYTHON DEST REQUIREMENT..."
PY=${1:?$usage}
DEST=${2:?$usage}
shift 2
[ $# -gt 0 ] || { echo "$usage" >&2; exit 2; }
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
echo 'setuptools<81' > "$constraints"
args=(-q --no-deps --no-binary :all: --use-pep517 -d "$DEST")
if "$PY" -m pip download --help 2>/dev/null | grep -q -- '--build-constraint'; then
  "$PY" -m pip download "${args[@]}" --build-constraint "$constraints" "$@"
else
  PIP_CONSTRAINT="$constraints" "$PY" -m pip download "${args[@]}" "$@"
fi
