"""The adversarial class-forgetting method: forgetting properties, ImageFolder classes, guard rails, presets."""

from __future__ import annotations

import json
import math

import pytest
import torch

from unlearnkit import forget, predict, train
from unlearnkit.engine.rundir import load_run
from unlearnkit.errors import NumericalError, UserError
from unlearnkit.forgetting import parse_request
from unlearnkit.methods.adversarial import PRESETS, Adversarial, profile
from unlearnkit.methods.base import make_config
from unlearnkit.rundata import load_run_data

from .conftest import make_imagefolder


def _metrics(run) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_forgets_a_class_like_the_retrained_model(mlp_run, tmp_path):
    run = forget(mlp_run, "adversarial", tmp_path / "adv", forget_class="3", retrain=True, seed=0,
                 settings=["epochs=2"])
    m = _metrics(run)
    ref = m["reference"]
    assert m["forget_test_acc"] <= 10.0  # retrained: 0
    assert m["original"]["forget_test_acc"] >= 90.0  # there was something to forget
    assert abs(m["test_acc"] - ref["test_acc"]) <= 3.0  # retained classes intact
    assert abs(m["mia_efficacy"] - ref["mia_efficacy"]) <= 15.0
    fig = m["adversarial"]
    assert fig["misclassified_forget"] == pytest.approx(100.0 - m["forget_acc"], abs=0.01)
    assert not fig["stopped_early"] and fig["steps_run"] == fig["steps"]
    assert set(fig["train_disc"]["forget_test"]) >= {"mean", "std", "below_0.3", "below_0.5"}
    assert len(fig["samples"]) == 8 and len(fig["samples"][0]["top3"]) == 3
    fresh = fig["fresh_disc"]
    assert {"unlearned", "reference", "auc_gap", "vs_reference"} <= set(fresh)
    assert fresh["auc_gap"] <= 0.25  # loose: the digits hold-out has ~15 images of the class
    # the training discriminator is saved (weights only) and `predict` shows its score
    assert (run / "discriminator.safetensors").is_file()
    img = tmp_path / "three.png"
    _save_png(img, load_run(mlp_run))
    res = predict(run, [img], top=3)
    assert 0.0 <= res[0]["extra"]["discriminator_score"] <= 1.0


def _save_png(path, run) -> None:
    from PIL import Image

    b = load_run_data(run.meta)
    x = b.x_test[(b.y_test == 3).nonzero()[0, 0], 0].numpy()
    Image.fromarray(x).save(path)


def test_imagefolder_elephant_and_several_classes(tmp_path):
    folder = make_imagefolder(tmp_path / "animals", {n: 24 for n in ("elephant", "horse", "zebra", "lion")})
    orig = train(f"imagefolder:{folder}", "mlp", tmp_path / "orig", epochs=15, batch_size=16, lr=0.05,
                 image_size=12, val_fraction=0.2)
    assert _metrics(orig)["test_acc"] >= 90.0
    one = forget(orig, "adversarial", tmp_path / "f1", forget_class="elephant", settings=["epochs=30"])
    m = _metrics(one)
    assert m["forget_test_acc"] == 0.0 and m["test_acc"] >= 80.0
    assert m["adversarial"]["samples"][0]["true"] == "elephant"
    two = forget(orig, "adversarial", tmp_path / "f2", forget_class="elephant,horse", settings=["epochs=30"])
    m2 = _metrics(two)
    assert json.loads((two / "meta.json").read_text())["forget"]["classes"] == [0, 1]
    assert m2["forget_test_acc"] == 0.0 and m2["test_acc"] >= 80.0


def test_guard_keeps_the_last_healthy_state_on_collapse(mlp_run, tmp_path, capsys):
    run = forget(mlp_run, "adversarial", tmp_path / "boom", forget_class="3",
                 settings=["lr=1e6", "epochs=4", "check_every=1"])
    m = _metrics(run)
    fig = m["adversarial"]
    assert fig["stopped_early"] and fig["steps_run"] < fig["steps"] and "collapse" in fig["stop_reason"]
    assert "stopped early" in capsys.readouterr().err
    # what was kept is the last state that passed a check: finite and still recognising the retained classes
    assert fig["kept_step"] == fig["steps_run"] - 1
    model = load_run(run).build_model()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert fig["guard_retain_acc"]["end"] >= fig["guard_retain_acc"]["start"] - 20.0
    assert m["test_acc"] >= 80.0  # a collapsed model sits near chance (10%)


def test_guard_stops_on_nan_with_nothing_healthy_to_keep(mlp_run, tmp_path):
    """A NaN before any healthy step leaves nothing to keep: the method stops, naming itself and the step."""
    with pytest.raises(NumericalError, match=r"adversarial: .*NaN.*step \d+"):
        forget(mlp_run, "adversarial", tmp_path / "nan", forget_class="3",
               settings=["lr=1e30", "epochs=4", "check_every=50"])
    assert not (tmp_path / "nan").exists()


def test_seed_preset_runs_the_described_recipe(mlp_run, tmp_path):
    cfg = make_config(Adversarial, ["preset=seed"])
    assert (cfg.features, cfg.real, cfg.ce_weight, cfg.kl_weight, cfg.epochs) == ("logits", "retain", 0.0, 0.0, 20.0)
    assert (cfg.lr, tuple(cfg.betas), cfg.weight_decay, cfg.batch_size) == (1e-3, (0.5, 0.999), 5e-4, 64)
    assert make_config(Adversarial, ["preset=seed", "ce_weight=1"]).ce_weight == 1.0  # explicit settings win
    run = forget(mlp_run, "adversarial", tmp_path / "seed", forget_class="3", settings=["preset=seed"])
    fig = _metrics(run)["adversarial"]
    src = load_run(mlp_run)
    n_forget = len(parse_request(src.meta, load_run_data(src.meta), forget_class="3").split.forget_idx)
    assert fig["preset"] == "seed" and fig["steps"] == fig["steps_run"] == math.ceil(20 * n_forget / 64)
    assert _metrics(run)["forget_test_acc"] <= 10.0


def test_profile_features_are_label_agnostic_and_sized_by_classes():
    torch.manual_seed(0)
    logits = torch.randn(5, 10)
    fmask = torch.zeros(10, dtype=torch.bool)
    fmask[[2, 7]] = True
    f = profile(logits, fmask)
    assert f.shape == (5, 10)
    perm = torch.tensor([1, 0, 2, 4, 3, 6, 5, 7, 9, 8])  # shuffle retained classes only
    assert torch.allclose(profile(logits[:, perm], fmask), f, atol=1e-6)
    real = profile(logits, fmask, exclude=fmask.expand(5, -1))
    assert torch.all(real[:, 7:9] == -1.0)  # a model without the classes: log-odds at the floor
    assert f.min() >= -1.0


def test_bad_settings_and_scenarios_are_user_errors(mlp_run, tmp_path):
    with pytest.raises(UserError, match="preset"):
        make_config(Adversarial, ["preset=nope"])
    with pytest.raises(UserError, match="features"):
        make_config(Adversarial, ["features=pixels"])
    with pytest.raises(UserError, match="does not support random"):
        forget(mlp_run, "adversarial", tmp_path / "r", forget_random=0.1)
    assert set(PRESETS) == {"default", "seed"}



def test_body_lr_slows_the_feature_extractor_only_in_long_games():
    from unlearnkit.models import build_model
    from unlearnkit.models.registry import last_linear

    model = build_model("mlp", 10, (1, 8, 8), (0.5,), (0.5,))
    long_game = Adversarial(make_config(Adversarial, None)).generator_groups(model, steps=500)
    assert len(long_game) == 2 and long_game[1]["lr"] == 1e-4  # the feature extractor slowed, the head at lr
    assert {id(p) for p in long_game[0]["params"]} == {id(p) for p in last_linear(model).parameters()}
    assert len(long_game[0]["params"]) + len(long_game[1]["params"]) == len(list(model.parameters()))
    short_game = Adversarial(make_config(Adversarial, None)).generator_groups(model, steps=30)
    assert len(short_game) == 1  # a short game (a small job) moves everything at full speed
    described = Adversarial(make_config(Adversarial, ["preset=seed"])).generator_groups(model, steps=500)
    assert len(described) == 1  # preset=seed keeps the description's single learning rate


def test_a_game_too_short_to_forget_is_replayed_safer_not_returned_unchanged(tmp_path):
    """Issue 21: on a small colour folder the automatic budget gave a short game in which the whole network
    moved at full speed and collapsed; the guard then handed back the input model. Now a safer game follows
    (the head alone, at least `slow_body_from` steps) and forgets, and every game is recorded."""
    folder = make_imagefolder(tmp_path / "photos", {n: 30 for n in ("elephant", "horse", "zebra", "lion")}, size=16)
    orig = train(f"imagefolder:{folder}", "cnn-small", tmp_path / "orig", epochs=8, batch_size=16, lr=0.05,
                 image_size=16, val_fraction=0.2)
    assert _metrics(orig)["test_acc"] >= 90.0
    run = forget(orig, "adversarial", tmp_path / "f", forget_class="elephant",
                 settings=["lr=0.05", "budget=0.0001", "min_steps=20", "check_every=5", "slow_body_from=40"])
    m = _metrics(run)
    games = m["adversarial"]["attempts"]
    assert games[0]["game"] == "as set" and games[0]["steps"] == 20 and games[0]["stopped_early"]
    assert games[0]["kept_step"] == 0 and games[0]["forget_batch_acc"] >= 90.0  # this game alone: unchanged
    assert len(games) >= 2 and games[1]["game"] == "head only" and games[1]["steps"] >= 40
    assert games[1]["frozen_body"] and games[1]["body_lr"] is None
    assert m["adversarial"]["attempt"] == games[-1]["game"] and not games[-1]["stopped_early"]
    assert m["original"]["forget_test_acc"] >= 90.0 and m["forget_test_acc"] <= 10.0
    assert m["test_acc"] >= 85.0
    # a job this small (8 epochs of ~70 images) retrains in fewer sample passes than one game: said, and recorded
    assert m["adversarial"]["game_vs_retraining"] > 1.0
    assert "`--method retrain` is cheaper and exact at this size" in (run / "log.txt").read_text()


def test_a_job_larger_than_the_game_gets_no_small_job_note(mlp_run, tmp_path):
    run = forget(mlp_run, "adversarial", tmp_path / "f", forget_class="3", settings=["retries=0"])
    assert "game_vs_retraining" not in _metrics(run)["adversarial"]


def test_a_bad_discriminator_file_is_a_one_line_error(mlp_run, tmp_path, capsys):
    """Issue 19: a bad `discriminator.safetensors` made `predict` an internal error."""
    import shutil

    from unlearnkit.cli import main

    run = forget(mlp_run, "adversarial", tmp_path / "adv", forget_class="3", settings=["epochs=1"])
    copy_ = tmp_path / "copy"
    shutil.copytree(run, copy_)
    (copy_ / "discriminator.safetensors").write_bytes(b"\x00" * 64)
    img = tmp_path / "three.png"
    _save_png(img, load_run(mlp_run))
    capsys.readouterr()
    assert main(["predict", str(copy_), str(img), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "discriminator" in err and "delete it" in err
