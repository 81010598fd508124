"""Every backdoor defence runs end to end on a backdoored digits model, from Python and the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from unlearnkit.cli import main
from unlearnkit.errors import UserError
from unlearnkit.methods.base import METHODS, PartNotAllowed
from unlearnkit.pipeline import evaluate, forget, train

TINY = {
    "finetune": {"epochs": 2},
    "fine-pruning": {"epochs": 2},
    "nad": {"teacher_epochs": 1, "epochs": 2},
    "anp": {"iterations": 20},
    "ibau": {"rounds": 2},
}


@pytest.fixture(scope="module")
def backdoored(tmp_path_factory):
    out = tmp_path_factory.mktemp("bd") / "badnets"
    return train("digits", "cnn-small", out, epochs=10, batch_size=64, lr=0.05, poison="badnets", target=0,
                 poison_ratio=0.1)


def _files(run):
    return {p.name: p.read_bytes() for p in run.iterdir()}


@pytest.mark.parametrize("method", sorted(TINY))
def test_defence_runs_and_reports_before_after(method, backdoored, tmp_path):
    before_files = _files(backdoored)
    out = forget(backdoored, method, tmp_path / method, backdoor=True, clean_size=100, settings=TINY[method])
    m = json.loads((out / "metrics.json").read_text())
    meta = json.loads((out / "meta.json").read_text())
    for key in ("clean_acc", "asr", "robust_acc", "der", "seconds"):
        assert key in m
    assert m["original"]["asr"] >= 90  # the backdoor was planted
    assert 0.0 <= m["der"] <= 1.0
    assert meta["scenario"] == "backdoor" and meta["clean_size"] == 100 and meta["method"]["name"] == method
    assert meta["poison"]["attack"] == "badnets"
    assert _files(backdoored) == before_files  # the input run is never modified
    again = evaluate(out)
    assert again["asr"] == m["asr"] and again["der"] == m["der"]


def test_ibau_removes_the_backdoor(backdoored, tmp_path):
    """The method itself, on 140 clean images (unguarded: on this toy, the 14 images a guard would hold out
    change the result more than anything else; the guard has its own tests below).

    At the paper's lr (1e-3), with a clean-accuracy bound of 20 points: since the held-out split stopped holding
    poisoned samples, one round on this 8x8 toy removes the backdoor (99.4% -> 0.0% ASR at seed 0) at 17 points
    of clean accuracy, and other seeds cost 13-28 (the default lr 3e-4, chosen on CIFAR-10 models, costs 21 here at
    seed 0; the notebook's L2 ball of radius 10 was set for 32x32 colour images, and on 64 pixels it allows a
    perturbation of the whole digit). The bar it had (10 points) held only while about 9% of the clean set was
    poisoned."""
    out = forget(backdoored, "ibau", tmp_path / "ibau", backdoor=True, clean_size=140, guard=False,
                 settings={"lr": 1e-3})
    m = json.loads((out / "metrics.json").read_text())
    assert m["asr"] <= 20 and m["asr"] < m["original"]["asr"] - 60
    assert m["clean_acc"] >= m["original"]["clean_acc"] - 20 and m["der"] > 0.8
    assert len(m["ibau"]["delta_pixel_norm"]) == 1 and len(m["ibau"]["flip_rate"]) == 1
    assert m["ibau"]["delta_pixel_norm"][0] <= 10.0 + 1e-6  # the default ball, in pixels


def test_guard_stops_a_destructive_defence_and_returns_a_healthy_model(backdoored, tmp_path):
    """ibau at lr 1 (and no backing off) breaks the model in its first round: near chance three rounds in a row,
    the guard stops it there (not after all six) and returns the input's state; unguarded, the same setting
    returns the broken model and the verdict says DAMAGED."""
    settings = {"lr": 1.0, "rounds": 6, "backoffs": 0}
    out = forget(backdoored, "ibau", tmp_path / "guarded", backdoor=True, clean_size=140, settings=settings)
    m = json.loads((out / "metrics.json").read_text())
    guard = m["ibau"]["guard"]
    assert guard["stopped_early"] and guard["restored"] and guard["kept"] == "start" and guard["holdout"] == 14
    assert [p["at"] for p in guard["curve"]] == ["start", "round 1", "round 2", "round 3", "final"]
    assert all(p["clean_acc"] <= 15 for p in guard["curve"][1:])  # 1.5x chance (10 classes)
    assert m["clean_acc"] >= m["original"]["clean_acc"] - 10 and m["verdict"]["status"] != "damaged"
    raw = forget(backdoored, "ibau", tmp_path / "raw", backdoor=True, clean_size=140, settings=settings, guard=False)
    r = json.loads((raw / "metrics.json").read_text())
    assert "guard" not in r["ibau"] and json.loads((raw / "meta.json").read_text())["guard"] is False
    assert r["clean_acc"] < 30 and r["verdict"]["status"] == "damaged"


def test_ibau_backs_off_a_round_that_costs_clean_accuracy(backdoored, tmp_path):
    """A round at lr 1 costs most of the held-out accuracy: it is undone and redone at lr 0.1, then 0.01."""
    out = forget(backdoored, "ibau", tmp_path / "backoff", backdoor=True, clean_size=140, settings={"lr": 1.0})
    m = json.loads((out / "metrics.json").read_text())
    assert m["ibau"]["round_lr"][:2] == [1.0, 0.1]
    assert m["verdict"]["status"] != "damaged" and m["clean_acc"] >= m["original"]["clean_acc"] - 10


def test_every_defence_records_its_guard_curve(backdoored, tmp_path):
    for method in ("finetune", "nad", "ngf"):
        out = forget(backdoored, method, tmp_path / method, backdoor=True, clean_size=140,
                     settings={**TINY.get(method, {}), **({"steps": 100} if method == "ngf" else {})})
        guard = json.loads((out / "metrics.json").read_text())[method]["guard"]
        assert guard["curve"][0]["at"] == "start" and guard["curve"][-1]["at"] == "final"
        assert len(guard["curve"]) >= 3  # at least one checkpoint of the defence itself


def test_ibau_conjugate_gradient_option_runs(backdoored, tmp_path):
    out = forget(backdoored, "ibau", tmp_path / "cg", backdoor=True, clean_size=50,
                 settings=["rounds=1", "solver=cg", "l2_ball=10", "clamp=true"])
    assert json.loads((out / "meta.json").read_text())["method"]["config"]["solver"] == "cg"


@pytest.mark.parametrize("method", ["ibau", "fine-pruning", "nad", "anp"])
def test_backdoor_defences_see_only_the_clean_set(method):
    cls = METHODS.get(method)
    assert cls.backdoor_needs == frozenset({"clean"})
    with pytest.raises(UserError):
        cls().needs_for("random")


def test_a_defence_cannot_read_the_retain_set(backdoored):
    from unlearnkit.engine.rundir import load_run
    from unlearnkit.forgetting import build_task, parse_request
    from unlearnkit.rundata import load_run_data

    src = load_run(backdoored)
    bundle = load_run_data(src.meta)
    req = parse_request(src.meta, bundle, backdoor=True)
    task = build_task(src.meta, bundle, req, METHODS.get("ibau").backdoor_needs, 0, 20)
    assert len(task.clean) == 20
    assert not (set(task.clean.idx.tolist()) & set(src.meta["poison"]["indices"]))
    with pytest.raises(PartNotAllowed):
        task.retain  # noqa: B018


def test_the_benchmarks_probe_is_held_out_and_triggered(backdoored):
    """`bench.probe`, by which benchmarks compare a defence's settings: the held-out split minus the clean set (no
    training, poisoned or test image), its victims stamped and labelled with the target; the backdoored model
    answers the target on them and classifies the clean probe images."""
    from unlearnkit.bench.probe import build_probe
    from unlearnkit.engine.rundir import load_run
    from unlearnkit.forgetting import clean_part, parse_request
    from unlearnkit.rundata import load_run_data

    src = load_run(backdoored)
    bundle = load_run_data(src.meta)
    req = parse_request(src.meta, bundle, backdoor=True)
    clean = clean_part(bundle, req.split, 50, 0)
    probe = build_probe(bundle, req.split, clean, src.meta["poison"])
    assert len(probe.y) == len(req.split.val_idx) - 50
    assert 0 < len(probe.y_bd) < len(probe.y) and set(probe.y_bd.tolist()) == {0}
    assert not bool((probe.x_bd == probe.x[probe.y != 0]).all())  # stamped
    scores = probe.scores(src.build_model("cpu"))
    assert scores["asr"] > 80 and scores["clean_acc"] > 80


def _backdoor_task(run, clean_size: int):
    from unlearnkit.engine.rundir import load_run
    from unlearnkit.forgetting import build_task, parse_request
    from unlearnkit.rundata import load_run_data

    src = load_run(run)
    bundle = load_run_data(src.meta)
    req = parse_request(src.meta, bundle, backdoor=True)
    return build_task(src.meta, bundle, req, frozenset({"clean"}), 0, clean_size)


def test_default_defence_budgets_stay_within_a_quarter_of_the_originals_training(backdoored, tmp_path):
    """Issue 22: BackdoorBench's 100 epochs on the clean set are 5% of a 100-epoch CIFAR-10 model's training but
    cost more than training a 3-epoch model. By default a defence makes at most a quarter of the original's
    sample passes (epochs x training images); a budget the user sets is kept; unknown training work: no cap."""
    from unlearnkit.methods._steps import capped

    task = _backdoor_task(backdoored, 100)
    passes = 0.25 * task.train_config.epochs * task.train_size
    assert task.train_size > 1000 and task.train_config.epochs == 10 and len(task.clean) == 90
    assert capped(100, 2500, task) == int(passes // 2500) < 100
    assert capped(100, 1, task) == 100 and capped(100, 10 ** 9, task) == 1
    task.train_size = 0
    assert capped(100, 2500, task) == 100
    runs = {}
    for method, settings in (("finetune", {}), ("finetune", {"epochs": 3}), ("anp", {}), ("nad", {})):
        out = forget(backdoored, method, tmp_path / f"{method}{len(settings)}", backdoor=True, clean_size=100,
                     settings=settings)
        runs[method, len(settings)] = json.loads((out / "metrics.json").read_text())
    assert runs["finetune", 0]["finetune"]["epochs"] == int(passes // 90) < 100
    assert runs["finetune", 1]["finetune"]["epochs"] == 3
    assert runs["anp", 0]["anp"]["iterations"] == int(passes // (2 * 256)) < 2000
    nad = runs["nad", 0]["nad"]
    assert nad["teacher_epochs"] + nad["epochs"] <= max(2, passes // 90)


def test_the_cap_leaves_the_references_budgets_in_their_own_setting():
    """BackdoorBench's budgets stand where they were measured (a 100-epoch CIFAR-10 model); README's example (3
    Fashion-MNIST epochs) gets the 17 fine-tuning epochs measured there (benchmarks/defence_budgets.py)."""
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "defence_budgets.py"
    spec = importlib.util.spec_from_file_location("_defence_budgets", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    readme, reference = mod.rows([mod.SETTINGS[0], mod.SETTINGS[-1]])[2:]
    assert reference.split(" | ")[1:] == ["100 (5.0%)", "100 (5.0%)", "10 + 10 (1.0%)", "2000 (22.8%) |"]
    assert readme.split(" | ")[1].startswith("17 ")


def test_a_defence_slower_than_training_the_original_says_so(backdoored, tmp_path):
    """Issue 22: a backdoor run has no retrained reference, so its time is set against the original's training
    (`speedup_over_training`), shown in the terminal table and judged by the verdict."""
    from unlearnkit.metrics.verdict import verdict

    out = forget(backdoored, "ibau", tmp_path / "ibau", backdoor=True, clean_size=60, settings={"rounds": 1})
    m = json.loads((out / "metrics.json").read_text())
    meta = json.loads((out / "meta.json").read_text())
    trained = json.loads((backdoored / "meta.json").read_text())["seconds"]
    assert meta["training_seconds"] == trained
    assert meta["training_machine"] == meta["machine"]
    assert m["speedup_over_training"] == pytest.approx(trained / m["seconds"], rel=1e-3)
    assert evaluate(out)["speedup_over_training"] == m["speedup_over_training"]
    slow = verdict({"asr": 50.0, "clean_acc": 90.0, "speedup_over_training": 0.4}, "backdoor")
    assert any(w.startswith("SLOWER THAN TRAINING") and "2.5x" in w for w in slow["warnings"])
    assert not verdict({"asr": 50.0, "clean_acc": 90.0, "speedup_over_training": 3.0}, "backdoor")["warnings"]
    just = verdict({"asr": 50.0, "clean_acc": 90.0, "speedup_over_training": 0.97}, "backdoor")["warnings"]
    assert "took 1.03x" in just[0]  # never "1.0x" for a run that was slower
    both = verdict({"asr": 5.0, "speedup": 2.0, "speedup_over_training": 0.5, "reference": {"asr": 5.0}},
                   "backdoor")  # a retrained reference, where there is one, is what the run is judged against
    assert not any(w.startswith("SLOWER") for w in both["warnings"])


def test_cli_forget_backdoor(backdoored, tmp_path, capsys):
    code = main(["forget", str(backdoored), "--backdoor", "--method", "ibau", "--clean-size", "60", "--set",
                 "rounds=1", "--out", str(tmp_path / "cli"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and "attack success rate" in out and "DER" in out
    assert "speed-up over training the original" in out  # no retrained reference: timed against the training
    code = main(["forget", str(backdoored), "--backdoor", "--method", "ibau", "--clean-size", "100000",
                 "--out", str(tmp_path / "bad"), "--quiet"])
    assert code == 2


def test_backdoor_suite_declares_every_attack_and_defence():
    from unlearnkit.bench import SUITES

    suite = SUITES.get("backdoor")({"clean": "72", "small": "40"})
    assert [s.name for s in suite.scenarios] == ["badnets", "blend", "sig", "wanet", "trojan", "l0-inv", "l2-inv"]
    assert all(s.request == {"backdoor": True} and s.train["poison_ratio"] == 0.1 for s in suite.scenarios)
    assert {r.name: r.request["clean_size"] for r in suite.rows} == {
        "ibau": 72, "ibau-40": 40, "ngf": 72, "ngf-14": 14, "finetune": 72, "fine-pruning": 72, "nad": 72, "anp": 72}
    assert [c.label for c in suite.columns][2:] == ["clean_acc", "asr", "robust_acc", "der", "seconds",
                                                      "damaged"]
    damaged = suite.columns[-1].get
    assert (damaged({"verdict": {"status": "damaged"}}), damaged({"verdict": {"status": "not forgotten"}})) == (1, 0)
    assert damaged({}) is None  # a run without a verdict reads blank, not "not damaged"
    with pytest.raises(UserError, match="no setting"):
        SUITES.get("backdoor")({"cleen": 3})


def test_backdoor_cifar10_suite_is_the_reference_setting():
    from unlearnkit.bench import SUITES, build_suite

    suite = SUITES.get("backdoor-cifar10")({})
    assert (suite.data, suite.arch, suite.train) == ("cifar10", "preact-resnet18",
                                                     {"epochs": 100, "batch_size": 128, "lr": 0.01})
    badnets = suite.scenarios[0]
    assert badnets.name == "badnets" and badnets.train["poison_settings"] == {"size": 3, "margin": 0}
    assert {s.train["poison_ratio"] for s in suite.scenarios} == {0.1} and badnets.train["target"] == 0
    assert {r.name: r.request["clean_size"] for r in suite.rows} == {
        "ibau": 2500, "ibau-100": 100, "ngf": 2500, "ngf-500": 500, "finetune": 2500, "fine-pruning": 2500,
        "nad": 2500, "anp": 2500}
    assert [c.label for c in suite.columns][-1] == "damaged"
    assert SUITES.get("backdoor-cifar10")({"ratio": "0.01"}).scenarios[0].train["poison_ratio"] == 0.01
    small = build_suite("backdoor-cifar10", {"arch": "vgg-small", "epochs": "30", "scenarios": "badnets"})
    assert small.arch == "vgg-small" and small.train["epochs"] == 30 and len(small.scenarios) == 1
    for bad in ({"ratio": "abc"}, {"ratio": "1.5"}, {"clean": "-3"}, {"bogus": "1"}):
        with pytest.raises(UserError):
            SUITES.get("backdoor-cifar10")(bad)


@pytest.mark.parametrize("head_only", [False, True])
def test_oracle_unlearning_script_stamps_the_runs_own_trigger(backdoored, head_only):
    """benchmarks/oracle_unlearning.py: fine-tuning with the run's own trigger on half of the clean set must lower
    the ASR far below plain fine-tuning (share 0) with the same recipe, whole model or final layer only; the run
    directory is left as it was."""
    before_files = _files(backdoored)
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "oracle_unlearning.py"
    cmd = [sys.executable, str(script), str(backdoored), "--clean-size", "140", "--shares", "0,0.5", "--epochs", "15",
           "--lr", "0.05"] + (["--head-only"] if head_only else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = {cells[1]: float(cells[3]) for line in proc.stdout.splitlines()
            if len(cells := [c.strip() for c in line.split("|")]) > 4 and cells[2] == "15"}
    assert set(rows) == {"0", "0.5"}, proc.stdout
    assert rows["0"] > 50 and rows["0.5"] < rows["0"] - 40, proc.stdout
    assert "final linear layer only" in proc.stdout if head_only else "every layer" in proc.stdout
    assert _files(backdoored) == before_files


def test_guard_lets_a_defence_dip_and_recover_but_stops_a_collapse():
    """Fine-tuning defences lose much held-out accuracy in their first epochs and win it back (issue 18, on a
    GPU: `finetune` 87% -> 56% after 2 epochs): a dip, even 40 points deep, is no stop and the recovered final
    state is kept; near chance at three checkpoints in a row is a stop."""
    import torch

    from unlearnkit.data.bundle import Part
    from unlearnkit.methods._guard import Guard

    n = 100
    hold = Part(torch.zeros(n, 1, 2, 2, dtype=torch.uint8), torch.zeros(n, dtype=torch.long), torch.arange(n), "none")
    model = torch.nn.Linear(1, 1)

    def run(accuracies: list[int]) -> Guard:
        guard = Guard(hold, torch.device("cpu"), num_classes=10)
        seq = iter(accuracies)
        guard._right = lambda _m: torch.arange(n) < next(seq)  # type: ignore[method-assign]
        guard.begin(model)
        for epoch in range(1, len(accuracies) - 1):
            if not guard(model, f"epoch {epoch}"):
                break
        guard.settle(model)
        return guard

    dip = run([88, 70, 48, 60, 80, 87, 87])
    assert dip.stopped is None and dip.kept_at == "final" and not dip.restored
    collapse = run([88, 12, 9, 11, 60, 87, 87])
    assert collapse.stopped and "3 checkpoints in a row" in collapse.stopped and collapse.restored
    assert [p["at"] for p in collapse.curve] == ["start", "epoch 1", "epoch 2", "epoch 3", "final"]


@pytest.mark.parametrize("method,setting", [("nad", "teacher_epochs=0"), ("nad", "epochs=0"), ("anp", "iterations=0"),
                                            ("fine-pruning", "epochs=-1")])
def test_a_budget_set_out_of_range_is_refused_while_unset_means_the_capped_default(method, setting):
    """The budgets became Optional (None: the capped default); a 0 the user writes must still be refused."""
    from unlearnkit.methods.base import make_config

    cls = METHODS.get(method)
    with pytest.raises(UserError):
        make_config(cls, [setting])
    make_config(cls, [])


def test_an_imported_model_without_its_recipe_is_not_capped_by_a_made_up_one(backdoored, tmp_path):
    """Review of issue 22: `import` without --epochs records our default recipe (5 epochs), not how the model was
    trained; a downloaded 200-epoch model must keep the references' budgets. With --epochs the cap applies, and a
    forget run carries the flag down the chain. A retrained reference is not timed against training (1x by design)."""
    from unlearnkit.engine.rundir import load_run
    from unlearnkit.forgetting import build_task, parse_request
    from unlearnkit.pipeline import import_checkpoint
    from unlearnkit.rundata import load_run_data

    sizes = {}
    for name, epochs in (("bare", None), ("stated", 10)):
        run = import_checkpoint(backdoored / "model.safetensors", "cnn-small", "digits", tmp_path / name, epochs=epochs)
        src = load_run(run)
        bundle = load_run_data(src.meta)
        req = parse_request(src.meta, bundle, forget_class="1")
        sizes[name] = build_task(src.meta, bundle, req, frozenset({"retain"}), 0).train_size
        assert src.meta.recipe_known == (epochs is not None)
    assert sizes["bare"] == 0 and sizes["stated"] > 1000
    chained = forget(tmp_path / "bare", "finetune", tmp_path / "chained", forget_class="1", settings={"epochs": 1})
    assert json.loads((chained / "meta.json").read_text())["recipe_known"] is False
    ref = forget(tmp_path / "stated", "retrain", tmp_path / "retrained", forget_class="1", settings={"epochs": 1})
    assert "speedup_over_training" not in json.loads((ref / "metrics.json").read_text())


def test_a_run_is_timed_against_training_only_on_the_machine_that_trained(backdoored, tmp_path):
    """Seconds from two kinds of machine say nothing about a method: the original's machine is recorded with its
    training time and carried down the chain, and `speedup_over_training` is left out when the defence ran
    elsewhere (e.g. a model trained on a GPU, cleaned on a laptop)."""
    import shutil

    from unlearnkit.engine.device import machine

    here = machine()
    assert json.loads((backdoored / "meta.json").read_text())["machine"] == here
    moved = tmp_path / "trained-elsewhere"
    shutil.copytree(backdoored, moved)
    meta = json.loads((moved / "meta.json").read_text())
    (moved / "meta.json").write_text(json.dumps({**meta, "machine": "16-core Other CPU, cuda (NVIDIA H100)"}))
    out = forget(moved, "ibau", tmp_path / "ibau", backdoor=True, clean_size=60, settings={"rounds": 1})
    got = json.loads((out / "meta.json").read_text())
    assert (got["machine"], got["training_machine"]) == (here, "16-core Other CPU, cuda (NVIDIA H100)")
    assert "speedup_over_training" not in json.loads((out / "metrics.json").read_text())
    assert "speedup_over_training" not in evaluate(out)
    again = forget(out, "ibau", tmp_path / "again", backdoor=True, clean_size=60, settings={"rounds": 1})
    assert json.loads((again / "meta.json").read_text())["training_machine"] == got["training_machine"]

    old = tmp_path / "recorded-before-machines"  # a run made before machines were recorded keeps its figure
    shutil.copytree(backdoored, old)
    (old / "meta.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "machine"}))
    out = forget(old, "ibau", tmp_path / "ibau-old", backdoor=True, clean_size=60, settings={"rounds": 1})
    assert "speedup_over_training" in json.loads((out / "metrics.json").read_text())


def test_a_hand_edited_training_seconds_is_a_one_line_error(backdoored, tmp_path):
    import shutil

    from unlearnkit.engine.rundir import load_run

    run = tmp_path / "edited"
    shutil.copytree(backdoored, run)
    meta = json.loads((run / "meta.json").read_text())
    (run / "meta.json").write_text(json.dumps({**meta, "training_seconds": "fast"}))
    with pytest.raises(UserError, match="training_seconds must be a number"):
        load_run(run)
    (run / "meta.json").write_text(json.dumps({**meta, "machine": 2}))
    with pytest.raises(UserError, match="machine must be a string"):
        load_run(run)
