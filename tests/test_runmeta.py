"""`RunMeta`: meta.json typed, written and read back as the same dict (issue 20)."""

from __future__ import annotations

import json

from unlearnkit.engine.rundir import load_run
from unlearnkit.pipeline import forget, train
from unlearnkit.runmeta import DataRef, RunMeta, data_ref


def test_a_run_reads_back_typed_and_writes_the_same_json(tmp_path):
    run = train("digits", "cnn-small", tmp_path / "r", epochs=1)
    src = load_run(run)
    m = src.meta
    assert isinstance(m, RunMeta) and json.loads((run / "meta.json").read_text()) == dict(m)
    assert (m.kind, m.is_forget, m.arch_name, m.num_classes) == ("train", False, "cnn-small", 10)
    assert m.classes == [str(i) for i in range(10)] and m.input_shape == (1, 8, 8)
    assert m.data == DataRef("digits", None, None, 0.1, 0) and m.seed == 0 and m.recipe["epochs"] == 1
    assert m.forget_spec is None and m.scenario is None and m.method_name is None and m.parent is None
    out = load_run(forget(run, "finetune", tmp_path / "f", forget_class="3", settings={"epochs": 1}))
    f = out.meta
    assert f.is_forget and f.scenario == "class" and f.method_name == "finetune" and f.method_config["epochs"] == 1
    assert f.forget_spec is not None and f.forget_spec.classes == [3] and f.parent == str(run.resolve())
    assert f.seconds is not None and f.seconds >= 0


def test_an_older_meta_gets_the_documented_defaults():
    """meta.json written before `kind`, `seed` and the split's keys existed: a trained run, seed 0, 10% held out."""
    m = RunMeta({"arch": {"name": "mlp"}, "num_classes": 2, "classes": ["a", "b"], "input_shape": [1, 4, 4],
                 "normalization": {"mean": [0.5], "std": [0.25]}, "data": {"spec": "digits"}})
    assert (m.kind, m.seed, m.arch_kwargs, m.mean, m.std) == ("train", 0, {}, (0.5,), (0.25,))
    assert m.data == DataRef("digits") and m.poison is None and m.seconds is None
    assert RunMeta.of(m) is m
    assert data_ref("cifar10", "/d", 32, 0.2) == {"spec": "cifar10", "root": "/d", "image_size": 32,
                                                  "val_fraction": 0.2, "split_seed": 0}
