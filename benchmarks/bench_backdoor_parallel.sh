#!/usr/bin/env bash
# The backdoor benchmark as parallel processes sharing one GPU: one process per (attack, seed), plus one per seed
# training the clean model that attack_cost.md compares with; then one last invocation over every seed and
# attack reads all their rows back into one table (`--reuse-only`: it runs nothing, so rows that did not finish,
# e.g. when a time limit stopped their process, are left out and counted in the table instead of run here).
#
#   bash benchmarks/bench_backdoor_parallel.sh OUT CACHE "0 1 2" "badnets blend sig wanet trojan l0-inv l2-inv" [EXTRA --set ARGS]
#
# Seconds in the table are then wall times under contention (up to one process per attack and seed at once):
# compare them only within this table.
set -u
out=$1 cache=$2 seeds=$3 attacks=$4
shift 4
extra=("$@")
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out/logs"
pids=()
for s in $seeds; do
  python "$here/bench_backdoor.py" --out "$out" --clean-only --only-seeds "$s" --set cache="$cache" "${extra[@]}" \
    >"$out/logs/clean-s$s.log" 2>&1 &
  pids+=($!)
  for a in $attacks; do
    python "$here/bench_backdoor.py" --out "$out" --only-seeds "$s" \
      --set cache="$cache" scenarios="$a" "${extra[@]}" >"$out/logs/$a-s$s.log" 2>&1 &
    pids+=($!)
  done
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
n=$(echo $seeds | wc -w)
scen=$(echo $attacks | tr ' ' ',')
python "$here/bench_backdoor.py" --out "$out" --seeds "$n" --reuse-only --set cache="$cache" scenarios="$scen" \
  "${extra[@]}"
exit $status
