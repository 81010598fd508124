"""The benchmark runner: methods (rows) x scenarios x seeds, against a retrained reference.

A suite is declared as data (`Suite`); the runner trains each original model once per seed, retrains the
reference once per seed and scenario (both cached on disk, keyed by their full recipe, so suites that share a
setting share the cost), runs every row through `pipeline.forget`, and writes:

- `results.json` / `results.csv`: one record per (scenario, row, seed) with every metric,
- `summary.csv` and `table.md`: mean ± std over seeds per column, with machine, command and date.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine.progress import say
from ..errors import UserError
from ..metrics.registry import metric
from .results import flatten, write_results
from .results import machine_description as machine_description  # re-exported: the benchmark scripts use it
from .results import mean_std as mean_std


@dataclass
class Row:
    """One method (with settings) in the table."""

    method: str
    settings: dict[str, Any] = field(default_factory=dict)
    label: str | None = None
    request: dict[str, Any] = field(default_factory=dict)  # per-row request overrides, e.g. clean_size
    # {"fn": "module:function", **options}: fn(original, seed, cache, **options) returns extra settings, for rows
    # that need something made once per original model (e.g. a hypernetwork: bench/hyperforget.py)
    prepare: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.label or self.method


@dataclass
class Scenario:
    """A forget request (kwargs of `pipeline.forget`) on an original trained with `train` extras (e.g. poison)."""

    name: str
    request: dict[str, Any]
    train: dict[str, Any] = field(default_factory=dict)
    reference: bool = True


@dataclass
class Column:
    """A table column: a label and how to read it from one run's metrics.json."""

    label: str
    get: Callable[[dict], float | None]


def key(k: str) -> Column:
    """Column reading a registered metric (`metrics/registry.py`); headed by its key, as the benchmark tables
    in BENCHMARKS.md are. An unregistered key is a bug in a suite: it would read nothing, every row blank."""
    metric(k)
    return Column(k, lambda m: m.get(k))


def gap(k: str, label: str | None = None) -> Column:
    return Column(label or f"gap {k}", lambda m: m.get("gap", {}).get(k))


# The recipe of the Fashion-MNIST / resnet18 originals every suite shares (so they share the cached models):
# SGD momentum 0.9, cosine schedule, weight decay 5e-4, flip augmentation, 6 epochs (about 91-92% test accuracy).
FASHION_MNIST_RESNET18: dict[str, Any] = {"epochs": 6, "batch_size": 128, "lr": 0.05}

UA = Column("UA", lambda m: None if "forget_acc" not in m else 100.0 - m["forget_acc"])
RA = Column("RA", lambda m: m.get("retain_acc"))
TA = Column("TA", lambda m: m.get("test_acc"))
UNLEARNING_COLUMNS = [UA, RA, TA, key("forget_test_acc"), key("mia_efficacy"), gap("avg", "avg gap"),
                      key("seconds"), key("speedup")]


@dataclass
class Suite:
    """What to run: data, model, training recipe, scenarios, rows and the columns of the table."""

    name: str
    data: str
    arch: str
    train: dict[str, Any]
    scenarios: list[Scenario]
    rows: list[Row]
    columns: list[Column] = field(default_factory=lambda: list(UNLEARNING_COLUMNS))
    reference_row: str | None = "retrain"  # label of the reference's own row in the table (None: no such row)
    # label of a row for the original model itself, compared with the reference like any method (None: no such
    # row): the gap that an unlearning method must close, and the score of doing nothing
    original_row: str | None = None
    notes: str = ""


COMMON_SETTINGS = ("quick", "data", "arch", "epochs", "methods", "scenarios", "cache")


def setting(settings: dict[str, Any], key: str, default: float, suite: str, kind: type = int,
            lo: float = 1, hi: float = 1_000_000) -> Any:
    """Pop a numeric suite setting, checked: a value that is not a number of `kind`, not finite or outside
    [lo, hi] is a one-line error naming the suite, the key and an example (e.g. `--set epochs=abc`)."""
    raw = settings.pop(key, default)
    try:
        value = kind(raw) if kind is float else int(str(raw))
    except (TypeError, ValueError) as err:
        what = "a whole number" if kind is int else "a number"
        raise UserError(f"suite {suite!r}: {key}={raw} is not {what}: e.g. {key}={default}") from err
    if not (value == value and lo <= value <= hi):
        raise UserError(f"suite {suite!r}: {key}={raw} is out of range: give {lo:g} to {hi:g}, e.g. {key}={default}")
    return value


def no_other_settings(settings: dict[str, Any], suite: str, known: str) -> None:
    """Refuse a setting the suite does not have (a typo would otherwise be silently ignored)."""
    if settings:
        raise UserError(f"suite {suite!r} has no setting {sorted(settings)[0]!r}: use {known}or the common quick=, "
                        f"data=, arch=, epochs=, methods=, scenarios=, cache=")


def apply_common_settings(suite: Suite, settings: dict[str, Any]) -> Suite:
    """Settings every suite accepts: quick=true (digits, cnn-small, few epochs: for tests), data=, arch=,
    epochs=, methods=a,b (keep only these rows), scenarios=a,b; cache=DIR is read by `run_suite`."""
    s = dict(settings)
    if str(s.pop("quick", "false")).lower() in ("1", "true", "yes"):
        suite.data, suite.arch = "digits", "cnn-small"
        suite.train = {**suite.train, "epochs": 6, "batch_size": 64, "lr": 0.05}
    suite.data = s.pop("data", suite.data)
    suite.arch = s.pop("arch", suite.arch)
    if "epochs" in s:
        suite.train = {**suite.train, "epochs": setting(s, "epochs", 6, suite.name, hi=100_000)}
    if "methods" in s:
        keep = str(s.pop("methods")).replace(";", ",").split(",")
        suite.rows = [r for r in suite.rows if r.name in keep or r.method in keep]
        if not suite.rows:
            raise UserError(f"methods={','.join(keep)} selects no row of suite {suite.name!r}")
    if "scenarios" in s:
        keep = str(s.pop("scenarios")).split(",")
        suite.scenarios = [sc for sc in suite.scenarios if sc.name in keep]
        if not suite.scenarios:
            raise UserError(f"scenarios={','.join(keep)} selects no scenario of suite {suite.name!r}")
    return suite


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


def default_cache() -> Path:
    return Path(os.environ.get("UNLEARNKIT_BENCH_CACHE", Path.home() / ".cache" / "unlearnkit" / "bench"))


def original_path(cache: Path, data: str, arch: str, train: dict, seed: int) -> Path:
    """Where the cached original for this recipe and seed lives (named by a hash of the full recipe)."""
    recipe = {"data": data, "arch": arch, **train, "seed": seed}
    return cache / f"{data.replace(':', '_').replace('/', '_')}-{arch}-{_hash(recipe)}-s{seed}"


@contextmanager
def made_once(path: Path) -> Iterator[None]:
    """Hold an exclusive lock named after the cached run `path` while it is checked and made.

    Why: parallel bench processes can need the same cached model at once (benchmarks/bench_backdoor_parallel.sh
    trains each seed's clean model in one process while the attack processes ask for it to price the attacks);
    without the lock both trained it into the same `.partial` folder and one failed when the other finished. The
    second now waits, then finds the finished run."""
    import fcntl  # POSIX; imported here so that the rest of the bench runner imports anywhere

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.bench-lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def cached_original(cache: Path, data: str, arch: str, train: dict, seed: int) -> Path:
    """Train (once) the original model for this recipe and seed; later calls reuse it."""
    from ..pipeline import train as train_fn

    path = original_path(cache, data, arch, train, seed)
    if (path / "metrics.json").is_file():
        return path
    with made_once(path):
        if not (path / "metrics.json").is_file():
            say(f"bench: training original {path.name}")
            train_fn(data, arch, path, seed=seed, overwrite=path.exists(), resume=True, **train)
    return path


def reference_path(original: Path, request: dict) -> Path:
    """Where the cached reference of `original` for this forget request lives (beside the original)."""
    return original.parent / f"{original.name}-retrain-{_hash(request)}"


def cached_reference(cache: Path, original: Path, request: dict, seed: int) -> Path:
    """Retrain (once) the reference without the forget set of `request`; reuse it afterwards."""
    from ..pipeline import forget

    path = reference_path(original, request)
    if (path / "metrics.json").is_file():
        return path
    with made_once(path):
        if not (path / "metrics.json").is_file():
            say(f"bench: retraining reference {path.name}")
            forget(original, "retrain", path, seed=seed, overwrite=path.exists(), resume=True, **request)
    return path


def run(suite: Suite, out: Path, seeds: int = 3, cache: Path | None = None, overwrite: bool = False,
        command: str | None = None, only_seeds: list[int] | None = None, reuse_only: bool = False,
        machine: str | None = None) -> Path:
    """Run `suite` and write its results under `out` (finished rows are reused when re-run into the same out).

    `only_seeds` runs those seeds instead of 0..seeds-1: several processes, one per seed (or per scenario with
    `scenarios=`), can then share one GPU and one `out`, and a last invocation over every seed reads their rows
    back into one table. `reuse_only` makes that last invocation train and run nothing: rows (and originals)
    that no earlier invocation finished are left out of the table, which then gives each row's seed count.
    `machine` names where the rows were run when they are read back elsewhere (default: this machine)."""
    from ..pipeline import forget

    if seeds < 1:
        raise UserError(f"--seeds {seeds} must be at least 1")
    if only_seeds is not None and (not only_seeds or min(only_seeds) < 0):
        raise UserError(f"--only-seeds {only_seeds} must name seeds >= 0, e.g. --only-seeds 1,2")
    if out.exists() and not out.is_dir():
        raise UserError(f"output {out} exists and is not a directory: choose another --out")
    cache = Path(cache) if cache else default_cache()
    records: list[dict] = []
    reused = 0
    t_start = time.perf_counter()
    seed_list = list(only_seeds) if only_seeds is not None else list(range(seeds))
    missing = 0
    for seed in seed_list:
        for sc in suite.scenarios:
            recipe = {**suite.train, **sc.train}
            if reuse_only:
                original = original_path(cache, suite.data, suite.arch, recipe, seed)
                reference = reference_path(original, sc.request) if sc.reference else None
                if not all((p / "metrics.json").is_file() for p in (original, reference) if p is not None):
                    missing += len(suite.rows)
                    continue
            else:
                original = cached_original(cache, suite.data, suite.arch, recipe, seed)
                reference = cached_reference(cache, original, sc.request, seed) if sc.reference else None
            ref_metrics = json.loads((reference / "metrics.json").read_text()) if reference is not None else None
            if reference is not None and suite.reference_row:
                records.append(_record(suite, sc, suite.reference_row, "retrain", seed, ref_metrics, reference))
            rows: list[dict] = []
            original_metrics: dict | None = None  # as the runs of this seed recorded them, on this split
            for row in suite.rows:
                d = out / "runs" / sc.name / row.name.replace(" ", "_").replace("/", "_") / f"seed{seed}"
                if not overwrite and (d / "metrics.json").is_file():
                    reused += 1
                elif reuse_only:
                    missing += 1
                    continue
                else:
                    say(f"bench {suite.name}: {sc.name} / {row.name} / seed {seed}")
                    settings = {**row.settings, **prepared(row, original, seed, cache)}
                    forget(original, row.method, d, seed=seed, settings=settings, reference=reference,
                           overwrite=overwrite or d.exists(), resume=True, **{**sc.request, **row.request})
                m = json.loads((d / "metrics.json").read_text())
                rows.append(_record(suite, sc, row.name, row.method, seed, m, d))
                original_metrics = original_metrics or m.get("original")
            records += _original_record(suite, sc, seed, original_metrics, ref_metrics, original) + rows
    return write_results(suite, out, records, len(seed_list), command or _command(), time.perf_counter() - t_start,
                         reused, machine=machine, missing=missing)


def prepared(row: Row, original: Path, seed: int, cache: Path) -> dict[str, Any]:
    """The extra settings a row's `prepare` hook makes for this original (cached by the hook itself)."""
    if not row.prepare:
        return {}
    import importlib

    options = dict(row.prepare)
    module, _, name = str(options.pop("fn")).partition(":")
    return getattr(importlib.import_module(module), name)(original, seed, cache, **options)


def _original_record(suite: Suite, sc: Scenario, seed: int, found: dict | None, ref: dict | None,
                     original: Path) -> list[dict]:
    """The original model's row: its metrics on this scenario's split (`found`, as the seed's runs recorded
    them), compared with the reference's metrics `ref`; no seconds, since nothing was run."""
    if not suite.original_row or found is None or ref is None:
        return []
    from ..engine.evaluate import compare

    m = compare({k: v for k, v in found.items() if k != "seconds"}, ref)
    return [_record(suite, sc, suite.original_row, "original", seed, m, original)]


def _record(suite: Suite, sc: Scenario, row: str, method: str, seed: int, m: dict, path: Path) -> dict:
    cols = {c.label: c.get(m) for c in suite.columns}
    return {"suite": suite.name, "scenario": sc.name, "row": row, "method": method, "seed": seed,
            "run": str(path), "columns": cols, "metrics": flatten({k: v for k, v in m.items()
                                                                  if k not in ("per_class_acc",)})}


def _command() -> str:
    """The command line that made the table: `python benchmarks/X.py ...` for a script, else `unlearnkit ...`."""
    if not sys.argv:
        return "unlearnkit bench"
    args = " ".join(shlex.quote(a) for a in sys.argv[1:])
    prog = f"python {sys.argv[0]}" if sys.argv[0].endswith(".py") else "unlearnkit"
    return f"{prog} {args}"
