"""HyperForget on digits: a tiny hypernetwork learns to forget, its samples are ordinary runs, training resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from unlearnkit import UserError, evaluate, forget, load_run
from unlearnkit.cli import main
from unlearnkit.hyperforget import HyperForget, sample, train_hypernet
from unlearnkit.hyperforget import train as train_module
from unlearnkit.hyperforget.basis import HeadBasis
from unlearnkit.hyperforget.diffusion import Diffusion
from unlearnkit.hyperforget.hypernet import override_prompt, prompt_losses, raw_prompts

# Small enough for seconds on a CPU, large enough to learn two forget requests.
TINY = {"classes": "3,5", "runs_per_class": 6, "head_epochs": 4, "checkpoints_per_run": 8, "width": 128, "depth": 2,
        "steps": 800, "batch_size": 32, "save_every": 100, "sample_steps": 20, "val_samples": 2, "rank": 16}


@pytest.fixture(scope="module")
def hypernet(mlp_run, tmp_path_factory) -> Path:
    return train_hypernet(mlp_run, tmp_path_factory.mktemp("hf") / "hypernet", settings=TINY, seed=0)


@pytest.fixture(scope="module")
def reference(mlp_run, tmp_path_factory) -> Path:
    return forget(mlp_run, "retrain", tmp_path_factory.mktemp("ref") / "ref3", forget_class="3")


def test_train_writes_safetensors_and_meta(hypernet, mlp_run):
    assert sorted(p.name for p in hypernet.iterdir()) == ["collection", "hypernet.safetensors", "log.txt",
                                                          "meta.json"]
    assert sorted(p.name for p in (hypernet / "collection").iterdir()) == ["class-3.safetensors",
                                                                          "class-5.safetensors"]
    assert not list(hypernet.parent.glob(".hypernet*"))  # no temporary output or checkpoints left behind
    meta = json.loads((hypernet / "meta.json").read_text())
    assert meta["parent"] == str(Path(mlp_run).resolve()) and meta["classes"] == [3, 5]
    assert meta["checkpoints"]["total"] > meta["checkpoints"]["train"] > 0
    assert set(meta["seconds"]) >= {"features", "collect", "train", "total"}
    align = meta["validation"]["alignment"]  # held-out checkpoints: prompted vs achieved losses
    assert align["held_out"] and align["forget_r2"] > 0.5 and align["retain_r2"] > 0.5
    w = load_file(str(Path(mlp_run) / "model.safetensors"))
    assert torch.equal(HyperForget.load(hypernet).original, torch.cat([w["net.5.weight"], w["net.5.bias"][:, None]], 1))


def test_samples_forget_the_requested_class_and_keep_the_rest(hypernet, reference, mlp_run, tmp_path):
    out = sample(hypernet, "3", tmp_path / "s", n=4, reference=reference, seed=1)
    original = load_run(mlp_run).metrics["test_acc"]
    for i in range(4):
        m = json.loads((out / f"sample-{i}" / "metrics.json").read_text())
        assert m["forget_test_acc"] <= 5.0  # the forgotten class is gone...
        assert m["test_acc"] >= original - 6.0  # ...the other nine are kept (retrain: ~original)
        assert m["gap"]["mia_efficacy"] <= 10.0  # and the forget set looks unseen, as after retraining
    heads = [load_file(str(out / f"sample-{i}" / "model.safetensors"))["net.5.weight"] for i in range(4)]
    assert not torch.equal(heads[0], heads[1])  # samples, not copies
    summary = json.loads((out / "samples.json").read_text())
    assert [s["run"] for s in summary["samples"]] == [f"sample-{i}" for i in range(4)]


def test_sample_run_is_an_ordinary_forget_run(hypernet, reference, tmp_path):
    out = sample(hypernet, "3", tmp_path / "one", evaluate=True)
    meta, ref_meta = load_run(out).meta, load_run(reference).meta
    assert set(ref_meta) <= set(meta)  # the keys pipeline.forget writes
    assert meta["method"]["name"] == "hyperforget" and meta["kind"] == "forget" and meta["scenario"] == "class"
    assert meta["forget"] == ref_meta["forget"] == {"kind": "class", "classes": [3], "seed": 0}
    # `unlearnkit evaluate RUN --reference REF` works unchanged and agrees with the metrics written from features
    m = evaluate(out, reference=reference)
    written = json.loads((out / "metrics.json").read_text())
    for k in ("forget_test_acc", "test_acc", "retain_acc", "forget_acc"):
        assert m[k] == pytest.approx(written[k], abs=0.5)
    assert m["gap"]["forget_test_acc"] == pytest.approx(m["forget_test_acc"], abs=1e-9)  # retrain: 0%


def test_prompts_steer_the_samples(hypernet, mlp_run, tmp_path):
    hf = HyperForget.load(hypernet)
    low = float(prompt_losses(hf.variant, raw_prompts(hf.variant, hf.start_losses[1:], hf.start_losses[1:],
                                                      hf.counts, 3), hf.counts, 3)[0][0])
    out = sample(hypernet, "3", tmp_path / "keep", start="original", forget_loss=low, n=2, evaluate=True)
    kept = [json.loads((out / f"sample-{i}" / "metrics.json").read_text())["forget_test_acc"] for i in range(2)]
    assert min(kept) >= 50.0  # prompted with the original's low forget loss, the class stays


def test_cli_sample_and_bad_input(hypernet, tmp_path, capsys):
    assert main(["hyperforget", "sample", str(hypernet), "--forget-class", "5", "--out", str(tmp_path / "c"),
                 "--quiet"]) == 0
    assert load_run(tmp_path / "c").meta["forget"]["classes"] == [5]
    assert main(["hyperforget", "sample", str(hypernet), "--forget-class", "7", "--out", str(tmp_path / "d")]) == 2
    assert "not trained to forget class '7'" in capsys.readouterr().err
    assert main(["hyperforget", "sample", str(tmp_path), "--forget-class", "3", "--out", str(tmp_path / "e")]) == 2
    assert main(["forget", str(load_run(tmp_path / "c").meta["parent"]), "--method", "hyperforget",
                 "--forget-class", "3", "--out", str(tmp_path / "f")]) == 2  # needs --set hypernet=DIR
    assert not (tmp_path / "d").exists() and not (tmp_path / "e").exists() and not (tmp_path / "f").exists()


def test_forget_method_uses_the_hypernetwork(hypernet, mlp_run, reference, tmp_path):
    out = forget(mlp_run, "hyperforget", tmp_path / "m", forget_class="3", settings=[f"hypernet={hypernet}"],
                 reference=reference)
    m = json.loads((out / "metrics.json").read_text())
    assert m["forget_test_acc"] <= 5.0 and m["hyperforget"]["start"] == "scratch"


def test_resume_continues_where_it_stopped(hypernet, mlp_run, tmp_path, monkeypatch):
    real_progress = train_module.progress

    def stop_after_350_steps(it, desc, total=None):
        for i, x in enumerate(real_progress(it, desc, total)):
            if desc == "train hypernetwork" and i == 350:
                raise KeyboardInterrupt
            yield x

    monkeypatch.setattr(train_module, "progress", stop_after_350_steps)
    out = tmp_path / "hf"
    with pytest.raises(KeyboardInterrupt):
        train_hypernet(mlp_run, out, settings=TINY, seed=0)
    partial = tmp_path / ".hf.partial"
    assert not out.exists() and (partial / "hyperforget.train.safetensors").is_file()
    assert len(list(partial.glob("hyperforget.collection-*.safetensors"))) == 2
    with pytest.raises(UserError, match="--resume"):
        train_hypernet(mlp_run, out, settings=TINY, seed=0)
    with pytest.raises(UserError, match="steps"):
        train_hypernet(mlp_run, out, settings={**TINY, "steps": 900}, seed=0, resume=True)

    monkeypatch.setattr(train_module, "progress", real_progress)
    monkeypatch.setattr(train_module, "collect_class", lambda *a, **k: pytest.fail("collection redone"))
    train_hypernet(mlp_run, out, settings=TINY, seed=0, resume=True)
    assert not partial.exists()
    # resumed from the step-300 checkpoint, it ends exactly where the uninterrupted run ended
    done, again = load_file(str(hypernet / "hypernet.safetensors")), load_file(str(out / "hypernet.safetensors"))
    assert done.keys() == again.keys()
    assert all(torch.allclose(done[k], again[k], atol=1e-6) for k in done)


def test_bench_suite_runs_sample_rows_from_one_hypernetwork(mlp_run, tmp_path, monkeypatch):
    import shutil

    from unlearnkit.bench import run_suite

    # the suite's original model: a copy of the session's tiny MLP instead of a new training
    monkeypatch.setattr("unlearnkit.pipeline.train", lambda data, arch, out, **kw: shutil.copytree(mlp_run, out))
    settings = {**TINY, "steps": 200, "quick": "true", "arch": "mlp", "epochs": 4, "samples": 2,
                "baselines": "finetune", "scenarios": "class-3", "cache": str(tmp_path / "cache")}
    out = run_suite("hyperforget", tmp_path / "out", seeds=1, settings=settings)
    res = json.loads((out / "results.json").read_text())
    assert {r["row"] for r in res["records"]} == {"retrain", "hyperforget #0", "hyperforget #1",
                                                          "finetune (1 epoch)"}
    assert len(list((tmp_path / "cache").glob("*-hyperforget-*"))) == 1  # trained once, used by both rows
    runs = out / "runs" / "class-3"
    w = [load_file(str(runs / f"hyperforget_#{i}" / "seed0" / "model.safetensors"))["net.5.weight"] for i in (0, 1)]
    assert not torch.equal(w[0], w[1])
    assert "hyperforget #1" in (out / "table.md").read_text()


def test_sampler_recovers_a_known_clean_sample():
    """With a perfect denoiser, both samplers (eta 1: DDPM, eta 0: DDIM) end exactly at the clean sample."""
    diff = Diffusion(1000)
    x0 = torch.randn(3, 4, 5)

    def oracle(x_t, t01):
        t = (t01 * (diff.num_steps - 1)).round().long()
        c_skip, c_out = diff.coefficients(t, x_t)
        return (x0 - c_skip * x_t) / c_out

    for eta in (1.0, 0.0):
        got = diff.sample(oracle, tuple(x0.shape), 25, torch.Generator().manual_seed(0), eta)
        assert torch.allclose(got, x0, atol=1e-5)


def test_basis_round_trip_and_dihyfo2_prompt_override():
    heads = torch.randn(40, 3, 6)
    full = HeadBasis.fit(heads, rank=18, multiple=6)
    assert full.rank == 18 and full.encode(heads).shape == (40, 18)
    assert torch.allclose(full.decode(full.encode(heads)), heads, atol=1e-4)
    assert 0.0 < HeadBasis.fit(heads, rank=4).kept_variance(heads) < full.kept_variance(heads) <= 1.0 + 1e-6
    counts = torch.tensor([10.0, 30.0, 60.0])
    losses = torch.tensor([[5.0, 0.2, 0.4]])
    p = raw_prompts("dihyfo-2", losses, torch.ones(1, 3), counts, 0)[0]
    q = override_prompt("dihyfo-2", p, counts, 0, forget_loss=9.0, retain_loss=0.1)
    f, r = prompt_losses("dihyfo-2", q[None], counts, 0)
    assert float(f[0]) == 9.0 and float(r[0]) == pytest.approx(0.1)
    assert float(q[2] / q[1]) == pytest.approx(2.0)  # the retained classes keep their proportions


@pytest.mark.parametrize("field, value", [
    ("classes", "35"), ("classes", [3, 99]), ("classes", [True]), ("parent", 7), ("class_counts", "many"),
    ("class_counts", [1.0]), ("start_losses", [[0.1]]), ("diffusion_steps", 2.5), ("sample_steps", "20"),
    ("sample_steps", 0), ("chunk", None), ("temperature", "hot"), ("default_prompts", {"3": {"start": "moon"}}),
    ("net", []), ("num_classes", 1),
])
def test_a_hypernetwork_meta_json_of_the_wrong_shape_is_a_one_line_error(hypernet, tmp_path, capsys, field, value):
    """Issue 19: wrong types in a hypernetwork's meta.json were internal errors deep inside sampling."""
    import shutil

    broken = tmp_path / "hypernet"
    shutil.copytree(hypernet, broken)
    meta = json.loads((broken / "meta.json").read_text())
    meta[field] = value
    (broken / "meta.json").write_text(json.dumps(meta))
    before = (broken / "meta.json").read_bytes()
    assert main(["hyperforget", "sample", str(broken), "--forget-class", "3", "--out", str(tmp_path / "s"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "meta.json" in err and "train the hypernetwork again" in err
    assert not (tmp_path / "s").exists() and (broken / "meta.json").read_bytes() == before
