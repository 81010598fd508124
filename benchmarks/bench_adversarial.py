"""Benchmark of the adversarial class forgetting (issue 3) and its done-when targets.

Fashion-MNIST, resnet18, forgetting class 0, 3 seeds, each against `retrain` of the same seed; rows: the
working default and `preset=seed` (the described system). Prints the suite's table, then each seed's verdict
on each target.

    python benchmarks/bench_adversarial.py --out runs/bench-adversarial
    python benchmarks/bench_adversarial.py --out /tmp/b --quick     # digits + cnn-small, a smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from unlearnkit.bench import SUITES
from unlearnkit.bench.runner import COMMON_SETTINGS, apply_common_settings, run
from unlearnkit.settings import parse_pairs

#: (label, metric key in results.json's flattened metrics, test)
TARGETS = [
    ("forget_test_acc <= 1%", "forget_test_acc", lambda v: v <= 1.0),
    ("retained-class TA within 1.0 of retrain", "gap.test_acc", lambda v: v <= 1.0),
    ("MIA-efficacy within 5 of retrain", "gap.mia_efficacy", lambda v: v <= 5.0),
    ("fresh-D AUC within 0.05 of retrain's", "adversarial.fresh_disc.auc_gap", lambda v: v <= 0.05),
    ("wall time <= 1/10 of retrain", "speedup", lambda v: v >= 10.0),
]
#: Printed beside the targets, judged by none: a discriminator fitted directly on unlearned vs retrained outputs
#: for forgotten-class images is a stricter audit than the issue's "AUCs no more than 0.05 apart".
REPORTED = [("direct D(unlearned vs retrained) AUC", "adversarial.fresh_disc.vs_reference.auc")]


def verdicts(results: dict) -> list[str]:
    lines = []
    for r in results["records"]:
        if r["method"] != "adversarial":
            continue
        cells = []
        for label, k, ok in TARGETS:
            v = r["metrics"].get(k)
            cells.append(f"{label}: {'n/a' if v is None else ('PASS' if ok(v) else 'FAIL')} ({v})")
        cells += [f"{label} (reported): {r['metrics'].get(k)}" for label, k in REPORTED]
        lines.append(f"{r['row']} seed {r['seed']}:\n  " + "\n  ".join(cells))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--cache", help="where originals and references are cached (shared across suites)")
    ap.add_argument("--quick", action="store_true", help="digits + cnn-small: a smoke run, not the benchmark")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="suite settings, e.g. budget=0.05")
    a = ap.parse_args()
    settings = parse_pairs(a.set)
    if a.quick:
        settings["quick"] = "true"
    suite = SUITES.get("adversarial")({k: v for k, v in settings.items() if k not in COMMON_SETTINGS})
    suite = apply_common_settings(suite, {k: v for k, v in settings.items() if k in COMMON_SETTINGS and k != "cache"})
    command = "python benchmarks/bench_adversarial.py " + " ".join(sys.argv[1:])
    cache = a.cache or settings.get("cache")  # `--cache DIR` or `--set cache=DIR`, as the other bench scripts
    out = run(suite, Path(a.out), seeds=a.seeds, cache=Path(cache) if cache else None, command=command)
    print((out / "table.md").read_text())
    print("\n".join(verdicts(json.loads((Path(out) / "results.json").read_text()))))


if __name__ == "__main__":
    main()
