"""NGF against whole-network fine-tuning, to the same attack success rate, on one backdoored run.

For each clean-set size and seed, runs `ngf` once, then `finetune` (every layer, clean set, augmentation)
with 1, 2, 4, ... epochs until its ASR is as low as NGF's (or `--max-epochs` is reached). Every number
comes from the `metrics.json` of a `pipeline.forget` call in this process: clean accuracy, ASR, DER and the
method's own wall time, so the two methods' seconds are measured side by side on the same machine.

    unlearnkit train --data fashion-mnist --arch resnet18 --poison badnets --out runs/fm-badnets
    python benchmarks/bench_ngf.py runs/fm-badnets --out runs/bench-ngf --clean-frac 0.01,0.05 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from unlearnkit.bench.runner import machine_description
from unlearnkit.engine.rundir import load_run
from unlearnkit.pipeline import forget

KEYS = ("clean_acc", "asr", "robust_acc", "der", "seconds")


def der(before: dict, after: dict) -> float:
    """BackdoorBench's DER, for metrics files that do not carry it."""
    d_asr, d_acc = (before["asr"] - after["asr"]) / 100, (before["clean_acc"] - after["clean_acc"]) / 100
    return (max(0.0, d_asr) - max(0.0, d_acc) + 1) / 2


def run(src: Path, out: Path, method: str, clean_size: int, seed: int, settings: dict) -> dict:
    tag = "-".join([method, f"n{clean_size}", f"s{seed}"] + [f"{k}{v}" for k, v in settings.items()])
    d = out / tag
    if not (d / "metrics.json").is_file():
        forget(src, method, d, backdoor=True, clean_size=clean_size, settings=settings, seed=seed)
    m = json.loads((d / "metrics.json").read_text())
    m.setdefault("der", der(m["original"], m))
    return {"method": method, "clean_size": clean_size, "seed": seed, "settings": settings,
            **{k: m.get(k) for k in KEYS}, "before": {k: m["original"].get(k) for k in ("clean_acc", "asr")}}


def finetune_to(src: Path, out: Path, clean_size: int, seed: int, asr: float, max_epochs: int) -> dict:
    """Whole-network fine-tuning with doubling epochs until its ASR is <= `asr`; the first run that gets there."""
    epochs, r = 1, {}
    while epochs <= max_epochs:
        r = run(src, out, "finetune", clean_size, seed, {"epochs": epochs})
        r["reached"] = r["asr"] <= asr
        if r["reached"]:
            break
        epochs *= 2
    return r


def fmt(values: list[float]) -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values)
    return f"{mean:.2f} ± {statistics.stdev(values):.2f}" if len(values) > 1 else f"{mean:.2f}"


def table(records: list[dict]) -> str:
    lines = ["| method | clean set | clean_acc before | asr before | clean_acc | asr | robust_acc | der | seconds |"
             " reached |", "|" + "---|" * 10]
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["method"], r["clean_size"]), []).append(r)
    for (method, n), rs in groups.items():
        cells = [fmt([r["before"][k] for r in rs]) for k in ("clean_acc", "asr")]
        cells += [fmt([r[k] for r in rs if r[k] is not None]) for k in KEYS]
        reached = "" if method == "ngf" else f"{sum(r['reached'] for r in rs)}/{len(rs)}"
        lines.append(f"| {method} | {n} | " + " | ".join(cells) + f" | {reached} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="a backdoored run directory (unlearnkit train --poison ...)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--clean-frac", default="0.01,0.05", help="clean-set sizes as fractions of the training set")
    p.add_argument("--clean-size", default=None, help="clean-set sizes in images (overrides --clean-frac)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--max-epochs", type=int, default=64)
    p.add_argument("--set", dest="settings", action="append", default=[], help="ngf setting key=value")
    a = p.parse_args()
    src = load_run(a.run)
    if a.clean_size:
        sizes = [int(v) for v in a.clean_size.split(",")]
    else:
        n_train = _train_size(src.meta)
        sizes = [max(1, round(float(f) * n_train)) for f in a.clean_frac.split(",")]
    ngf_settings = dict(s.split("=", 1) for s in a.settings)
    a.out.mkdir(parents=True, exist_ok=True)
    records = []
    for n in sizes:
        for seed in (int(s) for s in a.seeds.split(",")):
            r = run(a.run, a.out, "ngf", n, seed, ngf_settings)
            records += [r, finetune_to(a.run, a.out, n, seed, r["asr"], a.max_epochs)]
    (a.out / "results.json").write_text(json.dumps(records, indent=2))
    text = (f"{table(records)}\n\nrun: {a.run} ({src.meta['arch']['name']} on {src.meta['data']['spec']}, "
            f"poison {src.meta.get('poison', {}).get('attack', '?')}); finetune: the first of 1, 2, 4, ... epochs "
            f"whose ASR <= ngf's (reached = how many seeds got there by {a.max_epochs} epochs). "
            f"Machine: {machine_description()}.")
    (a.out / "table.md").write_text(text + "\n")
    print(text)


def _train_size(meta: dict) -> int:
    """Training-set size of a run (what clean fractions refer to), from its data split."""
    from unlearnkit.pipeline import load_run_data, split_of

    bundle = load_run_data(meta)
    return len(split_of(meta, bundle, None).train_idx)


if __name__ == "__main__":
    main()
