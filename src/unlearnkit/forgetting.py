"""The forget flow: read a forget request, build the task a method may see, run the method (checkpointed, guarded),
measure the result against the original and the retrained reference, and write the run directory.
"""

from __future__ import annotations

import copy
import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .data import DataBundle, ForgetSpec, Split, parse_forget_spec
from .engine import distributed, runlog
from .engine.checkpoint import Scope, checkpointing
from .engine.device import get_device, machine, one_machine, same_machine
from .engine.evaluate import Predictions, compare, evaluate_model
from .engine.progress import say
from .engine.rundir import Run, RunWriter, load_run, versions
from .engine.safeload import file_digest
from .engine.seed import seed_everything
from .engine.train import TrainConfig
from .errors import NumericalError, UserError
from .methods import Guard, split_holdout
from .methods.base import METHODS, EvalData, Method, Unlearned, UnlearnTask, config_dict, make_config
from .metrics.verdict import verdict
from .rundata import attack_metrics, load_run_data, new_model_fn, split_of
from .runmeta import RunMeta


@dataclass
class Request:
    """A parsed forget request: the scenario, its spec (None for backdoor removal), the split."""

    scenario: str
    spec: ForgetSpec | None
    split: Split


def parse_request(meta: dict, bundle: DataBundle, *, forget_class: str | None = None,
                  forget_random: float | None = None, forget_indices: str | Path | None = None,
                  backdoor: bool = False, seed: int = 0) -> Request:
    if backdoor:
        if any(v is not None for v in (forget_class, forget_random, forget_indices)):
            raise UserError("--backdoor cannot be combined with --forget-*: choose one request")
        return Request("backdoor", None, split_of(meta, bundle, None))
    spec = parse_forget_spec(bundle.classes, forget_class=forget_class, forget_random=forget_random,
                             forget_indices=forget_indices, seed=seed)
    return Request(spec.kind, spec, split_of(meta, bundle, spec))


def clean_part(bundle: DataBundle, split: Split, clean_size: int | None, seed: int):
    """A clean set for backdoor defences, drawn from the held-out validation split (never trained on)."""
    val = split.val_idx
    n = len(val) if clean_size is None else int(clean_size)
    if n < 1 or n > len(val):
        raise UserError(f"--clean-size {clean_size} is outside 1..{len(val)} (the held-out split's size): "
                        f"choose a smaller clean set or train with a larger --val-fraction")
    gen = torch.Generator().manual_seed(seed + 7919)
    idx = torch.sort(val[torch.randperm(len(val), generator=gen)[:n]]).values
    return bundle.train_part(idx)


def build_task(meta: dict, bundle: DataBundle, req: Request, needs: frozenset[str], seed: int,
               clean_size: int | None = None, guard: bool = True) -> UnlearnTask:
    """The task a method sees. A backdoor defence's clean set loses a held-out slice to the guard (unless
    `guard=False` or the set is too small to spare one; see `methods/_guard.py`)."""
    s = req.split
    parts = {
        "forget": bundle.train_part(s.forget_idx) if len(s.forget_idx) else None,
        "retain": bundle.train_part(s.retain_idx),
        "val": bundle.train_part(s.val_idx) if len(s.val_idx) else None,
        "clean": clean_part(bundle, s, clean_size, seed) if "clean" in needs else None,
    }
    watcher = None
    device = get_device()
    if req.scenario == "backdoor":
        parts["forget"] = None  # the defender never knows the poisoned samples
        if guard and parts["clean"] is not None:
            parts["clean"], holdout = split_holdout(parts["clean"], torch.Generator().manual_seed(seed + 3571))
            watcher = Guard(holdout, device, bundle.num_classes) if holdout is not None else None
    return UnlearnTask(scenario=req.scenario, num_classes=bundle.num_classes, device=device,
                       generator=seed_everything(seed), seed=seed, allowed=needs, forget_classes=s.forget_classes,
                       train_config=TrainConfig.from_dict(RunMeta.of(meta).recipe),
                       train_size=len(s.train_idx) if RunMeta.of(meta).recipe_known else 0,
                       new_model=new_model_fn(meta),
                       parts={k: v for k, v in parts.items() if k in needs}, guard=watcher)


@dataclass
class MethodRun:
    """One method's output: its result (model, figures, artifacts), the settings it ran with, wall time, the
    method (for its `extra_metrics`)."""

    result: Unlearned
    config: dict
    seconds: float
    method: Method

    @property
    def model(self) -> nn.Module:
        return self.result.model

    @property
    def figures(self) -> dict:
        return self.result.figures

    @property
    def artifacts(self) -> dict:
        return self.result.artifacts


def execute_method(name: str, settings: dict | list[str] | None, model: nn.Module, meta: dict, bundle: DataBundle,
                   req: Request, seed: int, clean_size: int | None = None,
                   checkpoint: Scope | None = None, guard: bool = True) -> MethodRun:
    """Run one method on a copy of `model`, timing `unlearn` alone (with its guard, for backdoor defences).

    With the `checkpoint` scope of a checkpointed command, the method's `fit` calls (given it as `task.checkpoint`)
    resume per epoch and a finished result is read back by `--resume` instead of being computed again.
    """
    cls = METHODS.get(name)
    method = cls(make_config(cls, settings))
    needs = method.needs_for(req.scenario)
    task = build_task(meta, bundle, req, needs, seed, clean_size, guard)
    task.checkpoint = checkpoint
    work = copy.deepcopy(model)
    done = checkpoint.load_result(work) if checkpoint else None
    if done is not None:  # finished before an interruption: read back whole (artifacts too), not recomputed
        result = Unlearned(work.eval(), done["figures"], done.get("artifacts") or {})
        return MethodRun(result, done["config"], float(done["seconds"]), method)
    first_epoch = runlog.epoch_mark()
    t0 = time.perf_counter()
    try:
        if task.guard is not None:
            task.guard.begin(work)
        result = Unlearned.of(method.unlearn(work, task))
        if task.guard is not None:
            result.model = task.guard.settle(result.model)
            result.figures["guard"] = task.guard.report()
    except NumericalError as err:
        raise err if name in str(err) else NumericalError(f"method {name!r}: {err}") from err
    seconds = time.perf_counter() - t0 + (checkpoint.carried_seconds if checkpoint else 0.0)
    out = result.model
    distributed.broadcast_model(out)  # under torchrun, every rank evaluates rank 0's model
    out.eval()
    bad = [n for n, p in out.state_dict().items() if p.is_floating_point() and not torch.isfinite(p).all()]
    if bad:
        raise NumericalError(f"method {name!r} produced NaN/inf weights ({bad[0]}); lower its learning rate")
    # loss curves of fit() ('loss' alone if it ran under the method's name)
    losses = runlog.losses_since(first_epoch)
    if list(losses) == [f"{name}_loss"]:
        losses = {"loss": losses[f"{name}_loss"]}
    result.figures = {**losses, **result.figures}
    config = config_dict(result.config if result.config is not None else method.config)
    if checkpoint:
        checkpoint.save_result(out, {"config": config, "seconds": seconds, "figures": result.figures,
                             "artifacts": result.artifacts})
    return MethodRun(result, config, seconds, method)


def run_method(name: str, settings: dict | list[str] | None, model: nn.Module, meta: dict, bundle: DataBundle,
               req: Request, seed: int, clean_size: int | None = None,
               checkpoint: Scope | None = None) -> tuple[nn.Module, dict, float, dict]:
    """Run one method on a copy of `model`; return (model, config, seconds, figures)."""
    r = execute_method(name, settings, model, meta, bundle, req, seed, clean_size, checkpoint)
    return r.model, r.config, r.seconds, r.figures


def metrics_for(model: nn.Module, bundle: DataBundle, req: Request, meta: dict, seed: int,
                 seconds: float | None) -> tuple[dict, Predictions]:
    device = get_device()
    m, p = evaluate_model(model, bundle, req.split, req.scenario, device, seed)
    m = {**attack_metrics(model, bundle, meta, device), **m}
    if seconds is not None:
        m["seconds"] = round(seconds, 3)
    return m, p


def forget(run: str | Path, method: str, out: str | Path, *, forget_class: str | None = None,
           forget_random: float | None = None, forget_indices: str | Path | None = None, backdoor: bool = False,
           clean_size: int | None = None, settings: dict | list[str] | None = None,
           reference: str | Path | None = None, retrain: bool = False, seed: int = 0,
           data_root: str | Path | None = None, overwrite: bool = False, resume: bool = False,
           tensorboard: str | Path | None = None, guard: bool = True) -> Path:
    """Unlearn with `method` and write a new run directory (the input run is never modified).

    A backdoor defence runs guarded (`guard=True`): a tenth of its clean set is held out to measure clean
    accuracy at each of its checkpoints, a collapsing defence stops early, and a damaged final state is
    replaced by the last healthy one (see `methods/_guard.py`).

    With `retrain=True` the retrained reference is trained in the same run (written to `OUT/reference`),
    so the speed-up is a ratio of two wall times measured side by side; with `reference=RUN`, an existing
    retrained run is used. With `resume=True`, an interrupted run with the same arguments continues from
    its checkpoints (per epoch for methods built on `fit`, such as retrain and finetune; per finished stage
    otherwise). `metrics["verdict"]` judges whether the request was honoured (see `metrics.verdict`).
    """
    src = load_run(run)
    writer = RunWriter(out, overwrite, inputs=(run,) + ((reference,) if reference else ()), tensorboard=tensorboard)
    if reference is not None and retrain:
        raise UserError("--reference and --retrain both given: choose one")
    cls = METHODS.get(method)
    make_config(cls, settings)  # validate settings before any work
    bundle = load_run_data(src.meta, data_root)
    req = parse_request(src.meta, bundle, forget_class=forget_class, forget_random=forget_random,
                        forget_indices=forget_indices, backdoor=backdoor, seed=seed)
    cls(make_config(cls, settings)).needs_for(req.scenario)
    ref_run = check_reference(reference, src, req) if reference is not None else None
    device = get_device()
    model = src.build_model(device)
    original, p_orig = input_metrics(src, model, bundle, req, seed, None)
    fingerprint = {"command": "forget", "run": run_digest(src.path), "method": method,
                   "settings": config_dict(make_config(cls, settings)), "scenario": req.scenario,
                   "forget": req.spec.to_dict() if req.spec else None, "clean_size": clean_size, "seed": seed,
                   "reference": run_digest(ref_run.path) if ref_run else None, "retrain": retrain, "guard": guard}
    with writer, checkpointing(writer.out, fingerprint, resume, overwrite) as ck:
        say(f"unlearning with {method} ...")
        res = execute_method(method, settings, model, src.meta, bundle, req, seed, clean_size,
                             checkpoint=ck.enter("method"), guard=guard)
        unlearned, config, seconds, figures = res.model, res.config, res.seconds, res.figures
        metrics, p = metrics_for(unlearned, bundle, req, src.meta, seed, seconds)
        ref_model, p_ref = None, None
        meta = forget_meta(src, req, method, config, seed, seconds, clean_size, ck.machine)
        if req.scenario == "backdoor":
            meta["guard"] = guard
        if retrain:
            say("retraining the reference from scratch ...")
            ref_model, ref_cfg, ref_seconds, _ = run_method("retrain", None, model, src.meta, bundle, req, seed,
                                                            checkpoint=ck.enter("reference"))
            ref_metrics, p_ref = metrics_for(ref_model, bundle, req, src.meta, seed, ref_seconds)
            ref_dir = writer.subdir("reference")
            write_plain_run(ref_dir, ref_model, forget_meta(src, req, "retrain", ref_cfg, seed, ref_seconds,
                                                              None, ck.machine), ref_metrics)
            metrics = compare(metrics, ref_metrics, p, p_ref, timed=one_machine(ck.machine))
            meta["reference"] = "reference"
        elif ref_run is not None:
            ref_model = ref_run.build_model(device)
            ref_metrics, p_ref = input_metrics(ref_run, ref_model, bundle, req, seed, ref_run.meta.seconds)
            metrics = compare(metrics, ref_metrics, p, p_ref, timed=timed_alike(meta, ref_run.meta))
            meta["reference"] = str(Path(reference).resolve())
        metrics["original"] = {k: v for k, v in original.items() if k not in ("confusion_test",)}
        metrics["agreement_with_original"] = agreement(p, p_orig)
        add_der(metrics, metrics["original"])
        add_training_speedup(metrics, meta)
        figures = {**figures, **res.method.extra_metrics(
            res.result, ref_model, EvalData(bundle, req.split, req.scenario, seed, p, p_ref), device)}
        if figures:
            metrics[method] = figures
        metrics["verdict"] = verdict(metrics, req.scenario)
        writer.save_model(unlearned)
        for name, state in res.artifacts.items():
            writer.save_weights(name, state)
        writer.write_json("meta.json", meta)
        writer.write_json("metrics.json", metrics)
        return writer.commit()


def agreement(p: Predictions, q: Predictions) -> float | None:
    """% of the test, retain and forget images on which two models predict the same class, rounded down (100.0
    only when every prediction agrees: the verdict then calls the run unchanged)."""
    same = total = 0
    for a, b in ((p.test_logits, q.test_logits), (p.retain_logits, q.retain_logits),
                 (p.forget_logits, q.forget_logits)):
        if a is not None and b is not None and len(a) == len(b):
            same += int((a.argmax(1) == b.argmax(1)).sum())
            total += len(a)
    return math.floor(10000.0 * same / total) / 100.0 if total else None


def run_digest(run_dir: Path) -> dict:
    """Hashes of a run's files: a resumed command must read the very same inputs."""
    return {name: file_digest(run_dir / name) for name in ("model.safetensors", "meta.json")}


# Metrics of input runs (the original, the reference) already computed in this process. A benchmark forgets
# from the same original against the same reference for every row, and each full evaluation predicts on the
# whole training and test sets: caching them saves two of the three evaluations per row. Keyed by the run's
# file hashes and the exact split, so a changed file or request is never served stale numbers.
_INPUT_METRICS: dict[tuple, tuple[dict, Predictions]] = {}
_INPUT_METRICS_MAX = 8


def _split_key(req: Request) -> str:
    h = hashlib.sha256(req.scenario.encode())
    for t in (req.split.train_idx, req.split.forget_idx, req.split.retain_idx):
        h.update(t.numpy().tobytes() + b"|")
    return h.hexdigest()


def input_metrics(run: Run, model: nn.Module, bundle: DataBundle, req: Request, seed: int,
                   seconds: float | None) -> tuple[dict, Predictions]:
    """Metrics of a model read from the user's run: NaN/inf outputs there are the input's defect, not ours."""
    cacheable = (Path(run.path) / "model.safetensors").is_file()  # a run directory (not an imported checkpoint)
    key = (str(run.path.resolve()), tuple(sorted(run_digest(run.path).items())), _split_key(req), seed, seconds,
           len(bundle.y_test), str(get_device())) if cacheable else None
    if key in _INPUT_METRICS:
        m, p = _INPUT_METRICS[key]
        return copy.deepcopy(m), p
    try:
        m, p = metrics_for(model, bundle, req, run.meta, seed, seconds)
    except NumericalError as err:
        raise UserError(f"the model in {run.path} is unusable ({err}): re-create the run") from err
    if key is None:
        return m, p
    if len(_INPUT_METRICS) >= _INPUT_METRICS_MAX:
        _INPUT_METRICS.pop(next(iter(_INPUT_METRICS)))
    _INPUT_METRICS[key] = (copy.deepcopy(m), p)
    return m, p


def add_training_speedup(metrics: dict, meta: RunMeta) -> None:
    """A forget run's speed-up over training the original model (its training seconds / the run's): what the run's
    cost is judged against when no retrained reference measured retraining (a backdoor defence never has one)."""
    t, s = meta.training_seconds, metrics.get("seconds")
    if not same_machine(meta.training_machine, meta.get("machine")):  # seconds from two machines say nothing
        return
    if meta.is_forget and meta.method_name != "retrain" and t and s:  # retraining costs about 1x by design
        metrics["speedup_over_training"] = round(t / s, 4)


def timed_alike(meta: RunMeta, ref_meta: RunMeta) -> bool:
    """Whether a run's seconds compare with its reference's: a reference retrained on another machine
    (`--reference RUN`) gives a gap but no speed-up."""
    return same_machine(meta.get("machine"), ref_meta.get("machine"))


def add_der(metrics: dict, before: dict) -> None:
    """DER of a backdoor defence (BackdoorBench), from the model before and after it."""
    if all(k in d for d in (metrics, before) for k in ("asr", "clean_acc")):
        from .metrics import defense_effectiveness_rating

        metrics["der"] = round(defense_effectiveness_rating(before, metrics), 4)


def parent_metrics(meta: dict) -> dict:
    """The metrics of the run a forget run started from (for DER), or {} when it is gone."""
    parent = RunMeta.of(meta).parent
    if not parent or not Path(parent).is_dir():
        return {}
    try:
        return load_run(parent).metrics
    except UserError:
        return {}


def forget_meta(src: Run, req: Request, method: str, config: dict, seed: int, seconds: float,
                 clean_size: int | None, timed_on: str | None = None) -> RunMeta:
    """The meta.json of a forget run: its parent's, with what this run did (the parent's timing, reference and
    versions are the parent's own, so they are dropped)."""
    meta = RunMeta({k: v for k, v in src.meta.items() if k not in ("seconds", "reference", "versions", "machine")})
    meta.update({"kind": "forget", "parent": str(src.path.resolve()), "parent_seconds": src.meta.seconds,
                 "training_seconds": src.meta.training_seconds, "training_machine": src.meta.training_machine,
                 "machine": timed_on or machine(), "recipe_known": src.meta.recipe_known,
                 "scenario": req.scenario, "forget": req.spec.to_dict() if req.spec else None,
                 "method": {"name": method, "config": config}, "seed": seed, "seconds": round(seconds, 3),
                 "versions": versions()})
    if req.scenario == "backdoor":
        meta["clean_size"] = clean_size
    return meta


def write_plain_run(d: Path, model: nn.Module, meta: dict, metrics: dict) -> None:
    from safetensors.torch import save_file

    from .engine.rundir import dump_json, state_dict_cpu

    if not distributed.is_main():
        return
    save_file(state_dict_cpu(model), str(d / "model.safetensors"))
    (d / "meta.json").write_text(dump_json(meta))
    (d / "metrics.json").write_text(dump_json(metrics))


def check_reference(reference: str | Path, src: Run, req: Request) -> Run:
    ref = load_run(reference)
    if ref.meta.data.spec != src.meta.data.spec or ref.meta.num_classes != src.meta.num_classes:
        raise UserError(f"reference {reference} was trained on other data ({ref.meta.data.spec}): pass a "
                        f"reference retrained on {src.meta.data.spec}")
    theirs = ref.meta.forget_spec
    ref_forget = theirs.to_dict() if theirs else None
    mine = req.spec.to_dict() if req.spec else None
    if ref.meta.is_forget and ref_forget != mine:
        raise UserError(f"reference {reference} forgot {ref_forget}, not {mine}: pass a reference retrained "
                        f"without the same forget set, or use --retrain")
    return ref
