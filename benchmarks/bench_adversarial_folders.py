"""Class forgetting on users' own photos: suite `folders` over a matrix of image folders built from CIFAR-10.

Each cell is an image folder (a subset of CIFAR-10's classes, a number of images per class, a resolution) and an
architecture; each runs `adversarial`, `random-label`, `salun` and `scrub` against retraining (suite `folders`,
`src/unlearnkit/bench/folders.py`). The matrix table gives, per cell and method, the forgotten-class test
accuracy, the retained-class test accuracy and its gap to the retrained model, the MIA-efficacy gap and the
speed-up, with a check mark where issue 21's targets all hold.

    python benchmarks/bench_adversarial_folders.py --out runs/folders                  # the whole matrix
    python benchmarks/bench_adversarial_folders.py --out runs/folders --cells small    # the CPU-sized cell(s)
    python benchmarks/bench_adversarial_folders.py --out runs/folders --cell "classes=6 per_class=500 size=64"
    python benchmarks/bench_adversarial_folders.py --list full      # the matrix's cells, one `--cell` per line

Several processes may run cells into one `--out` at once (each cell has its own folder there); a last invocation
with `--reuse-only` over every cell then trains and runs nothing and writes one `matrix.md` of what finished
(benchmarks/gpu_folders_cifar10.sh does this on a lent GPU).

CIFAR-10's image-folder copy must be under the data root (`$UNLEARNKIT_DATA/cifar10/{train,test}/<class>/`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from unlearnkit.bench import run_suite
from unlearnkit.bench.folders import DEFAULTS, cell_name, parse_cell
from unlearnkit.bench.runner import machine_description
from unlearnkit.settings import parse_pairs

# (cell settings, arch): from a few thousand images to the full CIFAR-10, 32 to 128 px, three architectures,
# one class or two. `small` is what a 2-core CPU finishes in well under an hour.
MATRIX: dict[str, list[tuple[str, str]]] = {
    "small": [("classes=6 per_class=500 test_per_class=200 size=32", "resnet18")],
    "full": [
        ("classes=6 per_class=500 test_per_class=200 size=32", "resnet18"),
        ("classes=6 per_class=500 test_per_class=200 size=64", "resnet18"),
        ("classes=6 per_class=500 test_per_class=200 size=128", "resnet18"),
        ("classes=6 per_class=500 test_per_class=200 size=32 subset=1", "vgg-small"),
        ("classes=6 per_class=500 test_per_class=200 size=32 forget=2", "preact-resnet18"),
        ("classes=10 per_class=2000 test_per_class=1000 size=32", "resnet18"),
        ("classes=10 per_class=2000 test_per_class=1000 size=64 forget=2", "preact-resnet18"),
        ("classes=10 per_class=5000 test_per_class=1000 size=32", "preact-resnet18"),
        ("classes=10 per_class=5000 test_per_class=1000 size=32", "vgg-small"),
    ],
}
TARGETS = {"forget_test_acc": 1.0, "gap TA": 1.5, "gap MIA": 5.0, "speedup": 10.0}


def passes(row: dict) -> bool | None:
    """Issue 21's targets for one method's row of a cell (None when a number is missing)."""
    vals = [row.get(k) for k in TARGETS]
    if any(v is None for v in vals):
        return None
    f, gta, gmia, speed = vals
    return f <= TARGETS["forget_test_acc"] and gta <= TARGETS["gap TA"] and gmia <= TARGETS["gap MIA"] and \
        speed >= TARGETS["speedup"]


def cell_rows(out: Path) -> dict[str, dict]:
    """{method: {column: mean}} from a suite's results.json."""
    data = json.loads((out / "results.json").read_text())
    return {s["row"]: {k: v[0] for k, v in s.items() if isinstance(v, list) and len(v) == 2}
            for s in data.get("summary", [])}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="where each cell's results go (a folder per cell) and matrix.md")
    p.add_argument("--cells", default="full", choices=sorted(MATRIX))
    p.add_argument("--cell", action="append", default=[], metavar="SETTINGS",
                   help="one cell instead of the matrix: 'classes=6 per_class=500 size=64 arch=vgg-small'")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--methods", default=None, help="only these rows, e.g. adversarial,salun")
    p.add_argument("--reuse-only", action="store_true",
                   help="train and run nothing: the table of the rows earlier invocations finished")
    p.add_argument("--list", metavar="CELLS", choices=sorted(MATRIX), default=None,
                   help="print that matrix's cells, one `--cell` argument per line, and stop")
    a = p.parse_args(argv)
    if a.list:
        print("\n".join(f"{text} arch={arch}" for text, arch in MATRIX[a.list]))
        return 0
    if not a.out:
        p.error("--out is required: e.g. --out runs/folders")
    cells = [(c, "resnet18") for c in a.cell] if a.cell else MATRIX[a.cells]
    lines = ["| cell | arch | method | forget test acc. | TA (retained) | gap TA | gap MIA | speed-up | targets |",
             "|---|---|---|---|---|---|---|---|---|"]
    for text, arch in cells:
        settings = parse_pairs(text.split())
        arch = settings.pop("arch", arch)
        name = cell_name(parse_cell({**DEFAULTS, **dict(settings)}))
        extra = {"arch": arch, **({"methods": a.methods} if a.methods else {})}
        cell_out = Path(a.out) / f"{name}-{arch}"
        if a.reuse_only and not (cell_out / "results.json").is_file() and not (cell_out / "runs").is_dir():
            lines.append(f"| {name} | {arch} | (not run) | - | - | - | - | - | - |")
            continue
        out = run_suite("folders", cell_out, seeds=a.seeds, settings={**settings, **extra}, reuse_only=a.reuse_only)
        for method, row in cell_rows(out).items():
            ok = passes(row)
            cols = [row.get("forget_test_acc"), row.get("TA (retained classes)"), row.get("gap TA"),
                    row.get("gap MIA"), row.get("speedup")]
            lines.append(f"| {name} | {arch} | {method} | " + " | ".join("-" if v is None else f"{v:.2f}" for v in cols)
                         + f" | {'-' if ok is None else 'yes' if ok else 'no'} |")
            print(lines[-1], flush=True)
    lines.append(f"\nTargets (issue 21): forgotten-class test acc. <= 1, gap TA <= 1.5, gap MIA <= 5, speed-up >= 10; "
                 f"{a.seeds} seed(s); machine: {machine_description()}")
    (Path(a.out) / "matrix.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
