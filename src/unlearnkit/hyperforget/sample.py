"""`unlearnkit hyperforget sample`: answer a forget request by sampling heads, written as ordinary runs.

Each sample is a run directory like `unlearnkit forget` writes (`model.safetensors` = the original model with
the generated head, `meta.json` with the same keys, method `hyperforget`), so `unlearnkit evaluate RUN
--reference REF` works on it unchanged. With `n=1`, `out` is that run directory; with `n>1`, `out` holds
`sample-0/` ... `sample-<n-1>/` (each a run directory) and `samples.json` (a summary), all published in one
atomic rename, so a batch of samples appears or fails as a whole.

`seconds` in meta.json is the generation time per sample (the batch's time divided by n): what a request
costs, comparable to the `seconds` of other methods (which also leave out loading the model).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data.splits import ForgetSpec, parse_classes
from ..engine.device import get_device, machine, same_machine
from ..engine.evaluate import compare, evaluate_predictions
from ..engine.progress import say
from ..engine.rundir import META_FILE, METRICS_FILE, MODEL_FILE, Run, RunWriter, dump_json, load_run, state_dict_cpu
from ..errors import NumericalError, UserError
from .collect import STARTS
from .heads import compute_features, feature_predictions, get_head, set_head
from .hypernet import HyperForget, override_prompt, prompt_losses

SUMMARY_FILE = "samples.json"
# The forget spec's seed selects nothing for a class request; it is kept at 0, as `unlearnkit forget` writes it
# by default, so that `--reference` accepts the usual retrained run whatever sampling `--seed` is used.
SPEC_SEED = 0


def parent_of(hf: HyperForget, hypernet: str | Path) -> Run:
    """The run the hypernetwork was trained for, checked to still hold the same head."""
    parent = hf.meta.parent
    if not Path(parent).is_dir():
        raise UserError(f"the model {parent} that {hypernet} was trained for is gone: restore it there, or "
                        f"train a hypernetwork for the model you have")
    src = load_run(parent)
    if not torch.allclose(get_head(src.build_model("cpu")), hf.original, atol=1e-6):
        raise UserError(f"the model at {parent} has changed since {hypernet} was trained for it: train a new "
                        f"hypernetwork for it")
    return src


def request_class(hf: HyperForget, src: Run, forget_class: str) -> int:
    classes = parse_classes(str(forget_class), src.meta.classes)
    if len(classes) != 1:
        raise UserError(f"--forget-class {forget_class} names {len(classes)} classes: a hypernetwork answers "
                        f"one class per request")
    c = classes[0]
    if c not in hf.meta.classes:
        trained = ", ".join(src.meta.classes[k] for k in hf.meta.classes)
        raise UserError(f"the hypernetwork was not trained to forget class {src.meta.classes[c]!r}: choose "
                        f"one of {trained}, or train it with --set classes=...")
    return c


def generate(hf: HyperForget, c: int, n: int, *, start: str | None = None, forget_loss: float | None = None,
             retain_loss: float | None = None, steps: int | None = None, temperature: float | None = None,
             seed: int = 0) -> tuple[torch.Tensor, dict, float]:
    """n heads (n, K, D+1) for the request "forget class c", the settings used, and the seconds per head."""
    if steps is not None and steps < 1:
        raise UserError(f"--steps {steps} must be at least 1")
    s = hf.start_index(start, c)
    prompt = override_prompt(hf.variant, hf.default_prompt(c, s), hf.counts, c, forget_loss, retain_loss)
    steps = steps or hf.meta.sample_steps
    if temperature is not None and temperature < 0:
        raise UserError(f"--temperature {temperature} must be >= 0 (1: as trained, 0: no sampling noise)")
    temperature = hf.meta.temperature if temperature is None else temperature
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    heads = hf.generate(torch.full((n,), c, dtype=torch.long), prompt.expand(n, -1), torch.full((n,), s), steps,
                        gen, temperature=temperature)
    seconds = (time.perf_counter() - t0) / n
    if not torch.isfinite(heads).all():
        raise NumericalError("the hypernetwork produced NaN/inf parameters: retrain it (lower --set lr=...)")
    want_f, want_r = prompt_losses(hf.variant, prompt[None], hf.counts, c)
    config = {"variant": hf.variant, "start": STARTS[s], "steps": steps, "temperature": temperature, "n": n,
              "prompt": {"forget_loss": round(float(want_f[0]), 6), "retain_loss": round(float(want_r[0]), 6),
                         "values": [round(float(v), 6) for v in prompt]}}
    return heads, config, seconds


def sample(hypernet: str | Path, forget_class: str | int, out: str | Path, *, n: int = 1,
           forget_loss: float | None = None, retain_loss: float | None = None, start: str | None = None,
           steps: int | None = None, temperature: float | None = None, seed: int = 0,
           reference: str | Path | None = None, evaluate: bool = False, data_root: str | Path | None = None,
           overwrite: bool = False) -> Path:
    """Sample `n` unlearned models for "forget `forget_class`" from a trained hypernetwork.

    Args:
        hypernet: a directory written by `train_hypernet`.
        forget_loss, retain_loss: prompts (nats on the training set); default: what the collected runs from
            `start` reached.
        start: `scratch` (like retraining the head without the class; the default when the hypernetwork has
            such runs) or `original` (like unlearning from the model's own head).
        steps, temperature: denoising steps and noise scale (default: the hypernetwork's `sample_steps` and
            `temperature`).
        reference, evaluate: also write metrics.json (against `reference`, a retrained run, if given),
            computed on frozen features: one forward pass of the model for all n samples.
    Returns:
        `out` (a run directory when n == 1, else a directory of n run directories).
    """
    if n < 1:
        raise UserError(f"--n {n} must be at least 1")
    t_load = time.perf_counter()
    hf = HyperForget.load(hypernet)
    src = parent_of(hf, hypernet)
    c = request_class(hf, src, str(forget_class))
    writer = RunWriter(out, overwrite, inputs=(src.path, hypernet) + ((reference,) if reference else ()))
    load_seconds = time.perf_counter() - t_load
    heads, config, seconds = generate(hf, c, n, start=start, forget_loss=forget_loss, retain_loss=retain_loss,
                                      steps=steps, temperature=temperature, seed=seed)
    config = {"hypernet": str(Path(hypernet).resolve()), **config}
    meta = _meta(src, c, config, seed, seconds, load_seconds)
    if reference is not None:
        meta["reference"] = str(Path(reference).resolve())
    with writer:  # a failure leaves no half-written output
        metrics = _evaluate(src, heads, c, seed, seconds, reference, data_root) if (evaluate or reference) else None
        model = src.build_model("cpu")
        summary = []
        for i in range(n):
            set_head(model, heads[i])
            meta_i = {**meta, "method": {"name": "hyperforget", "config": {**config, "sample": i}}}
            if n == 1:  # OUT is the run directory
                writer.save_model(model)
                writer.write_json(META_FILE, meta_i)
                if metrics:
                    writer.write_json(METRICS_FILE, metrics[0])
            else:
                _write_run(writer.subdir(f"sample-{i}"), model, meta_i, metrics[i] if metrics else None)
            summary.append({"run": "." if n == 1 else f"sample-{i}", **_brief(metrics[i] if metrics else {})})
        if n > 1:
            writer.write_json(SUMMARY_FILE, {"forget_class": c, "seconds_per_sample": round(seconds, 6),
                                             "load_seconds": round(load_seconds, 3), "config": config,
                                             "samples": summary})
        return writer.commit()


def _meta(src: Run, c: int, config: dict, seed: int, seconds: float, load_seconds: float) -> dict:
    """The keys `pipeline.forget` writes, for method `hyperforget`."""
    from ..forgetting import Request, forget_meta

    spec = ForgetSpec("class", classes=[c], seed=SPEC_SEED)
    req = Request("class", spec, None)  # type: ignore[arg-type]  # meta needs the spec only, not the split
    meta = forget_meta(src, req, "hyperforget", config, seed, seconds, None)
    meta["hyperforget"] = {"load_seconds": round(load_seconds, 3)}
    return meta


def _write_run(d: Path, model: torch.nn.Module, meta: dict, metrics: dict | None) -> None:
    from safetensors.torch import save_file

    save_file(state_dict_cpu(model), str(d / MODEL_FILE))
    (d / META_FILE).write_text(dump_json(meta))
    if metrics is not None:
        (d / METRICS_FILE).write_text(dump_json(metrics))


def _brief(m: dict) -> dict:
    keys = ("forget_test_acc", "test_acc", "forget_acc", "retain_acc", "mia_efficacy")
    return {k: m[k] for k in keys if k in m}


def _evaluate(src: Run, heads: torch.Tensor, c: int, seed: int, seconds: float, reference: str | Path | None,
              data_root: str | Path | None) -> list[dict]:
    """metrics.json of every sample (the keys `unlearnkit forget` writes), from one pass of frozen features."""
    from ..forgetting import check_reference, metrics_for, parse_request
    from ..rundata import load_run_data

    say("evaluating the samples on frozen features ...")
    bundle = load_run_data(src.meta, data_root)
    req = parse_request(src.meta, bundle, forget_class=str(c), seed=SPEC_SEED)
    device = get_device()
    model = src.build_model(device)
    f = compute_features(model, bundle, req.split.train_idx, device)
    ref, timed = None, True
    if reference is not None:
        ref_run = check_reference(reference, src, req)
        timed = same_machine(machine(), ref_run.meta.get("machine"))  # seconds of one machine only
        ref = metrics_for(ref_run.build_model(device), bundle, req, src.meta, seed, ref_run.meta.seconds)
    p0 = feature_predictions(get_head(model), f, bundle, req.split)
    original = evaluate_predictions(p0, bundle, req.split, "class", seed)
    out = []
    for rows in heads:
        p = feature_predictions(rows, f, bundle, req.split)
        m = evaluate_predictions(p, bundle, req.split, "class", seed)
        m["seconds"] = round(seconds, 6)
        if ref is not None:
            m = compare(m, ref[0], p, ref[1], timed=timed)
        m["original"] = {k: v for k, v in original.items() if k != "confusion_test"}
        achieved = {"forget_loss": float(F.cross_entropy(p.forget_logits, p.forget.y)),
                    "retain_loss": float(F.cross_entropy(p.retain_logits, p.retain.y))}
        m["hyperforget"] = {"achieved": {k: round(v, 6) for k, v in achieved.items()}}
        out.append(m)
    return out
