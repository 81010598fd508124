"""Forget specs and the forget / retain / held-out validation split of the training set.

The validation split is carved from the training set before training and never trained on: it serves
hyper-parameter selection, the clean set of backdoor defences, and held-out membership attacks.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..engine.progress import say
from ..errors import UserError


@dataclass
class ForgetSpec:
    """What to forget: `kind` is 'class', 'random' or 'indices'."""

    kind: str
    classes: list[int] = field(default_factory=list)
    fraction: float | None = None
    indices: list[int] | None = None
    seed: int = 0

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None and v != []}

    @classmethod
    def from_dict(cls, d: dict) -> ForgetSpec:
        return cls(kind=d["kind"], classes=list(d.get("classes", [])), fraction=d.get("fraction"),
                   indices=d.get("indices"), seed=int(d.get("seed", 0)))


@dataclass
class Split:
    """Indices into the training tensors: what the model trained on, what to forget, what to keep."""

    train_idx: Tensor
    val_idx: Tensor
    forget_idx: Tensor
    retain_idx: Tensor
    forget_classes: list[int] = field(default_factory=list)


def parse_classes(text: str, class_names: list[str]) -> list[int]:
    """'elephant,horse' or '3,5' -> sorted class indices; names match exactly, then case-insensitively."""
    out: list[int] = []
    lower = {n.lower(): i for i, n in enumerate(class_names)}
    for tok in (t.strip() for t in text.split(",")):
        if not tok:
            continue
        if tok in class_names:
            out.append(class_names.index(tok))
        elif tok.lower() in lower:
            out.append(lower[tok.lower()])
        elif tok.lstrip("-").isdigit():
            i = int(tok)
            if not 0 <= i < len(class_names):
                raise UserError(f"class index {i} is out of range: use 0..{len(class_names) - 1} or a class name")
            out.append(i)
        else:
            raise UserError(f"unknown class {tok!r}: choose from {', '.join(class_names)}")
    if not out:
        raise UserError("--forget-class is empty: name at least one class, e.g. --forget-class 3")
    out = sorted(set(out))
    if len(out) >= len(class_names):
        raise UserError("--forget-class names every class: leave at least one class to retain")
    return out


def read_indices(path: str | Path) -> list[int]:
    """Read sample indices from a .json list, a .npy array, or text (one per line, or comma/space separated).

    A deletion request is evidence of what was asked: only whole numbers are accepted, never coerced. A float
    (1.7), a bool, a string ("123"), an object, NaN or infinity is refused with the reason, instead of being read
    as some other set of samples.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"indices file {p} does not exist: pass a file of training-set indices")
    fix = "write whole-number training-set indices (a JSON list such as [12, 40], or one per line)"
    try:
        if p.suffix == ".npy":
            arr = np.load(p, allow_pickle=False)
            if arr.dtype.kind not in "iu" or arr.ndim != 1:
                raise UserError(f"{p} holds a {arr.ndim}-D array of {arr.dtype} values, not a list of integers: save "
                                f"the indices as a flat integer array (np.array(idx, dtype=np.int64))")
            vals = arr.tolist()
        elif p.suffix == ".json":
            vals = json.loads(p.read_text(), parse_constant=_no_constant)
            if not isinstance(vals, list):
                raise UserError(f"{p} holds a JSON {type(vals).__name__}, not a list: {fix}")
            bad = [v for v in vals if type(v) is not int]  # bool is an int subclass: refused too
            if bad:
                raise UserError(f"{p} holds {str(bad[0])[:40]!r}, which is not a whole number: {fix}")
        else:
            vals = []
            for tok in p.read_text().replace(",", " ").split():
                if not re.fullmatch(r"[+-]?[0-9]+", tok):
                    raise UserError(f"{p} holds {tok[:40]!r}, which is not a whole number: {fix}")
                vals.append(int(tok))
    except (ValueError, UnicodeDecodeError, json.JSONDecodeError, OSError) as err:
        raise UserError(f"cannot read indices from {p} ({type(err).__name__}): {fix}") from err
    big = next((v for v in vals if not -(2**62) < v < 2**62), None)
    if big is not None:
        raise UserError(f"{p} holds the index {str(big)[:30]}, far beyond any training set: {fix}")
    return [int(v) for v in vals]


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not an index")


def parse_forget_spec(class_names: list[str], *, forget_class: str | None = None,
                      forget_random: float | None = None, forget_indices: str | Path | None = None,
                      seed: int = 0) -> ForgetSpec:
    """Turn the command-line choice (exactly one of the three) into a `ForgetSpec`."""
    given = [v is not None for v in (forget_class, forget_random, forget_indices)]
    if sum(given) != 1:
        raise UserError("choose exactly one of --forget-class, --forget-random, --forget-indices (or --backdoor)")
    if forget_class is not None:
        return ForgetSpec("class", classes=parse_classes(forget_class, class_names), seed=seed)
    if forget_random is not None:
        if not 0.0 < float(forget_random) < 1.0:
            raise UserError(f"--forget-random {forget_random} is outside (0, 1): give a fraction such as 0.1")
        return ForgetSpec("random", fraction=float(forget_random), seed=seed)
    idx = read_indices(forget_indices)  # type: ignore[arg-type]
    if not idx:
        raise UserError(f"indices file {forget_indices} is empty: list at least one training-set index")
    unique = sorted(set(idx))
    say(f"deletion request {forget_indices}: {len(idx)} indices, {len(unique)} distinct ({len(idx) - len(unique)} "
        f"duplicates), from {unique[0]} to {unique[-1]}")
    return ForgetSpec("indices", indices=unique, seed=seed)


def val_split(y: Tensor, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Stratified, seeded (train_idx, val_idx) of the training set."""
    gen = torch.Generator().manual_seed(seed)
    val = []
    for c in torch.unique(y).tolist():
        idx = (y == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        val.append(idx[: int(round(len(idx) * fraction))])
    val_idx = torch.sort(torch.cat(val)).values if val else torch.zeros(0, dtype=torch.long)
    mask = torch.ones(len(y), dtype=torch.bool)
    mask[val_idx] = False
    return mask.nonzero().flatten(), val_idx


def make_split(y_train: Tensor, val_fraction: float, split_seed: int, spec: ForgetSpec | None, *,
               split_labels: Tensor | None = None, never_held_out: Tensor | None = None) -> Split:
    """Apply a forget spec to the training indices (the validation split is excluded first).

    `split_labels`: the labels the held-out split is stratified on, when they differ from `y_train` (a poisoned
    run: its split is drawn on the clean labels, as its poisoned samples were chosen outside it; stratifying on
    the poisoned labels would draw another split, one that holds out about a tenth of the poisoned samples).
    `never_held_out`: indices that leave the held-out split whatever it draws (a poisoned run's poisoned
    samples: clean sets, guards and membership attacks draw from the held-out split and must never see one).
    """
    train_idx, val_idx = val_split(y_train if split_labels is None else split_labels, val_fraction, split_seed)
    if never_held_out is not None and len(never_held_out):
        val_idx = val_idx[~torch.isin(val_idx, never_held_out)]
    empty = torch.zeros(0, dtype=torch.long)
    if spec is None:
        return Split(train_idx, val_idx, empty, train_idx)
    if spec.kind == "class":
        in_forget = torch.isin(y_train[train_idx], torch.tensor(spec.classes))
        forget = train_idx[in_forget]
    elif spec.kind == "random":
        gen = torch.Generator().manual_seed(spec.seed)
        k = int(round(len(train_idx) * float(spec.fraction)))
        forget = torch.sort(train_idx[torch.randperm(len(train_idx), generator=gen)[:k]]).values
    elif spec.kind == "indices":
        idx = torch.tensor(spec.indices or [], dtype=torch.long)
        bad = idx[(idx < 0) | (idx >= len(y_train))]
        if len(bad):
            raise UserError(f"forget index {int(bad[0])} is out of range: training indices are 0..{len(y_train) - 1}")
        held = torch.isin(idx, val_idx)
        if held.any():
            # never trained on, so nothing to unlearn; but a deletion request means the samples are used nowhere:
            # they leave the held-out split too (clean sets, guards and membership attacks draw from it)
            val_idx = val_idx[~torch.isin(val_idx, idx)]
            say(f"{int(held.sum())} of the {len(idx)} requested indices are in the held-out split (never trained "
                f"on): they are left out of every set, and the other {int((~held).sum())} are forgotten")
        forget = torch.sort(idx[~held]).values
    else:
        raise UserError(f"unknown forget kind {spec.kind!r}: use class, random or indices")
    if len(forget) == 0:
        raise UserError("the forget set is empty: choose a class, fraction or indices that select training samples")
    keep = ~torch.isin(train_idx, forget)
    if keep.sum() == 0:
        raise UserError("the forget set covers the whole training set: leave samples to retain")
    return Split(train_idx, val_idx, forget, train_idx[keep], list(spec.classes))
