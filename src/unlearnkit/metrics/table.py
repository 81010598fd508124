"""Plain-text table of a metrics.json for the terminal and log.txt (in `metrics/` so that the engine, which
writes log.txt, needs nothing from the report package)."""

from __future__ import annotations

from .registry import ordered
from .verdict import ratio


def _keys() -> list[tuple[str, str]]:
    """The rows: every table metric in percent, and seconds (DER and JS divergence go on the line below)."""
    return [(m.key, m.label) for m in ordered() if m.table and (m.percent or m.key == "seconds")]


def summary_table(m: dict, name: str) -> str:
    """Rows of before (original) / this run / reference / gap for the keys present."""
    orig, ref, gap = m.get("original", {}), m.get("reference", {}), m.get("gap", {})
    cols = [("before", orig), (name, m), ("retrain", ref), ("gap", gap)]
    cols = [(n, d) for n, d in cols if d]
    head = f"{'':31s}" + "".join(f"{n:>14s}" for n, _ in cols)
    lines = [head, "-" * len(head)]
    for key, label in _keys():
        if not any(key in d for _, d in cols):
            continue
        cells = "".join(f"{d[key]:>14.2f}" if isinstance(d.get(key), (int, float)) else f"{'':>14s}"
                        for _, d in cols)
        lines.append(f"{label:31s}{cells}")
    extras = []
    if "avg" in gap:
        extras.append(f"average gap {gap['avg']:.2f}")
    if "speedup" in m:
        extras.append(f"speed-up over retrain {ratio(m['speedup'])}x")
    elif "speedup_over_training" in m:
        extras.append(f"speed-up over training the original {ratio(m['speedup_over_training'])}x")
    if "der" in m:
        extras.append(f"DER {m['der']:.3f}")
    if extras:
        lines.append("; ".join(extras))
    return "\n".join(lines)
