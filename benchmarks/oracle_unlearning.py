"""How far can clean-data unlearning go when the defender knows the exact trigger? A bound for trigger-recovery
defences such as `ibau`.

I-BAU's outer step, and the unlearning step of any defence that first recovers a trigger (Neural Cleanse and its
successors), fine-tunes the model on clean images that carry the recovered trigger, with their true labels. This
script gives that step the best possible trigger: the run's own, rebuilt from its meta.json. It fine-tunes copies of
RUN's backdoored model on the same clean set the defences get (same `--clean-size`, same seeded draw from the
held-out split), with the trigger stamped on a share of it, using `finetune`'s recipe (SGD, momentum 0.9, weight
decay 5e-4, cosine schedule, batch 128) without augmentation, which could move or flip the trigger. It prints, per
share and epoch budget, the ASR and clean accuracy on the test set, computed by the pipeline's own metrics.

`--head-only` gives the same bound for defences that move only the final linear layer (`ngf`): the rest of the
model stays frozen in eval mode, and the layer is trained with the same recipe on the features the frozen
model computes for the stamped clean set (the layer starts from its backdoored weights).

Share 0 is plain fine-tuning. 0.01 is I-BAU's portion, the share of each outer batch that carries delta. 0.2 is
Neural Cleanse's unlearning ratio. With `--clean-run` (a model trained without poison, same recipe), the table
also gives the floor: how often a model that never saw the trigger sends triggered images to the target. If even
this oracle stays above a defence's ASR target, no trigger a defence could recover would meet that target within
this budget of clean data and epochs.

    python benchmarks/oracle_unlearning.py RUN [--clean-run CLEAN] [--shares 0,0.01,0.2,0.5] [--epochs 5,10]
        [--lr 0.01] [--clean-size 3000] [--seed 0] [--head-only]
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from unlearnkit.attacks import backdoor_metrics, build_trigger
from unlearnkit.attacks.base import stamp
from unlearnkit.data.bundle import Part
from unlearnkit.engine.device import device_name, get_device
from unlearnkit.engine.rundir import load_run
from unlearnkit.engine.train import TrainConfig, fit, make_optimizer, make_scheduler
from unlearnkit.errors import UserError
from unlearnkit.forgetting import build_task, parse_request
from unlearnkit.methods.ngf import head_inputs
from unlearnkit.models.registry import last_linear
from unlearnkit.rundata import load_run_data


def shares(text: str) -> list[float]:
    """`--shares 0,0.2` (an argparse type: a bad value is a usage error, exit 2)."""
    values = [float(v) for v in text.split(",") if v.strip()]
    if not values or not all(0 <= v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of shares in [0, 1]: write e.g. --shares 0,0.2,0.5")
    return values


def epoch_list(text: str) -> list[int]:
    """`--epochs 5,10` (an argparse type: a bad value is a usage error, exit 2)."""
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of epoch counts >= 1: write e.g. --epochs 5,10")
    return values


def with_trigger(part: Part, spec: dict, share: float, device: torch.device, gen: torch.Generator) -> Part:
    """`part` with the run's own trigger stamped on a seeded `share` of its images; labels unchanged."""
    n = round(share * len(part))
    rows = torch.randperm(len(part), generator=gen)[:n]
    x = part.x.clone()
    if n:
        x[rows] = stamp(build_trigger(spec), x[rows], device)
    return Part(x, part.y, part.idx, part.augment)


def fit_head(model: nn.Module, data: Part, cfg: TrainConfig, device: torch.device, gen: torch.Generator) -> None:
    """Train only `model`'s final linear layer, in place, on the features the frozen model computes for `data`."""
    model.eval()
    head = last_linear(model)
    feats, _ = head_inputs(model, head, data, device)
    labels = data.y.to(device)
    steps = math.ceil(len(feats) / cfg.batch_size)
    opt = make_optimizer(head.parameters(), cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay)
    sched = make_scheduler(opt, cfg.schedule, cfg.epochs * steps)
    for _ in range(cfg.epochs):
        for rows in torch.randperm(len(feats), generator=gen).split(cfg.batch_size):
            rows = rows.to(device)
            loss = F.cross_entropy(head(feats[rows]), labels[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--clean-run", help="a model trained without poison (same data and recipe): the ASR floor")
    p.add_argument("--shares", type=shares, default=[0.0, 0.01, 0.2, 0.5])
    p.add_argument("--epochs", type=epoch_list, default=[5, 10])
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--clean-size", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--head-only", action="store_true", help="train only the final linear layer (the bound for ngf)")
    a = p.parse_args()
    run, device = load_run(a.run), get_device()
    spec = run.meta.get("poison")
    if not spec:
        raise UserError(f"{a.run} carries no poison spec: pass a run trained with `unlearnkit train --poison`")
    bundle = load_run_data(run.meta)
    task = build_task(run.meta, bundle, parse_request(run.meta, bundle, backdoor=True, seed=a.seed),
                      frozenset({"clean"}), a.seed, clean_size=a.clean_size)
    original = run.build_model(device)
    before = backdoor_metrics(original, bundle, spec, device)
    layers = "final linear layer only" if a.head_only else "every layer"
    print(f"{a.run}: attack {spec['attack']}, {len(task.clean)} clean images, lr {a.lr}, {layers}, "
          f"device {device_name()}\n")
    print("| trigger share | epochs | ASR | clean acc. | seconds |")
    print("|---|---|---|---|---|")
    print(f"| (backdoored model) | 0 | {before['asr']:.2f} | {before['clean_acc']:.2f} | |")
    if a.clean_run:
        floor = backdoor_metrics(load_run(a.clean_run).build_model(device), bundle, spec, device)
        print(f"| (clean model: the floor) | | {floor['asr']:.2f} | {floor['clean_acc']:.2f} | |")
    for share in a.shares:
        data = with_trigger(task.clean, spec, share, device, torch.Generator().manual_seed(a.seed))
        for epochs in a.epochs:
            model = copy.deepcopy(original)
            start = time.perf_counter()
            cfg, gen = TrainConfig(epochs=epochs, lr=a.lr, augment=False), torch.Generator().manual_seed(a.seed)
            if a.head_only:
                fit_head(model, data, cfg, device, gen)
            else:
                fit(model, data, cfg, device, gen, desc=f"oracle {share}")
            seconds = time.perf_counter() - start
            after = backdoor_metrics(model, bundle, spec, device)
            print(f"| {share:g} | {epochs} | {after['asr']:.2f} | {after['clean_acc']:.2f} | {seconds:.0f} |",
                  flush=True)


if __name__ == "__main__":
    try:
        main()
    except UserError as e:  # bad input: one line and exit code 2, as the command line does
        print(f"error: {e}", file=sys.stderr)
        sys.exit(UserError.exit_code)
