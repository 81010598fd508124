"""A suite's results: every row's metrics flattened, mean ± std over seeds, the markdown table, and the files a
bench run writes (results.json, results.csv, table.md), each written atomically.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engine.atomic import write_atomic

if TYPE_CHECKING:
    from .runner import Suite


def machine_description() -> str:
    """A benchmark table's machine, e.g. '2-core AMD EPYC, cpu, torch 2.x': the label runs record in meta.json
    (`engine.device.machine`, the cores this process may use) with torch's version, so a table and its runs agree."""
    import torch

    from ..engine.device import machine

    return f"{machine()}, torch {torch.__version__}"



def flatten(metrics: dict, prefix: str = "") -> dict[str, float]:
    """Scalar metrics as 'a.b' keys (lists and matrices are left out)."""
    out: dict[str, float] = {}
    for k, v in metrics.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"{prefix}{k}"] = v
    return out


def mean_std(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def summarise(suite: Suite, records: list[dict]) -> list[dict]:
    """Mean ± std over seeds for each (scenario, row) and column."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        groups.setdefault((r["scenario"], r["row"]), []).append(r)
    out = []
    for (sc, row), rs in groups.items():
        entry: dict[str, Any] = {"scenario": sc, "row": row, "seeds": len(rs)}
        for c in suite.columns:
            vals = [r["columns"][c.label] for r in rs if r["columns"].get(c.label) is not None]
            if vals:
                entry[c.label] = mean_std(vals)
        out.append(entry)
    return out


def markdown_table(suite: Suite, summary: list[dict], seeds: int | None = None) -> str:
    """One line per (scenario, row); a `seeds` column only when some row has fewer seeds than `seeds`."""
    labels = [c.label for c in suite.columns]
    multi = len({s["scenario"] for s in summary}) > 1
    counts = seeds is not None and any(s["seeds"] < seeds for s in summary)
    head = (["scenario"] if multi else []) + ["method"] + (["seeds"] if counts else []) + labels
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summary:
        cells = [s["scenario"]] if multi else []
        cells.append(s["row"])
        if counts:
            cells.append(str(s["seeds"]))
        for lab in labels:
            if lab not in s:
                cells.append("")
                continue
            mean, std = s[lab]
            fmt = ".2f" if abs(mean) < 1000 else ".0f"
            cells.append(f"{mean:{fmt}} ± {std:{fmt}}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(suite: Suite, out: Path, records: list[dict], seeds: int, command: str, seconds: float,
                  reused: int = 0, machine: str | None = None, missing: int = 0) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(suite, records)
    machine = machine or machine_description()
    header = {"suite": suite.name, "data": suite.data, "arch": suite.arch, "train": suite.train, "seeds": seeds,
              "scenarios": [asdict(s) for s in suite.scenarios],
              "rows": [asdict(r) for r in suite.rows], "machine": machine, "command": command, "missing_rows": missing,
              "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "wall_seconds": round(seconds, 1)}
    write_atomic(out / "results.json", json.dumps({"header": header, "records": records,
                                              "summary": [{k: (list(v) if isinstance(v, tuple) else v)
                                                           for k, v in s.items()} for s in summary]}, indent=2))
    keys = sorted({k for r in records for k in r["metrics"]})
    _atomic_csv(out / "results.csv", ["scenario", "row", "method", "seed"] + keys,
                [[r["scenario"], r["row"], r["method"], r["seed"]] + [r["metrics"].get(k, "") for k in keys]
                 for r in records])
    labels = [c.label for c in suite.columns]
    _atomic_csv(out / "summary.csv", ["scenario", "row", "seeds"] + [f"{lab} {s}" for lab in labels
                                                                     for s in ("mean", "std")],
                [[s["scenario"], s["row"], s["seeds"]] + [v for lab in labels
                                                          for v in (s.get(lab) or ("", ""))] for s in summary])
    md = (f"### Suite `{suite.name}`: {suite.data}, {suite.arch}, mean ± std over {seeds} seed(s)\n\n"
          f"{suite.notes}\n\n" if suite.notes else
          f"### Suite `{suite.name}`: {suite.data}, {suite.arch}, mean ± std over {seeds} seed(s)\n\n")
    md += markdown_table(suite, summary, seeds)
    md += (f"\n\nCommand: `{command}`  \nMachine: {header['machine']}  \nDate: {header['date']}; "
           f"this invocation took {seconds / 60:.1f} min ({_reuse_note(suite, records, reused)}).\n")
    if missing:
        md += (f"{missing} method run(s) of the {seeds} seed(s) had not finished in any earlier invocation and are "
               f"left out: the `seeds` column gives each row's count.\n")
    write_atomic(out / "table.md", md)
    return out


def _reuse_note(suite: Suite, records: list[dict], reused: int) -> str:
    """What the invocation's wall time covers: rows finished by an earlier invocation are read back, not re-run;
    the summed run time of every row is stated so that the table's total cost is on record either way."""
    runs = [r for r in records if r["row"] not in (suite.reference_row, suite.original_row)]
    total = sum(r["metrics"].get("seconds", 0.0) for r in runs)
    note = f"the {len(runs)} method runs took {total / 60:.1f} min in all, including their validation searches"
    if reused:
        note += f"; {reused} of them were read back from an earlier invocation into the same output"
    return note + "; cached originals and references not re-run"


def _atomic_csv(path: Path, header: list[str], rows: list[list]) -> None:
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    write_atomic(path, buf.getvalue())
