"""The backdoor benchmark: suite `backdoor` (every attack x every defence x seeds), plus the attacks' own cost.

    python benchmarks/bench_backdoor.py --out runs/bench-backdoor                 # Fashion-MNIST, ResNet-18, 3 seeds
    python benchmarks/bench_backdoor.py --out /tmp/bb --seeds 1 --set quick=true clean=72 small=40   # minutes
    python benchmarks/bench_backdoor.py --suite backdoor-cifar10 --out runs/bb-cifar --seeds 1 \
        --set scenarios=badnets                                     # the reference setting (a GPU: see gpu_backdoor.sh)

Writes the suite's results.json / results.csv / summary.csv / table.md under --out, and attack_cost.md: per
attack, the backdoored model's ASR and clean accuracy next to a clean model trained with the same recipe and
seed (the clean-accuracy cost of the attack), mean ± std over seeds. Originals are cached (see
`unlearnkit bench`), so re-running only fills in what is missing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from unlearnkit.bench import build_suite, run_suite
from unlearnkit.bench.runner import cached_original, default_cache, mean_std, original_path
from unlearnkit.cli import add_parallel_bench_args
from unlearnkit.settings import parse_untyped


def attack_cost(out: Path, cache: Path, reuse_only: bool = False) -> str:
    """Markdown table of each attack's ASR and clean-accuracy cost against a clean model (same recipe, seed);
    with `reuse_only`, a clean model that is not in the cache is not trained (its seed is left out)."""
    res = json.loads((out / "results.json").read_text())
    head = res["header"]
    find = original_path if reuse_only else cached_original
    clean = {}
    for s in sorted({r["seed"] for r in res["records"]}):
        path = find(cache, head["data"], head["arch"], head["train"], s) / "metrics.json"
        if path.is_file():
            clean[s] = json.loads(path.read_text())["test_acc"]
    seeds = sorted(clean)
    lines = ["| attack | ASR | clean acc. | clean model acc. | cost (points) |", "|---|---|---|---|---|"]
    for sc in [s["name"] for s in head["scenarios"]]:
        firsts = {r["seed"]: r["metrics"] for r in res["records"] if r["scenario"] == sc and r["seed"] in clean}
        asr = [m["original.asr"] for m in firsts.values()]
        acc = [m["original.clean_acc"] for m in firsts.values()]
        ref = [clean[s] for s in firsts]
        cost = [c - a for c, a in zip(ref, acc, strict=True)]
        cells = [f"{m:.2f} ± {d:.2f}" for m, d in map(mean_std, (asr, acc, ref, cost))]
        lines.append(f"| {sc} | " + " | ".join(cells) + " |")
    return (f"Attacks on {head['data']} / {head['arch']}, {len(seeds)} seed(s); machine: {head['machine']}\n\n"
            + "\n".join(lines) + "\n")


def train_clean(name: str, settings: dict, cache: Path, seeds: list[int]) -> None:
    """The clean models of the suite's recipe (data, arch and training as `settings` make them), one per seed."""
    suite = build_suite(name, settings)
    for seed in seeds:
        cached_original(cache, suite.data, suite.arch, suite.train, seed)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--suite", default="backdoor", choices=["backdoor", "backdoor-cifar10"])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", dest="settings")
    add_parallel_bench_args(p)
    p.add_argument("--clean-only", action="store_true",
                   help="only train (once, into the cache) the clean models attack_cost.md compares with")
    p.add_argument("--no-cost", action="store_true",
                   help="skip attack_cost.md (it trains a clean model per seed unless one is cached)")
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args()
    settings = parse_untyped(a.settings)
    cache = Path(settings["cache"]) if "cache" in settings else default_cache()
    if a.clean_only:
        train_clean(a.suite, settings, cache, a.only_seeds or list(range(a.seeds)))
        return
    out = run_suite(a.suite, a.out, seeds=a.seeds, settings=settings, overwrite=a.overwrite, only_seeds=a.only_seeds,
                    reuse_only=a.reuse_only, machine=a.machine)
    print((out / "table.md").read_text())
    if not a.no_cost:
        cost = attack_cost(out, cache, a.reuse_only)
        (out / "attack_cost.md").write_text(cost)
        print(cost)


if __name__ == "__main__":
    main()
