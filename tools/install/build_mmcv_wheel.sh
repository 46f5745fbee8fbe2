#!/usr/bin/env bash
# Build mmcv (with its compiled CPU/CUDA ops) as a wheel for the torch in the
# given interpreter's environment, and put it in OUT_DIR.
#
# mmcv 2.1.0 (the newest mmseg 1.2 / mmdet 3.3 accept) has no wheel for recent
# torch, and its setup.py compiles with -std=c++17 while torch >= 2.14 headers
# require C++20, so the sdist is patched to ask for C++20 before building.
# The build must see torch (no build isolation) or mmcv installs without ops.
#
# Environment: MMCV_SDIST=path/to/mmcv-VERSION.tar.gz builds that file instead
# of downloading it (machines without a package index); MAX_JOBS (default: all
# cores), FORCE_CUDA and TORCH_CUDA_ARCH_LIST are read by torch's extension
# builder (tools/install/install_mmcv.sh sets them for the local GPU).
set -euo pipefail
PY=${1:?usage: build_mmcv_wheel.sh PYTHON OUT_DIR [VERSION]}
OUT_DIR=${2:?usage: build_mmcv_wheel.sh PYTHON OUT_DIR [VERSION]}
VERSION=${3:-2.1.0}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -n "${MMCV_SDIST:-}" ]; then
  [ -f "$MMCV_SDIST" ] || { echo "MMCV_SDIST=$MMCV_SDIST does not exist" >&2; exit 1; }
  cp "$MMCV_SDIST" "$work/mmcv-$VERSION.tar.gz"
else
  bash "$(dirname "$0")/download_sdist.sh" "$PY" "$work" "mmcv==$VERSION"
fi
tar xzf "$work/mmcv-$VERSION.tar.gz" -C "$work"
src="$work/mmcv-$VERSION"
grep -q -- "-std=c++17" "$src/setup.py" || { echo "mmcv $VERSION setup.py has no -std=c++17 flag to patch" >&2; exit 1; }
sed -i 's/-std=c++17/-std=c++20/g' "$src/setup.py"
mkdir -p "$OUT_DIR"
# Build into a temp dir and move at the end: an interrupted build never leaves
# a wheel that a later install would trust.
MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} "$PY" -m pip wheel -q --no-cache-dir \
  --no-build-isolation --no-deps "$src" -w "$work/dist"
mv "$work"/dist/mmcv-*.whl "$OUT_DIR/"
