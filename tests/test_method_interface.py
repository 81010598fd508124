"""The method interface: `needs` is enforced by the task object; settings are typed and validated."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import pytest

from unlearnkit import UserError, load_run
from unlearnkit.methods.base import Method, PartNotAllowed, make_config
from unlearnkit.pipeline import build_task, load_run_data, parse_request


@dataclass
class _Cfg:
    epochs: int = 3
    lr: float = 0.1
    tune: bool = False
    name: str | None = None


class _Dummy(Method):
    name = "dummy"
    Config = _Cfg


def test_task_refuses_parts_not_declared(digits_run):
    run = load_run(digits_run)
    bundle = load_run_data(run.meta)
    req = parse_request(run.meta, bundle, backdoor=True)
    task = build_task(run.meta, bundle, req, frozenset({"clean"}), seed=0, clean_size=20)
    assert len(task.clean) == 20
    with pytest.raises(PartNotAllowed):
        _ = task.forget
    with pytest.raises(PartNotAllowed):
        _ = task.retain
    # the clean set is drawn from the held-out split the model never trained on
    assert set(task.clean.idx.tolist()) <= set(req.split.val_idx.tolist())
    req = parse_request(run.meta, bundle, forget_class="1")
    task = build_task(run.meta, bundle, req, frozenset({"retain"}), seed=0)
    assert len(task.retain) == len(req.split.retain_idx)
    with pytest.raises(PartNotAllowed):
        _ = task.forget


def test_settings_are_typed_and_validated():
    cfg = make_config(_Dummy, ["epochs=5", "lr=1e-3", "tune=true", "name=none"])
    assert (cfg.epochs, cfg.lr, cfg.tune, cfg.name) == (5, 1e-3, True, None)
    with pytest.raises(UserError, match="valid settings are epochs, lr, name, tune"):
        make_config(_Dummy, ["warp=1"])
    with pytest.raises(UserError, match="expected int"):
        make_config(_Dummy, ["epochs=1.5"])


def test_scenario_support_is_declared():
    with pytest.raises(UserError, match="does not remove backdoors"):
        _Dummy().needs_for("backdoor")


def test_python_dash_m_entry_point():
    r = subprocess.run([sys.executable, "-m", "unlearnkit", "list", "models"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "resnet18" in r.stdout


def test_list_methods_settings_gives_each_setting_its_default_and_meaning(capsys):
    """Issue 22: a method's settings were found only by passing a wrong key."""
    from unlearnkit.cli import main

    assert main(["list", "methods", "--settings"]) == 0
    out = capsys.readouterr().out
    assert "  retries=None" in out and "safer games" in out  # adversarial's, with its comment
    assert "  lr=0.01" in out and "mask learning rate" in out  # anp's
    assert main(["list", "attacks", "--settings"]) == 0
    assert "  size=" in capsys.readouterr().out  # badnets' patch size
