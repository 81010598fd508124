"""How many poisoned samples a backdoored run's held-out split holds, under the split drawn before the fix of
2026-11-28 (stratified on the poisoned labels) and under today's (`rundata.split_of`).

    python benchmarks/held_out_poison.py RUN [RUN ...]

Why: every backdoor defence draws its clean set and its guard's slice from the held-out split. Drawn on the
poisoned labels, that split was another one than the split the poisoned samples were chosen outside of, and held
about a tenth of them (triggered, labelled with the target). This prints, per run, the held-out size and its
poisoned count under both rules, and per class the share of held-out images that already carry the trigger
(stamping it changes no pixel by more than 2/255): where the poisoned samples sat, and which class they posed as.
Reads the training split only; the test split is not read.
"""

from __future__ import annotations

import argparse

import torch

from unlearnkit.attacks import build_trigger, poisoned_indices
from unlearnkit.attacks.base import stamp
from unlearnkit.data.splits import val_split
from unlearnkit.engine.rundir import load_run
from unlearnkit.rundata import load_run_data, split_of


def carries_trigger(spec: dict, x: torch.Tensor, chunk: int = 1000) -> torch.Tensor:
    """Per image (uint8, N C H W): does stamping the run's trigger leave it unchanged (within 2/255)?"""
    trigger = build_trigger(spec)
    out = [(stamp(trigger, x[i:i + chunk], torch.device("cpu")).int() - x[i:i + chunk].int()).abs().flatten(1)
           .amax(1) <= 2 for i in range(0, len(x), chunk)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)


def report(path: str) -> None:
    run = load_run(path)
    spec = run.meta.get("poison")
    if not spec:
        print(f"{path}: not a backdoored run")
        return
    bundle = load_run_data(run.meta)
    data = run.meta["data"]
    poisoned = poisoned_indices(spec)
    _, old_val = val_split(bundle.y_train, float(data.get("val_fraction", 0.1)), int(data.get("split_seed", 0)))
    new_val = split_of(run.meta, bundle, None).val_idx
    split_on = spec.get("split_on", "(absent: made before)")
    print(f"{path} ({spec['attack']}, {spec['count']} poisoned, split_on: {split_on})")
    print("| held-out split | images | poisoned among them |")
    print("|---|---|---|")
    for name, val in (("drawn on the poisoned labels (before)", old_val), ("today's (`split_of`)", new_val)):
        print(f"| {name} | {len(val)} | {int(torch.isin(val, poisoned).sum())} |")
    print("\n| class | held-out images (before) | carrying the trigger | share % |")
    print("|---|---|---|---|")
    has = carries_trigger(spec, bundle.x_train[old_val])
    y = bundle.y_train[old_val]
    for c, name in enumerate(bundle.classes):
        m = y == c
        n, k = int(m.sum()), int((has & m).sum())
        print(f"| {c} {name} | {n} | {k} | {100.0 * k / max(1, n):.1f} |")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    for path in ap.parse_args().runs:
        report(path)


if __name__ == "__main__":
    main()
