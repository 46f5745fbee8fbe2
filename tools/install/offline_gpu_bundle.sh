#!/usr/bin/env bash
# Run this package on a GPU machine that has Python and a CUDA torch but no
# package index (no mmengine/mmcv/mmseg/mmdet, setuptools too new for mmcv).
#
#   offline_gpu_bundle.sh download DIR [--python-version 3.12] [--no-deepspeed]
#       On a machine WITH a package index (the pip of $PYTHON, default python3):
#       download the wheels of tools/install/offline_gpu_wheels.txt for that
#       Python (manylinux x86_64) and the mmcv (and DeepSpeed) source archives
#       into DIR (scipy into DIR/large). Carry DIR over.
#   offline_gpu_bundle.sh install DIR [--python PY] [--break-system-packages]
#       On the GPU machine, the three steps below in order:
#     install-wheels: what the machine lacks, from DIR, with `PY -m pip
#       install --no-index --find-links DIR --no-deps` (packages it already
#       has are kept; the build group is always installed);
#     install-mmcv: mmcv with CUDA ops for the local GPU via
#       tools/install/install_mmcv.sh (built from DIR's sdist with the C++20
#       patch, or taken from a wheel built earlier: DIR/mmcv-cache, or parts
#       in DIR/mmcv-parts, reassembled first);
#     install-deepspeed: DeepSpeed from its sdist, if DIR has it (with
#       --target TDIR: into TDIR, seen only by processes with TDIR on their
#       PYTHONPATH; the environment itself is left as it was).
#   offline_gpu_bundle.sh wheel-ready DIR [--python PY]
#       Exit 0 if DIR holds an mmcv wheel for this machine (built in
#       DIR/mmcv-cache, or carried as parts in DIR/mmcv-parts), 1 if not;
#       reads only.
#   offline_gpu_bundle.sh export-mmcv DIR OUT
#       Copy the mmcv wheel(s) built in DIR/mmcv-cache to OUT/mmcv-parts, split
#       into parts under 16 MiB with a sha256 each; put OUT/mmcv-parts back as
#       DIR/mmcv-parts and install-mmcv reassembles them instead of building
#       (reassemble-mmcv DIR does only that). A wheel whose parts DIR/mmcv-parts
#       already holds, or that was exported before, is not exported again.
#
# PY defaults to python3 (on such machines plain `pip` may be another Python).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
list="$here/offline_gpu_wheels.txt"
PART_BYTES=15000000

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0" >&2; exit 2; }
die() { echo "offline_gpu_bundle.sh: $*" >&2; exit 2; }
# Requirements of the given groups in the list, one per line.
requirements() { awk -v groups=" $* " 'NF >= 2 && $1 !~ /^#/ && index(groups, " " $1 " ") { print $2 }' "$list"; }
# The mmcv version comes from the list (tests/test_gpu_install.py keeps its pins
# equal to requirements*.txt and the Makefile's).
MMCV_VERSION=$(requirements sdist | sed -n 's/^mmcv==//p')
DEEPSPEED_VERSION=$(requirements sdist | sed -n 's/^deepspeed==//p')

mode=${1:-}; dir=${2:-}
[ -n "$mode" ] && [ -n "$dir" ] || usage
shift 2
# An absolute DIR from here on: modes cd into its subfolders before they read
# its files (the lane passes .gpu_bundle).
if [ -d "$dir" ]; then dir=$(cd "$dir" && pwd); fi

download() {
  local pyver=3.12 deepspeed=1
  while [ $# -gt 0 ]; do
    case "$1" in
      --python-version) pyver=${2:?--python-version needs a value, e.g. 3.12}; shift 2;;
      --no-deepspeed) deepspeed=0; shift;;
      *) die "download: unknown argument $1";;
    esac
  done
  local abi="cp${pyver/./}" groups="build engine seg det test"
  [ "$deepspeed" = 1 ] && groups="$groups deepspeed"
  mkdir -p "$dir/large"
  # Wheels for the target Python and platform, not this machine's.
  local target=(--no-deps --only-binary=:all: --python-version "$pyver" --implementation cp
                --abi "$abi" --abi abi3 --abi none --platform manylinux2014_x86_64
                --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64)
  echo "downloading wheels for Python $pyver into $dir"
  # shellcheck disable=SC2046
  "${PYTHON:-python3}" -m pip download -q "${target[@]}" -d "$dir" $(requirements $groups)
  # shellcheck disable=SC2046
  "${PYTHON:-python3}" -m pip download -q "${target[@]}" -d "$dir/large" $(requirements large)
  local sdists=("mmcv==$MMCV_VERSION")
  [ "$deepspeed" = 1 ] && sdists+=("$(requirements sdist | grep '^deepspeed==')")
  bash "$here/download_sdist.sh" "${PYTHON:-python3}" "$dir" "${sdists[@]}"
  echo "$(ls "$dir" | grep -c '\.whl$') wheels + $(ls "$dir" | grep -c '\.tar\.gz$') sdists in $dir ($(du -sh "$dir" --exclude=large | cut -f1)); large/ ($(du -sh "$dir/large" | cut -f1)): $(ls "$dir/large")"
}

# Options of the install modes: --python PY, --break-system-packages (and
# install-deepspeed's --target TDIR).
py=python3
target=""
install_options() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --python) py=${2:?--python needs an interpreter}; shift 2;;
      --target)
        [ "$mode" = install-deepspeed ] || die "$mode: --target is an option of install-deepspeed"
        target=${2:?--target needs a folder}; shift 2;;
      --break-system-packages) export PIP_BREAK_SYSTEM_PACKAGES=1; shift;;
      *) die "$mode: unknown argument $1";;
    esac
  done
  [ -d "$dir" ] || die "$mode: $dir is not a folder (run the download mode where a package index is reachable and carry its folder here)"
}

install_wheels() {
  # Missing packages, and the build group even when present. DeepSpeed's
  # dependencies only where its sdist was downloaded.
  local groups="build engine seg det large test" todo
  ls "$dir"/deepspeed-*.tar.gz >/dev/null 2>&1 && groups="$groups deepspeed"
  todo=$("$py" - "$dir" "$(requirements build)" $(requirements $groups) <<'PYEOF'
import os
import sys
from importlib.metadata import PackageNotFoundError, version
folder, forced = sys.argv[1], set(sys.argv[2].split())
files = [f.lower() for sub in ('', 'large') if os.path.isdir(os.path.join(folder, sub))
         for f in os.listdir(os.path.join(folder, sub)) if f.endswith('.whl')]
missing = []
for req in sys.argv[3:]:
    name, pinned = req.split('==')
    try:
        have = version(name)
    except PackageNotFoundError:
        have = None
    if have is None or (req in forced and have != pinned):
        if not any(f.startswith(f"{name.lower().replace('-', '_')}-{pinned}-") for f in files):
            missing.append(req)
        print(req)
    elif have != pinned:
        print(f'keeping {name} {have} (the bundle has {pinned})', file=sys.stderr)
if missing:
    sys.exit(f"not installed here and not in {folder}: {' '.join(missing)} (carry the "
             "download mode's whole folder, large/ included where scipy is missing)")
PYEOF
  )
  if [ -n "$todo" ]; then
    echo "installing from $dir: $(echo $todo)"
    # shellcheck disable=SC2086
    "$py" -m pip install -q --no-index --no-deps --find-links "$dir" --find-links "$dir/large" $todo
  else
    echo "every bundled package is present already"
  fi
}

install_mmcv() {
  reassemble_mmcv
  MMCV_SDIST="$dir/mmcv-$MMCV_VERSION.tar.gz" \
    bash "$here/install_mmcv.sh" "$py" "$MMCV_VERSION" "$dir/mmcv-cache"
}

install_deepspeed() {
  local version=$DEEPSPEED_VERSION start
  local sdist="$dir/deepspeed-$version.tar.gz"
  if [ ! -f "$sdist" ]; then
    # Only another version's sdist: a bundle from before the pin moved.
    if ls "$dir"/deepspeed-*.tar.gz > /dev/null 2>&1; then
      die "$dir has $(cd "$dir" && ls deepspeed-*.tar.gz | tr '\n' ' ')but not deepspeed-$version.tar.gz: run this script's download mode again"
    fi
    echo "no DeepSpeed sdist in $dir: DeepSpeed not installed"
    return 0
  fi
  local where=() present="from importlib.metadata import version; found = version('deepspeed')"
  if [ -n "$target" ]; then
    mkdir -p "$target" && target=$(cd "$target" && pwd) || die "install-deepspeed: cannot create --target $target"
    # --upgrade: without it pip leaves another version already in TDIR in place.
    where=(--target "$target" --upgrade)
    # Only TDIR counts: the processes that name it must get the pinned version.
    present="from importlib.metadata import distributions
found = next((d.version for d in distributions(name='deepspeed', path=['$target'])), None)"
  fi
  if "$py" -c "import sys; $present; sys.exit(found != '$version')" 2>/dev/null; then
    echo "DeepSpeed $version present already"
    return 0
  fi
  start=$(date +%s)
  "$py" -m pip install -q --no-index --no-deps --no-build-isolation "${where[@]}" "$sdist"
  echo "DeepSpeed $version installed from $sdist${target:+ into $target} in $(( $(date +%s) - start )) s"
}

# Parts carried back (DIR/mmcv-parts/KEY/WHEEL.part-NN + WHEEL.sha256) become
# DIR/mmcv-cache/KEY/WHEEL, where install_mmcv.sh finds it if KEY is this machine's.
reassemble_mmcv() {
  [ -d "$dir/mmcv-parts" ] || return 0
  local sum key wheel
  for sum in "$dir"/mmcv-parts/*/*.whl.sha256; do
    [ -e "$sum" ] || continue
    key=$(basename "$(dirname "$sum")"); wheel=$(basename "$sum" .sha256)
    [ -e "$dir/mmcv-cache/$key/$wheel" ] && continue
    mkdir -p "$dir/mmcv-cache/$key"
    cat "$(dirname "$sum")/$wheel".part-* > "$dir/mmcv-cache/$key/$wheel.tmp"
    if ! (cd "$dir/mmcv-cache/$key" && sed "s/\$/.tmp/" "$sum" | sha256sum -c --quiet -); then
      rm -f "$dir/mmcv-cache/$key/$wheel.tmp"
      die "the parts of $wheel in $(dirname "$sum") do not add up to its sha256: carry all of them again"
    fi
    mv "$dir/mmcv-cache/$key/$wheel.tmp" "$dir/mmcv-cache/$key/$wheel"
    echo "mmcv wheel reassembled from parts: $dir/mmcv-cache/$key/$wheel"
  done
}

# The folder name install_mmcv.sh would build this machine's wheel in, from its
# plan (empty where it would refuse, e.g. no nvcc: then nothing is ready).
wheel_key() {
  MMCV_PLAN_ONLY=1 bash "$here/install_mmcv.sh" "$py" "$MMCV_VERSION" "$dir/mmcv-cache" 2>/dev/null \
    | sed -n 's|^mmcv [^:]*: wheel folder .*/||p'
}

wheel_ready() {
  local key
  key=$(wheel_key)
  [ -n "$key" ] || return 1
  local found
  for found in "$dir/mmcv-cache/$key"/mmcv-"$MMCV_VERSION"-*.whl \
               "$dir/mmcv-parts/$key"/mmcv-"$MMCV_VERSION"-*.whl.sha256; do
    [ -e "$found" ] && return 0
  done
  return 1
}

export_mmcv() {
  local out=${1:?export-mmcv needs OUT}
  local wheel key found=0
  for wheel in "$dir"/mmcv-cache/*/mmcv-*.whl; do
    [ -e "$wheel" ] || continue
    found=1
    key=$(basename "$(dirname "$wheel")")
    # A wheel that came in as carried parts, or that an earlier call on this
    # machine exported, goes back as nothing: those bytes cost transfer time and
    # bring the carrier nothing new.
    local sent
    for sent in "$dir/mmcv-parts/$key/$(basename "$wheel").sha256" "$wheel.exported"; do
      if [ -e "$sent" ] && (cd "$(dirname "$wheel")" && sha256sum -c --quiet "$sent" >/dev/null 2>&1); then
        echo "mmcv wheel $key/$(basename "$wheel"): carried in or exported already ($sent), not exported again"
        continue 2
      fi
    done
    mkdir -p "$out/mmcv-parts/$key"
    (cd "$(dirname "$wheel")" && sha256sum "$(basename "$wheel")") > "$out/mmcv-parts/$key/$(basename "$wheel").sha256"
    cp "$out/mmcv-parts/$key/$(basename "$wheel").sha256" "$wheel.exported"
    split -b "$PART_BYTES" -d -a 2 "$wheel" "$out/mmcv-parts/$key/$(basename "$wheel").part-"
    echo "mmcv wheel $key/$(basename "$wheel") -> $out/mmcv-parts/$key ($(ls "$out/mmcv-parts/$key" | grep -c part-) parts)"
  done
  [ "$found" = 1 ] || echo "no built mmcv wheel in $dir/mmcv-cache to export"
}

case "$mode" in
  download) download "$@";;
  install) install_options "$@"; install_wheels; install_mmcv; install_deepspeed;;
  install-wheels) install_options "$@"; install_wheels;;
  install-mmcv) install_options "$@"; install_mmcv;;
  install-deepspeed) install_options "$@"; install_deepspeed;;
  reassemble-mmcv) [ -d "$dir" ] || die "$dir is not a folder"; reassemble_mmcv;;
  wheel-ready) install_options "$@"; wheel_ready;;
  export-mmcv) export_mmcv "$@";;
  *) usage;;
esac
