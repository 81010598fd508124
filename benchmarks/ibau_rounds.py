"""I-BAU round by round on one backdoored run: what the inner max finds, and what each outer pass does to clean
accuracy and to the attack, for several settings side by side.

    python benchmarks/ibau_rounds.py RUN --clean-size 2500 \\
        --variant "adam-1e-3:" --variant "sgd-0.01: optimizer=sgd lr=0.01 rounds=3"

Why a separate script from `defence_variants.py`: that one runs the whole guarded pipeline (one number per
setting, minutes of evaluation each); this one loads the data once, runs `ibau`'s own inner max and outer pass
(the method's code, not a copy) without the guard or the backoff, and prints after every round

- where the round's universal perturbation sends the clean set (how many predictions it flips, the histogram of
  the classes it sends them to, and the share of its energy in each 4x4 image corner: a patch trigger sits in one),
- clean accuracy and ASR on *probe* images: the held-out split's images that are not in the clean set (never
  trained on, never seen by the defence; the test split is not read).

The trigger is stamped on the probe images only to measure the ASR, as the pipeline does on the test split. A
variant whose label starts with `exact-trigger` is the bound instead (see `exact_trigger`): the same outer step
with the attack's own trigger, `--variant "exact-trigger: lr=0.003 portion=0.5 passes=1"` (`portion=0`: plain
fine-tuning on the same batches, the control).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from typing import NoReturn

import torch

from unlearnkit.attacks.poison import build_trigger, stamp
from unlearnkit.bench.probe import accuracy, build_probe
from unlearnkit.bench.runner import machine_description
from unlearnkit.data.transforms import to_float
from unlearnkit.engine.rundir import load_run
from unlearnkit.forgetting import clean_part
from unlearnkit.methods.base import METHODS, make_config
from unlearnkit.methods.ibau import round_batches
from unlearnkit.rundata import load_run_data, split_of
from unlearnkit.settings import parse_untyped


@torch.no_grad()
def where_delta_sends(method, model, batches, delta) -> tuple[float, list[int], list[float]]:
    """(flip rate %, predicted-class histogram of the perturbed clean set, energy share of each 4x4 corner)."""
    preds = torch.cat([model(method._perturbed(model, x, delta)).argmax(1) for x, _ in batches])
    base = torch.cat([model(x).argmax(1) for x, _ in batches])
    energy = method._pixels(model, delta)[0].pow(2).sum(0)
    total = float(energy.sum()) or 1.0
    corners = [float(energy[r, c].sum()) / total for r, c in
               ((slice(0, 4), slice(0, 4)), (slice(0, 4), slice(-4, None)), (slice(-4, None), slice(0, 4)),
                (slice(-4, None), slice(-4, None)))]
    num_classes = int(base.max()) + 1 if len(base) else 1
    hist = torch.bincount(preds, minlength=num_classes).tolist()
    return round(100.0 * float((preds != base).float().mean()), 2), hist, [round(c, 2) for c in corners]


def bad_input(message: str) -> NoReturn:
    """The one-line error for a bad --variant, exit code 2 (as the CLI's)."""
    print(message, file=sys.stderr)
    raise SystemExit(2)


def exact_trigger(label: str, settings: str, original: torch.nn.Module, clean, trigger, probe, x_bd: torch.Tensor,
                  y_bd: torch.Tensor, seed: int) -> None:
    """The bound on any trigger-unlearning defence: the outer step with the attack's own trigger instead of the
    inner max's delta (`portion` of each batch stamped, true labels; SGD `lr`, momentum 0.9, `passes` passes of
    batch `batch` over the clean set). Trigger knowledge: a measurement, never a defence.

    By default as I-BAU's outer step: eval mode, no augmentation, constant lr, batch 100. `train=1 augment=1
    cosine=1 wd=5e-4 batch=256` is instead how neural cleanse unlearns its reconstructed trigger in BackdoorBench
    (defense/nc.py: 100 epochs on the clean set, a fifth of it stamped, the model in train mode, the training
    transforms, SGD lr 0.01 with a cosine schedule; it reached 1.0% ASR at 1.5 points on VGG19-BN, where plain
    fine-tuning left 25%). `every=N` prints every N-th pass (and the last)."""
    import torch.nn.functional as F

    given = parse_untyped(settings.split(), flag="--variant", example="lr=0.003")
    cfg = {"lr": 0.003, "portion": 0.5, "passes": 1, "batch": 100, "train": 0, "augment": 0, "cosine": 0, "wd": 0.0,
           "every": 1}
    unknown = sorted(set(given) - set(cfg))
    if unknown:
        bad_input(f"--variant {label}: unknown setting(s) {', '.join(unknown)}: use {', '.join(cfg)}")
    cfg.update({k: float(v) for k, v in given.items()})
    if min(cfg["passes"], cfg["batch"], cfg["every"]) < 1:
        bad_input(f"--variant {label}: passes, batch and every must be >= 1")
    passes = int(cfg["passes"])
    model = copy.deepcopy(original)
    opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=0.9, weight_decay=cfg["wd"])
    steps = passes * -(-len(clean) // int(cfg["batch"]))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps) if cfg["cosine"] else None
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for e in range(passes):
        model.train(bool(cfg["train"]))
        for x, y in clean.batches(int(cfg["batch"]), torch.device("cpu"), shuffle=True, generator=gen,
                                  augment=bool(cfg["augment"])):
            n = int(len(x) * cfg["portion"])  # portion=0: plain fine-tuning on the same batches, the control
            stamped = to_float(stamp(trigger, (x[:n] * 255).round().to(torch.uint8), torch.device("cpu"))) if n \
                else x[:0]
            loss = F.cross_entropy(model(torch.cat([stamped, x[n:]])), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
        if (e + 1) % int(cfg["every"]) == 0 or e + 1 == passes:
            print(f"| {label} | {settings.strip()} | pass {e + 1} | - | - | - | {accuracy(model, probe.x, probe.y)} "
                  f"| {accuracy(model, x_bd, y_bd)} | {time.perf_counter() - t0:.0f} |", flush=True)


def configured(settings: str):
    """`ibau` with `key=value ...` settings, parsed and validated as `--set` is."""
    cls = METHODS.get("ibau")
    return cls(make_config(cls, settings.split()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--clean-size", type=int, default=2500)
    ap.add_argument("--variant", action="append", required=True, help="LABEL: key=value ... (ibau's settings)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    run = load_run(a.run)
    bundle = load_run_data(run.meta)
    split = split_of(run.meta, bundle, None)
    clean = clean_part(bundle, split, a.clean_size, a.seed)
    spec = run.meta["poison"]
    probe = build_probe(bundle, split, clean, spec)
    x_bd, y_bd = probe.x_bd, probe.y_bd
    original = run.build_model("cpu").eval()
    print(f"`ibau` round by round on {a.run}; clean set {len(clean.y)}, probe {len(probe.y)} held-out images "
          f"({len(y_bd)} triggered); machine: {machine_description()}\n")
    print(f"original: probe clean acc. {accuracy(original, probe.x, probe.y)}, ASR {accuracy(original, x_bd, y_bd)}\n")
    print("| variant | settings | round | flip % | perturbed clean set's classes | corner energy (tl tr bl br) | "
          "probe clean acc. | probe ASR | seconds |")
    print("|" + "---|" * 9, flush=True)
    for text in a.variant:
        label, _, settings = text.partition(":")
        if label.strip().startswith("exact-trigger"):
            exact_trigger(label.strip(), settings, original, clean, build_trigger(spec), probe, x_bd, y_bd, a.seed)
            continue
        method = configured(settings)
        model = copy.deepcopy(original).eval()
        params = [p for p in model.parameters() if p.requires_grad]
        opt = method.make_optimizer(params)
        gen = torch.Generator().manual_seed(a.seed)
        batches = round_batches(clean, method.config.batch_size, method.config.min_steps, torch.device("cpu"), gen)
        t0 = time.perf_counter()
        for r in range(method.config.rounds):
            delta = method.inner_max(model, batches, gen)
            flip, hist, corners = where_delta_sends(method, model, batches, delta)
            method.outer_pass(model, params, opt, batches, delta, gen)
            model.eval()
            print(f"| {label.strip()} | {settings.strip() or '(defaults)'} | {r + 1} | {flip} | {hist} | "
                  f"{' '.join(f'{c:.2f}' for c in corners)} | {accuracy(model, probe.x, probe.y)} | "
                  f"{accuracy(model, x_bd, y_bd)} | {time.perf_counter() - t0:.0f} |", flush=True)


if __name__ == "__main__":
    main()
