"""Does I-BAU's inner maximisation find the planted trigger? A diagnostic for a backdoored run directory.

I-BAU removes a backdoor only if the universal perturbation delta of its inner problem points where the trigger
points: the outer step then teaches the model to ignore that direction. This script computes delta the way
`ibau` does (one SGD pass over the clean set, against the model's own predictions), in the code's variants,
and, for contrast, by projected gradient ascent (projection at every step, not once after the pass). For
each it prints delta's L2 norm, the share of clean non-target test images that x + delta sends to the
backdoor's target, where the others go, and the cosine between delta and the trigger's mean effect
(triggered minus clean image, averaged).

Two more tables say why the paper's start from delta = 0 can miss a trigger: how the model answers the trigger
scaled by alpha (a gated answer, near 0 below some alpha, is invisible to a gradient taken at delta = 0), with
the share of that gradient's energy on the trigger's pixels; and inner maximisations from random uniform starts
(`ibau --set restarts=R init_scale=s clamp=true`), each with its inner objective on the clean set, the number
`restarts` ranks them by.

`--round-check` then runs one whole `ibau` round with restarts on a copy of the model (inner max, then the outer
pass along the implicit hypergradient) and prints, before and after the outer pass, where x + delta sends the
clean images and the model's ASR and clean accuracy: whether unlearning the delta found also unlearns the trigger.

    python benchmarks/ibau_inner_probe.py RUN [--clean-size 3000] [--seed 0] [--round-check [--restarts 8]]
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unlearnkit.attacks.base import LabelMap
from unlearnkit.attacks.poison import triggered_test_part
from unlearnkit.data.bundle import Part
from unlearnkit.engine.device import get_device
from unlearnkit.engine.rundir import load_run
from unlearnkit.forgetting import build_task, parse_request
from unlearnkit.methods.ibau import IBAU
from unlearnkit.rundata import load_run_data

VARIANTS: list[dict] = [{}, {"l2_ball": 10.0, "clamp": True}, {"l2_ball": 5.0, "clamp": True},
                        {"l2_ball": 3.0, "clamp": True}]
PGD: list[tuple[float, bool]] = [(3.0, True), (3.0, False), (5.0, True), (10.0, True)]  # (radius, clamp)
ALPHAS = [0.25, 0.5, 0.6, 0.7, 0.8, 1.0]
RANDOM_STARTS, INIT_SCALE = 8, 0.5


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


@torch.no_grad()
def percent(model: nn.Module, x: Tensor, label: Tensor | int) -> float:
    """Share (%) of `x` that the model labels `label` (the target, or each image's own label)."""
    return 100 * float((model(x).argmax(1) == label).float().mean())


def cosine(a: Tensor, b: Tensor) -> float:
    return float(a.flatten() @ b.flatten() / (a.norm() * b.norm() + 1e-12))


def trigger_response(model: nn.Module, xc: Tensor, effect: Tensor, target: int) -> None:
    """Share sent to the target by x + alpha * trigger effect; where the gradient at delta = 0 points."""
    mask = effect.abs() > 0
    print("| alpha (share of the trigger's effect added) | " + " | ".join(str(a) for a in ALPHAS) + " |")
    print("|---" * (len(ALPHAS) + 1) + "|")
    shares = [percent(model, (xc + a * effect).clamp(0, 1), target) for a in ALPHAS]
    print("| to target % | " + " | ".join(f"{v:.1f}" for v in shares) + " |")
    x = xc.clone().requires_grad_(True)
    with torch.no_grad():
        y_hat = model(xc).argmax(1)
    (g,) = torch.autograd.grad(F.cross_entropy(model(x), y_hat), x)
    g = g.mean(0)
    share = float(g[mask].pow(2).sum() / g.pow(2).sum())
    print(f"\nThe inner objective's gradient at delta = 0 puts {100 * share:.2f}% of its energy on the trigger's "
          f"{int(mask.sum())} pixels ({100 * float(mask.float().mean()):.1f}% of the image).\n")


def random_starts(model: nn.Module, batches: list[tuple[Tensor, Tensor]], xc: Tensor, effect: Tensor,
                  target: int, seed: int) -> None:
    """The inner max from random starts, with the inner objective that `restarts` ranks them by."""
    method = IBAU(IBAU.Config(clamp=True, init_scale=INIT_SCALE))
    gen = torch.Generator().manual_seed(seed)
    shape = (1,) + tuple(xc.shape[1:])
    labelled = method.pseudo_labelled(model, batches)
    print(f"| start (uniform in ±{INIT_SCALE}, clamp) | inner objective | delta norm | to target % | "
          f"cos(delta, trigger) |")
    print("|---|---|---|---|---|")
    for i in range(RANDOM_STARTS):
        delta = method.inner_pass(model, labelled, method.random_start(shape, gen).to(xc.device))
        value = method.inner_objective(model, labelled, delta)
        hit = percent(model, (xc + delta).clamp(0, 1), target)
        print(f"| {i} | {value:.1f} | {float(delta.norm()):.1f} | {hit:.1f} | {cosine(delta, effect):.3f} |")


def round_check(model: nn.Module, batches: list[tuple[Tensor, Tensor]], xc: Tensor, xt: Tensor, test: Tensor,
                test_y: Tensor, target: int, seed: int, restarts: int) -> None:
    """One `ibau` round with restarts: does unlearning the delta it finds also unlearn the trigger?"""
    settings = {"restarts": restarts, "init_scale": INIT_SCALE, "clamp": True}
    method = IBAU(IBAU.Config(**settings))
    model = copy.deepcopy(model)
    params = list(model.parameters())
    for q in params:
        q.requires_grad_(True)
    gen = torch.Generator().manual_seed(seed)
    delta = method.inner_max(model, batches, gen)

    def line(when: str) -> str:
        hit = percent(model, (xc + delta).clamp(0, 1), target)
        asr, acc = percent(model, xt, target), percent(model, test, test_y)
        return f"| {when} | {hit:.1f} | {asr:.1f} | {acc:.1f} |"

    print(f"\nOne `ibau` round with {settings} (delta norm {float(delta.norm()):.1f}):\n")
    print("| model | x + delta to target % | ASR % | clean acc. % |")
    print("|---|---|---|---|")
    print(line("before the outer pass"))
    start = time.perf_counter()
    method.outer_pass(model, params, method.make_optimizer(params), batches, delta, gen)
    print(line(f"after it ({time.perf_counter() - start:.0f} s)"))


def first_batch(part: Part, n: int, device: torch.device) -> Tensor:
    return next(iter(part.subset(torch.arange(min(n, len(part)))).batches(n, device, shuffle=False)))[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--clean-size", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--round-check", action="store_true", help="also run one ibau round with restarts (minutes)")
    p.add_argument("--restarts", type=int, default=RANDOM_STARTS,
                   help="restarts of that round (its starts are the table's first ones, same seed)")
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
        print(f"| {name} | {float(delta.norm()):.2f} | {100 * float((pred == target).float().mean()):.1f} | "
              f"{hist} | {cosine(delta, effect):.3f} |")
    print()
    trigger_response(model, xc, effect, target)
    random_starts(model, batches, xc, effect, target, a.seed)
    if a.round_check:
        test = bundle.test_part()
        xs, ys = first_batch(test, a.n_test, device), test.y[:a.n_test].to(device)
        round_check(model, batches, xc, xt, xs, ys, target, a.seed, a.restarts)


if __name__ == "__main__":
    main()
