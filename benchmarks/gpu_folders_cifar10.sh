#!/usr/bin/env bash
# Issue 21's matrix on a lent GPU: class forgetting on image folders built from the CIFAR-10 JPEG copy (suite
# `folders`, benchmarks/bench_adversarial_folders.py), from 3,000 images to the whole of CIFAR-10, 32 to 128 px,
# resnet18 / preact-resnet18 / vgg-small, one class or two, each against retraining.
#
# Here, once:   mkdir -p .data && cp ../shared/data/cifar10-jpeg.tar.gz .data/     (.data/ is git-ignored)
# Device tool:  run(command="TOTAL=570 bash benchmarks/gpu_folders_cifar10.sh 2>&1 | tee $OUT/console.log",
#                   carry=[".data"], timeout_s=600)      (one call; then give the machine back)
# Issue 18's script (gpu_backdoor_cifar10.sh) comes first when a session is lent a device: it takes a session's
# 15 minutes. This one is for the next. All nine cells may not finish in one call: cells 6-9 hold 20,000-50,000
# images, and a preact-resnet18 epoch of the whole CIFAR-10 took 3.7 s on a lent H200 (issue 18's runs), so cell 8
# alone needs about 150 s for its original and 135 s for its reference before its methods start, with the other
# cells sharing the card. The safer split is two sessions, CELLS="1 2 3 4 5" then CELLS="6 7 8 9"; a cell cut off
# is listed as not run (or with the rows it finished), never estimated.
#
# Plan, every process limited to what is left of TOTAL seconds (default 570; run it with timeout_s=600):
# 0. unpack the copy; 1. for each cell of CELLS (numbers of `bench_adversarial_folders.py --list full`, default all
#    nine) one process per method of METHODS, all at once: the first to ask trains the cell's original, then its
#    retrained reference, while the others wait on the cache's lock (a waiting process uses no CPU), then each
#    runs its method; one process each keeps a GPU busier than one process alone can (an epoch here is bound by
#    the CPU launching kernels); 2. one `--reuse-only` invocation writes matrix.md from every row that finished
#    (a cell cut off by the time limit shows as not run, or with the rows it has).
# Seconds, and so speed-ups, are measured with the other cells' processes running beside each run: the original,
# the reference and the methods alike share the machine, so the ratio stays fair but both are slower than alone.
# What comes back under $OUT: matrix.md, console output, and runs.tgz (every cell's results.json, metrics.json,
# meta.json and logs; no weights). A dry run on the CPU (CELL_LIST replaces the matrix, ';' between cells):
#   CELL_LIST="classes=3 per_class=6 test_per_class=3 size=16 arch=cnn-small epochs=2" METHODS=adversarial \
#     OUT=/tmp/o WORK=/tmp/w bash benchmarks/gpu_folders_cifar10.sh
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
out=${OUT:-/tmp/gpu-out}
work=${WORK:-/tmp/ukfolders}
total=${TOTAL:-570}
methods=${METHODS:-"adversarial random-label salun scrub"}
export PYTHONPATH="$here/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 UNLEARNKIT_DATA="$work/data" \
  UNLEARNKIT_BENCH_CACHE="$work/cache" OMP_NUM_THREADS=${THREADS:-1} UNLEARNKIT_CHECKPOINT_SECONDS=${CKPT:-60}
# shellcheck source=benchmarks/gpu_common.sh
. benchmarks/gpu_common.sh
gpu_prepare "$out" "$work"
echo "data ready at $(( $(date +%s) - t0 )) s"

# the cells: CELL_LIST, or the numbers CELLS of the full matrix
if [ -n "${CELL_LIST:-}" ]; then
  IFS=';' read -ra cells <<<"$CELL_LIST"
else
  mapfile -t matrix < <(python3 benchmarks/bench_adversarial_folders.py --list full)
  cells=()
  for i in ${CELLS:-$(seq 1 "${#matrix[@]}")}; do cells+=("${matrix[$((i - 1))]}"); done
fi
left_now() { echo $(( total - ($(date +%s) - t0) - 25 )); }

# 1. one process per cell and method
pids=()
for i in "${!cells[@]}"; do
  for m in $methods; do
    left=$(left_now)
    [ "$left" -gt 30 ] || { echo "no time left for cell $((i + 1)) $m"; continue; }
    ( timeout "$left" python3 benchmarks/bench_adversarial_folders.py --out "$work/folders" --cell "${cells[$i]}" \
        --methods "$m" >"$work/logs/cell$((i + 1))-$m.log" 2>&1
      rc=$?; echo "cell $((i + 1)) (${cells[$i]}) $m ended (rc $rc) at $(( $(date +%s) - t0 )) s" ) &
    pids+=($!)
  done
done
for p in "${pids[@]}"; do wait "$p"; done
echo "cells done at $(( $(date +%s) - t0 )) s"

# 2. one table of every row that finished (trains and runs nothing)
args=()
for c in "${cells[@]}"; do args+=(--cell "$c"); done
python3 benchmarks/bench_adversarial_folders.py --out "$work/folders" --reuse-only "${args[@]}" \
  >"$work/logs/matrix.log" 2>&1 || tail -n 20 "$work/logs/matrix.log"
cp "$work/folders/matrix.md" "$out/matrix.md" 2>/dev/null
(cd "$work" && find folders cache logs \( -name '*.json' -o -name '*.md' -o -name '*.txt' -o -name '*.log' \) \
  -print0 2>/dev/null | tar czf "$out/runs.tgz" --null -T -)
cat "$out/matrix.md" 2>/dev/null || tail -n 30 "$work"/logs/*.log
echo "total $(( $(date +%s) - t0 )) s"
