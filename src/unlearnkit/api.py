"""Listings behind `unlearnkit list` (registered names with one-line descriptions)."""

from __future__ import annotations

from .errors import UserError


def _first_line(obj: object) -> str:
    doc = (getattr(obj, "summary", "") or obj.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def describe(what: str) -> list[tuple[str, str]]:
    """(name, one-line description) of every registered method, attack, dataset or model."""
    if what == "methods":
        from .methods import METHODS

        rows = []
        for n in METHODS.names():
            cls = METHODS.get(n)
            kinds = sorted(cls.scenarios) + (["backdoor"] if cls.backdoor_needs is not None else [])
            rows.append((n, f"[{', '.join(kinds)}] {_first_line(cls)}"))
        return rows
    if what == "attacks":
        from .attacks import ATTACKS

        return [(n, _first_line(ATTACKS.get(n))) for n in ATTACKS.names()]
    if what == "datasets":
        from .data import DATASETS

        return [(n, _first_line(DATASETS.get(n))) for n in DATASETS.names()] + [
            ("imagefolder:PATH", "a folder per class (optionally inside train/ and test/)")]
    if what == "models":
        from .models import MODELS

        return [(n, _first_line(MODELS.get(n))) for n in MODELS.names()] + [
            ("torchvision:NAME", "any torchvision classifier, e.g. torchvision:mobilenet_v3_small")]
    raise UserError(f"cannot list {what!r}: choose methods, attacks, datasets or models")
