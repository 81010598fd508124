#!/usr/bin/env bash
# Issue 18's GPU check as one command for a lent H100 (planned to end inside 10 minutes): the reference setting
# of BackdoorBench's leaderboard (CIFAR-10 JPEG copy, preact-resnet18, 100 epochs, 10% poisoning, 2,500 clean
# images), every defence, with bf16 against fp32 images/s measured first on the same card.
#
# Here, once:   mkdir -p .data && cp ../shared/data/cifar10-jpeg.tar.gz .data/     (.data/ is git-ignored)
# Device tool:  run(command="bash benchmarks/gpu_backdoor_cifar10.sh", carry=[".data"], timeout_s=600)
#
# The attacks run one after another, BadNets first (the bars are on BadNets), each process alone on the GPU and
# limited to what is left of TOTAL seconds (default 540), so the table that ends the script holds every row that
# finished in time and says how many did not. What comes back
# under $OUT: throughput.md, table.md, results.json and runs.tgz (metrics, meta and logs of every run, no
# weights). Set ATTACKS / TOTAL to change the plan; SET (extra suite settings) and PREC_ARGS (the throughput
# run's arguments) make a dry run on the CPU:
#   SET=quick=true PREC_ARGS="--data digits --arch cnn-small --epochs 2" ATTACKS=badnets OUT=/tmp/o WORK=/tmp/w \
#     bash benchmarks/gpu_backdoor_cifar10.sh
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
out=${OUT:-/tmp/gpu-out}
work=${WORK:-/tmp/ukbench}
attacks=${ATTACKS:-"badnets blend wanet"}
total=${TOTAL:-540}
extra=${SET:-}
prec_args=${PREC_ARGS:-"--data cifar10 --arch preact-resnet18 --epochs 3"}
export PYTHONPATH="$here/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 UNLEARNKIT_DATA="$work/data"
mkdir -p "$out" "$work/data/cifar10" "$work/logs"
t0=$(date +%s)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
if [ ! -d "$work/data/cifar10/train" ]; then
  tar xzf .data/cifar10-jpeg.tar.gz -C "$work/data/cifar10" || { echo "no .data/cifar10-jpeg.tar.gz: carry .data"; exit 2; }
fi

# 1. bf16 + channels_last against fp32, same card, same process (3 epochs each)
# shellcheck disable=SC2086
timeout 150 python3 benchmarks/precision_throughput.py $prec_args \
  --out "$work/precision" 2>"$work/logs/precision.err" | tee "$out/throughput.md"
echo "throughput done at $(( $(date +%s) - t0 )) s"

# 2. one attack at a time: train the 100-epoch model (cached), then every defence row, within what is left
for a in $attacks; do
  left=$(( total - ($(date +%s) - t0) - 20 ))
  [ "$left" -gt 30 ] || { echo "no time left for $a"; break; }
  # shellcheck disable=SC2086
  timeout "$left" python3 benchmarks/bench_backdoor.py --suite backdoor-cifar10 --out "$work/bb" --only-seeds 0 \
    --no-cost --set scenarios="$a" cache="$work/cache" $extra >"$work/logs/$a.log" 2>&1
  echo "$a ended (rc $?) at $(( $(date +%s) - t0 )) s"
done
echo "attacks done at $(( $(date +%s) - t0 )) s"

# 3. read every finished row back into one table (trains and runs nothing)
scen=$(echo $attacks | tr ' ' ',')
python3 benchmarks/bench_backdoor.py --suite backdoor-cifar10 --out "$work/bb" --seeds 1 --reuse-only --no-cost \
  --set scenarios="$scen" cache="$work/cache" $extra >"$work/logs/table.log" 2>&1
cp "$work/bb/table.md" "$out/table.md" 2>/dev/null
cp "$work/bb/results.json" "$out/results.json" 2>/dev/null
(cd "$work" && find bb cache logs precision \( -name '*.json' -o -name '*.md' -o -name '*.txt' -o -name '*.log' \
  -o -name '*.err' -o -name '*.csv' \) -print0 | tar czf "$out/runs.tgz" --null -T -)
cat "$out/table.md" 2>/dev/null || tail -n 30 "$work"/logs/*.log
echo "total $(( $(date +%s) - t0 )) s"
