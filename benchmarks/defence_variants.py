"""One backdoored run, one defence, several settings side by side (e.g. I-BAU's notebook against its defense.py).

    python benchmarks/defence_variants.py RUN --method ibau --clean-size 2500 --out DIR \\
        --variant "default:" \\
        --variant "notebook: lr=1e-3 optimizer=adam batch_size=100 rounds=1 l2_ball=10 space=pixel" \\
        --variant "defense.py: lr=1e-3 optimizer=adam batch_size=100 space=pixel"

Each variant is `LABEL: key=value ...` (the method's `--set` settings; nothing after the colon = the defaults).
Every variant runs through `unlearnkit forget --backdoor` (guarded, unless `--no-guard`) into DIR/<label>;
a finished variant is read back, not re-run, and an interrupted one resumes from its checkpoints. The table
gives clean accuracy and ASR before and after, the drop in clean accuracy, the guard's held-out accuracy per
checkpoint, whether the guard stepped in, the verdict and the seconds. Numbers are test-set metrics of the
pipeline; the settings were not chosen on them.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from unlearnkit.bench.runner import machine_description
from unlearnkit.pipeline import forget


def parse_variant(text: str) -> tuple[str, list[str]]:
    label, _, rest = text.partition(":")
    if not label.strip() or not re.fullmatch(r"[A-Za-z0-9_.+-]+", label.strip()):
        raise SystemExit(f"--variant {text!r}: write LABEL: key=value ... (LABEL in letters, digits, . _ + -)")
    return label.strip(), rest.split()


def guard_note(guard: dict) -> str:
    """What the guard did ("restored KEPT", "stopped early", both, or "-"): shared with `probe_variants.py`."""
    acted = ("restored " + str(guard.get("kept")) if guard.get("restored") else "") + \
        (" stopped early" if guard.get("stopped_early") else "")
    return acted.strip() or "-"


def row(label: str, settings: list[str], m: dict) -> str:
    o = m.get("original", {})
    figures = next((v for v in m.values() if isinstance(v, dict) and "guard" in v), {})
    guard = figures.get("guard") or {}
    curve = " ".join(f"{p['clean_acc']:.1f}" for p in guard.get("curve", []))
    return (f"| {label} | {' '.join(settings) or '(defaults)'} | {o.get('clean_acc', float('nan')):.2f} | "
            f"{o.get('asr', float('nan')):.2f} | {m['clean_acc']:.2f} | {m['asr']:.2f} | "
            f"{o.get('clean_acc', 0) - m['clean_acc']:.2f} | {curve} | {guard_note(guard)} | "
            f"{m['verdict']['status']} | {m['seconds']:.1f} |")


def arguments(description: str) -> argparse.ArgumentParser:
    """RUN, --method, --clean-size, --variant (repeated), --out, --seed: shared with `probe_variants.py`."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("run")
    ap.add_argument("--method", required=True)
    ap.add_argument("--clean-size", type=int, default=2500)
    ap.add_argument("--variant", action="append", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    return ap


def main() -> None:
    ap = arguments(__doc__.splitlines()[0])
    ap.add_argument("--no-guard", action="store_true")
    a = ap.parse_args()
    variants = [parse_variant(v) for v in a.variant]
    lines = [f"`{a.method}` on {a.run}, {a.clean_size} clean images, seed {a.seed}"
             f"{', unguarded' if a.no_guard else ''}; machine: {machine_description()}", "",
             "| variant | settings | clean before | ASR before | clean after | ASR after | drop | guard curve "
             "(held-out clean acc.) | guard | verdict | seconds |", "|" + "---|" * 11]
    for label, settings in variants:
        d = Path(a.out) / label
        if not (d / "metrics.json").is_file():
            partial = d.parent / f".{d.name}.partial"  # an interrupted variant resumes from its checkpoints
            forget(a.run, a.method, d, backdoor=True, clean_size=a.clean_size, settings=settings, seed=a.seed,
                   overwrite=d.exists(), guard=not a.no_guard, resume=partial.is_dir())
        lines.append(row(label, settings, json.loads((d / "metrics.json").read_text())))
        print(lines[-1], flush=True)
    (Path(a.out) / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
