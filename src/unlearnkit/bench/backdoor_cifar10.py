"""Suite `backdoor-cifar10`: the field's reference setting (BackdoorBench's CIFAR-10 leaderboard).

`preact-resnet18` trained with BackdoorBench's recipe (SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 128,
100 epochs, cosine schedule, random crop (4-pixel padding) and horizontal flip, the trigger stamped before
augmentation), target class 0, 10% of the training set poisoned. Attack settings are BackdoorBench's: BadNets a
3x3 white patch flush with the bottom-right corner; Blend alpha 0.2 (a seeded noise image instead of its
Hello-Kitty picture, which would be a resource file); SIG delta 40/255, f 6, clean-label; WaNet k 4, s 0.5, cross
ratio 2 (fixed poisoned and cross samples instead of a fresh draw per batch). Every defence sees 2,500 clean
images (BackdoorBench's 5%) drawn from the held-out split, which the model never trained on (BackdoorBench
draws them from the training set); `ibau-100` sees 100 (the I-BAU paper's extreme case), `ngf-500` 500 (NGF's
1%). Each defence keeps a tenth of its clean set for its guard (see `methods/_guard.py`).

Columns: clean accuracy and ASR before and after, robust accuracy, DER, the defence's seconds, and
`damaged` (1 when the verdict calls the returned model damaged: clean accuracy more than 10 points down or
near chance).

Suite settings (`--set KEY=VALUE`, besides the common quick=, data=, arch=, epochs=, methods=, scenarios=):
`ratio=R` (default 0.1; BackdoorBench also reports 0.05 and 0.01), `clean=N` (default 2500), `small=N`
(default 100), `lr=LR` (training lr, default 0.01).

CIFAR-10 comes from torchvision's files or from an image-folder copy under the data root (`--data cifar10`);
numbers measured on the JPEG copy say so (see BENCHMARKS.md).
"""

from __future__ import annotations

from typing import Any

from . import register_suite
from .backdoor import COLUMNS
from .runner import Row, Scenario, Suite, no_other_settings, setting

ATTACKS: dict[str, dict[str, Any]] = {
    "badnets": {"size": 3, "margin": 0},
    "blend": {"alpha": 0.2},
    "sig": {"delta": 40 / 255, "frequency": 6.0},
    "wanet": {"k": 4, "s": 0.5, "grid_rescale": 1.0, "cross_ratio": 2.0},
    "trojan": {},
    "l0-inv": {},
    "l2-inv": {},
}
# in the order a time-limited run reaches them: the issue's bars first, fine-pruning (no bar) last
DEFENCES = ("finetune", "nad", "anp", "fine-pruning")
# BackdoorBench's training recipe for its attacked models (config/attack/prototype/cifar10.yaml)
BACKDOORBENCH_TRAIN: dict[str, Any] = {"epochs": 100, "batch_size": 128, "lr": 0.01}


@register_suite("backdoor-cifar10")
def backdoor_cifar10_suite(settings: dict[str, Any]) -> Suite:
    s = dict(settings)
    name = "backdoor-cifar10"
    ratio = setting(s, "ratio", 0.1, name, float, lo=1e-4, hi=0.99)
    clean, small = setting(s, "clean", 2500, name), setting(s, "small", 100, name)
    lr = setting(s, "lr", BACKDOORBENCH_TRAIN["lr"], name, float, lo=1e-8, hi=10)
    no_other_settings(s, name, "ratio=, clean=, small=, lr= ")
    scenarios = [Scenario(a, {"backdoor": True}, reference=False,
                          train={"poison": a, "target": 0, "poison_ratio": ratio, "poison_settings": dict(p)})
                 for a, p in ATTACKS.items()]
    one_percent = max(1, clean // 5)
    rows = [Row("ibau", request={"clean_size": clean}),
            Row("ibau", request={"clean_size": small}, label=f"ibau-{small}"),
            Row("ngf", request={"clean_size": clean}),
            Row("ngf", request={"clean_size": one_percent}, label=f"ngf-{one_percent}")]
    rows += [Row(m, request={"clean_size": clean}) for m in DEFENCES]
    return Suite("backdoor-cifar10", "cifar10", "preact-resnet18", train={**BACKDOORBENCH_TRAIN, "lr": lr},
                 scenarios=scenarios, rows=rows, columns=list(COLUMNS), reference_row=None,
                 notes=f"{ratio:g} poisoning, target class 0, BackdoorBench's recipe and attack settings; defences "
                       f"see {clean} clean held-out images (ibau-{small}: {small}; ngf-{one_percent}: "
                       f"{one_percent}), a tenth of them kept for the guard. `before` = the backdoored model.")
