"""The one settings parser: `key=value` strings into a typed config dataclass.

Methods (`--set`), attacks (`--poison-set`), `hyperforget train` (`--set`), the bench suites (`--set`) and the
benchmark scripts all read their settings here, so every one of them gives the same one-line errors: a string
that is not `key=value`, an unknown key (naming the valid ones), a value of the wrong type, a number no config
can use (NaN, a learning rate <= 0, negative epochs). Types come from the dataclass's annotations; a dict of
already-typed values (the Python API, a config read back from meta.json) passes through the same checks.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from .errors import UserError

TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def parse_pairs(items: list[str] | None, flag: str = "--set", example: str = "epochs=5") -> dict[str, str]:
    """['a=1', 'b=x'] -> {'a': '1', 'b': 'x'}; dashes in keys become underscores (`--set max-steps=3`)."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise UserError(f"{flag} {item!r} is not key=value: write e.g. {flag} {example}")
        key, value = item.split("=", 1)
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def auto(text: str) -> Any:
    """An untyped value (model kwargs, suite settings read by key): int, float, bool, else the string itself."""
    for tp in (int, float):
        try:
            return tp(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_untyped(items: list[str] | None, flag: str = "--set", example: str = "width=64") -> dict[str, Any]:
    """`key=value` strings whose types the reader decides later (see `auto`)."""
    return {k: auto(v) for k, v in parse_pairs(items, flag, example).items()}


def convert(text: str, tp: Any, key: str, flag: str = "--set") -> Any:
    """One value, typed by its annotation (`int | None`, `tuple[float, ...]`, `bool` ...)."""
    origin = typing.get_origin(tp)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if origin is typing.Union or origin is types.UnionType:
        if text.lower() in ("none", "null"):
            return None
        return convert(text, args[0], key, flag)
    try:
        if tp is bool:
            if text.lower() in TRUE:
                return True
            if text.lower() in FALSE:
                return False
            raise ValueError(text)
        if tp is int:
            return int(text)
        if tp is float:
            return float(text)
        if origin in (tuple, list):
            items = [convert(t, args[0], key, flag) for t in text.split(",")]
            return items if origin is list else tuple(items)
    except ValueError as err:
        raise UserError(f"{flag} {key}={text}: expected {getattr(tp, '__name__', tp)}") from err
    return text


def build(config_cls: type, settings: dict[str, Any] | list[str] | None, owner: str, flag: str = "--set") -> Any:
    """`config_cls` from `key=value` strings or a dict, checked (unknown keys, types, numbers, the config's own
    `validate()`). `owner` names whose settings these are in errors, e.g. "method 'scrub'"."""
    hints = typing.get_type_hints(config_cls)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    items: dict[str, Any] = parse_pairs(settings, flag) if isinstance(settings, list) else dict(settings or {})
    for key, value in list(items.items()):
        if key not in fields:
            valid = ", ".join(sorted(fields)) or "(none)"
            raise UserError(f"{owner} has no setting {key!r}: valid settings are {valid}")
        if isinstance(value, str):
            items[key] = convert(value, hints[key], key, flag)
    config = config_cls(**items)
    check_numbers(owner, config, flag)
    validate = getattr(config, "validate", None)
    if callable(validate):
        validate()
    return config


def apply_preset(config: Any, presets: dict[str, dict]) -> None:
    """Give every setting of `config` left at None its value from `presets[config.preset]`: a setting given
    explicitly wins over its preset (the methods with named variants, e.g. `adversarial`, `ngf`)."""
    if config.preset not in presets:
        raise UserError(f"--set preset={config.preset}: choose one of {', '.join(presets)}")
    for k, v in presets[config.preset].items():
        if getattr(config, k) is None:
            setattr(config, k, v)


def check_numbers(owner: str, config: Any, flag: str = "--set") -> None:
    """Settings no config can use: a NaN/inf number, a learning rate or batch size <= 0, negative epochs/steps.

    Caught here, once for every config, they are bad input (exit 2) instead of a NaN loss or a crash later.
    """
    for f in dataclasses.fields(config) if dataclasses.is_dataclass(config) else []:
        v, name = getattr(config, f.name), f.name
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        positive = name == "lr" or name.startswith("lr_") or name.endswith(("_lr", "batch_size"))
        counted = name.endswith(("epochs", "steps", "rounds", "iterations"))
        if not math.isfinite(v) or (positive and v <= 0) or (counted and v < 0):
            need = "> 0" if positive else ">= 0" if counted else "finite"
            raise UserError(f"{owner}: setting {name}={v} must be {need}: pass e.g. {flag} {name}="
                            f"{f.default if f.default is not dataclasses.MISSING else 1}")


def config_dict(config: Any) -> dict:
    """A config as plain data (for meta.json)."""
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else {}
