"""Benchmark suites (`unlearnkit bench SUITE`): tables of methods x scenarios x seeds.

A suite is a function `settings -> Suite` registered with `@register_suite(name)` in a file of this package;
`bench/runner.py` runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..registry import Registry

if TYPE_CHECKING:
    from .runner import Suite

SUITES: Registry[Callable[[dict], object]] = Registry("bench suite", "unlearnkit.bench")
register_suite = SUITES.register


def build_suite(name: str, settings: dict | None = None) -> Suite:
    """Suite `name` as `settings` make it: its own settings (e.g. clean=) and the common ones (quick=, data=,
    arch=, epochs=, methods=, scenarios=); cache= is left to the caller."""
    from .runner import COMMON_SETTINGS, apply_common_settings

    settings = dict(settings or {})
    suite = SUITES.get(name)({k: v for k, v in settings.items() if k not in COMMON_SETTINGS})
    return apply_common_settings(suite, {k: v for k, v in settings.items() if k in COMMON_SETTINGS})


def run_suite(name: str, out: str | Path, seeds: int = 3, settings: dict | None = None,
              overwrite: bool = False, only_seeds: list[int] | None = None, reuse_only: bool = False,
              machine: str | None = None) -> Path:
    """Build suite `name` from `settings` (quick=, data=, arch=, epochs=, methods=, cache=, ...) and run it."""
    from .runner import run

    cache = (settings or {}).get("cache")
    return run(build_suite(name, settings), Path(out), seeds=seeds, cache=Path(cache) if cache else None,
               overwrite=overwrite, only_seeds=only_seeds, reuse_only=reuse_only, machine=machine)
