"""Run the unlearning suites `class` and `random` (Fashion-MNIST, resnet18, every baseline vs retraining).

    python benchmarks/bench_unlearning.py                       # both suites, 3 seeds, into runs/bench-*
    python benchmarks/bench_unlearning.py --suites class --seeds 1 --set methods=salun,scrub
    python benchmarks/bench_unlearning.py --set quick=true     # digits + cnn-small: a minute-scale smoke run
    python benchmarks/update_benchmarks_md.py class=runs/bench-class random=runs/bench-random

Same as `unlearnkit bench class --out runs/bench-class` and `unlearnkit bench random --out runs/bench-random`;
the original models and retrained references are cached (`--set cache=DIR`), so re-runs only redo what changed.
"""

from __future__ import annotations

import argparse
import sys

from unlearnkit.bench import run_suite
from unlearnkit.settings import parse_untyped


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suites", default="class,random")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", default="runs", help="parent folder: each suite writes OUT/bench-SUITE")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", dest="settings",
                   help="suite settings: quick=true, methods=a,b, epochs=N, cache=DIR, forget_class=C, fraction=F")
    p.add_argument("--overwrite", action="store_true", help="re-run finished rows too")
    a = p.parse_args(argv)
    for suite in a.suites.split(","):
        out = run_suite(suite, f"{a.out}/bench-{suite}", seeds=a.seeds, settings=parse_untyped(a.settings),
                        overwrite=a.overwrite)
        print((out / "table.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
