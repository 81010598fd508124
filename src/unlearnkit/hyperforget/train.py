"""`unlearnkit hyperforget train`: collect checkpoints per forget request, then train the diffusion hypernetwork.

Long phases are checkpointed with the package's resume machinery (`engine.checkpoint`), in `.<out>.partial/`
beside the output: `hyperforget.features.safetensors` (the frozen features), one
`hyperforget.collection-<c>.safetensors` per finished class, and `hyperforget.train.safetensors` (hypernetwork,
EMA, optimizer and RNG state every `save_every` steps). `--resume` continues from there and ends with the same
weights as an uninterrupted run. The output itself is written like a run directory (`engine.rundir.RunWriter`:
assembled under a temporary name, renamed when complete): `hypernet.safetensors`, `meta.json`, and
`collection/class-<c>.safetensors` (the checkpoints with their losses, for analysis).
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor

from ..data.splits import parse_classes
from ..engine.checkpoint import checkpointing, load_state, save_state
from ..engine.device import get_device
from ..engine.progress import progress, say
from ..engine.rundir import Run, RunWriter, load_run, versions
from ..engine.train import check_finite
from ..errors import UserError
from ..settings import build as build_settings
from .basis import HeadBasis
from .collect import STARTS, collect_class
from .config import HyperForgetConfig
from .heads import Features, compute_features, forget_retain, get_head, per_class_stats
from .hypernet import HyperForget, check_variant, prompt_losses, raw_prompts

FEATURES, STATE = "hyperforget.features.safetensors", "hyperforget.train.safetensors"


def class_list(text: str, names: list[str]) -> list[int]:
    if not text.strip():
        return list(range(len(names)))
    return sorted({parse_classes(tok, names)[0] for tok in text.split(",") if tok.strip()})


# --------------------------------------------------------------------------- phase 0: frozen features

def load_features(src: Run, folder: Path, data_root: str | Path | None) -> tuple[Features, float]:
    """Penultimate features of the training split and the test set (checkpointed), and their seconds."""
    path = folder / FEATURES
    if path.is_file():
        s = load_state(path)
        return Features(**s["features"]), float(s["seconds"])
    from ..rundata import load_run_data, split_of

    bundle = load_run_data(src.meta, data_root)
    split = split_of(src.meta, bundle, None)
    t0 = time.perf_counter()
    f = compute_features(src.build_model(get_device()), bundle, split.train_idx, get_device())
    seconds = time.perf_counter() - t0
    save_state(path, {"features": vars(f), "seconds": seconds})
    return f, seconds


# --------------------------------------------------------------------------- phase 1: collection

def collect_all(classes: list[int], start: Tensor, f: Features, cfg: HyperForgetConfig, seed: int,
                folder: Path) -> tuple[dict[int, dict[str, Tensor]], float]:
    """The collection of every class (one checkpoint file per finished class), and its seconds."""
    out, seconds = {}, 0.0
    for c in progress(classes, "collect checkpoints", len(classes)):
        path = folder / f"hyperforget.collection-{c}.safetensors"
        if path.is_file():
            s = load_state(path)
        else:
            t0 = time.perf_counter()
            s = {"data": collect_class(c, start, f, cfg.collect(), seed)}
            s["seconds"] = time.perf_counter() - t0
            save_state(path, s)
        out[c], seconds = s["data"], seconds + float(s["seconds"])
    return out, seconds


# --------------------------------------------------------------------------- phase 2: the diffusion hypernetwork

@dataclass
class Examples:
    """Training (or held-out) examples: heads, the forget request, raw loss prompts, the start index."""

    z: Tensor
    request: Tensor
    prompts: Tensor
    start: Tensor


def examples(coll: dict[int, dict[str, Tensor]], variant: str, start_losses: Tensor, counts: Tensor,
             runs: set[int]) -> Examples:
    """The checkpoints of `runs` (heads not yet in basis coordinates)."""
    zs, reqs, ps, starts = [], [], [], []
    for c, d in coll.items():
        keep = torch.tensor([int(r) in runs for r in d["run"]], dtype=torch.bool)
        if not keep.any():
            continue
        zs.append(d["heads"][keep])
        reqs.append(torch.full((int(keep.sum()),), c, dtype=torch.long))
        starts.append(d["start"][keep])
        ps.append(raw_prompts(variant, d["train_loss"][keep], start_losses[d["start"][keep]], counts, c))
    return Examples(torch.cat(zs), torch.cat(reqs), torch.cat(ps), torch.cat(starts))


def finals(d: dict[str, Tensor], runs: set[int], start: int | None = None) -> Tensor:
    """Mask of the last checkpoint of every trajectory of `runs` (of those from one start, if given)."""
    mask = torch.zeros(len(d["run"]), dtype=torch.bool)
    for r in runs:
        for k in d["kind"].unique().tolist():
            idx = ((d["run"] == r) & (d["kind"] == k)).nonzero().flatten()
            if len(idx) and (start is None or int(d["start"][idx[0]]) == start):
                mask[idx[d["step"][idx].argmax()]] = True
    return mask


def default_prompts(coll: dict[int, dict[str, Tensor]], variant: str, start_losses: Tensor, counts: Tensor,
                    runs: set[int]) -> dict[str, dict]:
    """Per class and start, the median prompt of the final checkpoints of the runs from that start: from
    `scratch`, what retraining the head without the class reached; from `original`, what unlearning reached.
    The default start is `scratch` when retrain trajectories were collected (a retrain is the gold standard)."""
    out = {}
    for c, d in coll.items():
        prompts = {}
        for s, name in enumerate(STARTS):
            last = finals(d, runs, s)
            if last.any():
                p = raw_prompts(variant, d["train_loss"][last], start_losses[s].expand(int(last.sum()), -1),
                                counts, c)
                prompts[name] = [round(float(v), 6) for v in p.median(0).values]
        out[str(c)] = {"start": "scratch" if "scratch" in prompts else "original", "prompts": prompts}
    return out


def lr_at(step: int, cfg: HyperForgetConfig) -> float:
    """Linear warm-up, then cosine decay to 0 (G.pt's schedule)."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))


def fit_hypernet(hf: HyperForget, ex: Examples, cfg: HyperForgetConfig, seed: int, folder: Path) -> dict:
    """Train the denoiser on `ex`, checkpointing into `folder`; leaves the EMA weights in `hf.net`.

    Returns the loss history (mean per `save_every` steps) and the accumulated training seconds.
    """
    with torch.random.fork_rng():  # the initialisation depends on the seed only (resumed runs reproduce it)
        torch.manual_seed(seed)
        net = HyperForget.build_net(hf.meta)
    ema = copy.deepcopy(net).requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    first, history, seconds = 0, [], 0.0
    path = folder / STATE
    if path.is_file():
        s = load_state(path)
        net.load_state_dict(s["net"])
        ema.load_state_dict(s["ema"])
        opt.load_state_dict(s["optimizer"])
        gen.set_state(s["generator"])
        first, history, seconds = int(s["step"]), list(s["history"]), float(s["seconds"])
        say(f"resuming hypernetwork training at step {first}/{cfg.steps}")
    net.train()
    window: list[float] = []
    t0 = time.perf_counter()
    for step in progress(range(first, cfg.steps), "train hypernetwork", cfg.steps - first):
        idx = torch.randint(len(ex.z), (cfg.batch_size,), generator=gen)
        denoise = hf.denoiser(ex.request[idx], ex.prompts[idx], ex.start[idx], net)
        loss = hf.diffusion.loss(denoise, ex.z[idx], gen)
        check_finite(loss, "hyperforget", step)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        opt.step()
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), net.parameters(), strict=True):
                pe.lerp_(p, 1.0 - cfg.ema)
        window.append(loss.item())
        if (step + 1) % cfg.save_every == 0 or step + 1 == cfg.steps:
            history.append(round(sum(window) / len(window), 6))
            window = []
            seconds += time.perf_counter() - t0
            t0 = time.perf_counter()
            save_state(path, {"net": net.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(),
                              "generator": gen.get_state(), "step": step + 1, "history": history,
                              "seconds": seconds})
    hf.net = ema.eval()
    return {"history": history, "seconds": seconds}


# --------------------------------------------------------------------------- phase 3: validation on the features

def r2(target: Tensor, got: Tensor) -> float:
    """Coefficient of determination of `got` against `target` (1 = the prompts are met exactly)."""
    target, got = target.double(), got.double()
    ss_tot = ((target - target.mean()) ** 2).sum()
    return float(1 - ((got - target) ** 2).sum() / ss_tot) if ss_tot > 0 else float("nan")


def validate(hf: HyperForget, coll: dict[int, dict[str, Tensor]], f: Features, cfg: HyperForgetConfig,
             holdout: set[int], seed: int) -> dict:
    """Cheap checks on the cached features (no forward pass of the model):

    - per class, `val_samples` heads at the default prompt and start: forget-class and retained-class test
      accuracy, next to the original head's and to the collected runs' final heads from the same start
      (what the samples imitate);
    - prompt alignment: one head per held-out checkpoint, prompted with that checkpoint's losses and start;
      R² between prompted and achieved forget / retain loss on a log(1 + loss) scale.
    """
    gen = torch.Generator().manual_seed(seed + 1)
    k = f.num_classes
    counts_test = torch.bincount(f.y_test, minlength=k)
    classes = sorted(coll)
    n = cfg.val_samples
    starts = [hf.start_index(None, c) for c in classes]
    req = torch.tensor(classes).repeat_interleave(n)
    prompts = torch.stack([hf.default_prompt(c, s) for c, s in zip(classes, starts, strict=True)])
    heads = hf.generate(req, prompts.repeat_interleave(n, 0), torch.tensor(starts).repeat_interleave(n),
                        cfg.sample_steps, gen)
    _, acc = per_class_stats(heads, f.test, f.y_test, k)
    _, acc0 = per_class_stats(hf.original[None], f.test, f.y_test, k)
    everyone = set(range(cfg.runs_per_class))
    rows = []
    for i, (c, s) in enumerate(zip(classes, starts, strict=True)):
        fa, ra = forget_retain(acc[i * n:(i + 1) * n], counts_test, c)
        f0, r0 = forget_retain(acc0, counts_test, c)
        fr, rr = forget_retain(coll[c]["test_acc"][finals(coll[c], everyone, s)], counts_test, c)
        rows.append({"class": c, "start": STARTS[s], "forget_test_acc": [round(float(v), 3) for v in fa],
                     "retained_test_acc": [round(float(v), 3) for v in ra],
                     "original": {"forget_test_acc": round(float(f0[0]), 3),
                                  "retained_test_acc": round(float(r0[0]), 3)},
                     "collected_final": {"forget_test_acc": round(float(fr.mean()), 3),
                                         "retained_test_acc": round(float(rr.mean()), 3)}})
    out: dict = {"per_class": rows,
                 "max_forget_test_acc": max(max(r["forget_test_acc"]) for r in rows),
                 "min_retained_test_acc": min(min(r["retained_test_acc"]) for r in rows)}
    runs = holdout or everyone
    pf, pr, af, ar = [], [], [], []
    for c in classes:
        d = coll[c]
        sel = torch.tensor([int(r) in runs for r in d["run"]], dtype=torch.bool)
        st = d["start"][sel]
        p = raw_prompts(hf.variant, d["train_loss"][sel], hf.start_losses[st], hf.counts, c)
        got = hf.generate(torch.full((len(p),), c, dtype=torch.long), p, st, cfg.sample_steps, gen)
        loss, _ = per_class_stats(got, f.train, f.y_train, k)
        want_f, want_r = prompt_losses(hf.variant, p, hf.counts, c)
        got_f, got_r = forget_retain(loss, hf.counts, c)
        pf.append(want_f), pr.append(want_r), af.append(got_f), ar.append(got_r)
    pf, pr, af, ar = (torch.log1p(torch.cat(v).double()) for v in (pf, pr, af, ar))
    out["alignment"] = {"forget_r2": round(r2(pf, af), 4), "retain_r2": round(r2(pr, ar), 4), "n": len(pf),
                        "held_out": bool(holdout), "scale": "log(1 + loss) on the training features"}
    return out


# --------------------------------------------------------------------------- the command

def train_hypernet(run: str | Path, out: str | Path, *, variant: str = "dihyfo-1",
                   settings: dict | list[str] | None = None, seed: int = 0, resume: bool = False,
                   data_root: str | Path | None = None, overwrite: bool = False) -> Path:
    """Train a HyperForget for every forgettable class of `run`'s model; write `out` (atomically).

    Args:
        run: a trained run directory (its model's last layer must be an `nn.Linear`).
        variant: `dihyfo-1` (forget/retain loss prompts) or `dihyfo-2` (per-class loss prompts).
        settings: `HyperForgetConfig` fields, as a dict or `key=value` strings.
        resume: continue an interrupted run of the same command (same settings) from its checkpoints.
    Returns:
        The output directory (`hypernet.safetensors`, `meta.json`, `collection/`).
    """
    t_start = time.perf_counter()
    check_variant(variant)
    cfg = build_settings(HyperForgetConfig, settings, "hyperforget train")
    src = load_run(run)
    classes = class_list(cfg.classes, src.meta.classes)
    writer = RunWriter(out, overwrite, inputs=(run,))
    from ..forgetting import run_digest

    fingerprint = {"command": "hyperforget train", "run": run_digest(src.path), "variant": variant, "seed": seed,
                   "config": asdict(cfg)}
    with writer, checkpointing(writer.out, fingerprint, resume, overwrite) as ck:
        scope = ck.enter("hyperforget")
        f, feature_seconds = load_features(src, scope.folder, data_root)
        start = get_head(src.build_model("cpu"))
        if tuple(start.shape) != (f.num_classes, f.train.shape[1] + 1):
            raise UserError(f"the last linear layer of {run} does not map features to class logits: HyperForget "
                            f"needs a model that ends in nn.Linear(features, classes)")
        coll, collect_seconds = collect_all(classes, start, f, cfg, seed, scope.folder)
        hf, ex, holdout = build(coll, f, start, cfg, variant, seed, src)
        fit = fit_hypernet(hf, ex, cfg, seed, scope.folder)
        say("validating samples on the cached features ...")
        meta = hf.meta
        meta["validation"] = validate(hf, coll, f, cfg, holdout, seed)
        meta["seconds"] = {"features": round(feature_seconds, 3), "collect": round(collect_seconds, 3),
                           "train": round(fit["seconds"], 3)}
        meta["seconds"]["total"] = round(sum(meta["seconds"].values()), 3)
        meta["seconds"]["this_session"] = round(time.perf_counter() - t_start, 3)
        meta["checkpoints"] = {"train": len(ex.z), "total": int(sum(len(d["run"]) for d in coll.values()))}
        meta["train_loss"] = fit["history"]
        meta["versions"] = versions()
        collection = writer.subdir("collection")
        for c, d in coll.items():
            save_file({k: v.contiguous() for k, v in d.items()}, str(collection / f"class-{c}.safetensors"),
                      metadata={"class": str(c), "kinds": ",".join(cfg.collect().kinds())})
        hf.save(collection.parent)
        writer.write_json("meta.json", meta)
        return writer.commit()


def build(coll: dict[int, dict[str, Tensor]], f: Features, start: Tensor, cfg: HyperForgetConfig, variant: str,
          seed: int, src: Run) -> tuple[HyperForget, Examples, set[int]]:
    """The untrained HyperForget (coordinates, prompt defaults, meta), its training examples, held-out runs."""
    counts = torch.bincount(f.y_train, minlength=f.num_classes)
    start_losses = per_class_stats(torch.stack([torch.zeros_like(start), start]), f.train, f.y_train,
                                   f.num_classes)[0]  # indexed like STARTS
    holdout = set(range(cfg.runs_per_class - cfg.holdout_runs, cfg.runs_per_class))
    train_runs = set(range(cfg.runs_per_class)) - holdout
    meta = {"kind": "hyperforget", "variant": variant, "parent": str(src.path.resolve()),
            "parent_meta": {k: src.meta[k] for k in ("arch", "num_classes", "classes", "input_shape",
                                                     "normalization", "data")},
            "num_classes": f.num_classes, "classes": sorted(coll), "head_shape": list(start.shape),
            "class_counts": counts.tolist(), "start_losses": start_losses.tolist(),
            "net": cfg.net().to_dict(), "diffusion_steps": cfg.diffusion_steps, "sample_steps": cfg.sample_steps,
            "temperature": cfg.temperature, "seed": seed, "config": asdict(cfg)}
    meta["default_prompts"] = default_prompts(coll, variant, start_losses, counts, train_runs)
    ex = examples(coll, variant, start_losses, counts, train_runs)
    basis = HeadBasis.fit(ex.z, cfg.rank, cfg.chunk)
    meta["rank"], meta["chunk"] = basis.rank, cfg.chunk
    meta["kept_variance"] = round(basis.kept_variance(ex.z), 6)
    ex.z = basis.encode(ex.z)
    return HyperForget(HyperForget.build_net(meta), meta, start, basis), ex, holdout


def summary(out: str | Path) -> str:
    """One paragraph about a trained hypernetwork: size, cost, and its validation on frozen features."""
    m = json.loads((Path(out) / "meta.json").read_text())
    v = m["validation"]
    return (f"{out}: {m['variant']}, {m['checkpoints']['total']} checkpoints for {len(m['classes'])} classes, "
            f"{m['seconds']['total']:.0f}s. On frozen features, {m['config']['val_samples']} samples per class: "
            f"forget-class test acc <= {v['max_forget_test_acc']:.1f}%, retained-class test acc >= "
            f"{v['min_retained_test_acc']:.1f}%; prompt alignment (held-out checkpoints) R² forget "
            f"{v['alignment']['forget_r2']:.3f}, retain {v['alignment']['retain_r2']:.3f}")
