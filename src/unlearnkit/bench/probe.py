"""Held-out *probe* images of a backdoored run: how a benchmark compares a defence's settings without the test split.

A defence's clean set is drawn from the run's held-out split (`forgetting.clean_part`); the rest of that split was
never trained on and is never seen by the defence. Stamping the attack's trigger on it measures an attack success
rate there, as the pipeline does on the test split. Choosing a default by these numbers uses trigger knowledge,
which a benchmark has and a defence never does, but it keeps the test split for the final report only: a default
is never chosen on the test split.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..attacks.poison import LabelMap, build_trigger, stamp
from ..data.bundle import DataBundle, Part
from ..data.splits import Split
from ..data.transforms import to_float


@dataclass
class Probe:
    """Held-out clean images (`x`, `y`) and their triggered victims (`x_bd`, labelled with the attack's target)."""

    x: Tensor
    y: Tensor
    x_bd: Tensor
    y_bd: Tensor

    def scores(self, model: nn.Module, device: torch.device | str = "cpu") -> dict[str, float]:
        """`clean_acc` and `asr` on the probe, in percent."""
        return {"clean_acc": accuracy(model, self.x, self.y, device),
                "asr": accuracy(model, self.x_bd, self.y_bd, device)}


def build_probe(bundle: DataBundle, split: Split, clean: Part, spec: dict) -> Probe:
    """The held-out images that are not in `clean`, and the victims among them stamped with the run's trigger."""
    rest = sorted(set(split.val_idx.tolist()) - set(clean.idx.tolist()))
    probe = bundle.train_part(torch.tensor(rest, dtype=torch.long))
    label_map = LabelMap.from_dict(spec["label_map"])
    victims = label_map.victims(probe.y)
    x_bd = stamp(build_trigger(spec), probe.x[victims], torch.device("cpu"))
    return Probe(probe.x, probe.y, x_bd, label_map(probe.y[victims]))


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor, device: torch.device | str = "cpu", batch: int = 500) -> float:
    """Top-1 accuracy (percent, 2 decimals) of `model` in eval mode on uint8 or float images."""
    model.eval()
    right = sum(int((model(to_float(x[i:i + batch].to(device))).argmax(1).cpu() == y[i:i + batch]).sum())
                for i in range(0, len(x), batch))
    return round(100.0 * right / max(1, len(x)), 2)
