#!/usr/bin/env bash
# The GPU lane in one command, for a bare GPU machine that has Python 3 and a CUDA
# torch but no package index, reached by copying this working tree there and
# running one command whose few files under $OUT come back (each under 16 MiB).
#
#   bash tools/gpu/run_gpu_lane.sh [--budget SECONDS] [--only PHASES]
#       [--bench core|all|upstream|extra] [--tests FILES] [--bundle DIR] [--out DIR]
#       [--run-dir DIR] [--upstream-file PATH] [--serial-build] [--tests-first] [--serial-tests]
#       [--device cuda|cpu] [--arch ARCH] [--dtype DTYPE] [--dry-run]
#
# Before: fill the bundle folder (git-ignored, default .gpu_bundle) where a package
# index is reachable, and carry it along:
#   bash tools/install/offline_gpu_bundle.sh download .gpu_bundle
# (scipy goes to .gpu_bundle/large: carry it only if the machine lacks scipy).
#
# Phases, in order, each under `timeout`, all within --budget seconds (default 560):
#   install  the bundle's wheels the machine lacks (offline_gpu_bundle.sh install-wheels)
#   build    mmcv with CUDA ops for the local GPU (install-mmcv): a wheel carried in
#            .gpu_bundle/mmcv-parts (or built earlier on this machine) is reused; else
#            it is built, by default in the background during the bench phase on all
#            cores but two (--serial-build: alone, after it), then check_install.py
#   bench    tools/benchmark.py rows for docs/benchmarks.md, 6B, bf16, 504 px: eager,
#            compiled, transformers; forward batch 8 and 1, full-tuning step with
#            checkpointing batch 2, the first two with a profile of one step
#            (--bench all: also train batch 1 and 8, and a size sweep with a
#            plot; --bench extra: only these, after a core run). With
#            --upstream-file (default: BUNDLE/upstream/intern_vit_6b.py where it
#            was carried, InternVL's segmentation/mmseg_custom/models/backbones/
#            intern_vit_6b.py) also upstream beside our eager backbone (and the
#            compiled one, for the training step batch 2), training step batch 2
#            and forward batch 8: last, with the budget left (--bench upstream:
#            these rows alone)
#   tests    pytest -m gpu, one run per tests/test_gpu_*.py (backbone, segmentation,
#            and distributed after DeepSpeed's sdist is installed into
#            RUN_DIR/deepspeed), the files at the same time (--serial-tests:
#            one after another), JUnit XML with measured values; --tests distributed
#            (say) runs only those files, e.g. in a second call on the same warm
#            machine for what the budget cut from the first
# --tests-first: build (alone), tests, then bench; the order it takes by itself
# when the bundle holds an mmcv wheel for this machine (wheel-ready).
# Results under --out (default $OUT, else ./gpu_lane_out), seven files at most:
# summary.txt, summary.json, lane-files.tar.gz (logs/, bench/*.json and plots,
# tests-*.xml, phases.tsv: written in --run-dir, default .gpu_lane_cache/run) and
# mmcv-parts/KEY/ (a built wheel in three <16 MiB parts and its sha256: put that
# folder back as .gpu_bundle/mmcv-parts to skip the build next time; a wheel that
# came that way is not sent back).
# --device cpu --arch '{...}' --dtype float32 runs the bench phase on a CPU with a
# tiny arch (to check this script); --dry-run prints the plan only.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python3}
BUDGET=560
ONLY="install,build,bench,tests"
TESTS="backbone,segmentation,distributed"
BENCH=core
BUNDLE=.gpu_bundle
OUT_DIR=${OUT:-./gpu_lane_out}
RUN_DIR=.gpu_lane_cache/run
UPSTREAM=""
SERIAL_BUILD=0
SERIAL_TESTS=0
TESTS_FIRST=0
DEVICE=cuda
ARCH=6b
DTYPE=bfloat16
DRY=0
RESERVE=20  # seconds kept for the export and the summary

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0" >&2; exit 2; }
die() { echo "run_gpu_lane.sh: $*" >&2; exit 2; }
# folder OPTION DIR: DIR, created, as an absolute path (or the error).
folder() {
  local dir
  dir=$(mkdir -p "$2" 2>/dev/null && cd "$2" && pwd) && [ -n "$dir" ] \
    || die "$1 $2: cannot create that folder"
  echo "$dir"
}
# listed LIST ITEM: whether the comma-separated LIST names ITEM.
listed() { [[ ",$1," == *",$2,"* ]]; }
while [ $# -gt 0 ]; do
  case "$1" in
    --budget) BUDGET=${2:-}; shift 2;;
    --only) ONLY=${2:-}; shift 2;;
    --tests) TESTS=${2:-}; shift 2;;
    --bench) BENCH=${2:-}; shift 2;;
    --bundle) BUNDLE=${2:-}; shift 2;;
    --out) OUT_DIR=${2:-}; shift 2;;
    --run-dir) RUN_DIR=${2:-}; shift 2;;
    --upstream-file) UPSTREAM=${2:-}; shift 2;;
    --serial-build) SERIAL_BUILD=1; shift;;
    --serial-tests) SERIAL_TESTS=1; shift;;
    --tests-first) TESTS_FIRST=1; shift;;
    --device) DEVICE=${2:-}; shift 2;;
    --arch) ARCH=${2:-}; shift 2;;
    --dtype) DTYPE=${2:-}; shift 2;;
    --dry-run) DRY=1; shift;;
    -h|--help) usage;;
    *) die "unknown argument '$1' (see --help)";;
  esac
done
[[ "$BUDGET" =~ ^[0-9]+$ ]] && [ "$BUDGET" -ge 60 ] || die "--budget must be whole seconds >= 60, got '$BUDGET'"
for phase in ${ONLY//,/ }; do
  case "$phase" in install|build|bench|tests) ;; *) die "--only: unknown phase '$phase' (install, build, bench, tests)";; esac
done
for file in ${TESTS//,/ }; do
  case "$file" in backbone|segmentation|distributed) ;; *) die "--tests: unknown file '$file' (backbone, segmentation, distributed)";; esac
done
case "$DEVICE" in cuda|cpu) ;; *) die "--device must be cuda or cpu, got '$DEVICE'";; esac
[ -z "$UPSTREAM" ] || [ -f "$UPSTREAM" ] || die "--upstream-file $UPSTREAM does not exist"
# InternVL's file, when carried in the bundle (it is not part of this repository).
if [ -z "$UPSTREAM" ] && [ -f "$BUNDLE/upstream/intern_vit_6b.py" ]; then
  UPSTREAM="$BUNDLE/upstream/intern_vit_6b.py"
fi
case "$BENCH" in core|all|upstream|extra) ;; *) die "--bench must be core, all, upstream or extra, got '$BENCH'";; esac
[ "$BENCH" != upstream ] || [ -n "$UPSTREAM" ] \
  || die "--bench upstream needs InternVL's intern_vit_6b.py: --upstream-file PATH or $BUNDLE/upstream/"
wants() { listed "$ONLY" "$1"; }

START=$(date +%s)
remaining() { echo $(( START + BUDGET - $(date +%s) )); }
if [ "$DRY" = 0 ]; then
  # Absolute paths, or stop: the clean-up below must never run on an empty one.
  OUT_DIR=$(folder --out "$OUT_DIR") || exit 2
  RUN_DIR=$(folder --run-dir "$RUN_DIR") || exit 2
  # This run's files only (a warm machine keeps the previous run's).
  rm -rf "$RUN_DIR/logs" "$RUN_DIR/bench" "$RUN_DIR"/tests-*.xml "$RUN_DIR"/summary.*
  mkdir -p "$RUN_DIR/logs" "$RUN_DIR/bench"
  : > "$RUN_DIR/phases.tsv"
fi
PHASES="$RUN_DIR/phases.tsv"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PIP_BREAK_SYSTEM_PACKAGES=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Kept between calls on a warm machine (git-ignored): a rerun compiles nothing twice.
export TORCHINDUCTOR_CACHE_DIR="$ROOT/.gpu_lane_cache/inductor"
# Kept between calls too (the clean-up above spares it).
DEEPSPEED_DIR="$RUN_DIR/deepspeed"

# run NAME CAP CMD...: run CMD under timeout min(CAP, budget left - RESERVE),
# log to logs/NAME.log, record "NAME status seconds" in phases.tsv.
run() {
  local name=$1 cap=$2; shift 2
  local left=$(( $(remaining) - RESERVE )) limit start rc status
  limit=$(( cap < left ? cap : left ))
  if [ "$DRY" = 1 ]; then
    printf '%-22s up to %4s s: %s\n' "$name" "$cap" "$*"
    return 0
  fi
  if [ "$limit" -lt 15 ]; then
    printf '%s\tskipped (budget)\t0\n' "$name" >> "$PHASES"
    echo "== $name: skipped, $(remaining) s of the budget left"
    return 1
  fi
  echo "== $name (up to $limit s): $*"
  start=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" > "$RUN_DIR/logs/$name.log" 2>&1
  rc=$?
  case $rc in 0) status=ok;; 124|137) status="timeout ($limit s)";; *) status="failed (exit $rc)";; esac
  printf '%s\t%s\t%s\n' "$name" "$status" "$(( $(date +%s) - start ))" >> "$PHASES"
  echo "   $status in $(( $(date +%s) - start )) s; tail of logs/$name.log:"
  tail -n 3 "$RUN_DIR/logs/$name.log" | sed 's/^/   | /'
  return $rc
}

if [ "$DRY" = 0 ]; then
  { nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>/dev/null \
      || echo 'nvidia-smi: not available'
    "$PY" -c 'import torch, sys; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.is_available() and torch.cuda.get_device_name())'
    nproc; free -g | head -2; } > "$RUN_DIR/logs/machine.log" 2>&1
  cat "$RUN_DIR/logs/machine.log"
fi

wants install && run install 180 bash tools/install/offline_gpu_bundle.sh install-wheels "$BUNDLE" --python "$PY"

# An mmcv wheel for this machine at hand (carried parts, or built by an earlier
# call) leaves no build to hide behind the benchmarks: then the tests go first,
# and a budget cut costs benchmark rows, not tests.
if [ "$TESTS_FIRST" = 0 ] && wants build && wants tests \
    && bash tools/install/offline_gpu_bundle.sh wheel-ready "$BUNDLE" --python "$PY" 2>/dev/null; then
  TESTS_FIRST=1
  echo "== an mmcv wheel for this machine is in $BUNDLE: tests before the benchmarks"
fi

# The mmcv build uses the CPUs while the bench phase mostly uses the GPU; its
# compile workers would slow the benchmark's own compilation, so the records of
# a bench row that started while the build still ran say so (concurrent_build in
# summary.json; a carried wheel is reassembled in seconds and slows nothing).
BUILD_PID=""
BACKGROUND_BUILD=0
wants build && wants bench && [[ "$BENCH" == core || "$BENCH" == all ]] && [ "$SERIAL_BUILD" = 0 ] \
  && [ "$TESTS_FIRST" = 0 ] && BACKGROUND_BUILD=1
if [ "$BACKGROUND_BUILD" = 1 ] && [ "$DRY" = 1 ]; then
  printf '%-22s %s\n' build-mmcv "bash tools/install/offline_gpu_bundle.sh install-mmcv $BUNDLE (in the background during bench)"
elif [ "$BACKGROUND_BUILD" = 1 ]; then
  jobs=$(( $(nproc) > 4 ? $(nproc) - 2 : $(nproc) ))
  left=$(( $(remaining) - RESERVE ))
  echo "== build-mmcv in the background (MAX_JOBS=$jobs, up to $left s)"
  ( start=$(date +%s)
    MAX_JOBS=$jobs timeout --kill-after=10 "$left" nice -n 10 bash tools/install/offline_gpu_bundle.sh \
      install-mmcv "$BUNDLE" --python "$PY" > "$RUN_DIR/logs/build-mmcv.log" 2>&1
    rc=$?
    case $rc in 0) status=ok;; 124|137) status="timeout ($left s)";; *) status="failed (exit $rc)";; esac
    printf 'build-mmcv\t%s\t%s\n' "$status" "$(( $(date +%s) - start ))" >> "$PHASES" ) &
  BUILD_PID=$!
fi

bench_row() {  # NAME MODE BATCH EXTRA...
  local name=$1 mode=$2 batch=$3; shift 3
  local timing=(--warmup 3 --repeats 10)
  [ "$mode" = train ] && timing=(--warmup 2 --repeats 5)
  if [ -n "$BUILD_PID" ] && kill -0 "$BUILD_PID" 2>/dev/null; then
    touch "$RUN_DIR/bench/$name.concurrent_build"
  fi
  run "bench-$name" 240 "$PY" tools/benchmark.py --mode "$mode" --arch "$ARCH" --dtype "$DTYPE" \
    --device "$DEVICE" --batch "$batch" "${timing[@]}" --json "$RUN_DIR/bench/$name.json" "$@"
}
bench_rows() {
  wants bench || return 0
  local peers=(--compile --peer transformers)
  if [[ "$BENCH" == core || "$BENCH" == all ]]; then
    # --profile: where the time goes in the rows the targets judge (one extra step each).
    bench_row fwd-b8 forward 8 --size 504 504 "${peers[@]}" --profile
    bench_row train-cp-b2 train 2 --with-cp --size 504 504 "${peers[@]}" --profile
    bench_row fwd-b1 forward 1 --size 504 504 "${peers[@]}"
  fi
  if [[ "$BENCH" == all || "$BENCH" == extra ]]; then
    bench_row train-cp-b1 train 1 --with-cp --size 504 504 "${peers[@]}"
    bench_row train-cp-b8 train 8 --with-cp --size 504 504 "${peers[@]}"
    bench_row sweep-b1 forward 1 --sizes 224 448 504 672 896 "${peers[@]}" \
      --warmup 1 --repeats 3 --plot "$RUN_DIR/bench/sweep-b1.png"
    # The detection configs' backbone: 1024 px, 14-token windows with 4 global
    # blocks against all-global attention on the same weights (--windows both).
    bench_row det-train-cp-b1 train 1 --with-cp --windows both
  fi
}

finish_build() {
  wants build || return 0
  if [ -n "$BUILD_PID" ]; then
    echo "== waiting for the mmcv build"
    wait "$BUILD_PID"
    tail -n 3 "$RUN_DIR/logs/build-mmcv.log" | sed 's/^/   | /'
  elif [ "$BACKGROUND_BUILD" = 0 ]; then
    run build-mmcv 400 bash tools/install/offline_gpu_bundle.sh install-mmcv "$BUNDLE" --python "$PY"
  fi
  [ "$DRY" = 0 ] && bash tools/install/offline_gpu_bundle.sh export-mmcv "$BUNDLE" "$OUT_DIR" > "$RUN_DIR/logs/export-mmcv.log" 2>&1
  run check-install 90 "$PY" tools/check_install.py
}

# One pytest per file, each with its own JUnit XML: a file cut short by the
# budget loses only its own results.
gpu_tests() {  # NAME CAP [VAR=VALUE...]
  listed "$TESTS" "$1" || return 0
  local name=$1 cap=$2; shift 2
  run "tests-$name" "$cap" env "$@" "$PY" -m pytest -q -m gpu "tests/test_gpu_$name.py" \
    -p no:cacheprovider -rfEs --durations=10 --junitxml "$RUN_DIR/tests-$name.xml"
}
# DeepSpeed goes into a folder of its own that only the distributed file's
# processes see: the image's environment stays as it was, the other files
# test what a machine without DeepSpeed gets, and the install (from the
# sdist) overlaps them.
distributed_tests() {
  listed "$TESTS" distributed || return 0
  run install-deepspeed 150 bash tools/install/offline_gpu_bundle.sh install-deepspeed "$BUNDLE" \
    --python "$PY" --target "$DEEPSPEED_DIR"
  gpu_tests distributed 240 PYTHONPATH="$DEEPSPEED_DIR:$PYTHONPATH"
}
# The files run at once by default: one GPU holds all three (tiny models), and
# their time is mostly tool processes starting and small kernels, so the lane
# takes as long as its slowest file instead of the sum (the CPU threads are
# shared out between them). Their correctness checks do not depend on it; the
# speeds they record are measured next to the other files (summary.json says
# so). --serial-tests: one after another.
# The test files, most basic first; each entry a command (split on spaces).
TEST_JOBS=("gpu_tests backbone 150" "gpu_tests segmentation 300" distributed_tests)
run_tests() {
  wants tests || return 0
  local files threads
  files=$(for f in backbone segmentation distributed; do listed "$TESTS" "$f" && echo "$f"; done | wc -l)
  threads=$(( $(nproc) / files > 0 ? $(nproc) / files : 1 ))
  if [ "$SERIAL_TESTS" = 0 ] && [ "$files" -ge 2 ]; then
    if [ "$DRY" = 0 ]; then
      tests_at_once "$files" "$threads"
      return
    fi
    echo "tests-at-once          $files files at the same time (OMP_NUM_THREADS=$threads each):"
  fi
  local job
  for job in "${TEST_JOBS[@]}"; do $job; done
}
tests_at_once() {  # FILES THREADS
  local start pids=() rc=0 pid job
  echo "== $1 test files at once (OMP_NUM_THREADS=$2 each)"
  start=$(date +%s)
  for job in "${TEST_JOBS[@]}"; do
    ( export OMP_NUM_THREADS=$2; $job ) & pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
  printf 'tests-at-once\t%s\t%s\n' "$([ "$rc" = 0 ] && echo ok || echo 'failed (a file)')" \
    "$(( $(date +%s) - start ))" >> "$PHASES"
}

if [ "$TESTS_FIRST" = 1 ]; then
  finish_build
  run_tests
  bench_rows
else
  bench_rows
  finish_build
  run_tests
fi

# The upstream rows last, with what is left of the budget: they are extra
# processes (eager + upstream) that the tests must not wait for. On their own:
# an unimportable file costs only these rows. The training step first: a target
# (>= 2x over upstream) is judged on it, the forward row is for the docs only.
if wants bench && [ -n "$UPSTREAM" ] && [ "$BENCH" != extra ]; then
  # --compile: the target compares compiled with upstream, timed in one process.
  bench_row train-cp-b2-upstream train 2 --with-cp --size 504 504 --compile --peer upstream \
    --peer-file "$UPSTREAM"
  bench_row fwd-b8-upstream forward 8 --size 504 504 --peer upstream --peer-file "$UPSTREAM"
fi

[ "$DRY" = 1 ] && exit 0
"$PY" tools/gpu/lane_summary.py "$RUN_DIR" "$(( $(date +%s) - START ))" | tee "$RUN_DIR/summary.txt"
# What comes back: the summaries, everything else in one archive (and the
# mmcv parts, exported above).
cp "$RUN_DIR/summary.txt" "$RUN_DIR/summary.json" "$OUT_DIR/"
tar -czf "$OUT_DIR/lane-files.tar.gz" -C "$RUN_DIR" logs bench phases.tsv \
  $(cd "$RUN_DIR" && ls tests-*.xml 2>/dev/null)
