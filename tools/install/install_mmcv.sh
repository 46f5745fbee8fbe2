#!/usr/bin/env bash
# Install mmcv with compiled ops for this machine: CUDA ops for the local GPU's
# arch where torch sees a GPU, CPU ops otherwise. The wheel is built once
# (tools/install/build_mmcv_wheel.sh) and kept in a cache folder whose name
# says what it was built for, so a CPU wheel is never reused on a GPU machine,
# nor a wheel built for one GPU arch or torch on another:
#   CACHE_ROOT/mmcv-VERSION-torch-TORCH_VERSION                      (CPU ops)
#   CACHE_ROOT/mmcv-VERSION-torch-TORCH_VERSION-cudaCUDA-smARCHS     (CUDA ops)
#
# Environment:
#   MMCV_DEVICE=auto|cpu|cuda   what to build for (auto: cuda if torch sees a GPU)
#   TORCH_CUDA_ARCH_LIST=9.0    archs to compile (default: those of the local GPUs)
#   MAX_JOBS=N                  parallel compile jobs (default: all cores)
#   MMCV_SDIST=FILE             build this sdist instead of downloading it
#   MMCV_PLAN_ONLY=1            print the plan and the cache folder, change nothing
set -euo pipefail
usage="usage: install_mmcv.sh PYTHON MMCV_VERSION CACHE_ROOT"
PY=${1:?$usage}
VERSION=${2:?$usage}
CACHE_ROOT=${3:?$usage}
here=$(cd "$(dirname "$0")" && pwd)

device=${MMCV_DEVICE:-auto}
case "$device" in auto|cpu|cuda) ;; *) echo "MMCV_DEVICE must be auto, cpu or cuda, got '$device'" >&2; exit 2;; esac
# What torch sees: its version (the wheel is built against it), its CUDA
# version (or none), whether a GPU is usable, and the local GPUs' archs.
read -r TORCH_VERSION torch_cuda gpu_ok gpu_archs < <("$PY" - <<'PYEOF'
import torch
ok = torch.version.cuda is not None and torch.cuda.is_available()
archs = sorted({'%d.%d' % torch.cuda.get_device_capability(i)
                for i in range(torch.cuda.device_count())}) if ok else []
print(torch.__version__.split('+')[0], torch.version.cuda or 'none', int(ok),
      ';'.join(archs) or '-')
PYEOF
)
if [ "$device" = auto ]; then
  device=cpu
  [ "$gpu_ok" = 1 ] && device=cuda
fi
jobs=${MAX_JOBS:-$(nproc)}
if [ "$device" = cuda ]; then
  if [ "$torch_cuda" = none ]; then
    echo "MMCV_DEVICE=cuda, but torch $TORCH_VERSION here is a CPU-only build: install a CUDA build of torch or use MMCV_DEVICE=cpu" >&2
    exit 2
  fi
  archs=${TORCH_CUDA_ARCH_LIST:-}
  if [ -z "$archs" ] && [ "$gpu_archs" != - ]; then archs=$gpu_archs; fi
  if [ -z "$archs" ] && command -v nvidia-smi >/dev/null; then
    archs=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | sort -u | paste -sd';' || true)
  fi
  if [ -z "$archs" ]; then
    echo "no GPU visible to torch or nvidia-smi: name the archs to build, e.g. TORCH_CUDA_ARCH_LIST=9.0, or use MMCV_DEVICE=cpu" >&2
    exit 2
  fi
  nvcc=$("$PY" -c 'from torch.utils.cpp_extension import CUDA_HOME; print(CUDA_HOME or "")' 2>/dev/null)
  if [ -z "$nvcc" ] || [ ! -x "$nvcc/bin/nvcc" ]; then
    echo "mmcv's CUDA ops need nvcc (the CUDA $torch_cuda toolkit torch was built with); none found (CUDA_HOME='$nvcc'). Install it and set CUDA_HOME, or use MMCV_DEVICE=cpu for CPU ops only" >&2
    exit 2
  fi
  arch_tag=$(echo "$archs" | tr ' ;,' '___' | tr -d '.+' | sed 's/_\{2,\}/_/g; s/^_//; s/_$//')
  key="mmcv-$VERSION-torch-$TORCH_VERSION-cuda$torch_cuda-sm$arch_tag"
  n_archs=$(echo "$archs" | tr ' ;,' '\n\n\n' | grep -c .)
  what="CUDA ops for compute capability $archs (TORCH_CUDA_ARCH_LIST; sm_$arch_tag) and CPU ops"
  expect="measured: 259 s for one arch on 16 cores (one H200, 2026-11-27); time grows with each arch ($n_archs here) and shrinks with cores ($jobs here)"
  export FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$archs"
else
  key="mmcv-$VERSION-torch-$TORCH_VERSION"
  what="CPU ops"
  expect="measured: 13 min 14 s on 2 cores (2026-11-26); faster with more cores ($jobs here)"
  export FORCE_CUDA=0
fi
dir="$CACHE_ROOT/$key"
if [ -n "${MMCV_PLAN_ONLY:-}" ]; then
  echo "mmcv $VERSION: $what, MAX_JOBS=$jobs; $expect"
  echo "mmcv $VERSION: wheel folder $dir"
  exit 0
fi
if ls "$dir"/mmcv-"$VERSION"-*.whl >/dev/null 2>&1; then
  echo "mmcv $VERSION: using the wheel built earlier for this machine ($dir)"
else
  echo "mmcv $VERSION: no wheel built for this machine yet ($dir); building one with $what, MAX_JOBS=$jobs"
  echo "mmcv $VERSION: $expect"
  start=$(date +%s)
  MAX_JOBS=$jobs bash "$here/build_mmcv_wheel.sh" "$PY" "$dir" "$VERSION"
  echo "mmcv $VERSION: built in $(( $(date +%s) - start )) s"
fi
"$PY" -m pip install -q --no-deps "$dir"/mmcv-"$VERSION"-*.whl
echo "mmcv $VERSION: installed from $dir"
