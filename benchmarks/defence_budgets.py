"""The default budget of each backdoor defence after a given original, as the methods compute it (issue 22).

    python benchmarks/defence_budgets.py                       # the settings BENCHMARKS.md names
    python benchmarks/defence_budgets.py --setting "mine: 20 40000 1800"   # epochs, training images, clean images

A defence's default work is at most a quarter of the original's sample passes (`methods/_steps.capped`); this
prints what that leaves of the references' budgets (BackdoorBench: 100 epochs of fine-tuning, 10 + 10 of NAD,
2,000 ANP iterations) for each setting, with the share of the original's training each default makes. No model
is trained or read: the methods' own budget functions are called on a task of the stated sizes.
"""

from __future__ import annotations

import argparse
import sys

import torch

from unlearnkit.data.bundle import Part
from unlearnkit.engine.train import TrainConfig
from unlearnkit.methods.anp import ANP
from unlearnkit.methods.base import UnlearnTask
from unlearnkit.methods.fine_pruning import default_epochs
from unlearnkit.methods.finetune import backdoor_epochs
from unlearnkit.methods.nad import phase_epochs

# (label, the original's epochs, its training images, the clean images a defence trains on: 90% of --clean-size)
SETTINGS = [
    ("README example: Fashion-MNIST resnet18, 3 epochs, --clean-size 2500", 3, 53_999, 2_250),
    ("suite backdoor: Fashion-MNIST resnet18, 6 epochs, clean=3000", 6, 53_999, 2_700),
    ("CPU vgg-small CIFAR-10, 30 epochs, --clean-size 2500", 30, 44_999, 2_250),
    ("suite backdoor-cifar10: preact-resnet18, 100 epochs, --clean-size 2500", 100, 44_999, 2_250),
]


def task_of(epochs: int, train_size: int, clean: int) -> UnlearnTask:
    part = Part(torch.zeros(clean, 1, 1, 1, dtype=torch.uint8), torch.zeros(clean, dtype=torch.long),
                torch.arange(clean))
    return UnlearnTask(scenario="backdoor", num_classes=10, device=torch.device("cpu"), generator=torch.Generator(),
                       seed=0, allowed=frozenset({"clean"}), train_config=TrainConfig(epochs=epochs),
                       train_size=train_size, parts={"clean": part})


def rows(settings: list[tuple[str, int, int, int]]) -> list[str]:
    out = ["| setting | finetune epochs | fine-pruning epochs | nad epochs (teacher + student) | anp iterations |",
           "|---|---|---|---|---|"]
    for label, epochs, train_size, clean in settings:
        task = task_of(epochs, train_size, clean)
        ft, fp, nad = backdoor_epochs(task), default_epochs(task), phase_epochs(task)
        anp = ANP().iterations(task)
        passes = (ft * clean, fp * clean, 2 * nad * clean, anp * 2 * 256)  # ANP: noise + mask gradient, batch 256
        pct = [f"{100 * p / (epochs * train_size):.1f}%" for p in passes]
        out.append(f"| {label} | {ft} ({pct[0]}) | {fp} ({pct[1]}) | {nad} + {nad} ({pct[2]}) | {anp} ({pct[3]}) |")
    return out


def parse(text: str) -> tuple[str, int, int, int]:
    """'label: EPOCHS TRAIN_IMAGES CLEAN_IMAGES' (positive integers) -> a setting; ValueError otherwise."""
    label, _, nums = text.rpartition(":")
    epochs, train_size, clean = (int(v) for v in nums.split())
    if min(epochs, train_size, clean) < 1:
        raise ValueError(text)
    return label.strip() or "setting", epochs, train_size, clean


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--setting", action="append", help="'label: EPOCHS TRAIN_IMAGES CLEAN_IMAGES'; repeatable")
    a = ap.parse_args()
    try:
        settings = [parse(s) for s in a.setting] if a.setting else SETTINGS
    except ValueError:
        ap.error("--setting takes 'label: EPOCHS TRAIN_IMAGES CLEAN_IMAGES', e.g. 'mine: 20 40000 1800'")
    print("Default defence budgets (share of the original's sample passes in brackets):\n")
    print("\n".join(rows(settings)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
