"""Poison specs: make one, rebuild a poisoned dataset from one, and measure a model against one.

A spec is a plain JSON dict (stored in meta.json under "poison"): the attack's name and resolved settings,
the seed its patterns are generated from, the label map, the ratio, and the poisoned training indices. The
indices never come from the held-out validation split, because backdoor defences draw their clean set there.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor, nn

from ..data.bundle import DataBundle, Part
from ..data.splits import val_split
from ..engine.device import get_device
from ..engine.train import predict_logits
from ..errors import UserError
from ..metrics.backdoor import backdoor_scores
from . import ATTACKS
from .base import LabelMap, Trigger, build_config, stamp


def build_trigger(spec: dict) -> Trigger:
    """Rebuild the exact trigger of a spec (patterns regenerated from the stored settings and seed)."""
    cls = ATTACKS.get(spec["attack"])
    return cls(build_config(cls, spec.get("params")), tuple(spec["input_shape"]), int(spec["pattern_seed"]))


SPLIT_ON_CLEAN_LABELS = "clean labels"  # a spec's `split_on`: the run's held-out split is drawn on the clean labels
CLEAN_Y = "clean_y_train"  # a poisoned bundle's `extra`: its training labels before poisoning


def clean_labels(bundle: DataBundle) -> Tensor:
    """The training labels of a poisoned bundle before poisoning (what its held-out split is stratified on)."""
    if CLEAN_Y not in bundle.extra:
        raise ValueError("clean_labels needs a bundle made by poison_bundle")
    return bundle.extra[CLEAN_Y]


def poisoned_indices(spec: dict) -> Tensor:
    """Every training index the attack changed (WaNet's noise-mode samples included): never held out."""
    return torch.tensor(list(spec.get("indices", [])) + list(spec.get("cross_indices", [])), dtype=torch.long)


def make_poison_spec(name: str, bundle: DataBundle, *, target: int = 0, ratio: float = 0.1,
                     all_to_all: bool = False, seed: int = 0, settings: dict[str, Any] | None = None,
                     val_fraction: float = 0.1, split_seed: int = 0) -> dict:
    """Choose what to poison and how; returns the JSON-able spec.

    Args:
        name: a registered attack (`unlearnkit list attacks`).
        target: the target class of an all-to-one attack.
        ratio: the fraction of the training samples (the held-out split excluded) that are poisoned.
        all_to_all: map y -> (y + 1) mod C instead of y -> target.
        seed: seeds both the trigger's patterns (unless settings give `pattern_seed`) and the choice of indices.
        settings: the attack's options (its Config fields), e.g. {"size": 4} for badnets.
        val_fraction, split_seed: the held-out split of the run, whose samples are never poisoned. It is drawn
            on the clean labels (`split_on`), as here: drawn again on the poisoned labels it would be another
            split, holding out poisoned samples (see `rundata.split_of`).
    """
    cls = ATTACKS.get(name)
    settings = dict(settings or {})
    pattern_seed = int(settings.pop("pattern_seed", seed))
    if not 0 <= int(target) < bundle.num_classes:
        raise UserError(f"--target {target} is not a class of {bundle.spec}: use 0..{bundle.num_classes - 1}")
    if not 0.0 < float(ratio) < 1.0:
        raise UserError(f"--poison-ratio {ratio} is outside (0, 1): give a fraction such as 0.1")
    if all_to_all and cls.clean_label:
        raise UserError(f"attack {name!r} is clean-label (it never changes labels): drop --all-to-all")
    try:
        trigger = cls(build_config(cls, settings), bundle.input_shape, pattern_seed)
    except (TypeError, ValueError) as err:
        raise UserError(f"bad settings for attack {name!r} ({err}): check --poison-set") from err
    label_map = LabelMap(int(target), bundle.num_classes, bool(all_to_all))
    train_idx, _ = val_split(bundle.y_train, val_fraction, split_seed)
    chosen = trigger.select(bundle.y_train, train_idx, label_map, float(ratio),
                            torch.Generator().manual_seed(int(seed) + 104729))
    return {"attack": name, "params": trigger.params(), "pattern_seed": pattern_seed,
            "input_shape": list(bundle.input_shape), "label_map": label_map.to_dict(),
            "clean_label": cls.clean_label, "ratio": float(ratio), "seed": int(seed),
            "val_fraction": float(val_fraction), "split_seed": int(split_seed), "split_on": SPLIT_ON_CLEAN_LABELS,
            "count": len(chosen["indices"]), **chosen}


def poison_bundle(bundle: DataBundle, spec: dict) -> DataBundle:
    """A new bundle whose training images at the spec's indices carry the trigger (and the mapped labels).

    The test set is left untouched: backdoor metrics stamp it on the fly.
    """
    if list(spec["input_shape"]) != list(bundle.input_shape):
        raise UserError(f"the poison spec is for images of shape {tuple(spec['input_shape'])} but the data "
                        f"gives {bundle.input_shape}: pass the same --image-size as in training")
    trigger = build_trigger(spec)
    x, y = bundle.x_train.clone(), bundle.y_train.clone()
    trigger.poison(x, y, spec, LabelMap.from_dict(spec["label_map"]), get_device())
    extra = {**bundle.extra, "poison": {"attack": spec["attack"], "count": spec["count"]}, CLEAN_Y: bundle.y_train}
    return dataclasses.replace(bundle, x_train=x, y_train=y, extra=extra)


def triggered_test_part(bundle: DataBundle, spec: dict, device: torch.device) -> tuple[Part, torch.Tensor]:
    """The triggered test samples that count for the ASR, and the labels the attack maps them to."""
    label_map = LabelMap.from_dict(spec["label_map"])
    keep = label_map.victims(bundle.y_test)
    part = bundle.test_part(keep)
    part = Part(stamp(build_trigger(spec), part.x, device), part.y, part.idx, "none")
    return part, label_map(part.y)


def backdoor_metrics(model: nn.Module, bundle: DataBundle, spec: dict, device: torch.device) -> dict:
    """`clean_acc`, `asr`, `robust_acc` of a model (percent, rounded like the other metrics)."""
    clean = bundle.test_part()
    bd, mapped = triggered_test_part(bundle, spec, device)
    scores = backdoor_scores(predict_logits(model, clean, device), clean.y, predict_logits(model, bd, device),
                             bd.y, mapped)
    return {k: round(v, 4) for k, v in scores.items()}
