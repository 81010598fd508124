"""The method interface: `needs` is enforced by the task object; settings are typed and validated; every method
returns its result and keeps no state."""

from __future__ import annotations

import copy
import subprocess
import sys
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from unlearnkit import UserError, load_run
from unlearnkit.forgetting import build_task, parse_request
from unlearnkit.methods.base import METHODS, Method, PartNotAllowed, Unlearned, make_config
from unlearnkit.rundata import load_run_data


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


# a few seconds each on `cnn-small` (hyperforget needs a trained hypernetwork: test_hyperforget covers it)
SHORT = {"adversarial": {"min_steps": 5, "budget": 0.001}, "anp": {"iterations": 5},
         "bad-teacher": {"epochs": 1}, "boundary-shrink": {"epochs": 1}, "fine-pruning": {"epochs": 1},
         "finetune": {"epochs": 1}, "grad-ascent": {"epochs": 1}, "ibau": {"rounds": 1}, "l1-sparse": {"epochs": 1},
         "nad": {"teacher_epochs": 1, "epochs": 1}, "neggrad-plus": {"epochs": 1}, "ngf": {"steps": 5},
         "random-label": {"epochs": 1}, "retrain": {"epochs": 1}, "salun": {"epochs": 1}, "scrub": {"epochs": 1},
         "unsir": {"noise_steps": 2, "noise_repeats": 1}}


@pytest.mark.parametrize("method", [m for m in METHODS.names() if m != "hyperforget"])
def test_every_registered_method_returns_its_result_and_keeps_no_state(cnn_runs, method: str) -> None:
    """Issue 20: whatever a method produces (model, figures, artifacts) comes back in its result; the method object
    is the same after `unlearn` as before (its config and nothing else), so one instance can serve many requests
    and a resumed run needs nothing from it. A new file in `methods/` joins this test by registering itself."""
    cls = METHODS.get(method)
    backdoor = not cls.scenarios
    src = load_run(cnn_runs["poisoned" if backdoor else "clean"])
    bundle = load_run_data(src.meta)
    req = parse_request(src.meta, bundle, backdoor=True) if backdoor else \
        parse_request(src.meta, bundle, forget_class="3")
    m = cls(make_config(cls, SHORT[method]))
    before = copy.deepcopy(m.config)
    task = build_task(src.meta, bundle, req, m.needs_for(req.scenario), 0, clean_size=100 if backdoor else None)
    model = src.build_model("cpu")
    res = Unlearned.of(m.unlearn(model, task))
    assert isinstance(res.model, nn.Module) and isinstance(res.figures, dict) and isinstance(res.artifacts, dict)
    assert all(isinstance(v, torch.Tensor) for state in res.artifacts.values() for v in state.values())
    assert vars(m) == {"config": before}, f"{method} keeps {sorted(set(vars(m)) - {'config'})} between calls"


def test_a_tuned_method_returns_its_choice_and_keeps_its_own_settings(cnn_runs) -> None:
    """`tune=true` once replaced the method's own config by the chosen point; the choice is the result's now."""
    src = load_run(cnn_runs["clean"])
    bundle = load_run_data(src.meta)
    req = parse_request(src.meta, bundle, forget_class="3")
    cls = METHODS.get("random-label")
    m = cls(make_config(cls, {"tune": True, "epochs": 1}))
    before = copy.deepcopy(m.config)
    res = m.unlearn(src.build_model("cpu"), build_task(src.meta, bundle, req, m.needs_for("class"), 0))
    assert vars(m) == {"config": before}
    chosen = res.figures["selection"]["chosen"]["lr"]
    assert res.config.lr == chosen and chosen in cls.search_space["lr"] and res.config.epochs == 1


def test_one_settings_parser_for_methods_attacks_and_hyperforget() -> None:
    """Issue 20: four hand-written key=value parsers became `unlearnkit.settings`; every kind of settings types its
    values from its dataclass and refuses the same things with the same one-line errors."""
    from unlearnkit.attacks import ATTACKS
    from unlearnkit.attacks.base import build_config
    from unlearnkit.hyperforget.train import HyperForgetConfig
    from unlearnkit.settings import build, parse_pairs, parse_untyped

    assert make_config(METHODS.get("scrub"), ["max-steps=4", "lr=0.5"]).max_steps == 4
    assert build_config(ATTACKS.get("badnets"), ["size=4", "pattern=random"]).size == 4
    assert build_config(ATTACKS.get("badnets"), {"size": None}).size is None  # a config read back from meta.json
    assert build(HyperForgetConfig, ["steps=7"], "hyperforget train").steps == 7
    assert parse_untyped(["width=64", "stem=cifar", "bias=false"]) == {"width": 64, "stem": "cifar", "bias": False}
    for parse in (lambda s: make_config(METHODS.get("scrub"), s), lambda s: build_config(ATTACKS.get("badnets"), s),
                  lambda s: build(HyperForgetConfig, s, "hyperforget train")):
        for bad, says in ((["nosuch=1"], "has no setting 'nosuch'"), (["nokey"], "'nokey' is not key=value")):
            with pytest.raises(UserError, match=says):
                parse(bad)
    with pytest.raises(UserError, match="expected int"):
        build_config(ATTACKS.get("badnets"), ["size=abc"])
    with pytest.raises(UserError, match="must be > 0"):
        build(HyperForgetConfig, ["lr=0"], "hyperforget train")
    with pytest.raises(UserError, match="--arch-kwargs 'hidden' is not key=value"):
        parse_pairs(["hidden"], "--arch-kwargs")
