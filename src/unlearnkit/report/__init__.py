"""Reports: text tables for the terminal and the self-contained HTML page (`unlearnkit report`)."""

from __future__ import annotations

from pathlib import Path


def report(runs: list[str | Path] | str | Path, out: str | Path, *, data_root: str | Path | None = None,
           overwrite: bool = False) -> Path:
    """Write one self-contained HTML page about `runs` (run directories) to `out`; return its path.

    See `unlearnkit.report.html`. Imported on first use: matplotlib costs every other command a second.
    """
    from .html import report as write_report

    return write_report(runs, out, data_root=data_root, overwrite=overwrite)


__all__ = ["report"]
