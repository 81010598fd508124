"""Training images/s at each precision, measured in one process through the full pipeline (`unlearnkit train`).

On CUDA, `--precision auto` (the default of `unlearnkit train`) trains with bf16 autocast and channels_last;
`fp32` turns both off. Each precision trains the same model for `--epochs` epochs from the same seed; the table
gives images/s over the epochs after the first (cuDNN's autotuning and allocation happen in the first), from the
run log's epoch times, and the test accuracy each run reached.

    python benchmarks/precision_throughput.py --data cifar10 --arch preact-resnet18 --epochs 3 --out /tmp/prec
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from unlearnkit import train
from unlearnkit.bench.runner import machine_description


def epoch_seconds(run: Path) -> list[float]:
    """Seconds of each training epoch, from the time stamps of log.txt's epoch lines."""
    pattern = r"\[\s*([\d.]+)s\] train: epoch \d+/\d+"
    stamps = [float(m.group(1)) for m in re.finditer(pattern, (run / "log.txt").read_text())]
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="cifar10")
    ap.add_argument("--arch", default="preact-resnet18")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--precisions", default="fp32,auto")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rows = []
    for precision in a.precisions.split(","):
        run = train(a.data, a.arch, Path(a.out) / precision, epochs=a.epochs, batch_size=a.batch_size, lr=0.01,
                    precision=precision, overwrite=True)
        per_epoch = epoch_seconds(run)
        ips = len_train(run) * len(per_epoch) / sum(per_epoch) if per_epoch else float("nan")
        rows.append((precision, ips, json.loads((run / "metrics.json").read_text())["test_acc"]))
    print(f"| {a.data} {a.arch}, batch {a.batch_size} | images/s (epochs 2-{a.epochs}) | test acc. after {a.epochs} |")
    print("|---|---|---|")
    for precision, ips, acc in rows:
        print(f"| {precision} | {ips:.0f} | {acc:.2f} |")
    if len(rows) == 2:
        print(f"\nspeed-up of {rows[1][0]} over {rows[0][0]}: {rows[1][1] / rows[0][1]:.2f}x")
    print(f"machine: {machine_description()}")


def len_train(run: Path) -> int:
    """Training images per epoch: the dataset's training split less the held-out share."""
    from unlearnkit.rundata import load_run_data, split_of

    meta = json.loads((run / "meta.json").read_text())
    bundle = load_run_data(meta)
    return len(split_of(meta, bundle, None).train_idx)


if __name__ == "__main__":
    main()
