"""HyperForget's done-when numbers: every class as the forget request, N samples each, against retraining.

For an original model (trained and cached like the bench runner's, or given with --original) this script
trains (once, cached) a HyperForget, retrains (once, cached) a reference per class, then per class draws
N samples and evaluates them on frozen features (one forward pass of the model for all samples: the
metrics `unlearnkit evaluate` computes, without running the body N times). It reports, per class and overall:

- forget-class test accuracy (max over samples), retained-class test accuracy and MIA-efficacy (mean and
  spread over samples) next to the retrained reference's, with the done-when checks (<= 1%, within 1.5
  points, within 5 points);
- prompt alignment: R² between prompted and achieved forget / retain loss, one sample per held-out
  checkpoint of the collection (prompts the hypernetwork never trained on), on a log(1 + loss) scale;
- cost: seconds per sample (one alone, and per sample in a batch of N), against a retrain of the same
  model measured on this machine, the one-time training cost of the hypernetwork, and the number of requests
  after which HyperForget is cheaper than the best per-request method (baselines run here, same reference).

    nice -n 10 python benchmarks/bench_hyperforget.py --out runs/bench-hyperforget             # Fashion-MNIST
    python benchmarks/bench_hyperforget.py --quick --out runs/bench-hyperforget-quick          # digits, ~2 min

References and hypernetworks are cached in --cache (default: the bench runner's cache), so a re-run, or a
run with more classes, only pays for what is new. A retrain of resnet18 on Fashion-MNIST costs minutes of
every core: --classes selects the requests (default: all).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from unlearnkit.bench.hyperforget import cached_hypernet
from unlearnkit.bench.runner import (
    FASHION_MNIST_RESNET18,
    cached_original,
    cached_reference,
    default_cache,
    machine_description,
)
from unlearnkit.bench.unlearning import BUDGETS
from unlearnkit.engine.atomic import write_atomic
from unlearnkit.engine.device import get_device
from unlearnkit.engine.evaluate import evaluate_predictions
from unlearnkit.engine.rundir import load_run
from unlearnkit.forgetting import parse_request, run_method
from unlearnkit.hyperforget import HyperForget
from unlearnkit.hyperforget.heads import compute_features, feature_predictions, forget_retain, per_class_stats
from unlearnkit.hyperforget.hypernet import prompt_losses, raw_prompts
from unlearnkit.hyperforget.sample import generate
from unlearnkit.hyperforget.train import r2
from unlearnkit.methods.base import METHODS
from unlearnkit.pipeline import forget
from unlearnkit.rundata import load_run_data
from unlearnkit.settings import parse_untyped

QUICK_HYPERNET = {"runs_per_class": 4, "steps": 1500, "sample_steps": 50}
DONE_WHEN = {"forget_test_acc": 1.0, "retained_gap": 1.5, "mia_gap": 5.0, "cost_ratio": 0.01}


def load_collection(hypernet: Path, c: int) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(hypernet / "collection" / f"class-{c}.safetensors"))


def alignment_points(hf: HyperForget, hypernet: Path, c: int, feats, gen_seed: int) -> tuple[torch.Tensor, ...]:
    """(prompted forget, prompted retain, achieved forget, achieved retain) losses for the held-out checkpoints."""
    cfg = hf.meta["config"]
    d = load_collection(hypernet, c)
    held = set(range(cfg["runs_per_class"] - cfg["holdout_runs"], cfg["runs_per_class"])) or set(
        range(cfg["runs_per_class"]))
    sel = torch.tensor([int(r) in held for r in d["run"]], dtype=torch.bool)
    p = raw_prompts(hf.variant, d["train_loss"][sel], hf.start_losses[d["start"][sel]], hf.counts, c)
    heads = hf.generate(torch.full((len(p),), c, dtype=torch.long), p, d["start"][sel], int(hf.meta["sample_steps"]),
                        torch.Generator().manual_seed(gen_seed))
    loss, _ = per_class_stats(heads, feats.train, feats.y_train, hf.meta["num_classes"])
    want_f, want_r = prompt_losses(hf.variant, p, hf.counts, c)
    got_f, got_r = forget_retain(loss, hf.counts, c)
    return want_f, want_r, got_f, got_r


def mean_std(v: list[float]) -> tuple[float, float]:
    return statistics.fmean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)


def run_baselines(original: Path, methods: list[str], classes: list[int], cache: Path, out: Path) -> dict:
    """Each per-request method on `classes` (default settings within the `class` suite's CPU budgets), against
    the cached references: seconds and quality."""
    res: dict[str, dict] = {}
    for m in methods:
        rows = []
        for c in classes:
            ref = cached_reference(cache, original, {"forget_class": str(c)}, 0)
            d = forget(original, m, out / "baselines" / m / f"class-{c}", forget_class=str(c), reference=ref,
                       settings=dict(BUDGETS.get(m, {})), overwrite=True)
            rows.append(json.loads((d / "metrics.json").read_text()))
        res[m] = {"seconds": statistics.fmean(r["seconds"] for r in rows),
                  "avg_gap": statistics.fmean(r["gap"]["avg"] for r in rows),
                  "forget_test_acc": statistics.fmean(r["forget_test_acc"] for r in rows),
                  "verdicts": [r.get("verdict", {}).get("status") for r in rows]}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--original", help="a trained run (default: train/cache one with --data/--arch/--epochs)")
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--epochs", type=int, help="training epochs of the original (default: the shared suites' 6)")
    ap.add_argument("--classes", help="forget requests, e.g. 0,3 (default: all)")
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--variant", default="dihyfo-1", choices=["dihyfo-1", "dihyfo-2"])
    ap.add_argument("--set", nargs="*", default=[], dest="settings", help="hyperforget train settings, key=value")
    ap.add_argument("--baselines", default="finetune,neggrad-plus,salun,scrub,l1-sparse,random-label",
                    help="per-request methods to compare costs with (those installed are run)")
    ap.add_argument("--baseline-classes", type=int, default=1, help="run baselines on the first N requests")
    ap.add_argument("--time-retrain", action="store_true",
                    help="time a retrain of the first request in this process (default: the cached reference's "
                         "measured seconds, same machine)")
    ap.add_argument("--cache", help="cache of originals, references, hypernetworks (default: the bench runner's)")
    ap.add_argument("--quick", action="store_true", help="digits, mlp, small hypernetwork: a smoke run in minutes")
    a = ap.parse_args()

    out, cache = Path(a.out), Path(a.cache) if a.cache else default_cache()
    out.mkdir(parents=True, exist_ok=True)
    settings = parse_untyped(a.settings)
    if a.quick:
        a.data, a.arch = "digits", "mlp"
        a.epochs = a.epochs or 15
        settings = {**QUICK_HYPERNET, **settings}
    t_all = time.perf_counter()
    if a.original:
        original = Path(a.original)
    else:
        train = {"epochs": a.epochs, "batch_size": 64, "lr": 0.05} if a.quick else dict(FASHION_MNIST_RESNET18)
        if a.epochs:
            train["epochs"] = a.epochs
        original = cached_original(cache, a.data, a.arch, train, 0)
    src = load_run(original)
    k = int(src.meta["num_classes"])
    classes = [int(c) for c in a.classes.split(",")] if a.classes else list(range(k))

    hypernet = Path(cached_hypernet(original, 0, cache, variant=a.variant, **settings)["hypernet"])
    hf = HyperForget.load(hypernet)
    missing = [c for c in classes if c not in hf.meta["classes"]]
    if missing:
        raise SystemExit(f"the hypernetwork does not cover classes {missing}: train it with --set classes=...")
    refs = {c: cached_reference(cache, original, {"forget_class": str(c)}, 0) for c in classes}

    bundle = load_run_data(src.meta)
    device = get_device()
    model = src.build_model(device)
    t0 = time.perf_counter()
    req0 = parse_request(src.meta, bundle, forget_class=str(classes[0]))
    feats = compute_features(model, bundle, req0.split.train_idx, device)
    feature_seconds = time.perf_counter() - t0

    per_class, align = [], [[], [], [], []]
    for c in classes:
        req = parse_request(src.meta, bundle, forget_class=str(c))
        ref = json.loads((refs[c] / "metrics.json").read_text())
        _, _, one = generate(hf, c, 1, seed=10_000 + c)  # a single request, alone
        heads, config, batched = generate(hf, c, a.samples, seed=c)
        ms = []
        for rows in heads:
            p = feature_predictions(rows, feats, bundle, req.split)
            m = evaluate_predictions(p, bundle, req.split, "class", 0)
            m["forget_loss"] = float(F.cross_entropy(p.forget_logits, p.forget.y))
            m["retain_loss"] = float(F.cross_entropy(p.retain_logits, p.retain.y))
            ms.append(m)
        for i, v in enumerate(alignment_points(hf, hypernet, c, feats, 20_000 + c)):
            align[i].append(v)
        ta, mia = [m["test_acc"] for m in ms], [m["mia_efficacy"] for m in ms]
        row = {"class": c, "name": src.meta["classes"][c],
               "forget_test_acc_max": max(m["forget_test_acc"] for m in ms),
               "retained_test_acc": mean_std(ta), "retrain_retained_test_acc": ref["test_acc"],
               "mia_efficacy": mean_std(mia), "retrain_mia_efficacy": ref["mia_efficacy"],
               "retain_acc": mean_std([m["retain_acc"] for m in ms]), "retrain_retain_acc": ref["retain_acc"],
               "forget_loss": mean_std([m["forget_loss"] for m in ms]),
               "prompt": config["prompt"], "seconds_one": one, "seconds_batched": batched,
               "retrain_seconds": float(load_run(refs[c]).meta["seconds"])}
        row["checks"] = {"forget_test_acc": row["forget_test_acc_max"] <= DONE_WHEN["forget_test_acc"],
                         "retained": abs(row["retained_test_acc"][0] - ref["test_acc"]) <= DONE_WHEN["retained_gap"],
                         "mia": abs(row["mia_efficacy"][0] - ref["mia_efficacy"]) <= DONE_WHEN["mia_gap"]}
        per_class.append(row)
        print(f"class {c} ({row['name']}): forget-class test acc <= {row['forget_test_acc_max']:.2f}%, retained "
              f"{row['retained_test_acc'][0]:.2f} ± {row['retained_test_acc'][1]:.2f} (retrain {ref['test_acc']:.2f}),"
              f" MIA {row['mia_efficacy'][0]:.2f} (retrain {ref['mia_efficacy']:.2f}), {one * 1000:.1f} ms/sample",
              flush=True)

    wf, wr, gf, gr = (torch.log1p(torch.cat(v).double()) for v in align)
    alignment = {"forget_r2": r2(wf, gf), "retain_r2": r2(wr, gr), "points": len(wf)}

    retrain_seconds = statistics.fmean(r["retrain_seconds"] for r in per_class)
    retrain_source = "cached references (measured on this machine when they were made)"
    if a.time_retrain:
        req = parse_request(src.meta, bundle, forget_class=str(classes[0]))
        _, _, retrain_seconds, _ = run_method("retrain", None, src.build_model(device), src.meta, bundle, req, 0)
        retrain_source = "a retrain timed in this run"
    sample_seconds = statistics.fmean(r["seconds_one"] for r in per_class)
    train_cost = float(hf.meta["seconds"]["total"])
    installed = [m for m in a.baselines.split(",") if m and m in METHODS]
    baselines = run_baselines(original, installed, classes[:a.baseline_classes], cache, out) if installed else {}
    baselines["retrain"] = {"seconds": retrain_seconds, "avg_gap": 0.0}
    good = {m: b for m, b in baselines.items() if m == "retrain" or b.get("verdicts", []) and all(
        v == "forgotten" for v in b["verdicts"])}
    best = min(good, key=lambda m: good[m]["seconds"])
    saving = good[best]["seconds"] - sample_seconds
    break_even = math.ceil(train_cost / saving) if saving > 0 else None

    summary = {
        "original": str(original), "hypernet": str(hypernet), "variant": hf.variant, "samples": a.samples,
        "classes": classes, "machine": machine_description(), "per_class": per_class, "alignment": alignment,
        "features_seconds": feature_seconds, "sample_seconds": sample_seconds,
        "sample_seconds_batched": statistics.fmean(r["seconds_batched"] for r in per_class),
        "retrain_seconds": retrain_seconds, "retrain_source": retrain_source,
        "cost_ratio": sample_seconds / retrain_seconds, "hypernet_train_seconds": hf.meta["seconds"],
        "baselines": baselines, "best_per_request": best, "break_even_requests": break_even,
        "done_when": {"all_forget_test_acc": all(r["checks"]["forget_test_acc"] for r in per_class),
                      "all_retained": all(r["checks"]["retained"] for r in per_class),
                      "all_mia": all(r["checks"]["mia"] for r in per_class),
                      "cost": sample_seconds / retrain_seconds <= DONE_WHEN["cost_ratio"]},
        "wall_seconds": time.perf_counter() - t_all}
    write_atomic(out / "results.json", json.dumps(summary, indent=2, default=str))
    write_atomic(out / "table.md", table(summary, src.meta))
    print((out / "table.md").read_text())


def table(s: dict, meta: dict) -> str:
    lines = [f"### HyperForget ({s['variant']}) on {meta['data']['spec']}, {meta['arch']['name']}: "
             f"{s['samples']} samples per request, against retraining", "",
             "| class | forget-class test acc (max) | retained test acc (mean ± std) | retrain | MIA-efficacy | "
             "retrain | checks |", "|---|---|---|---|---|---|---|"]
    for r in s["per_class"]:
        ok = "".join("✓" if v else "✗" for v in r["checks"].values())
        lines.append(f"| {r['class']} {r['name']} | {r['forget_test_acc_max']:.2f} | "
                     f"{r['retained_test_acc'][0]:.2f} ± {r['retained_test_acc'][1]:.2f} | "
                     f"{r['retrain_retained_test_acc']:.2f} | {r['mia_efficacy'][0]:.2f} ± {r['mia_efficacy'][1]:.2f}"
                     f" | {r['retrain_mia_efficacy']:.2f} | {ok} |")
    hs = s["hypernet_train_seconds"]
    be = s["break_even_requests"]
    lines += ["", f"Prompt alignment (held-out checkpoints, {s['alignment']['points']} prompts): R² forget loss "
              f"{s['alignment']['forget_r2']:.3f}, retain loss {s['alignment']['retain_r2']:.3f}.  ",
              f"One sample: {s['sample_seconds'] * 1000:.1f} ms alone ({s['sample_seconds_batched'] * 1000:.1f} ms "
              f"each in a batch of {s['samples']}); a retrain: {s['retrain_seconds']:.1f} s ({s['retrain_source']}); "
              f"ratio {s['cost_ratio']:.2e}.  ",
              f"One-time training: {hs['total']:.0f} s (features {hs['features']:.0f}, collection "
              f"{hs['collect']:.0f}, hypernetwork {hs['train']:.0f}). Best per-request method that forgets: "
              f"{s['best_per_request']} ({s['baselines'][s['best_per_request']]['seconds']:.1f} s/request); "
              f"HyperForget is cheaper after {be if be is not None else 'no number of'} requests.  ",
              "Per-request methods (seconds per request, verdicts): " + "; ".join(
                  f"{m} {b['seconds']:.1f} s {','.join(str(v) for v in b.get('verdicts', [])) or ''}"
                  for m, b in s["baselines"].items()) + ".  ",
              f"Machine: {s['machine']}. Checks: forget-class test acc <= 1%, retained within 1.5 points, "
              f"MIA-efficacy within 5 points of retraining."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
