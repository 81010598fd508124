"""Benchmark suites (`unlearnkit bench SUITE`): tables of methods x scenarios x seeds.

A suite is a function `settings -> Suite` registered with `@register_suite(name)` in a file of this package;
`bench/runner.py` runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..registry import Registry

SUITES: Registry[Callable[[dict], object]] = Registry("bench suite", "unlearnkit.bench")
register_suite = SUITES.register


def run_suite(name: str, out: str | Path, seeds: int = 3, settings: dict | None = None,
              overwrite: bool = False, only_seeds: list[int] | None = None, reuse_only: bool = False,
              machine: str | None = None) -> Path:
    """Build suite `name` from `settings` (quick=, data=, arch=, epochs=, methods=, cache=, ...) and run it."""
    from .runner import COMMON_SETTINGS, apply_common_settings, run

    settings = dict(settings or {})
    cache = settings.get("cache")
    suite = SUITES.get(name)({k: v for k, v in settings.items() if k not in COMMON_SETTINGS})
    suite = apply_common_settings(suite, {k: v for k, v in settings.items() if k in COMMON_SETTINGS})
    return run(suite, Path(out), seeds=seeds, cache=Path(cache) if cache else None, overwrite=overwrite,
               only_seeds=only_seeds, reuse_only=reuse_only, machine=machine)
