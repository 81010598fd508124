"""Benchmark suites (`unlearnkit bench SUITE`): tables of methods x scenarios x seeds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..registry import Registry

SUITES: Registry[Callable[..., Path]] = Registry("bench suite", "unlearnkit.bench")
register_suite = SUITES.register


def run_suite(name: str, out: str | Path, seeds: int = 3, settings: dict | None = None,
              overwrite: bool = False) -> Path:
    """Run a registered suite; it writes results.csv, results.json and table.md under `out`."""
    return SUITES.get(name)(Path(out), seeds=seeds, settings=settings or {}, overwrite=overwrite)
