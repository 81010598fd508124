"""The benchmark runner: rows x scenarios x seeds, cached originals/references, tables with mean ± std."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from unlearnkit.bench.runner import Row, Scenario, Suite, mean_std, run
from unlearnkit.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def test_runner_writes_tables_and_reuses_cache(tmp_path):
    train = {"epochs": 2, "batch_size": 64, "arch_kwargs": {"hidden": 32}}
    suite = Suite(name="t", data="digits", arch="mlp", train=train,
                  scenarios=[Scenario("class-1", {"forget_class": "1"})],
                  rows=[Row("finetune", {"epochs": 1}), Row("finetune", {"epochs": 2}, label="finetune-2ep")],
                  original_row="original")
    out = run(suite, tmp_path / "out", seeds=2, cache=tmp_path / "cache", command="test")
    res = json.loads((out / "results.json").read_text())
    assert {(r["row"], r["seed"]) for r in res["records"]} == {
        (n, s) for n in ("retrain", "original", "finetune", "finetune-2ep") for s in (0, 1)}
    # the original's row: its own forget-split metrics (recorded by the runs) against the same reference
    orig = next(r for r in res["records"] if r["row"] == "original" and r["seed"] == 0)
    run_m = json.loads((out / "runs" / "class-1" / "finetune" / "seed0" / "metrics.json").read_text())
    ref = run_m["reference"]
    expected = sum(abs(run_m["original"][k] - ref[k]) for k in ("forget_acc", "retain_acc", "test_acc",
                                                                "mia_efficacy")) / 4
    assert abs(orig["columns"]["avg gap"] - expected) < 1e-3
    assert orig["columns"]["UA"] == 100.0 - run_m["original"]["forget_acc"]
    assert orig["columns"]["seconds"] is None
    summary = {s["row"]: s for s in res["summary"]}
    ua = [r["columns"]["UA"] for r in res["records"] if r["row"] == "finetune"]
    assert summary["finetune"]["UA"] == list(mean_std(ua))
    assert summary["retrain"]["UA"][0] == 100.0  # the retrained model never predicts the forgotten class
    table = (out / "table.md").read_text()
    assert "| method | UA |" in table and "finetune-2ep" in table and "Machine:" in table and "± " in table
    assert "the 4 method runs took" in table and "read back" not in table
    rows = list(csv.reader((out / "summary.csv").open()))
    assert rows[0][:3] == ["scenario", "row", "seeds"] and len(rows) == 5
    # a second run reuses the cached originals, references and finished rows: nothing is re-trained
    cached = sorted(p.name for p in (tmp_path / "cache").iterdir())
    stamp = (out / "runs" / "class-1" / "finetune" / "seed0" / "metrics.json").stat().st_mtime
    run(suite, tmp_path / "out", seeds=2, cache=tmp_path / "cache", command="test")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == cached
    assert (out / "runs" / "class-1" / "finetune" / "seed0" / "metrics.json").stat().st_mtime == stamp
    assert "4 of them were read back from an earlier invocation" in (out / "table.md").read_text()


def test_table_names_the_command_that_made_it(monkeypatch):
    from unlearnkit.bench import runner

    monkeypatch.setattr(runner.sys, "argv", ["benchmarks/bench_unlearning.py", "--suites", "class", "--set", "a=b c"])
    assert runner._command() == "python benchmarks/bench_unlearning.py --suites class --set 'a=b c'"
    monkeypatch.setattr(runner.sys, "argv", ["/usr/bin/unlearnkit", "bench", "class"])
    assert runner._command() == "unlearnkit bench class"


def test_one_process_per_seed_then_a_read_back_table(tmp_path):
    """`only_seeds` runs one seed (as one of several processes on a GPU would); `reuse_only` trains and runs
    nothing, tabulates what finished, and says which rows lack seeds instead of running them."""
    train = {"epochs": 1, "batch_size": 64, "arch_kwargs": {"hidden": 16}}
    suite = Suite(name="t", data="digits", arch="mlp", train=train,
                  scenarios=[Scenario("class-1", {"forget_class": "1"})], rows=[Row("finetune", {"epochs": 1})])
    out, cache = tmp_path / "out", tmp_path / "cache"
    run(suite, out, seeds=3, cache=cache, command="test", only_seeds=[1])
    assert sorted(p.name for p in (out / "runs" / "class-1" / "finetune").iterdir()) == ["seed1"]
    models = [p for p in cache.iterdir() if not p.name.startswith(".")]  # not the hidden locks of `made_once`
    assert [p.name[-3:] for p in models if "retrain" not in p.name] == ["-s1"]
    cached = sorted(p.name for p in cache.iterdir())
    run(suite, out, seeds=2, cache=cache, command="merge", reuse_only=True, machine="elsewhere")
    assert sorted(p.name for p in cache.iterdir()) == cached  # seed 0 was neither trained nor run
    assert not (out / "runs" / "class-1" / "finetune" / "seed0").exists()
    res = json.loads((out / "results.json").read_text())
    assert {(r["row"], r["seed"]) for r in res["records"]} == {("retrain", 1), ("finetune", 1)}
    assert res["header"]["machine"] == "elsewhere" and res["header"]["missing_rows"] == 1
    table = (out / "table.md").read_text()
    assert "| method | seeds | UA |" in table and "| finetune | 1 |" in table
    assert "1 method run(s) of the 2 seed(s) had not finished" in table and "Machine: elsewhere" in table


def test_parallel_backdoor_script_reads_every_process_back(tmp_path):
    """benchmarks/bench_backdoor_parallel.sh: a process per (attack, seed) and a clean model per seed, then one
    table; a row that did not finish would be counted, never run by the read-back (here all finish)."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_backdoor_parallel.sh"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    out, cache = tmp_path / "out", tmp_path / "cache"
    proc = subprocess.run([bash, str(script), str(out), str(cache), "0", "badnets", "quick=true", "clean=72",
                           "small=40", "methods=finetune"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    assert {(r["scenario"], r["row"], r["seed"]) for r in res["records"]} == {("badnets", "finetune", 0)}
    assert res["header"]["missing_rows"] == 0 and "--reuse-only" in res["header"]["command"]
    cost = (out / "attack_cost.md").read_text()
    assert "| badnets |" in cost and "digits / cnn-small, 1 seed(s)" in cost
    assert sorted(p.name for p in (out / "logs").iterdir()) == ["badnets-s0.log", "clean-s0.log"]


def _fake_cifar_copy(root, per_class: int = 8) -> None:
    """CIFAR-10's image-folder layout with a few tiny JPEGs per class (a colour per class)."""
    import numpy as np
    from PIL import Image

    from unlearnkit.data.datasets import CIFAR10_CLASSES

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for ci, name in enumerate(CIFAR10_CLASSES):
            d = root / "cifar10" / split / name
            d.mkdir(parents=True)
            for i in range(per_class):
                img = np.full((16, 16, 3), 25 * ci, dtype=np.uint8) + rng.integers(0, 20, (16, 16, 3), dtype=np.uint8)
                Image.fromarray(img).save(d / f"{i:04d}.jpg")


def test_folders_suite_builds_its_image_folder_once_and_runs_a_cell(tmp_path, monkeypatch):
    """Suite `folders` (issue 21): a seeded subset of CIFAR-10's copy becomes an image folder, once; bad cell
    settings are one-line errors; the matrix script runs a cell against retraining and checks the targets."""
    import importlib.util

    from unlearnkit.bench import build_suite
    from unlearnkit.bench.folders import pick_classes

    monkeypatch.setenv("UNLEARNKIT_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("UNLEARNKIT_BENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(UserError, match="CIFAR-10's image-folder copy"):
        build_suite("folders", {"classes": "3"})
    _fake_cifar_copy(tmp_path / "data")
    for bad, msg in (({"classes": "11"}, "2..10"), ({"forget": "3", "classes": "3"}, "forget"),
                     ({"size": "abc"}, "whole number"), ({"colour": "1"}, "no setting")):
        with pytest.raises(UserError, match=msg):
            build_suite("folders", bad)
    cell = {"classes": "3", "per_class": "6", "test_per_class": "3", "size": "16"}
    suite = build_suite("folders", cell)
    folder = tmp_path / "cache" / "folders" / "c3-n6-t3-s16-f1-x0"
    assert suite.data == f"imagefolder:{folder}" and suite.train["image_size"] == 16
    names = pick_classes({"classes": 3, "subset": 0})
    assert sorted(p.name for p in (folder / "train").iterdir()) == sorted(names)
    assert all(len(list((folder / "train" / n).iterdir())) == 6 for n in names)
    assert suite.scenarios[0].request == {"forget_class": names[0]}
    stamp = (folder / "train" / names[0]).stat().st_mtime_ns
    build_suite("folders", cell)  # built once: the second call reuses it
    assert (folder / "train" / names[0]).stat().st_mtime_ns == stamp
    spec = importlib.util.spec_from_file_location("baf", ROOT / "benchmarks" / "bench_adversarial_folders.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "out"
    assert mod.main(["--out", str(out), "--methods", "adversarial", "--cell",
                     "classes=3 per_class=6 test_per_class=3 size=16 arch=cnn-small epochs=2"]) == 0
    table = (out / "matrix.md").read_text()
    assert "| c3-n6-t3-s16-f1-x0 | cnn-small | adversarial |" in table and "Targets (issue 21)" in table
    # the GPU script's last step: read back what finished, list a cell that never ran, train nothing
    assert mod.main(["--out", str(out), "--reuse-only", "--cell",
                     "classes=3 per_class=6 test_per_class=3 size=16 arch=cnn-small epochs=2",
                     "--cell", "classes=3 per_class=6 test_per_class=3 size=24 arch=cnn-small epochs=2"]) == 0
    again = (out / "matrix.md").read_text()
    assert "| c3-n6-t3-s16-f1-x0 | cnn-small | adversarial |" in again
    assert "| c3-n6-t3-s24-f1-x0 | cnn-small | (not run) |" in again
    assert not (out / "c3-n6-t3-s24-f1-x0-cnn-small").exists()
    assert mod.main(["--list", "full"]) == 0 and len(mod.MATRIX["full"]) == 9


def test_two_processes_asking_for_the_same_cached_original_train_it_once(tmp_path):
    """The parallel backdoor script's clean-only process and an attack process both asked for the clean model; both
    trained it into the same `.partial` folder and the slower one failed (`FileNotFoundError`) when the other
    finished. Now the second waits for the first and reads its run."""
    code = ("import sys; from pathlib import Path; from unlearnkit.bench.runner import cached_original; "
            "p = cached_original(Path(sys.argv[1]), 'digits', 'cnn-small', {'epochs': 3, 'batch_size': 64}, 0); "
            "print(p)")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-1500:] for o in outs]
    assert outs[0][0] == outs[1][0] and (Path(outs[0][0].strip()) / "metrics.json").is_file()
    assert sum("training original" in o[1] for o in outs) == 1  # one trained it, the other waited and reused it


def test_two_processes_building_the_same_cell_folder_both_get_it_whole(tmp_path):
    """benchmarks/gpu_folders_cifar10.sh starts one process per method of a cell at once; each builds the cell's
    image folder. Without a lock they built into the same `.building` folder and all but one failed
    (`FileExistsError`). Both start at the same instant here; both must return the complete folder."""
    import time

    from unlearnkit.data.datasets import CIFAR10_CLASSES

    source = tmp_path / "cifar10"
    for split in ("train", "test"):
        for name in CIFAR10_CLASSES:
            (source / split / name).mkdir(parents=True)
            for i in range(300):  # empty files: building only links them, and many make the race certain
                (source / split / name / f"{i:04d}.jpg").touch()
    code = ("import sys, time; from pathlib import Path; from unlearnkit.bench.folders import build_folder; "
            "cell = {'classes': 4, 'per_class': 250, 'test_per_class': 100, 'size': 16, 'forget': 1, 'subset': 0}; "
            "time.sleep(max(0.0, float(sys.argv[1]) - time.time())); "
            "print(build_folder(cell, Path(sys.argv[2]), Path(sys.argv[3])))")
    start = str(time.time() + 8)
    dest = tmp_path / "cache" / "folders" / "cell"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", code, start, str(source), str(dest)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-1500:] for o in outs]
    assert (dest / ".complete").is_file()
    counts = sorted(len(list(d.iterdir())) for split in ("train", "test") for d in (dest / split).iterdir())
    assert counts == [100] * 4 + [250] * 4
