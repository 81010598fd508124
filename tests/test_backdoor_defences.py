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
    out = forget(backdoored, "ibau", tmp_path / "ibau", backdoor=True, clean_size=140, settings={"rounds": 3})
    m = json.loads((out / "metrics.json").read_text())
    assert m["asr"] <= 20 and m["asr"] < m["original"]["asr"] - 60
    assert m["der"] > 0.8
    assert len(m["ibau"]["delta_norm"]) == 3


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
    from unlearnkit.pipeline import build_task, load_run_data, parse_request

    src = load_run(backdoored)
    bundle = load_run_data(src.meta)
    req = parse_request(src.meta, bundle, backdoor=True)
    task = build_task(src.meta, bundle, req, METHODS.get("ibau").backdoor_needs, 0, 20)
    assert len(task.clean) == 20
    assert not (set(task.clean.idx.tolist()) & set(src.meta["poison"]["indices"]))
    with pytest.raises(PartNotAllowed):
        task.retain  # noqa: B018


def test_cli_forget_backdoor(backdoored, tmp_path, capsys):
    code = main(["forget", str(backdoored), "--backdoor", "--method", "ibau", "--clean-size", "60", "--set",
                 "rounds=1", "--out", str(tmp_path / "cli"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and "attack success rate" in out and "DER" in out
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
    assert [c.label for c in suite.columns][2:] == ["clean_acc", "asr", "robust_acc", "der", "seconds"]
    with pytest.raises(UserError, match="no setting"):
        SUITES.get("backdoor")({"cleen": 3})


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
