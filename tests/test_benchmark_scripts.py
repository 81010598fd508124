"""Every script under benchmarks/ still imports: they are run by hand (and on the GPU machine), not by the suite, so
an import of a moved or removed name otherwise goes unnoticed until someone needs the numbers (bench_hyperforget
imported `bench.runner._atomic` for a stop after it was removed)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_benchmark_script_imports(script: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(script.parent))  # scripts may import their siblings
    spec = importlib.util.spec_from_file_location(f"_bench_{script.stem}", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)  # top-level code only: each script's work sits under `if __name__ == "__main__"`
    assert callable(getattr(module, "main", None)) or "__main__" in script.read_text()
