"""I-BAU's implicit hypergradient against exact references: a closed form, and finite differences."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn

from unlearnkit.errors import UserError
from unlearnkit.methods.base import make_config
from unlearnkit.methods.ibau import IBAU, implicit_hypergradient


@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _quadratic(n: int = 4, m: int = 3, eta: float = 0.1):
    """Inner g = 1/2 d'Ad - theta'Bd (so d* = A^-1 B' theta), Phi = d - eta grad g, L = |d - c|^2/2 + |theta|^2/2."""
    g = torch.Generator().manual_seed(0)
    a0 = torch.randn(n, n, generator=g)
    a = a0 @ a0.T / n + torch.eye(n)
    b = torch.randn(m, n, generator=g)
    c = torch.randn(n, generator=g)
    theta = torch.randn(m, generator=g).requires_grad_(True)
    d_star = torch.linalg.solve(a, b.T @ theta.detach())
    fp = lambda d: d - eta * (a @ d - b.T @ theta)  # noqa: E731
    outer = lambda d: 0.5 * (d - c).pow(2).sum() + 0.5 * theta.pow(2).sum()  # noqa: E731
    exact = theta.detach() + b @ torch.linalg.solve(a, d_star - c)  # dL/dtheta through d*(theta)
    return a, b, c, theta, d_star, fp, outer, exact, eta


def test_k_fixed_point_steps_equal_the_truncated_neumann_series():
    a, b, c, theta, d_star, fp, outer, exact, eta = _quadratic()
    k = 5
    series = sum(torch.linalg.matrix_power(torch.eye(len(a)) - eta * a, i) for i in range(k))
    truncated = theta.detach() + eta * b @ (series @ (d_star - c))
    grads, _ = implicit_hypergradient(d_star, [theta], fp, outer, k=k)
    assert torch.allclose(grads[0], truncated, atol=1e-12)
    assert not torch.allclose(grads[0], exact, atol=1e-3)  # five steps do not converge on this problem


@pytest.mark.parametrize("solver,k", [("fixed-point", 2000), ("cg", 4)])
def test_converged_solvers_give_the_exact_hypergradient(solver, k):
    *_, theta, d_star, fp, outer, exact, _ = _quadratic()
    grads, _ = implicit_hypergradient(d_star, [theta], fp, outer, k=k, solver=solver)
    assert torch.allclose(grads[0], exact, atol=1e-8)


def _tiny_ibau(reg: float = 1.0):
    """A linear classifier on 2x2 images and I-BAU's own Phi and outer loss (strongly convex inner problem)."""
    g = torch.Generator().manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    with torch.no_grad():
        model[1].weight.copy_(0.5 * torch.randn(3, 4, generator=g))
        model[1].bias.copy_(0.1 * torch.randn(3, generator=g))
    x0, y0 = torch.rand(6, 1, 2, 2, generator=g), torch.randint(0, 3, (6,), generator=g)
    x1, y1 = torch.rand(5, 1, 2, 2, generator=g), torch.randint(0, 3, (5,), generator=g)
    ibau = IBAU(make_config(IBAU, {"reg": reg}))
    return model, ibau, x0, y0, x1, y1


def _inner_solution(ibau: IBAU, model: nn.Module, x0, y0) -> torch.Tensor:
    d = torch.zeros(1, 1, 2, 2)
    for _ in range(400):
        d = ibau.fixed_point_map(model, x0, y0, d.detach().requires_grad_(True)).detach()
    return d


def test_hypergradient_matches_finite_differences_of_the_solved_bilevel_problem():
    model, ibau, x0, y0, x1, y1 = _tiny_ibau()
    rows = torch.tensor([0, 2])
    params = list(model.parameters())

    def total_loss() -> float:
        d = _inner_solution(ibau, model, x0, y0)
        with torch.no_grad():
            return float(ibau.outer_loss(model, x1, y1, rows, d))

    d_star = _inner_solution(ibau, model, x0, y0)
    grads, _ = implicit_hypergradient(d_star, params, partial(ibau.fixed_point_map, model, x0, y0),
                                      partial(ibau.outer_loss, model, x1, y1, rows), k=200)
    eps = 1e-6
    fd = []
    for p in params:
        flat = p.data.view(-1)
        col = torch.zeros_like(flat)
        for i in range(len(flat)):
            old = float(flat[i])
            flat[i] = old + eps
            up = total_loss()
            flat[i] = old - eps
            down = total_loss()
            flat[i] = old
            col[i] = (up - down) / (2 * eps)
        fd.append(col.view_as(p))
    for g, f in zip(grads, fd, strict=True):
        assert torch.allclose(g, f, atol=1e-6, rtol=1e-5)
    # the implicit (indirect) part matters here: the partial derivative alone is visibly off
    direct = torch.autograd.grad(ibau.outer_loss(model, x1, y1, rows, d_star), params)
    assert max(float((d - f).abs().max()) for d, f in zip(direct, fd, strict=True)) > 1e-4


def test_inner_max_respects_the_l2_ball_and_clamp():
    model, _, x0, y0, *_ = _tiny_ibau()
    ibau = IBAU(make_config(IBAU, {"l2_ball": 0.05, "clamp": True}))
    delta = ibau.inner_max(model, [(x0, y0)] * 3)
    assert delta.shape == (1, 1, 2, 2) and float(delta.norm()) <= 0.05 + 1e-12
    assert float(IBAU(make_config(IBAU, {})).inner_max(model, [(x0, y0)] * 3).norm()) > 0.05


def test_restarts_keep_the_start_with_the_largest_inner_objective():
    model, _, x0, y0, *_ = _tiny_ibau()
    batches = [(x0, y0)] * 3
    ibau = IBAU(make_config(IBAU, {"restarts": 4, "init_scale": 2.0, "clamp": True}))
    chosen = ibau.inner_max(model, batches, torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)  # replay the same starts one by one
    labelled = ibau.pseudo_labelled(model, batches)
    ends = [ibau.inner_pass(model, labelled, ibau.random_start(chosen.shape, gen)) for _ in range(4)]
    values = [ibau.inner_objective(model, labelled, d) for d in ends]
    assert len({round(v, 9) for v in values}) > 1  # the starts end apart, so the choice is not vacuous
    best = max(range(4), key=values.__getitem__)
    assert torch.equal(chosen, ends[best])
    assert ibau.inner_objective(model, labelled, chosen) == max(values)


def test_delta_lives_in_the_networks_input_space():
    """space=input (default): delta is added after the model's normalisation, as in both reference codes (the
    official VGG reads raw pixels, BackdoorBench adds delta to normalised images); space=pixel: before it."""
    from unlearnkit.models.registry import Classifier

    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    model = Classifier(net, (0.5,), (0.25,))
    x, d = torch.rand(2, 1, 2, 2), torch.randn(1, 1, 2, 2)
    ibau = IBAU(make_config(IBAU, {}))
    assert torch.allclose(model(ibau._perturbed(model, x, d)), net((x - 0.5) / 0.25 + d))
    pixel = IBAU(make_config(IBAU, {"space": "pixel"}))
    assert torch.allclose(model(pixel._perturbed(model, x, d)), net((x + d - 0.5) / 0.25))
    balled = IBAU(make_config(IBAU, {"l2_ball": 0.5}))  # the radius is in pixels, whatever the space
    assert abs(float(balled._pixels(model, balled._project(model, d * 100)).norm()) - 0.5) < 1e-9
    for project in ("end", "step"):
        ball = IBAU(make_config(IBAU, {"l2_ball": 0.05, "project": project}))
        delta = ball.inner_max(model, [(x, torch.tensor([0, 2]))] * 3)
        assert float(ball._pixels(model, delta).norm()) <= 0.05 + 1e-9
    rows = torch.tensor([1])
    expected = torch.nn.functional.cross_entropy(net((x - 0.5) / 0.25 + torch.stack([torch.zeros_like(d[0]), d[0]])),
                                                 torch.tensor([0, 2]))
    assert torch.allclose(ibau.outer_loss(model, x, torch.tensor([0, 2]), rows, d), expected)


def test_bad_settings_are_user_errors():
    with pytest.raises(UserError, match="solver"):
        make_config(IBAU, ["solver=newton"])
    with pytest.raises(UserError, match="rounds"):
        make_config(IBAU, ["rounds=0"])
    with pytest.raises(UserError, match="init_scale"):
        make_config(IBAU, ["restarts=3"])
    with pytest.raises(UserError, match="space"):
        make_config(IBAU, ["space=latent"])
    with pytest.raises(UserError, match="optimizer"):
        make_config(IBAU, ["optimizer=lbfgs"])
    assert IBAU().needs_for("backdoor") == frozenset({"clean"})
    with pytest.raises(UserError, match="does not support"):
        IBAU().needs_for("class")
