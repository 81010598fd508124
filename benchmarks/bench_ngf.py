"""NGF against whole-network fine-tuning, to the same attack success rate, on one backdoored run.

For each clean-set size and seed, runs `ngf` once, then `finetune` (every layer, same clean set, with
augmentation) with 1, 2, 4, ... epochs until its ASR is as low as NGF's (or `--max-epochs` is reached).
Both go through `pipeline.run_method`, the code path of `unlearnkit forget RUN --backdoor --clean-size N`,
so `seconds` is each method's own wall time, measured side by side in one process. Only the backdoor
metrics are computed (clean test accuracy, ASR, robust accuracy, DER): skipping the retain-set evaluation
of a full `forget` keeps a ResNet-18 sweep affordable on a CPU. Writes `results.json` and `table.md`.

    unlearnkit train --data fashion-mnist --arch resnet18 --poison badnets --out runs/fm-badnets
    python benchmarks/bench_ngf.py runs/fm-badnets --out runs/bench-ngf --clean-frac 0.01,0.05 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from torch import nn

from unlearnkit.bench.runner import machine_description
from unlearnkit.engine.device import get_device
from unlearnkit.engine.progress import say
from unlearnkit.engine.rundir import load_run
from unlearnkit.forgetting import Request, parse_request, run_method
from unlearnkit.rundata import load_run_data
from unlearnkit.settings import parse_pairs

KEYS = ("clean_acc", "asr", "robust_acc", "der", "seconds")


def der(before: dict, after: dict) -> float:
    """BackdoorBench's DER = [max(0, dASR) - max(0, dACC) + 1] / 2, d = before - after, as fractions."""
    d_asr, d_acc = (before["asr"] - after["asr"]) / 100, (before["clean_acc"] - after["clean_acc"]) / 100
    return round((max(0.0, d_asr) - max(0.0, d_acc) + 1) / 2, 4)


class Bench:
    """One backdoored run, loaded once; `defend` runs a method on a copy and scores it."""

    def __init__(self, run: Path) -> None:
        from unlearnkit.attacks import backdoor_metrics

        self.src = load_run(run)
        self.bundle = load_run_data(self.src.meta)
        self.req: Request = parse_request(self.src.meta, self.bundle, backdoor=True)
        self.device = get_device()
        self.model = self.src.build_model(self.device)
        self.score = lambda m: backdoor_metrics(m, self.bundle, self.src.meta["poison"], self.device)
        self.before = self.score(self.model)

    def defend(self, method: str, clean_size: int, seed: int, settings: dict) -> dict:
        say(f"{method} {settings or ''} clean={clean_size} seed={seed} ...")
        out, config, seconds, figures = run_method(method, dict(settings), self.model, self.src.meta, self.bundle,
                                                   self.req, seed, clean_size)
        m = self._metrics(out, seconds)
        return {"method": method, "clean_size": clean_size, "seed": seed, "settings": settings, **m,
                "epochs": settings.get("epochs"), "before": self.before, "config": config, "figures": figures}

    def _metrics(self, model: nn.Module, seconds: float) -> dict:
        m = self.score(model)
        return {**m, "der": der(self.before, m), "seconds": round(seconds, 3)}

    def finetune_to(self, clean_size: int, seed: int, asr: float, max_epochs: int) -> dict:
        """Whole-network fine-tuning, doubling epochs until ASR <= `asr`: the first run that gets there."""
        epochs, r = 1, {}
        while epochs <= max_epochs:
            r = self.defend("finetune", clean_size, seed, {"epochs": epochs})
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
             " finetune epochs | reached ngf's asr |", "|" + "---|" * 11]
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["method"], r["clean_size"]), []).append(r)
    for (method, n), rs in groups.items():
        cells = [fmt([r["before"][k] for r in rs]) for k in ("clean_acc", "asr")]
        cells += [fmt([r[k] for r in rs if r[k] is not None]) for k in (*KEYS, "epochs")]
        reached = f"{sum(r['reached'] for r in rs)}/{len(rs)}" if method == "finetune" else ""
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
    p.add_argument("--set", dest="settings", action="append", default=[], help="an ngf setting, key=value")
    a = p.parse_args()
    bench = Bench(a.run)
    if a.clean_size:
        sizes = [int(v) for v in a.clean_size.split(",")]
    else:
        sizes = [max(1, round(float(f) * len(bench.req.split.train_idx))) for f in a.clean_frac.split(",")]
    ngf_settings = parse_pairs(a.settings)
    a.out.mkdir(parents=True, exist_ok=True)
    records: list[dict] = []

    def keep(r: dict) -> dict:  # written as it comes: a long sweep can be read (or stopped) half way
        records.append(r)
        (a.out / "results.json").write_text(json.dumps(records, indent=2))
        return r

    for n in sizes:
        for seed in (int(s) for s in a.seeds.split(",")):
            r = keep(bench.defend("ngf", n, seed, ngf_settings))
            keep(bench.finetune_to(n, seed, r["asr"], a.max_epochs))
    meta = bench.src.meta
    text = (f"{table(records)}\n\nrun: {a.run} ({meta['arch']['name']} on {meta['data']['spec']}, poison "
            f"{meta.get('poison', {}).get('attack', '?')}); ngf settings: {ngf_settings or 'defaults'}; finetune: "
            f"the first of 1, 2, 4, ... epochs whose ASR <= ngf's, up to {a.max_epochs} (the last tried if none). "
            f"Machine: {machine_description()}.")
    (a.out / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
