"""Suite `hyperforget`: samples of a HyperForget next to per-request methods, every class of Fashion-MNIST.

`unlearnkit bench hyperforget --out DIR --seeds 1` trains (once per original model, cached beside the
originals) a hypernetwork with `unlearnkit hyperforget train`, then for every class scenario runs `samples`
rows `hyperforget #i` (sample i of the request, through `unlearnkit forget --method hyperforget`) and the
per-request baselines that are installed, against the cached retrained reference. The table shows each
sample's UA/RA/TA/MIA and the per-request seconds; the spread over the sample rows is the samples' spread.
The hypernetwork's one-time cost is in its meta.json (`seconds.total`); benchmarks/bench_hyperforget.py
turns all of it into the done-when numbers (alignment, spread, break-even), evaluating samples on frozen
features instead of a full forward pass per row.

The original model is the one every Fashion-MNIST suite shares (`FASHION_MNIST_RESNET18`), and the baseline
rows are those of the `class` suite (tuned on the validation split, CPU budgets), so all share the cache.

Settings: samples=N (default 10), variant=dihyfo-1|dihyfo-2, baselines=a,b (default: the `class` suite's
rows; `baselines=` for none), and any `hyperforget train` setting (steps=..., rank=...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..engine.progress import say
from ..methods.base import METHODS
from . import register_suite
from .runner import FASHION_MNIST_RESNET18, UNLEARNING_COLUMNS, Row, Scenario, Suite, _hash, gap
from .unlearning import rows as class_rows


def cached_hypernet(original: Path, seed: int, cache: Path, variant: str = "dihyfo-1", **settings: Any) -> dict:
    """Train (once) a HyperForget for `original`; later calls, and interrupted ones, reuse or resume it."""
    from ..hyperforget import train_hypernet

    path = cache / f"{original.name}-hyperforget-{_hash({'variant': variant, 'settings': settings})}"
    if not (path / "meta.json").is_file():
        say(f"bench: training hypernetwork {path.name}")
        train_hypernet(original, path, variant=variant, settings=settings, seed=seed, resume=True,
                       overwrite=path.exists())
    return {"hypernet": str(path)}


@register_suite("hyperforget")
def hyperforget_suite(settings: dict) -> Suite:
    s = dict(settings)
    samples = int(s.pop("samples", 10))
    variant = str(s.pop("variant", "dihyfo-1"))
    baselines = class_rows("class")
    if "baselines" in s:
        wanted = str(s.pop("baselines")).replace(";", ",").split(",")
        baselines = [r for r in baselines if r.method in wanted or r.name in wanted]
    prepare = {"fn": "unlearnkit.bench.hyperforget:cached_hypernet", "variant": variant, **s}
    rows = [Row("hyperforget", {"sample": i}, label=f"hyperforget #{i}", prepare=prepare) for i in range(samples)]
    rows += [r for r in baselines if r.method in METHODS]
    return Suite(name="hyperforget", data="fashion-mnist", arch="resnet18", train=dict(FASHION_MNIST_RESNET18),
                 scenarios=[Scenario(f"class-{c}", {"forget_class": str(c)}) for c in range(10)], rows=rows,
                 columns=[*UNLEARNING_COLUMNS[:5], gap("test_acc", "gap TA"), *UNLEARNING_COLUMNS[5:]],
                 notes="HyperForget rows are samples of one hypernetwork (trained once per original model; its "
                       "one-time cost is not in `seconds`). See benchmarks/bench_hyperforget.py for alignment, "
                       "spread and break-even.")
