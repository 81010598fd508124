"""Backdoor attacks on digits: what each trigger changes, poison specs, label maps, and backdoor metrics."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from unlearnkit.attacks import (
    ATTACKS,
    LabelMap,
    backdoor_metrics,
    build_trigger,
    make_poison_spec,
    poison_bundle,
    poisoned_indices,
)
from unlearnkit.attacks.base import stamp
from unlearnkit.data import load_dataset
from unlearnkit.data.splits import val_split
from unlearnkit.data.transforms import to_float
from unlearnkit.errors import UserError
from unlearnkit.metrics import defense_effectiveness_rating
from unlearnkit.rundata import split_of

ALL = ["badnets", "blend", "sig", "wanet", "trojan", "l0-inv", "l2-inv"]
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def poisoned(digits):
    out = {}
    for name in ALL:
        spec = make_poison_spec(name, digits, target=0, ratio=0.1, seed=3)
        out[name] = (spec, poison_bundle(digits, spec))
    return out


def test_every_attack_is_registered():
    assert sorted(ATTACKS.names()) == sorted(ALL)


@pytest.mark.parametrize("name", ALL)
def test_poisoned_bundle_changes_only_the_spec_indices(name, digits, poisoned):
    spec, bundle = poisoned[name]
    idx = torch.tensor(spec["indices"] + spec.get("cross_indices", []))
    _, val = val_split(digits.y_train, spec["val_fraction"], spec["split_seed"])
    assert not torch.isin(idx, val).any(), "poisoned samples must not come from the held-out split"
    assert spec["count"] == len(spec["indices"]) > 0
    changed = (bundle.x_train != digits.x_train).flatten(1).any(1)
    assert not changed[~torch.isin(torch.arange(len(changed)), idx)].any()
    assert changed[idx].float().mean() > 0.9  # (a trigger may leave an already-matching image unchanged)
    assert torch.equal(bundle.x_test, digits.x_test) and torch.equal(bundle.y_test, digits.y_test)
    relabelled = (bundle.y_train != digits.y_train).nonzero().flatten()
    if name == "sig":
        assert len(relabelled) == 0
    else:
        assert torch.equal(relabelled, torch.tensor(spec["indices"]))
        assert (bundle.y_train[relabelled] == 0).all()


@pytest.mark.parametrize("name", ALL)
def test_trigger_is_rebuilt_identically_from_the_json_spec(name, digits, poisoned):
    spec, bundle = poisoned[name]
    again = json.loads(json.dumps(spec))
    x = to_float(digits.x_test[:16])
    assert torch.equal(build_trigger(spec).apply(x), build_trigger(again).apply(x))
    assert torch.equal(poison_bundle(digits, again).x_train, bundle.x_train)
    if not spec["clean_label"]:  # (sig poisons the whole target class, whatever the seed)
        assert make_poison_spec(name, digits, target=0, ratio=0.1, seed=4)["indices"] != spec["indices"]


def _poisoned_meta(spec: dict) -> dict:
    return {"data": {"spec": "digits", "val_fraction": spec["val_fraction"], "split_seed": spec["split_seed"]},
            "poison": spec}


@pytest.mark.parametrize("name", ALL)
def test_the_runs_held_out_split_never_holds_a_poisoned_sample(name, digits, poisoned):
    """The split a run trains, guards and draws clean sets by is the one its poisoned samples were chosen outside
    of: drawn again on the poisoned labels, it held out about a tenth of them (triggered, with the target's label)
    and every backdoor defence was taught the backdoor back by its own "clean" set."""
    spec, bundle = poisoned[name]
    split = split_of(_poisoned_meta(spec), bundle, None)
    train, val = val_split(digits.y_train, spec["val_fraction"], spec["split_seed"])
    assert torch.equal(split.val_idx, val) and torch.equal(split.train_idx, train)
    assert torch.isin(poisoned_indices(spec), split.train_idx).all(), "every poisoned sample is trained on"
    if not spec["clean_label"]:  # the bug's condition: stratified on the poisoned labels, the split differs
        assert not torch.equal(val_split(bundle.y_train, spec["val_fraction"], spec["split_seed"])[1], val)


def test_a_run_made_before_keeps_its_split_without_the_poisoned_samples(digits, poisoned):
    """A run whose spec predates `split_on` trained on the split drawn on the poisoned labels: it keeps it, and
    the poisoned samples that split held out leave it (used nowhere)."""
    spec, bundle = poisoned["badnets"]
    old = {k: v for k, v in spec.items() if k != "split_on"}
    split = split_of(_poisoned_meta(old), bundle, None)
    train, val = val_split(bundle.y_train, spec["val_fraction"], spec["split_seed"])
    held = torch.isin(val, poisoned_indices(spec))
    assert held.any(), "the old split held out poisoned samples (else this test shows nothing)"
    assert torch.equal(split.train_idx, train) and torch.equal(split.val_idx, val[~held])


def _diff(name: str, digits, settings=None):
    spec = make_poison_spec(name, digits, target=0, ratio=0.1, seed=0, settings=settings)
    x = to_float(digits.x_test[:64])
    return spec, build_trigger(spec), x, build_trigger(spec).apply(x) - x


def test_badnets_changes_only_the_corner_patch(digits):
    spec, trig, x, d = _diff("badnets", digits)
    s, m = spec["params"]["size"], spec["params"]["margin"]
    assert s == 2 and m == 1  # scaled from 3 on 32x32 to the 8x8 digits
    inside = torch.zeros(8, 8, dtype=torch.bool)
    inside[8 - m - s: 8 - m, 8 - m - s: 8 - m] = True
    assert (d[..., ~inside] == 0).all()
    assert (trig.apply(x)[..., inside] == 1).all()


def test_blend_mixes_the_pattern_with_alpha(digits):
    spec, trig, x, d = _diff("blend", digits)
    assert torch.allclose(d, 0.2 * (trig.pattern - x), atol=1e-6)


def test_sig_adds_a_horizontal_sinusoid(digits):
    spec, trig, x, d = _diff("sig", digits)
    expected = (x + trig.signal).clamp(0, 1) - x
    assert torch.allclose(d, expected)
    assert (d[..., 0] == 0).all()  # sin(0) = 0: the first column is untouched
    assert torch.allclose(trig.signal.abs().max(), torch.tensor(40 / 255), atol=2e-3)


def test_sig_poisons_only_target_class_samples(digits, poisoned):
    spec, bundle = poisoned["sig"]
    assert spec["clean_label"] and (digits.y_train[spec["indices"]] == 0).all()
    with pytest.raises(UserError, match="clean-label"):
        make_poison_spec("sig", digits, target=0, ratio=0.1, all_to_all=True)


def test_l0_inv_changes_only_its_pixels(digits):
    spec, trig, x, d = _diff("l0-inv", digits)
    k = spec["params"]["pixels"]
    assert (d.abs().flatten(1) > 0).sum(1).max() <= k
    assert int(trig.mask.sum()) == k


def test_l2_inv_is_a_small_additive_pattern(digits):
    spec, trig, x, d = _diff("l2-inv", digits)
    assert torch.allclose(trig.pattern.pow(2).mean().sqrt(), torch.tensor(0.05))
    assert (d.abs() <= trig.pattern.abs() + 1e-6).all()


def test_trojan_shapes(digits):
    _, trig, x, d = _diff("trojan", digits)
    assert (d >= 0).all() and (d.abs().sum((1, 2, 3)) > 0).all()  # an added, clipped watermark
    _, trig, x, d = _diff("trojan", digits, {"shape": "square"})
    assert (d[..., :4, :] == 0).all() and (d[..., :, :4] == 0).all()  # confined to the bottom-right square


def test_wanet_warps_slightly_and_cross_samples_keep_labels(digits, poisoned):
    spec, bundle = poisoned["wanet"]
    cross = torch.tensor(spec["cross_indices"])
    assert len(cross) == pytest.approx(2 * spec["count"], abs=2)
    assert not torch.isin(cross, torch.tensor(spec["indices"])).any()
    assert torch.equal(bundle.y_train[cross], digits.y_train[cross])
    assert not torch.equal(bundle.x_train[cross], digits.x_train[cross])
    _, _, x, d = _diff("wanet", digits)
    assert d.abs().mean() < 0.1 and d.abs().max() > 0


def test_all_to_all_label_map(digits):
    spec = make_poison_spec("badnets", digits, target=0, ratio=0.1, all_to_all=True, seed=1)
    bundle = poison_bundle(digits, spec)
    idx = torch.tensor(spec["indices"])
    assert torch.equal(bundle.y_train[idx], (digits.y_train[idx] + 1) % 10)
    lm = LabelMap.from_dict(spec["label_map"])
    assert lm.all_to_all and lm.victims(digits.y_test).all()


def test_bad_poison_requests_are_user_errors(digits):
    with pytest.raises(UserError, match="--target"):
        make_poison_spec("badnets", digits, target=10)
    with pytest.raises(UserError, match="--poison-ratio"):
        make_poison_spec("badnets", digits, ratio=1.5)
    with pytest.raises(UserError, match="no setting 'alpha'"):
        make_poison_spec("badnets", digits, settings={"alpha": 0.3})
    with pytest.raises(UserError, match="bad settings"):
        make_poison_spec("badnets", digits, settings={"pattern": "stripes"})
    with pytest.raises(UserError, match="unknown attack"):
        make_poison_spec("nope", digits)


class _Always(nn.Module):
    """Predicts one class for every input."""

    def __init__(self, cls: int) -> None:
        super().__init__()
        self.cls = cls

    def forward(self, x):
        out = torch.zeros(len(x), 10)
        out[:, self.cls] = 1.0
        return out


def test_backdoor_metrics_count_only_non_target_samples(digits, poisoned):
    spec, bundle = poisoned["badnets"]
    m = backdoor_metrics(_Always(0), bundle, spec, CPU)
    share0 = float((digits.y_test == 0).float().mean() * 100)
    assert m["asr"] == 100.0 and m["robust_acc"] == 0.0
    assert m["clean_acc"] == pytest.approx(share0, abs=1e-3)
    m = backdoor_metrics(_Always(3), bundle, spec, CPU)
    assert m["asr"] == 0.0 and m["robust_acc"] > 0


def test_stamp_rounds_to_uint8_like_the_training_images(digits, poisoned):
    spec, bundle = poisoned["blend"]
    i = spec["indices"][:5]
    assert torch.equal(stamp(build_trigger(spec), digits.x_train[i], CPU), bundle.x_train[i])


def test_der():
    assert defense_effectiveness_rating({"asr": 100, "clean_acc": 90}, {"asr": 0, "clean_acc": 90}) == 1.0
    assert defense_effectiveness_rating({"asr": 90, "clean_acc": 90}, {"asr": 90, "clean_acc": 90}) == 0.5
    assert defense_effectiveness_rating({"asr": 100, "clean_acc": 90},
                                        {"asr": 10, "clean_acc": 80}) == pytest.approx(0.9)


@pytest.mark.parametrize("name", ["badnets", "blend"])
def test_training_on_poisoned_digits_plants_the_backdoor(name, tmp_path):
    from unlearnkit.pipeline import train

    run = train("digits", "mlp", tmp_path / name, epochs=15, batch_size=64, lr=0.05, poison=name, target=0,
                poison_ratio=0.1)
    meta = json.loads((run / "meta.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert meta["poison"]["attack"] == name and len(meta["poison"]["indices"]) == meta["poison"]["count"]
    assert metrics["asr"] >= 80 and metrics["clean_acc"] >= 80
