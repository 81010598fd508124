"""Does I-BAU's inner maximisation find the planted trigger? A diagnostic for a backdoored run directory.

I-BAU removes a backdoor only if the universal perturbation delta of its inner problem points where the trigger
points: the outer step then teaches the model to ignore that direction. This script computes delta the way
`ibau` does (one SGD pass over the clean set, against the model's own predictions), in the code's variants,
and, for contrast, by projected gradient ascent (projection at every step, not once after the pass). For
each it prints delta's L2 norm, the share of clean non-target test images that x + delta sends to the
backdoor's target, where the others go, and the cosine between delta and the trigger's mean effect
(triggered minus clean image, averaged).

    python benchmarks/ibau_inner_probe.py RUN [--clean-size 3000] [--seed 0]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unlearnkit.attacks.base import LabelMap
from unlearnkit.attacks.poison import triggered_test_part
from unlearnkit.data.bundle import Part
from unlearnkit.engine.device import get_device
from unlearnkit.engine.rundir import load_run
from unlearnkit.methods.ibau import IBAU
from unlearnkit.pipeline import build_task, load_run_data, parse_request

VARIANTS: list[dict] = [{}, {"l2_ball": 10.0, "clamp": True}, {"l2_ball": 5.0, "clamp": True},
                        {"l2_ball": 3.0, "clamp": True}]
PGD: list[tuple[float, bool]] = [(3.0, True), (3.0, False), (5.0, True), (10.0, True)]  # (radius, clamp)


def pgd_delta(model: nn.Module, batches: list[tuple[Tensor, Tensor]], radius: float, clamp: bool,
              lr: float = 10.0, reg: float = 1e-3) -> Tensor:
    """One pass of gradient ascent on a universal delta, projected onto the L2 ball after every step."""
    delta = torch.zeros((1,) + tuple(batches[0][0].shape[1:]), device=batches[0][0].device, requires_grad=True)
    for x, _ in batches:
        with torch.no_grad():
            y_hat = model(x).argmax(1)
        xp = (x + delta).clamp(0, 1) if clamp else x + delta
        (grad,) = torch.autograd.grad(F.cross_entropy(model(xp), y_hat) - reg * delta.pow(2).sum(), delta)
        with torch.no_grad():
            delta += lr * grad
            delta *= min(1.0, radius / max(float(delta.norm()), 1e-12))
    return delta.detach()


def first_batch(part: Part, n: int, device: torch.device) -> Tensor:
    return next(iter(part.subset(torch.arange(min(n, len(part)))).batches(n, device, shuffle=False)))[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--clean-size", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-test", type=int, default=2000)
    a = p.parse_args()
    run, device = load_run(a.run), get_device()
    meta = run.meta
    if not meta.get("poison"):
        raise SystemExit(f"{a.run} carries no poison spec: pass a run trained with `unlearnkit train --poison`")
    bundle = load_run_data(meta)
    task = build_task(meta, bundle, parse_request(meta, bundle, backdoor=True, seed=a.seed), frozenset({"clean"}),
                      a.seed, clean_size=a.clean_size)
    model = run.build_model(device)
    for q in model.parameters():
        q.requires_grad_(False)
    label_map = LabelMap.from_dict(meta["poison"]["label_map"])
    if label_map.all_to_all:
        raise SystemExit(f"{a.run} carries an all-to-all backdoor: this diagnostic needs one target (all-to-one)")
    target = label_map.target
    triggered, _ = triggered_test_part(bundle, meta["poison"], device)
    # the same victims in the same order as triggered_test_part, so the difference is the trigger's effect
    victims = bundle.test_part(label_map.victims(bundle.y_test))
    xt, xc = first_batch(triggered, a.n_test, device), first_batch(victims, a.n_test, device)
    effect = (xt - xc).mean(0)
    print(f"{a.run}: attack {meta['poison']['attack']}, target {target}, trigger mean-effect norm "
          f"{float(effect.norm()):.2f}")
    print("| inner max | delta norm | to target % | predictions of x + delta per class | cos(delta, trigger) |")
    print("|---|---|---|---|---|")
    cases = [(f"ibau {v or 'defaults'}", v, None) for v in VARIANTS] + [
        (f"pgd radius {r} clamp {c}", None, (r, c)) for r, c in PGD]
    batches = list(task.clean.batches(100, device, shuffle=True, generator=torch.Generator().manual_seed(a.seed)))
    for name, settings, pgd in cases:
        if pgd is None:
            method = IBAU(IBAU.Config(**settings))
            delta, clamp = method.inner_max(model, batches), bool(settings.get("clamp"))
        else:
            delta, clamp = pgd_delta(model, batches, *pgd), pgd[1]
        with torch.no_grad():
            xp = xc + delta
            pred = model(xp.clamp(0, 1) if clamp else xp).argmax(1)
        hist = torch.bincount(pred, minlength=bundle.num_classes).tolist()
        cos = float(delta.flatten() @ effect.flatten() / (delta.norm() * effect.norm() + 1e-12))
        print(f"| {name} | {float(delta.norm()):.2f} | {100 * float((pred == target).float().mean()):.1f} | "
              f"{hist} | {cos:.3f} |")


if __name__ == "__main__":
    main()
