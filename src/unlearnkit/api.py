"""Listings behind `unlearnkit list` (registered names with one-line descriptions)."""

from __future__ import annotations

from .errors import UserError


def _first_line(obj: object) -> str:
    doc = (getattr(obj, "summary", "") or obj.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def settings_of(cls: type) -> list[tuple[str, str, str]]:
    """(name, default, meaning) of each `--set` setting of a method or attack: its Config's fields, the meaning
    taken from the comment after the field in the source (empty where there is none)."""
    import dataclasses
    import inspect
    import re

    config = getattr(cls, "Config", None)
    if config is None or not dataclasses.is_dataclass(config):
        return []
    try:
        source = inspect.getsource(config)
    except (OSError, TypeError):
        source = ""
    notes = {m.group(1): m.group(2).strip() for m in re.finditer(r"^\s+(\w+)\s*:[^#\n]*#\s*(.*)$", source, re.M)}
    out = []
    for f in dataclasses.fields(config):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else "")  # type: ignore[misc]
        out.append((f.name, repr(default) if isinstance(default, str) else str(default), notes.get(f.name, "")))
    return out


def describe(what: str, settings: bool = False) -> list[tuple[str, str]]:
    """(name, one-line description) of every registered method, attack, dataset or model."""
    if what == "methods":
        from .methods import METHODS

        rows = []
        for n in METHODS.names():
            cls = METHODS.get(n)
            kinds = sorted(cls.scenarios) + (["backdoor"] if cls.backdoor_needs is not None else [])
            rows.append((n, f"[{', '.join(kinds)}] {_first_line(cls)}"))
            if settings:
                rows += [(f"  {k}={v}", note) for k, v, note in settings_of(cls)]
        return rows
    if what == "attacks":
        from .attacks import ATTACKS

        rows = []
        for n in ATTACKS.names():
            rows.append((n, _first_line(ATTACKS.get(n))))
            if settings:
                rows += [(f"  {k}={v}", note) for k, v, note in settings_of(ATTACKS.get(n))]
        return rows
    if what == "datasets":
        from .data import DATASETS

        return [(n, _first_line(DATASETS.get(n))) for n in DATASETS.names()] + [
            ("imagefolder:PATH", "a folder per class (optionally inside train/ and test/)")]
    if what == "models":
        from .models import MODELS

        return [(n, _first_line(MODELS.get(n))) for n in MODELS.names()] + [
            ("torchvision:NAME", "any torchvision classifier, e.g. torchvision:mobilenet_v3_small")]
    raise UserError(f"cannot list {what!r}: choose methods, attacks, datasets or models")
