"""The foundation: data, splits, training, run directories, evaluation, the CLI's contracts."""

from __future__ import annotations

import json

import pytest
import torch

from unlearnkit import UserError, evaluate, forget, load_dataset, load_run, predict, train
from unlearnkit.cli import main
from unlearnkit.data.splits import make_split, parse_forget_spec, val_split
from unlearnkit.data.transforms import apply_augment, augment_batch, draw_augment

from .conftest import make_imagefolder, tree_hash

TIMING_KEYS = {"seconds", "speedup", "speedup_over_training"}


def _strip_timing(obj):
    """obj without wall times and the verdict's warnings that compare them (a tiny run can be either side of 1x)."""
    if isinstance(obj, dict):
        return {k: _strip_timing(v) for k, v in obj.items() if k not in TIMING_KEYS}
    if isinstance(obj, list):
        return [_strip_timing(v) for v in obj if not (isinstance(v, str) and v.startswith("SLOWER THAN"))]
    return obj


def test_digits_bundle_is_uint8_and_split_is_stratified():
    b = load_dataset("digits")
    assert b.x_train.dtype == torch.uint8 and b.x_train.shape[1:] == (1, 8, 8)
    assert b.num_classes == 10 and len(b.y_test) == 360
    tr, va = val_split(b.y_train, 0.1, 0)
    assert len(set(tr.tolist()) & set(va.tolist())) == 0 and len(tr) + len(va) == len(b.y_train)
    counts = torch.bincount(b.y_train[va], minlength=10)
    assert counts.min() >= 12  # every class held out


def test_forget_class_split_excludes_val_and_covers_class():
    b = load_dataset("digits")
    spec = parse_forget_spec(b.classes, forget_class="3,5")
    s = make_split(b.y_train, 0.1, 0, spec)
    assert set(b.y_train[s.forget_idx].tolist()) == {3, 5}
    assert not torch.isin(b.y_train[s.retain_idx], torch.tensor([3, 5])).any()
    assert not torch.isin(s.forget_idx, s.val_idx).any()
    assert len(s.forget_idx) + len(s.retain_idx) == len(s.train_idx)


def test_random_forget_is_seeded_fraction():
    b = load_dataset("digits")
    a = make_split(b.y_train, 0.1, 0, parse_forget_spec(b.classes, forget_random=0.1, seed=1))
    c = make_split(b.y_train, 0.1, 0, parse_forget_spec(b.classes, forget_random=0.1, seed=1))
    d = make_split(b.y_train, 0.1, 0, parse_forget_spec(b.classes, forget_random=0.1, seed=2))
    assert torch.equal(a.forget_idx, c.forget_idx) and not torch.equal(a.forget_idx, d.forget_idx)
    assert abs(len(a.forget_idx) - 0.1 * len(a.train_idx)) <= 1


def test_batched_augmentation_keeps_shape_and_content():
    x = torch.rand(16, 3, 12, 12)
    g = torch.Generator().manual_seed(0)
    y = augment_batch(x, "crop", g)
    assert y.shape == x.shape
    # a crop is a shifted window of the zero-padded image: every output value exists in the input or is 0
    vals = set(x[0].flatten().tolist()) | {0.0}
    assert set(y[0].flatten().tolist()) <= vals
    assert augment_batch(x, "none") is x
    # the drawn offsets say exactly which window each image got (pad = 12 // 8 = 1)
    p = draw_augment(16, "crop-flip", 12, torch.Generator().manual_seed(1))
    z = apply_augment(x, "crop-flip", p)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    for i in range(16):
        want = padded[i, :, p["oy"][i]:p["oy"][i] + 12, p["ox"][i]:p["ox"][i] + 12]
        assert torch.equal(z[i], want.flip(2) if p["flip"][i] else want)
    assert 0 < int(p["flip"].sum()) < 16 and len(set(p["oy"].tolist())) > 1


def test_train_writes_complete_run_dir(digits_run):
    for name in ("model.safetensors", "meta.json", "metrics.json"):
        assert (digits_run / name).is_file()
    run = load_run(digits_run)
    for k in ("arch", "num_classes", "classes", "input_shape", "normalization", "data", "train", "seed",
              "versions", "seconds"):
        assert k in run.meta
    assert run.metrics["test_acc"] > 85.0
    assert len(run.metrics["per_class_acc"]["test"]) == 10
    model = run.build_model()
    assert sum(p.numel() for p in model.parameters()) > 1000


def test_threads_are_restored_after_a_command(tmp_path):
    """`--threads` is for the command it is given to: main() inside a test or a notebook leaves torch's thread
    count as it found it (a leak would slow, or oversubscribe, every later run of the process)."""
    before = torch.get_num_threads()
    args = ["train", "--data", "digits", "--arch", "mlp", "--epochs", "1", "--quiet", "--out", str(tmp_path / "t")]
    assert main(args + ["--threads", str(before + 1)]) == 0
    assert torch.get_num_threads() == before


def test_same_seed_same_metrics(tmp_path):
    """The same command with the same seed twice gives identical metrics.json on CPU (wall times aside)."""
    args = ["train", "--data", "digits", "--arch", "mlp", "--epochs", "2", "--seed", "3", "--quiet"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    assert main(args + ["--out", str(tmp_path / "b")]) == 0
    ma = json.loads((tmp_path / "a" / "metrics.json").read_text())
    mb = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert _strip_timing(ma) == _strip_timing(mb)
    fa = ["forget", str(tmp_path / "a"), "--method", "finetune", "--forget-class", "2", "--set", "epochs=1",
          "--quiet"]
    assert main(fa + ["--out", str(tmp_path / "fa")]) == 0
    assert main(fa + ["--out", str(tmp_path / "fb")]) == 0
    fa_m = json.loads((tmp_path / "fa" / "metrics.json").read_text())
    fb_m = json.loads((tmp_path / "fb" / "metrics.json").read_text())
    assert _strip_timing(fa_m) == _strip_timing(fb_m)


def test_retrain_forgets_class_and_mia_sees_nonmembers(digits_run, tmp_path):
    """Sanity of the metrics: a model retrained without class 3 never predicts it and its forget set looks unseen."""
    out = forget(digits_run, "retrain", tmp_path / "r", forget_class="3", seed=0)
    m = json.loads((out / "metrics.json").read_text())
    assert m["forget_test_acc"] == 0.0 and m["forget_acc"] == 0.0
    assert m["mia_efficacy"] >= 95.0
    assert m["test_acc"] > 85.0
    assert "clean_acc" not in m and "asr" not in m  # keys that do not apply are absent


def test_forget_with_retrain_reports_reference_gap_and_speedup(digits_run, tmp_path):
    before = tree_hash(digits_run)
    out = forget(digits_run, "finetune", tmp_path / "f", forget_random=0.1, retrain=True,
                 settings=["epochs=2"], seed=0)
    assert tree_hash(digits_run) == before
    m = json.loads((out / "metrics.json").read_text())
    for k in ("test_acc", "retain_acc", "forget_acc", "mia_efficacy", "mia_loss_auc", "seconds", "reference", "gap",
              "speedup", "js_div", "original"):
        assert k in m, k
    assert "forget_test_acc" not in m  # class-forgetting only
    lo, hi = m["mia_loss_auc_ci"]  # issue 22: the loss attack's AUC comes with its 95% interval
    assert lo <= m["mia_loss_auc"] <= hi and hi - lo > 0
    assert set(m["gap"]) >= {"forget_acc", "retain_acc", "test_acc", "mia_efficacy", "avg"}
    assert m["speedup"] == pytest.approx(m["reference"]["seconds"] / m["seconds"], rel=1e-2)
    ref = load_run(out / "reference")
    assert ref.meta["method"]["name"] == "retrain"
    # evaluate recomputes the same numbers and writes nothing
    before = tree_hash(out)
    again = evaluate(out)
    assert tree_hash(out) == before
    for k in ("test_acc", "retain_acc", "forget_acc", "mia_efficacy"):
        assert again[k] == m[k]
        assert again["reference"][k] == m["reference"][k]

    import shutil  # a reference retrained on another machine gives a gap, but no speed-up
    foreign = tmp_path / "foreign-reference"
    shutil.copytree(out / "reference", foreign)
    meta = json.loads((foreign / "meta.json").read_text())
    (foreign / "meta.json").write_text(json.dumps({**meta, "machine": "16-core Other CPU, cuda (NVIDIA H100)"}))
    other = evaluate(out, reference=foreign)
    assert "gap" in other and "speedup" not in other
    assert evaluate(out, reference=out / "reference")["speedup"] == m["speedup"]


def test_forget_indices_file(digits_run, tmp_path):
    run = load_run(digits_run)
    b = load_dataset("digits")
    s = make_split(b.y_train, run.meta["data"]["val_fraction"], 0, None)
    (tmp_path / "idx.txt").write_text("\n".join(str(i) for i in s.train_idx[:25].tolist()))
    out = forget(digits_run, "finetune", tmp_path / "f", forget_indices=tmp_path / "idx.txt", settings={"epochs": 1})
    meta = json.loads((out / "meta.json").read_text())
    assert meta["forget"]["kind"] == "indices" and len(meta["forget"]["indices"]) == 25
    assert meta["method"]["config"]["epochs"] == 1 and meta["parent"] == str(digits_run.resolve())


def test_imagefolder_and_predict(tmp_path):
    root = make_imagefolder(tmp_path / "animals", {"cat": 12, "dog": 12, "elephant": 12})
    out = train(f"imagefolder:{root}", "cnn-small", tmp_path / "run", epochs=4, batch_size=16, lr=0.05,
                image_size=12, val_fraction=0.1)
    meta = load_run(out).meta
    assert meta["classes"] == ["cat", "dog", "elephant"] and meta["input_shape"] == [3, 12, 12]
    res = predict(out, [root / "elephant" / "0.png", root / "cat" / "1.png"], top=2)
    assert len(res) == 2 and len(res[0]["top"]) == 2
    assert res[0]["top"][0]["prob"] >= res[0]["top"][1]["prob"]
    assert {t["class"] for t in res[0]["top"]} <= {"cat", "dog", "elephant"}


def test_list_commands(capsys):
    for what in ("methods", "datasets", "models", "attacks"):
        assert main(["list", what]) == 0
    out = capsys.readouterr().out
    for name in ("retrain", "finetune", "digits", "fashion-mnist", "imagefolder:PATH", "resnet18", "preact-resnet18",
                 "vgg-small", "cnn-small", "mlp", "torchvision:NAME"):
        assert name in out


@pytest.mark.parametrize("arch", ["resnet18", "preact-resnet18", "vgg-small", "cnn-small", "mlp",
                                  "torchvision:mobilenet_v3_small"])
def test_every_model_runs_forward_and_backward(arch):
    from unlearnkit.models import build_model

    m = build_model(arch, 7, (1, 32, 32), (0.5,), (0.25,))
    x = torch.rand(2, 1, 32, 32)
    y = m(x)
    assert y.shape == (2, 7)
    y.sum().backward()


def test_api_errors_are_user_errors(digits_run, tmp_path):
    with pytest.raises(UserError, match="choose one of"):
        forget(digits_run, "no-such-method", tmp_path / "x", forget_class="1")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("what", ["methods", "attacks", "datasets", "models"])
def test_list_says_what_each_entry_is(what):
    """`unlearnkit list ...` gives every registered name a description (the first line of its docstring)."""
    from unlearnkit.api import describe

    rows = describe(what)
    assert rows and all(text.strip() for _, text in rows), [n for n, t in rows if not t.strip()]
