"""The attack interface: `Trigger` (what is stamped on an image), `LabelMap` (what the label becomes), and the
poison spec (a JSON dict stored in meta.json under "poison") that rebuilds both without any resource file.

A trigger is built from its settings, the image shape and a seed: every pattern is generated in code from a
seeded CPU generator, so the same spec gives the same trigger on any machine and device. `apply` works on a
float batch in [0, 1] on whatever device the batch lives on, which is where models read their inputs too
(normalisation lives inside the model).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..data.transforms import to_float, to_uint8
from ..errors import UserError
from ..settings import build


@dataclass(frozen=True)
class LabelMap:
    """All-to-one (every triggered sample goes to `target`) or all-to-all (y -> (y + 1) mod C)."""

    target: int
    num_classes: int
    all_to_all: bool = False

    def __call__(self, y: Tensor) -> Tensor:
        if self.all_to_all:
            return (y + 1) % self.num_classes
        return torch.full_like(y, self.target)

    def victims(self, y: Tensor) -> Tensor:
        """Samples whose label the attack changes: the ones that count for poisoning and for the ASR."""
        if self.all_to_all:
            return torch.ones_like(y, dtype=torch.bool)
        return y != self.target

    def to_dict(self) -> dict:
        return {"kind": "all-to-all" if self.all_to_all else "all-to-one", "target": self.target,
                "num_classes": self.num_classes}

    @classmethod
    def from_dict(cls, d: dict) -> LabelMap:
        return cls(int(d["target"]), int(d["num_classes"]), d["kind"] == "all-to-all")


class Trigger:
    """Base class of an attack. Subclasses set `name` (via `register_attack`), a `Config` dataclass of
    JSON-able settings, build their patterns in `setup` and stamp them in `apply`.

    `clean_label` attacks poison only samples that already carry the target label and never change labels.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    clean_label: ClassVar[bool] = False

    @dataclass
    class Config:
        pass

    def __init__(self, config: Any, input_shape: tuple[int, int, int], seed: int) -> None:
        self.config = config
        self.input_shape = tuple(int(v) for v in input_shape)
        self.seed = int(seed)
        self.setup(torch.Generator().manual_seed(self.seed))

    def setup(self, gen: torch.Generator) -> None:
        """Build the trigger's tensors (on the CPU, from `gen`); may resolve shape-dependent defaults."""

    def apply(self, x: Tensor) -> Tensor:
        """Stamp the trigger on a float batch (N, C, H, W) in [0, 1]; returns a new batch in [0, 1]."""
        raise NotImplementedError

    def params(self) -> dict:
        """The resolved settings: with the seed and image shape they rebuild this exact trigger."""
        return dataclasses.asdict(self.config)

    # ------------------------------------------------------------------ poisoning a training set

    def select(self, y: Tensor, candidates: Tensor, label_map: LabelMap, ratio: float,
               gen: torch.Generator) -> dict[str, list[int]]:
        """Choose the training indices to poison among `candidates` (never the held-out split).

        The count is `ratio` of the training samples; dirty-label attacks draw from samples whose label the
        map changes, clean-label attacks from the target class only (capped at its size).
        """
        n = int(round(ratio * len(candidates)))
        cy = y[candidates]
        pool = candidates[cy == label_map.target] if self.clean_label else candidates[label_map.victims(cy)]
        if self.clean_label:
            n = min(n, len(pool))
        if n < 1:
            raise UserError(f"--poison-ratio {ratio} poisons no sample of {len(candidates)}: raise the ratio")
        if n > len(pool):
            raise UserError(f"--poison-ratio {ratio} asks for {n} poisoned samples but only {len(pool)} can be "
                            f"poisoned: lower the ratio")
        chosen = pool[torch.randperm(len(pool), generator=gen)[:n]]
        return {"indices": torch.sort(chosen).values.tolist()}

    def poison(self, x: Tensor, y: Tensor, spec: dict, label_map: LabelMap, device: torch.device) -> None:
        """Stamp the trigger on `x[spec['indices']]` (uint8, in place) and map their labels (in place)."""
        idx = torch.tensor(spec["indices"], dtype=torch.long)
        x[idx] = stamp(self, x[idx], device)
        if not self.clean_label:
            y[idx] = label_map(y[idx])


def stamp(trigger: Trigger, x: Tensor, device: torch.device, chunk: int = 2048) -> Tensor:
    """Apply a trigger to a uint8 batch on `device` in chunks; returns uint8 on the CPU.

    Poisoned training images and triggered test images both go through this one path (and the same
    rounding to uint8), so the model is tested on exactly the trigger it was trained on.
    """
    if len(x) == 0:
        return x.clone()
    out = [to_uint8(trigger.apply(to_float(c.to(device)))).cpu() for c in x.split(chunk)]
    return torch.cat(out)


def build_config(cls: type[Trigger], settings: dict[str, Any] | list[str] | None) -> Any:
    """The attack's Config from `key=value` strings or a dict (`unlearnkit.settings`: unknown keys name the valid
    ones, values are typed by the Config's annotations)."""
    return build(cls.Config, settings, f"attack {cls.name!r}", flag="--poison-set")


def square_side(side: int, ratio: float, minimum: int = 1) -> int:
    """A length proportional to the image side (e.g. a 3x3 patch on 32x32 scales to 21x21 on 224x224)."""
    return max(minimum, int(round(side * ratio)))
