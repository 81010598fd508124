"""Suite `backdoor`: every attack planted in Fashion-MNIST / ResNet-18 (10% poisoning, target class 0), then
removed by every backdoor defence from a small clean set drawn from the held-out split.

Rows: `ibau` with 5% of the training set as clean data (BackdoorBench's setting: 3,000 images) and with
100 clean samples (the paper's extreme case), `ngf` with the same 5% and with 1% (a fifth of it: 600
images, NGF's setting), and the baselines `finetune`, `fine-pruning`, `nad`, `anp` with the same 5%.
Columns: the backdoored model's clean accuracy and ASR, then after the defence: clean accuracy, ASR,
robust accuracy, DER, the defence's wall time, and `damaged` (1 when the verdict calls the returned model
damaged: clean accuracy more than 10 points down or near chance, issue 18), mean ± std over seeds.

Suite settings (`--set KEY=VALUE`, besides the common quick=, data=, arch=, epochs=, methods=, scenarios=):
`clean=N` (default 3000) and `small=N` (default 100) clean-set sizes; with quick=true (digits) pass sizes
that fit its held-out split, e.g. `clean=72 small=40`.
"""

from __future__ import annotations

from typing import Any

from . import register_suite
from .runner import FASHION_MNIST_RESNET18, Column, Row, Scenario, Suite, key, no_other_settings, setting

ATTACKS = ("badnets", "blend", "sig", "wanet", "trojan", "l0-inv", "l2-inv")
BASELINES = ("finetune", "fine-pruning", "nad", "anp")


def _before(k: str) -> Column:
    return Column(f"{k} before", lambda m: m.get("original", {}).get(k))


def _damaged(m: dict) -> float | None:
    """1.0 when the run's verdict says the defence damaged the model, so a table shows a broken model as such."""
    v = m.get("verdict")
    return None if not isinstance(v, dict) else float(v.get("status") == "damaged")


COLUMNS = [_before("clean_acc"), _before("asr"), key("clean_acc"), key("asr"), key("robust_acc"), key("der"),
           key("seconds"), Column("damaged", _damaged)]


@register_suite("backdoor")
def backdoor_suite(settings: dict[str, Any]) -> Suite:
    s = dict(settings)
    clean, small = setting(s, "clean", 3000, "backdoor"), setting(s, "small", 100, "backdoor")
    no_other_settings(s, "backdoor", "clean=N, small=N ")
    scenarios = [Scenario(a, {"backdoor": True}, train={"poison": a, "target": 0, "poison_ratio": 0.1},
                          reference=False) for a in ATTACKS]
    rows = [Row("ibau", request={"clean_size": clean}, label="ibau"),
            Row("ibau", request={"clean_size": small}, label=f"ibau-{small}"),
            Row("ngf", request={"clean_size": clean}, label="ngf"),
            Row("ngf", request={"clean_size": max(1, clean // 5)}, label=f"ngf-{max(1, clean // 5)}")]
    rows += [Row(m, request={"clean_size": clean}) for m in BASELINES]
    return Suite("backdoor", "fashion-mnist", "resnet18", train=dict(FASHION_MNIST_RESNET18), scenarios=scenarios,
                 rows=rows,
                 columns=list(COLUMNS), reference_row=None,
                 notes=f"10% poisoning, target class 0; defences see {clean} clean held-out images "
                       f"(ibau-{small}: {small}; ngf-{max(1, clean // 5)}: {max(1, clean // 5)}). "
                       f"`before` = the backdoored model.")
