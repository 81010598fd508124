"""Compare settings of `adversarial` on the held-out VALIDATION split only (how its defaults were chosen).

For one original and its retrained reference (e.g. the cached runs of `unlearnkit bench adversarial`), prints per
setting: forget-set accuracy, validation accuracy on retained and forgotten classes, and the AUC of a fresh
discriminator fitted on one half of the validation split (retained- vs forgotten-class outputs, sorted softmax
probabilities) and scored on the other half, beside the same numbers for the reference. The test split is never
read, so the chosen defaults stay honest on the benchmark.

    python benchmarks/adversarial_validation.py ORIGINAL REFERENCE --seed 0 --forget-class 0 \
        --settings '{}' '{"body_lr": null, "temperature": 1.0}'
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch

from unlearnkit.engine.device import get_device
from unlearnkit.engine.rundir import load_run
from unlearnkit.engine.train import predict_logits
from unlearnkit.forgetting import build_task, parse_request
from unlearnkit.methods._tuning import val_stats
from unlearnkit.methods.base import METHODS, make_config
from unlearnkit.metrics.discriminator import audit, sorted_probs
from unlearnkit.rundata import load_run_data


def val_audit(model: torch.nn.Module, task, seed: int) -> float:
    """Fresh-discriminator AUC (retained vs forgotten classes) fitted and scored on the two halves of val."""
    v = task.val
    sp = sorted_probs(predict_logits(model, v, task.device))
    gone = torch.isin(v.y, torch.tensor(task.forget_classes))
    half = torch.arange(len(v)) % 2 == 0
    return audit(sp[~gone & half], sp[gone & half], sp[~gone & ~half], sp[gone & ~half], seed)["auc"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("original")
    ap.add_argument("reference")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--forget-class", default="0")
    ap.add_argument("--settings", nargs="*", default=["{}"], help="JSON objects of adversarial settings")
    a = ap.parse_args()
    src = load_run(a.original)
    bundle = load_run_data(src.meta)
    req = parse_request(src.meta, bundle, forget_class=a.forget_class, seed=a.seed)
    dev = get_device()
    parts = frozenset({"forget", "retain", "val"})
    ref_task = build_task(src.meta, bundle, req, parts, a.seed)
    ref = load_run(a.reference).build_model(dev)
    print("reference", {k: round(x, 2) for k, x in val_stats(ref, ref_task).items()},
          "val fresh-D AUC", round(val_audit(ref, ref_task, a.seed), 4), flush=True)
    for text in a.settings:
        cls = METHODS.get("adversarial")
        method = cls(make_config(cls, json.loads(text)))
        task = build_task(src.meta, bundle, req, method.needs_for("class") | {"val"}, a.seed)
        t0 = time.perf_counter()
        out = method.unlearn(copy.deepcopy(src.build_model(dev)), task).model
        sec = time.perf_counter() - t0
        print(text, {k: round(x, 2) for k, x in val_stats(out, task).items()},
              "val fresh-D AUC", round(val_audit(out, task, a.seed), 4), f"{sec:.1f}s", flush=True)


if __name__ == "__main__":
    main()
