"""The metric registry (issue 20): every metrics.json key is registered once, evaluation computes exactly the
registered metrics that apply, and a new metric is one file."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

import unlearnkit
from unlearnkit import metrics as metrics_pkg
from unlearnkit.metrics.registry import ALL_SCENARIOS, METRICS, ordered
from unlearnkit.metrics.table import summary_table


@pytest.fixture(scope="module")
def runs(mlp_run, tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("metric-registry")
    return {"train": mlp_run,
            "class": unlearnkit.forget(mlp_run, "finetune", d / "class", forget_class="3", settings={"epochs": 1}),
            "ref": unlearnkit.forget(mlp_run, "retrain", d / "ref", forget_class="3", settings={"epochs": 2}),
            "random": unlearnkit.forget(mlp_run, "finetune", d / "random", forget_random=0.1,
                                        settings={"epochs": 1})}


def test_every_metric_is_described_once():
    keys = [m.key for m in ordered()]
    assert len(keys) == len(set(keys)) and {"forget_acc", "test_acc", "asr", "mia_loss_auc"} <= set(keys)
    for m in ordered():
        assert m.label and m.short and m.scenarios <= ALL_SCENARIOS, m.key


@pytest.mark.parametrize("key", [m.key for m in ordered() if m.compute is not None])
@pytest.mark.parametrize("scenario", ["train", "class", "random"])
def test_evaluation_computes_each_registered_metric_where_it_applies(runs, key, scenario):
    m = json.loads((runs[scenario] / "metrics.json").read_text())
    assert (key in m) == (scenario in METRICS.get(key).scenarios), (key, scenario)


def test_a_new_metric_is_one_file(runs, tmp_path, monkeypatch):
    """A module dropped into the metrics package registers a metric; evaluation, the gap to the reference, the
    terminal summary and the HTML report pick it up with no other change."""
    pkg = tmp_path / "extra"
    pkg.mkdir()
    (pkg / "probe_metric.py").write_text(textwrap.dedent('''
        from unlearnkit.metrics.accuracy import accuracy
        from unlearnkit.metrics.registry import FORGET_SCENARIOS, Metric, register_metric

        register_metric(Metric("probe_retain_err", "retain-set error (probe)", "retain err.", "100 - RA", 35,
                               FORGET_SCENARIOS, gap=True,
                               compute=lambda ctx: round(100 - accuracy(ctx.p.retain_logits, ctx.p.retain.y), 4)))
    '''))
    monkeypatch.setattr(metrics_pkg, "__path__", [*metrics_pkg.__path__, str(pkg)])
    monkeypatch.setattr(METRICS, "_loaded", False)  # the next look-up imports every module of the package again
    try:
        assert unlearnkit.evaluate(runs["class"])["probe_retain_err"] >= 0  # recomputed from an existing run
        run = unlearnkit.forget(runs["train"], "finetune", tmp_path / "f", forget_class="3", settings={"epochs": 1},
                                reference=runs["ref"])
        m = json.loads((run / "metrics.json").read_text())
        assert m["probe_retain_err"] == pytest.approx(100 - m["retain_acc"], abs=1e-3)
        assert m["gap"]["probe_retain_err"] == pytest.approx(abs(m["probe_retain_err"]
                                                                 - m["reference"]["probe_retain_err"]), abs=1e-3)
        assert "retain-set error (probe)" in summary_table(m, "finetune")
        assert "retain-set error (probe)" in unlearnkit.report(run, tmp_path / "r.html").read_text()
    finally:
        METRICS._items.pop("probe_retain_err", None)


def test_the_forget_loss_metric_added_in_one_file_is_in_metrics_json(runs):
    m = json.loads((runs["class"] / "metrics.json").read_text())
    assert m["forget_loss"] > 0 and "forget_loss" not in json.loads((runs["train"] / "metrics.json").read_text())
