"""`--resume`: an interrupted train / forget run continues from its checkpoints and ends exactly where an
uninterrupted run ends (same weights, same metrics.json); Ctrl-C and SIGKILL leave no output that looks done."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from unlearnkit.cli import main
from unlearnkit.engine import checkpoint
from unlearnkit.engine.checkpoint import partial_dir
from unlearnkit.engine.progress import set_quiet
from unlearnkit.errors import UserError
from unlearnkit.pipeline import forget, train

TIMING = {"seconds", "speedup", "speedup_over_training"}  # wall times: the only keys allowed to differ
TRAIN = {"data": "digits", "arch": "mlp", "epochs": 4, "batch_size": 64, "seed": 3, "arch_kwargs": {"hidden": 32}}


@pytest.fixture(autouse=True)
def _every_epoch(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("UNLEARNKIT_CHECKPOINT_SECONDS", "0")  # checkpoint each epoch: interrupts land exactly
    set_quiet(True)
    yield
    set_quiet(False)  # the process-wide default, which later modules' stderr assertions rely on


def _strip(m: object) -> object:
    """m without wall times (and the verdict's warning that compares them)."""
    if isinstance(m, dict):
        return {k: _strip(v) for k, v in m.items() if k not in TIMING}
    if isinstance(m, list):
        return [_strip(v) for v in m if not (isinstance(v, str) and v.startswith("SLOWER THAN"))]
    return m


def same_run(a: Path, b: Path) -> None:
    """Identical weights and metrics (wall times aside)."""
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    assert _strip(ma) == _strip(mb)


def interrupt_at(monkeypatch: pytest.MonkeyPatch, stage_prefix: str, epoch: int) -> None:
    """Raise Ctrl-C right after the checkpoint of `epoch` of the first fit whose file starts with `stage_prefix`."""
    save = checkpoint.FitStage.save

    def save_then_stop(self, e, *args, **kwargs):
        save(self, e, *args, **kwargs)
        if self.path.name.startswith(stage_prefix) and e == epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.FitStage, "save", save_then_stop)


def test_train_resumes_to_the_same_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    full = train(out=tmp_path / "full", **TRAIN)
    with monkeypatch.context() as m:
        interrupt_at(m, "train.", 2)
        with pytest.raises(KeyboardInterrupt):
            train(out=tmp_path / "cut", **TRAIN)
    assert not (tmp_path / "cut").exists()
    assert not list(tmp_path.glob(".cut.tmp-*"))
    assert (partial_dir(tmp_path / "cut") / "run.json").is_file()
    live = (partial_dir(tmp_path / "cut") / "log.txt").read_text()  # the log was written as the run went
    assert "epoch 1/4" in live and "epoch 2/4" in live and "epoch 3/4" not in live
    with pytest.raises(UserError, match="--resume"):  # without --resume the checkpoints are not silently lost
        train(out=tmp_path / "cut", **TRAIN)
    with pytest.raises(UserError, match="epochs"):  # another command may not pick them up
        train(out=tmp_path / "cut", resume=True, **{**TRAIN, "epochs": 5})
    cut = train(out=tmp_path / "cut", resume=True, **TRAIN)
    same_run(full, cut)
    assert not partial_dir(cut).exists()


def test_a_resumed_adversarial_run_keeps_its_discriminator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 20: when --resume read the finished method stage back, the discriminator file and its metrics were
    lost (the method kept its discriminator on `self`, and the stage saved no artifacts). Now the discriminator is
    an artifact of the method's result, saved with the stage and given back to `extra_metrics`."""
    run = train(out=tmp_path / "run", **TRAIN)
    kw = {"method": "adversarial", "forget_class": "2", "retrain": True}
    full = forget(run, out=tmp_path / "full", **kw)
    with monkeypatch.context() as m:
        interrupt_at(m, "reference.", 2)  # the method's stage is done, the retraining is not
        with pytest.raises(KeyboardInterrupt):
            forget(run, out=tmp_path / "cut", **kw)
    cut = forget(run, out=tmp_path / "cut", resume=True, **kw)
    assert (cut / "discriminator.safetensors").read_bytes() == (full / "discriminator.safetensors").read_bytes()
    same_run(full, cut)


@pytest.mark.parametrize("where", ["method.", "reference."])
def test_forget_with_retrain_resumes_to_the_same_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        where: str) -> None:
    run = train(out=tmp_path / "run", **TRAIN)
    kw = {"method": "finetune", "forget_class": "2", "settings": ["epochs=3", "batch_size=64"], "retrain": True}
    full = forget(run, out=tmp_path / "full", **kw)
    before = {p: p.read_bytes() for p in run.iterdir()}
    with monkeypatch.context() as m:
        interrupt_at(m, where, 2)
        with pytest.raises(KeyboardInterrupt):
            forget(run, out=tmp_path / "cut", **kw)
    assert not (tmp_path / "cut").exists()
    cut = forget(run, out=tmp_path / "cut", resume=True, **kw)
    same_run(full, cut)
    same_run(full / "reference", cut / "reference")
    assert {p: p.read_bytes() for p in run.iterdir()} == before


def test_overwrite_discards_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as m:
        interrupt_at(m, "train.", 1)
        with pytest.raises(KeyboardInterrupt):
            train(out=tmp_path / "cut", **TRAIN)
    train(out=tmp_path / "cut", overwrite=True, **{**TRAIN, "epochs": 2})
    assert not partial_dir(tmp_path / "cut").exists()
    assert json.loads((tmp_path / "cut" / "meta.json").read_text())["train"]["epochs"] == 2


def _start(out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "UNLEARNKIT_CHECKPOINT_SECONDS": "0", "UNLEARNKIT_DEVICE": "cpu",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    cmd = [sys.executable, "-m", "unlearnkit", "train", "--data", "digits", "--arch", "mlp", "--arch-kwargs",
           "hidden=16", "--epochs", "40", "--batch-size", "256", "--seed", "5", "--out", str(out), *extra]
    # SIGINT back to its default in the child: a shell starts background jobs (`pytest &`, nohup) with SIGINT
    # ignored, the child would inherit that, and Python then never raises KeyboardInterrupt (the run exits 0).
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _epoch(out: Path) -> int:
    """The epoch of the last checkpoint on disk (0 before the first)."""
    files = list(partial_dir(out).glob("train.fit0-*.safetensors"))
    return int(checkpoint.load_state(files[0])["epoch"]) if files else 0


def _wait_for_epoch(proc: subprocess.Popen, out: Path, epoch: int, timeout: float = 120.0) -> None:
    t0 = time.monotonic()
    while _epoch(out) < epoch:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < timeout, "training never reached the checkpoint"
        time.sleep(0.05)


def test_ctrl_c_and_kill_leave_no_output_and_resume_finishes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    proc = _start(out)
    _wait_for_epoch(proc, out, 1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in err and "--resume" in err.strip().splitlines()[-1]
    assert not out.exists() and not list(tmp_path.glob(".run.tmp-*"))  # temporary outputs cleaned up
    reached = _epoch(out)
    assert reached >= 1

    proc = _start(out, "--resume")
    _wait_for_epoch(proc, out, reached + 2)
    proc.kill()  # SIGKILL: no cleanup code runs at all
    proc.communicate(timeout=60)
    assert not out.exists()  # nothing that looks like a finished run
    assert not [p for p in tmp_path.iterdir() if (p / "metrics.json").exists()]

    monkeypatch.setenv("UNLEARNKIT_CHECKPOINT_SECONDS", "1000")  # results do not depend on how often it saves
    args = ["train", "--data", "digits", "--arch", "mlp", "--arch-kwargs", "hidden=16", "--epochs", "40",
            "--batch-size", "256", "--seed", "5", "--quiet"]
    assert main([*args, "--out", str(out), "--resume"]) == 0
    assert main([*args, "--out", str(tmp_path / "full")]) == 0
    same_run(tmp_path / "full", out)


def test_a_finished_method_is_not_run_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A method with its own loop (no `fit`) resumes per stage: once finished, its result is reused."""
    from dataclasses import dataclass

    import torch

    from unlearnkit.methods.base import METHODS, Method

    calls = []

    class Shrink(Method):
        name = "shrink-test"

        @dataclass
        class Config:
            factor: float = 0.5

        def unlearn(self, model, task):
            calls.append(1)
            with torch.no_grad():
                for p in model.parameters():
                    p.mul_(self.config.factor + 0.01 * torch.rand(p.shape, generator=task.generator))
            return model

    monkeypatch.setitem(METHODS._items, "shrink-test", Shrink)
    run = train(out=tmp_path / "run", **TRAIN)
    kw = {"method": "shrink-test", "forget_class": "1", "retrain": True}
    full = forget(run, out=tmp_path / "full", **kw)
    with monkeypatch.context() as m:
        interrupt_at(m, "reference.", 2)
        with pytest.raises(KeyboardInterrupt):
            forget(run, out=tmp_path / "cut", **kw)
    assert len(calls) == 2
    cut = forget(run, out=tmp_path / "cut", resume=True, **kw)
    assert len(calls) == 2  # the finished method was read back, not recomputed
    same_run(full, cut)


def test_a_corrupt_checkpoint_is_a_one_line_error_that_keeps_the_folder(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 19: a corrupt checkpoint in `.partial` made `--resume` exit 1 (an internal error)."""
    with monkeypatch.context() as m:
        interrupt_at(m, "train.", 2)
        with pytest.raises(KeyboardInterrupt):
            train(out=tmp_path / "cut", **TRAIN)
    ck = next(partial_dir(tmp_path / "cut").glob("train.fit0-*.safetensors"))
    ck.write_bytes(ck.read_bytes()[:100])  # truncated
    with pytest.raises(UserError, match="unreadable.*delete that file"):
        train(out=tmp_path / "cut", resume=True, **TRAIN)
    assert ck.is_file() and (partial_dir(tmp_path / "cut") / "run.json").is_file()  # nothing else lost
    ck.unlink()
    cut = train(out=tmp_path / "cut", resume=True, **TRAIN)  # that stage starts again
    assert (cut / "model.safetensors").is_file()


def test_a_run_resumed_on_another_machine_is_timed_against_none(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Seconds carried over from an interrupted session on another machine are not this machine's: the run is
    labelled 'mixed (...)', so a forget run made here reports no speed-up over that training."""
    from unlearnkit.engine.device import machine, same_machine

    with monkeypatch.context() as m:
        interrupt_at(m, "train.", 2)
        with pytest.raises(KeyboardInterrupt):
            train(out=tmp_path / "cut", **TRAIN)
    machines = partial_dir(tmp_path / "cut") / "machines.json"
    assert json.loads(machines.read_text()) == [machine()]
    machines.write_text(json.dumps(["64-core Other CPU, cuda (H100)"]))  # the first session ran elsewhere
    cut = train(out=tmp_path / "cut", resume=True, **TRAIN)
    label = json.loads((cut / "meta.json").read_text())["machine"]
    assert label.startswith("mixed (") and machine() in label and "Other CPU" in label
    assert not same_machine(label, label) and same_machine(machine(), machine())  # matches no run, not itself
    f = forget(cut, out=tmp_path / "f", method="finetune", forget_class="2", settings=["epochs=1"])
    assert json.loads((f / "meta.json").read_text())["machine"] == machine()
    assert "speedup_over_training" not in json.loads((f / "metrics.json").read_text())
    same = train(out=tmp_path / "here", **TRAIN)  # an uninterrupted run (and one resumed here) names this machine
    assert json.loads((same / "meta.json").read_text())["machine"] == machine()
    f2 = forget(same, out=tmp_path / "f2", method="finetune", forget_class="2", settings=["epochs=1"])
    assert "speedup_over_training" in json.loads((f2 / "metrics.json").read_text())


def test_forget_with_retrain_resumed_on_another_machine_reports_no_speedup(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The method's seconds may come from the first machine and the reference's from the second: no speed-up."""
    run = train(out=tmp_path / "run", **TRAIN)
    kw = {"method": "finetune", "forget_class": "2", "settings": ["epochs=2", "batch_size=64"], "retrain": True}
    with monkeypatch.context() as m:
        interrupt_at(m, "reference.", 2)
        with pytest.raises(KeyboardInterrupt):
            forget(run, out=tmp_path / "cut", **kw)
    (partial_dir(tmp_path / "cut") / "machines.json").write_text(json.dumps(["64-core Other CPU, cpu"]))
    cut = forget(run, out=tmp_path / "cut", resume=True, **kw)
    m = json.loads((cut / "metrics.json").read_text())
    assert "gap" in m and "speedup" not in m and "speedup_over_training" not in m
    assert json.loads((cut / "meta.json").read_text())["machine"].startswith("mixed (")
