"""Nothing lost, nothing trusted blindly: safe checkpoint loading, untouched inputs, numerical faults, verdicts."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from unlearnkit.cli import main
from unlearnkit.engine.progress import set_quiet
from unlearnkit.methods.base import METHODS
from unlearnkit.metrics.verdict import DAMAGED, FORGOTTEN, INCONCLUSIVE, NOT_FORGOTTEN, format_verdict, verdict
from unlearnkit.models.registry import Classifier
from unlearnkit.pipeline import train

SRC = str(Path(__file__).resolve().parents[1] / "src")


def run_cli(*args: str) -> tuple[int, str, str]:
    """`unlearnkit ARGS` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def one_line_error(err: str, kind: str = "error") -> str:
    """The failure message: the last stderr line, the only one naming an error, and no traceback."""
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert "Traceback" not in err, err
    assert lines and lines[-1].startswith(f"unlearnkit: {kind}:"), err
    assert sum("error" in ln for ln in lines) == 1, err
    return lines[-1]


def tree_digest(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, str]:
    """Path -> sha256 (or mode) of everything under root, except `skip` (a command's own output)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if any(p == s or s in p.parents for s in skip):
            continue
        out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    set_quiet(True)
    return train("digits", "mlp", tmp_path_factory.mktemp("runs") / "run", epochs=2, batch_size=64,
                 arch_kwargs={"hidden": 32})


class PlantFile:
    """A pickle payload that creates a file when unpickled (what a malicious checkpoint would do)."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


# --------------------------------------------------------------------------- safe loading

@pytest.mark.parametrize("kind", ["torch.save", "raw pickle", "whole module"])
def test_pickle_that_runs_code_is_refused(tmp_path: Path, run: Path, kind: str) -> None:
    planted = tmp_path / "PWNED"
    ckpt = tmp_path / "evil.pt"
    if kind == "torch.save":
        torch.save({"net.0.weight": torch.zeros(2), "payload": PlantFile(planted)}, ckpt)
    elif kind == "raw pickle":
        ckpt.write_bytes(pickle.dumps({"state_dict": PlantFile(planted)}))
    else:
        torch.save(torch.nn.Linear(2, 2), ckpt)  # a pickled nn.Module: code, not weights
    code, _, err = run_cli("import", ckpt, "--arch", "mlp", "--data", "digits", "--out", tmp_path / "out")
    assert code == 2
    assert "refusing to load" in one_line_error(err)
    assert not planted.exists()
    assert not (tmp_path / "out").exists()


def test_refusal_from_a_real_process(tmp_path: Path) -> None:
    planted = tmp_path / "PWNED"
    torch.save({"w": PlantFile(planted)}, tmp_path / "evil.pth")
    proc = subprocess.run([sys.executable, "-m", "unlearnkit", "import", str(tmp_path / "evil.pth"), "--arch", "mlp",
                           "--data", "digits", "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": SRC}, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("unlearnkit: error: refusing to load") and "\n" not in proc.stderr.strip()
    assert not planted.exists() and not (tmp_path / "out").exists()


def test_import_user_checkpoints(tmp_path: Path, run: Path) -> None:
    from safetensors.torch import load_file, save_file

    full = load_file(str(run / "model.safetensors"))
    bare = {k.removeprefix("net."): v for k, v in full.items() if k.startswith("net.")}
    expected = json.loads((run / "metrics.json").read_text())["test_acc"]
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in bare.items()}}, tmp_path / "ddp.pt")
    save_file(full, str(tmp_path / "full.safetensors"))
    for name in ("ddp.pt", "full.safetensors"):
        code, stdout, err = run_cli("import", tmp_path / name, "--arch", "mlp", "--arch-kwargs", "hidden=32",
                                    "--data", "digits", "--out", tmp_path / name.split(".")[0], "--quiet")
        assert code == 0, err
        assert json.loads((tmp_path / name.split(".")[0] / "metrics.json").read_text())["test_acc"] == expected
    code, _, err = run_cli("forget", tmp_path / "ddp", "--method", "finetune", "--forget-class", "1", "--set",
                           "epochs=1", "--out", tmp_path / "forgot", "--quiet")  # an imported run chains on
    assert code == 0, err
    code, _, err = run_cli("import", tmp_path / "ddp.pt", "--arch", "cnn-small", "--data", "digits", "--out",
                           tmp_path / "wrong")
    assert code == 2 and "does not fit this architecture" in one_line_error(err)
    torch.save({k: torch.full_like(v, float("nan")) for k, v in bare.items()}, tmp_path / "nan.pt")
    code, _, err = run_cli("import", tmp_path / "nan.pt", "--arch", "mlp", "--arch-kwargs", "hidden=32", "--data",
                           "digits", "--out", tmp_path / "nan")
    assert code == 2 and "NaN" in one_line_error(err)
    assert not (tmp_path / "wrong").exists() and not (tmp_path / "nan").exists()


def test_decompression_bomb_is_one_line(tmp_path: Path, run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Image.fromarray((torch.rand(8, 8) * 255).to(torch.uint8).numpy()).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 16)  # 64 pixels is "a bomb" now
    code, _, err = run_cli("predict", run, tmp_path / "bomb.png")
    assert code == 2 and "bomb.png" in one_line_error(err)


# --------------------------------------------------------------------------- nothing lost

def test_no_command_modifies_its_inputs(tmp_path: Path, run: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(run, ws / "run")
    Image.fromarray((torch.rand(8, 8) * 255).to(torch.uint8).numpy()).save(ws / "img.png")
    commands = [
        (("train", "--data", "digits", "--arch", "mlp", "--epochs", "1", "--out", ws / "t"), ws / "t"),
        (("forget", ws / "run", "--method", "finetune", "--forget-class", "3", "--set", "epochs=1", "--retrain",
          "--out", ws / "f"), ws / "f"),
        (("evaluate", ws / "f", "--json"), None),
        (("evaluate", ws / "f", "--reference", ws / "f" / "reference"), None),
        (("predict", ws / "run", ws / "img.png", "--top", "3"), None),
        (("list", "methods"), None),
        (("forget", ws / "f", "--method", "finetune", "--forget-class", "3", "--out", ws / "f", "--overwrite"), None),
        (("forget", ws / "run", "--method", "finetune", "--forget-class", "3", "--out", ws / "run" / "sub"), None),
        (("train", "--data", "digits", "--arch", "mlp", "--out", ws / "run"), None),
    ]
    for args, output in commands:
        before = tree_digest(ws, (output,) if output else ())
        code, _, err = run_cli(*args, *([] if args[0] == "list" else ["--quiet"]))
        assert code in (0, 2), err
        assert tree_digest(ws, (output,) if output else ()) == before, args
        if code == 2:  # the refusals: an output on or inside an input, an existing output
            assert "--out" in one_line_error(err)
    assert not list(ws.glob(".*"))  # no temporary or checkpoint folders left behind


# --------------------------------------------------------------------------- numerical faults

def test_diverging_training_stops_with_one_line(tmp_path: Path, run: Path) -> None:
    code, _, err = run_cli("train", "--data", "digits", "--arch", "mlp", "--epochs", "2", "--lr", "100", "--out",
                           tmp_path / "t", "--quiet")
    line = one_line_error(err, "numerical error")
    assert code == 1 and "train" in line and "step" in line
    assert not (tmp_path / "t").exists() and not list(tmp_path.glob(".t*"))


@pytest.mark.parametrize("method", METHODS.names())
def test_nan_loss_in_any_method_stops_it(tmp_path: Path, run: Path, monkeypatch: pytest.MonkeyPatch,
                                         method: str) -> None:
    """NaN logits whenever gradients flow: every method must stop, naming itself and the step."""
    cls = METHODS.get(method)
    if not cls.scenarios & {"class"}:
        pytest.skip(f"{method} does not do class forgetting")
    if not cls.needs:
        pytest.skip(f"{method} sees no data: it has no loss that could diverge")
    forward = Classifier.forward

    def poisoned(self, x):
        y = forward(self, x)
        return y * float("nan") if torch.is_grad_enabled() else y

    monkeypatch.setattr(Classifier, "forward", poisoned)
    before = tree_digest(run)
    code, _, err = run_cli("forget", run, "--method", method, "--forget-class", "4", "--out", tmp_path / "f",
                           "--quiet")
    line = one_line_error(err, "numerical error")
    assert code == 1 and method in line and "step" in line
    assert tree_digest(run) == before
    assert not (tmp_path / "f").exists() and not list(tmp_path.glob(".f*"))


# --------------------------------------------------------------------------- verdicts

def test_verdict_against_reference() -> None:
    ref = {"forget_acc": 0.0, "forget_test_acc": 0.0, "mia_efficacy": 100.0, "test_acc": 95.0, "retain_acc": 99.0}
    good = {**ref, "forget_acc": 2.0, "forget_test_acc": 3.0, "mia_efficacy": 96.0}
    assert verdict({**good, "reference": ref}, "class")["status"] == FORGOTTEN
    remembers = {**good, "forget_test_acc": 60.0}
    v = verdict({**remembers, "reference": ref}, "class")
    assert v["status"] == NOT_FORGOTTEN and any("forgotten-class test accuracy 60.00" in r for r in v["reasons"])
    mia = {**good, "mia_efficacy": 40.0}
    assert verdict({**mia, "reference": ref}, "class")["status"] == NOT_FORGOTTEN
    ref_random = {"forget_acc": 90.0, "mia_efficacy": 12.0, "test_acc": 90.0}
    over = {"forget_acc": 0.0, "mia_efficacy": 100.0, "test_acc": 88.0, "reference": ref_random}
    assert verdict(over, "random")["status"] == INCONCLUSIVE  # over-forgetting is detectable, not "forgotten"
    broken = {**good, "test_acc": 40.0, "reference": ref}
    assert verdict(broken, "class")["warnings"]  # utility collapse is flagged
    slow = verdict({**good, "reference": ref, "speedup": 0.3}, "class")  # issue 22: finetune at 0.3x said nothing
    assert any(w.startswith("SLOWER THAN RETRAINING") and "3.3x" in w for w in slow["warnings"])
    assert not verdict({**good, "reference": ref, "speedup": 4.0}, "class")["warnings"]


def test_verdict_absolute_thresholds() -> None:
    assert verdict({"forget_test_acc": 0.0, "forget_acc": 1.0}, "class")["status"] == FORGOTTEN
    assert verdict({"forget_test_acc": 30.0, "forget_acc": 1.0}, "class")["status"] == NOT_FORGOTTEN
    assert verdict({"forget_test_acc": 7.0, "forget_acc": 1.0}, "class")["status"] == INCONCLUSIVE
    assert verdict({"asr": 96.0, "clean_acc": 90.0}, "backdoor")["status"] == NOT_FORGOTTEN
    assert verdict({"asr": 1.0, "clean_acc": 90.0}, "backdoor")["status"] == FORGOTTEN
    sample = {"forget_acc": 99.0, "test_acc": 80.0, "mia_loss_auc": 70.0}
    assert verdict(sample, "random")["status"] == NOT_FORGOTTEN
    unseen = {"forget_acc": 81.0, "test_acc": 80.0, "mia_loss_auc": 51.0}
    assert verdict(unseen, "random")["status"] == FORGOTTEN
    assert verdict({**unseen, "original": unseen}, "random")["status"] == INCONCLUSIVE  # nothing to tell apart
    assert verdict({"test_acc": 90.0}, None) is None


def test_verdict_says_damaged_for_a_model_that_no_longer_classifies() -> None:
    """Every scenario: accuracy near chance, or more than 10 points below the original's, is DAMAGED, whatever the
    forgetting metrics say (a one-class model has ASR 0 and forget accuracy 0)."""
    chance = {"per_class_acc": {"test": [0.0] * 9 + [100.0]}}
    one_class = {**chance, "asr": 0.0, "clean_acc": 10.0, "test_acc": 10.0, "original": {"clean_acc": 90.0}}
    v = verdict(one_class, "backdoor")
    assert v["status"] == DAMAGED and v["reasons"][0].startswith("DAMAGED") and "near chance" in v["reasons"][0]
    down = {"asr": 1.0, "clean_acc": 75.0, "original": {"clean_acc": 90.0, "asr": 99.0}}
    assert verdict(down, "backdoor")["status"] == DAMAGED
    assert verdict({**down, "clean_acc": 85.0}, "backdoor")["status"] == FORGOTTEN  # 5 points down: kept
    cls = {**chance, "forget_test_acc": 0.0, "forget_acc": 0.0, "test_acc": 12.0, "original": {"test_acc": 92.0}}
    assert verdict(cls, "class")["status"] == DAMAGED
    ref = {"forget_acc": 0.0, "forget_test_acc": 0.0, "mia_efficacy": 100.0, "test_acc": 95.0}
    assert verdict({**ref, "test_acc": 70.0, "reference": ref}, "class")["status"] == DAMAGED  # vs the reference
    sample = {"forget_acc": 11.0, "test_acc": 11.0, "mia_loss_auc": 50.0, "original": {"test_acc": 90.0}}
    assert verdict(sample, "random")["status"] == DAMAGED
    assert format_verdict(verdict(one_class, "backdoor")).startswith("verdict: DAMAGED")


def test_cli_says_unchanged_when_nothing_was_forgotten(tmp_path: Path, run: Path) -> None:
    """finetune with a learning rate of ~0 changes nothing: the verdict must not call that forgotten. Every
    prediction equals the original's, so it says UNCHANGED (issue 22), with the failed checks below, and
    `evaluate` (which cannot see the original model) keeps that from the run's metrics."""
    code, stdout, err = run_cli("forget", run, "--method", "finetune", "--forget-class", "5", "--set", "epochs=1",
                                "lr=1e-9", "--out", tmp_path / "f", "--quiet")
    assert code == 0, err
    assert "verdict: UNCHANGED" in stdout and "FAIL: forgotten-class test accuracy" in stdout, stdout
    m = json.loads((tmp_path / "f" / "metrics.json").read_text())
    assert m["verdict"]["status"] == "unchanged" and m["verdict"]["basis"] == "absolute"
    code, stdout, _ = run_cli("evaluate", tmp_path / "f", "--json")
    assert json.loads(stdout)["verdict"]["status"] == "unchanged"


def test_an_unchanged_model_is_not_forgotten(tmp_path: Path, mlp_run: Path) -> None:
    """Issue 22: a run that changed nothing was judged FORGOTTEN (the original already sat near the retrained
    model). Every prediction equal to the original's is now UNCHANGED, whatever the other checks say."""
    from unlearnkit import forget

    out = forget(mlp_run, "finetune", tmp_path / "noop", forget_random=0.1, settings={"lr": 1e-12, "epochs": 1},
                 retrain=True)
    m = json.loads((out / "metrics.json").read_text())
    assert m["agreement_with_original"] == 100.0
    assert m["verdict"]["status"] == "unchanged" and m["verdict"]["reasons"][0].startswith("UNCHANGED")
    v = verdict({**m, "agreement_with_original": 99.99}, "random")
    assert v["status"] != "unchanged"


def test_a_near_chance_model_is_not_forgotten() -> None:
    """Issue 22: a model at 17.7% test accuracy was judged FORGOTTEN (class forgetting, absolute checks)."""
    m = {"forget_acc": 0.0, "forget_test_acc": 0.0, "test_acc": 17.7, "retain_acc": 18.0,
         "per_class_acc": {"test": [0.0] * 6}, "original": {"test_acc": 53.6, "forget_test_acc": 48.0}}
    v = verdict(m, "class")
    assert v["status"] == "damaged" and "near chance" in v["reasons"][0]


def test_train_warns_about_a_weak_model() -> None:
    """Issue 22: a 6-class model at 33.8% test accuracy was accepted silently."""
    from unlearnkit.pipeline import weak_model_warnings

    assert "near chance" in weak_model_warnings({"test_acc": 30.0, "retain_acc": 35.0}, 6)[0]
    assert "memorises" in weak_model_warnings({"test_acc": 58.6, "retain_acc": 99.0}, 6)[0]
    assert weak_model_warnings({"test_acc": 91.0, "retain_acc": 96.0}, 10) == []


def test_progress_prints_plain_lines_off_a_terminal(capsys, monkeypatch) -> None:
    """Issue 22: outside a terminal nothing was printed for 13+ minutes. Off a TTY each loop in progress is named
    in a plain line, at most every PLAIN_EVERY seconds, with the outermost loop's ETA."""
    from unlearnkit.engine import progress as pg

    monkeypatch.setattr(pg, "PLAIN_EVERY", 0.0)
    monkeypatch.setattr(pg, "_QUIET", False)
    seen = [x for _ in pg.progress(range(2), "train", 2) for x in pg.progress([1, 2, 3], "train epoch")]
    assert seen == [1, 2, 3] * 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("train 0/2, train epoch 1/3 (") and "elapsed" in err[0]
    assert any(ln.startswith("train 1/2, train epoch 3/3 (") for ln in err) and len(err) == 8
    assert err[-1].startswith("train 2/2 (") and "left" in err[-1]
    monkeypatch.setattr(pg, "_QUIET", True)
    list(pg.progress(range(3), "quiet"))
    assert capsys.readouterr().err == ""


def test_the_loss_attack_auc_interval_covers_chance_for_identical_losses_and_narrows_with_samples():
    """Issue 22: loss-MIA shown with its confidence interval; the interval must mean what it says."""
    import numpy as np

    from unlearnkit.metrics.mia import loss_mia

    rng = np.random.default_rng(0)
    same_small = loss_mia(rng.exponential(1.0, 40), rng.exponential(1.0, 40))
    same_large = loss_mia(rng.exponential(1.0, 2000), rng.exponential(1.0, 2000))
    apart = loss_mia(rng.exponential(0.01, 500), rng.exponential(1.0, 500))
    for auc, _, (lo, hi) in (same_small, same_large, apart):
        assert lo <= auc <= hi
    assert same_small[2][0] < 50 < same_small[2][1] and same_large[2][0] < 50 < same_large[2][1]
    assert (same_small[2][1] - same_small[2][0]) > 3 * (same_large[2][1] - same_large[2][0])
    assert apart[2][0] > 90  # members whose loss is 100x smaller are found, and surely so
