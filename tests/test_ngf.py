"""NGF: the K-FAC step is the exact damped natural gradient; the method tunes only the last layer."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from unlearnkit.data import load_dataset, make_split
from unlearnkit.data.bundle import Part
from unlearnkit.engine.kfac import KFACLinear, with_bias_column
from unlearnkit.engine.seed import seed_everything
from unlearnkit.engine.train import TrainConfig, fit, predict_logits
from unlearnkit.errors import UserError
from unlearnkit.methods.base import METHODS, UnlearnTask, make_config
from unlearnkit.methods.ngf import diagonal_fisher
from unlearnkit.models import build_model

TARGET = 0


def _layer_with_grads(n_in: int, n_out: int, gen: torch.Generator) -> nn.Linear:
    layer = nn.Linear(n_in, n_out).double()
    layer.weight.grad = torch.randn(n_out, n_in, generator=gen, dtype=torch.float64)
    layer.bias.grad = torch.randn(n_out, generator=gen, dtype=torch.float64)
    return layer


def test_kfac_step_equals_exact_natural_gradient() -> None:
    gen = torch.Generator().manual_seed(0)
    n_in, n_out, damping = 3, 4, 1e-4
    layer = _layer_with_grads(n_in, n_out, gen)
    grad = torch.cat([layer.weight.grad, layer.bias.grad[:, None]], 1).clone()
    batches = [(torch.randn(32, n_in, generator=gen, dtype=torch.float64),
                torch.randn(32, n_out, generator=gen, dtype=torch.float64)) for _ in range(2)]
    pre = KFACLinear(layer, damping=damping, kl_clip=math.inf, stat_decay=0.9)
    for a, g in batches:
        pre.update_stats(a, g)
    nu = pre.precondition_(lr=0.1)

    # The running factors, built by hand: first batch, then an exponential average with decay 0.9.
    def factors(a: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ab = with_bias_column(a)
        return ab.T @ ab / len(a), g.T @ g / len(g)

    (a1, g1), (a2, g2) = factors(*batches[0]), factors(*batches[1])
    A, G = 0.9 * a1 + 0.1 * a2, 0.9 * g1 + 0.1 * g2
    fisher = torch.kron(G, A) + damping * torch.eye(n_out * (n_in + 1), dtype=torch.float64)
    exact = torch.linalg.solve(fisher, grad.reshape(-1)).reshape(n_out, n_in + 1)
    got = torch.cat([layer.weight.grad, layer.bias.grad[:, None]], 1)
    assert nu == 1.0
    torch.testing.assert_close(got, exact, rtol=1e-8, atol=1e-10)
    assert not torch.allclose(got, grad)  # the preconditioner did something


def test_kl_clipping_bounds_the_step() -> None:
    gen = torch.Generator().manual_seed(1)
    layer = _layer_with_grads(5, 3, gen)
    grad = torch.cat([layer.weight.grad, layer.bias.grad[:, None]], 1).clone()
    pre = KFACLinear(layer, damping=1e-3, kl_clip=1e-6)
    pre.update_stats(torch.randn(64, 5, generator=gen, dtype=torch.float64),
                     torch.randn(64, 3, generator=gen, dtype=torch.float64))
    lr = 0.5
    nu = pre.precondition_(lr)
    v = torch.cat([layer.weight.grad, layer.bias.grad[:, None]], 1)
    assert nu < 1.0
    assert lr * lr * float((v / nu * grad).sum()) * nu * nu == pytest.approx(1e-6, rel=1e-9)


def test_diagonal_fisher_matches_expectation_over_model_labels() -> None:
    gen = torch.Generator().manual_seed(2)
    head = nn.Linear(4, 3).double()
    feats = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    logits = head(feats)
    expected = torch.zeros(3, 5, dtype=torch.float64)
    for i in range(len(feats)):
        p = torch.softmax(logits[i], 0).detach()
        for y in range(3):
            head.zero_grad()
            F.cross_entropy(head(feats[i : i + 1]), torch.tensor([y])).backward()
            g = torch.cat([head.weight.grad, head.bias.grad[:, None]], 1)
            expected += p[y] * g.square() / len(feats)
    torch.testing.assert_close(diagonal_fisher(feats, logits.detach(), bias=True), expected)


def test_ngf_is_a_backdoor_defence_that_sees_only_the_clean_set() -> None:
    cls = METHODS.get("ngf")
    assert cls().needs_for("backdoor") == frozenset({"clean"})
    with pytest.raises(UserError):
        cls().needs_for("class")
    with pytest.raises(UserError):
        make_config(cls, ["fisher=fake"])


# --------------------------------------------------------------------------- end to end on a poisoned model

def _stamp(x: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    x[..., 5:7, 5:7] = 255
    return x


@pytest.fixture(scope="module")
def poisoned():
    """A badnets-style poisoned digits mlp (2x2 white patch near the corner, 10% of training, all-to-one)."""
    b = load_dataset("digits")
    split = make_split(b.y_train, 0.2, 0, None)
    gen = torch.Generator().manual_seed(0)
    cand = split.train_idx[b.y_train[split.train_idx] != TARGET]
    pois = cand[torch.randperm(len(cand), generator=gen)[: len(split.train_idx) // 10]]
    b.x_train[pois], b.y_train[pois] = _stamp(b.x_train[pois]), TARGET
    model = build_model("mlp", 10, b.input_shape, b.mean, b.std)
    fit(model, b.train_part(split.train_idx), TrainConfig(epochs=30, lr=0.05), torch.device("cpu"), seed_everything(0))
    return model, b, b.train_part(split.val_idx)


def _acc_asr(model: nn.Module, b) -> tuple[float, float]:
    test = b.test_part()
    keep = test.y != TARGET
    trig = Part(_stamp(test.x[keep]), test.y[keep], test.idx[keep])
    acc = (predict_logits(model, test, "cpu").argmax(1) == test.y).float().mean().item() * 100
    asr = (predict_logits(model, trig, "cpu").argmax(1) == TARGET).float().mean().item() * 100
    return acc, asr


def _run_ngf(model: nn.Module, clean: Part, settings: list[str]) -> tuple[nn.Module, dict]:
    cls = METHODS.get("ngf")
    task = UnlearnTask(scenario="backdoor", num_classes=10, device=torch.device("cpu"), generator=seed_everything(1),
                       seed=1, allowed=cls().needs_for("backdoor"), parts={"clean": clean})
    out = cls(make_config(cls, settings)).unlearn(copy.deepcopy(model), task)
    return out.model, out.figures


def test_ngf_paper_preset_tunes_only_the_last_layer_and_beats_sgd_on_it(poisoned) -> None:
    model, b, clean = poisoned
    acc0, asr0 = _acc_asr(model, b)
    assert asr0 > 90
    out, figures = _run_ngf(model, clean, ["preset=paper"])
    before, after = model.state_dict(), out.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"net.5.weight", "net.5.bias"}  # the final nn.Linear of the mlp
    assert all(p.requires_grad for p in out.parameters())
    assert figures["tuned"] == "last linear layer" and figures["cached_features"]
    acc, asr = _acc_asr(out, b)
    sgd_acc, sgd_asr = _acc_asr(_run_ngf(model, clean, ["preset=paper", "natural=false"])[0], b)
    # Same layer, data, steps and schedule: only the natural-gradient preconditioner differs.
    assert asr < 60 and sgd_asr > asr + 25  # measured: ~22-44 vs ~76-81 (varies with BLAS threads)
    assert acc > acc0 - 3 and sgd_acc > acc0 - 3


def test_ngf_default_is_the_released_code_and_moves_the_body_too(poisoned) -> None:
    model, _, clean = poisoned
    out, figures = _run_ngf(model, clean, ["steps=20"])
    assert not torch.equal(model.state_dict()["net.1.weight"], out.state_dict()["net.1.weight"])
    assert not figures["cached_features"] and not figures["regulariser"]
    assert figures["tuned"] == "all layers (last one natural-gradient)"


def test_ngf_presets_fill_only_the_settings_left_unset() -> None:
    cls = METHODS.get("ngf")
    released = make_config(cls, [])
    assert (released.preset, released.all_layers, released.fisher, released.eta, released.lr, released.milestones) \
        == ("released", True, "empirical", 0.0, 1e-3, (0.4,))
    paper = make_config(cls, ["preset=paper", "lr=0.02"])
    assert (paper.all_layers, paper.fisher, paper.eta, paper.lr, paper.milestones) == \
        (False, "true", 1e-3, 0.02, (0.35, 0.75))
    assert make_config(cls, ["all_layers=false"]).lr == 1e-3  # one setting given, the rest still the preset's
    with pytest.raises(UserError, match="preset=fake: choose one of released, paper"):
        make_config(cls, ["preset=fake"])


def test_ngf_from_the_command_line_on_a_badnets_run(tmp_path) -> None:
    from safetensors.torch import load_file

    from unlearnkit.cli import main
    from unlearnkit.pipeline import train

    from .conftest import tree_hash

    run = train("digits", "mlp", tmp_path / "bd", epochs=10, batch_size=64, lr=0.05, poison="badnets", target=0,
                poison_ratio=0.1, arch_kwargs={"hidden": 64})
    digest = tree_hash(run)
    out = tmp_path / "ngf"
    assert main(["forget", str(run), "--method", "ngf", "--backdoor", "--clean-size", "100", "--out", str(out),
                 "--set", "steps=100", "preset=paper", "--quiet"]) == 0
    assert tree_hash(run) == digest  # the input run is never modified
    m = json.loads((out / "metrics.json").read_text())
    meta = json.loads((out / "meta.json").read_text())
    assert m["original"]["asr"] >= 90
    assert all(k in m for k in ("clean_acc", "asr", "robust_acc", "der", "seconds")) and 0 <= m["der"] <= 1
    assert m["ngf"]["tuned"] == "last linear layer"
    assert meta["method"]["config"]["steps"] == 100 and meta["clean_size"] == 100
    before, after = load_file(str(run / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert {k for k in before if not torch.equal(before[k], after[k])} == {"net.5.weight", "net.5.bias"}
    assert main(["forget", str(run), "--method", "ngf", "--forget-class", "3", "--out", str(tmp_path / "x"),
                 "--quiet"]) == 2  # a backdoor defence only
