"""The Python API behind each command: `train`, `import_checkpoint`, `forget` (its flow is `forgetting.py`),
`evaluate`, `predict`.

Every function reads and writes run directories, so the stages chain from Python and from the shell alike.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from .data import load_dataset
from .engine.checkpoint import checkpointing
from .engine.device import PRECISIONS, get_device
from .engine.evaluate import compare, evaluate_model
from .engine.progress import say
from .engine.rundir import Run, RunWriter, load_run, versions
from .engine.safeload import file_digest
from .engine.seed import seed_everything
from .engine.train import TrainConfig, fit
from .errors import UserError
from .forgetting import (
    Request,
    add_der,
    add_training_speedup,
    check_reference,
    forget,
    input_metrics,
    parent_metrics,
    timed_alike,
)
from .methods.base import METHODS, make_config
from .metrics.verdict import verdict
from .rundata import attack_metrics, check_input_shape, load_run_data, new_model_fn, split_of
from .runmeta import DEFAULT_VAL_FRACTION, RunMeta, data_ref

__all__ = ["evaluate", "forget", "import_checkpoint", "predict", "train", "weak_model_warnings"]




# --------------------------------------------------------------------------- train

def train(data: str = "digits", arch: str = "cnn-small", out: str | Path = "runs/train", *,
          epochs: int | None = None, batch_size: int | None = None, lr: float | None = None,
          optimizer: str | None = None, weight_decay: float | None = None, augment: bool | None = None,
          precision: str | None = None, seed: int = 0, data_root: str | Path | None = None,
          image_size: int | None = None,
          val_fraction: float = DEFAULT_VAL_FRACTION, arch_kwargs: dict[str, Any] | None = None,
          poison: str | None = None, target: int = 0,
          poison_ratio: float = 0.1, all_to_all: bool = False, poison_settings: dict | None = None,
          overwrite: bool = False, resume: bool = False, tensorboard: str | Path | None = None) -> Path:
    """Train a classifier (optionally with a planted backdoor) and write a run directory.

    With `resume=True`, an interrupted run with the same arguments continues from its last epoch checkpoint.
    With `tensorboard=DIR`, losses and metrics are also logged for TensorBoard under DIR/<run name>.
    Returns the path of the run directory.
    """
    writer = RunWriter(out, overwrite, tensorboard=tensorboard)
    cfg = _recipe(epochs, batch_size, lr, optimizer, val_fraction, precision, weight_decay, augment)
    bundle = load_dataset(data, data_root, image_size)
    meta = RunMeta({
        "kind": "train",
        "arch": {"name": arch, "kwargs": dict(arch_kwargs or {})},
        "num_classes": bundle.num_classes, "classes": bundle.classes, "input_shape": list(bundle.input_shape),
        "normalization": {"mean": list(bundle.mean), "std": list(bundle.std)},
        "data": data_ref(bundle.spec, data_root, image_size, val_fraction),
        "train": cfg.to_dict(), "seed": seed,
    })
    if poison is not None:
        from .attacks import make_poison_spec, poison_bundle

        meta["poison"] = make_poison_spec(poison, bundle, target=target, ratio=poison_ratio,
                                          all_to_all=all_to_all, seed=seed, settings=poison_settings or {},
                                          val_fraction=val_fraction, split_seed=meta.data.split_seed)
        bundle = poison_bundle(bundle, meta.poison)
    split = split_of(meta, bundle, None)
    device = get_device()
    with writer, checkpointing(writer.out, {"command": "train", **meta}, resume, overwrite) as ck:
        gen = seed_everything(seed)
        model = new_model_fn(meta)().to(device)
        check_input_shape(model, meta, device)
        t0 = time.perf_counter()
        sc = ck.enter("train")
        history = fit(model, bundle.train_part(split.train_idx), cfg, device, gen, desc="train", checkpoint=sc)
        meta["seconds"] = round(time.perf_counter() - t0 + sc.carried_seconds, 3)
        metrics, _ = evaluate_model(model, bundle, split, None, device, seed)
        metrics = {**attack_metrics(model, bundle, meta, device), **metrics}
        metrics["seconds"] = meta.seconds
        metrics["train_loss"] = [round(v, 5) for v in history]
        warnings = weak_model_warnings(metrics, len(bundle.classes))
        for w in warnings:
            say(f"warning: {w}")
        if warnings:
            metrics["warnings"] = warnings
        meta["versions"], meta["machine"] = versions(), ck.machine
        writer.save_model(model)
        writer.write_json("meta.json", meta)
        writer.write_json("metrics.json", metrics)
        return writer.commit()


WEAK_NEAR_CHANCE, WEAK_GAP = 2.0, 30.0


def weak_model_warnings(metrics: dict, num_classes: int) -> list[str]:
    """What is wrong with a freshly trained model that unlearning would only build on (issue 22: a 6-class photo
    folder reached 33.8% test accuracy with no warning): test accuracy within `WEAK_NEAR_CHANCE` times chance,
    or more than `WEAK_GAP` points below the training accuracy. Each says what to change."""
    test, fit_acc = metrics.get("test_acc"), metrics.get("retain_acc")
    if not isinstance(test, (int, float)) or num_classes < 2:
        return []
    chance = 100.0 / num_classes
    out = []
    if test <= WEAK_NEAR_CHANCE * chance:
        out.append(f"test accuracy {test:.1f}% is near chance ({chance:.1f}% for {num_classes} classes): this model "
                   f"has learnt little; train longer (--epochs), try another --lr or --arch, or check the data")
    elif isinstance(fit_acc, (int, float)) and fit_acc - test > WEAK_GAP:
        out.append(f"training accuracy {fit_acc:.1f}% but test accuracy {test:.1f}%: the model memorises its "
                   f"training images; more images per class, fewer --epochs or a smaller --arch will generalise "
                   f"better (membership inference is easy on such a model, before and after unlearning)")
    return out


def _recipe(epochs: int | None, batch_size: int | None, lr: float | None, optimizer: str | None,
            val_fraction: float, precision: str | None = None, weight_decay: float | None = None,
            augment: bool | None = None) -> TrainConfig:
    """The training recipe from the flags (defaults for those not given), validated. `augment=False` trains on the
    images as they are (no crop or flip): what a model trained elsewhere without augmentation needs `retrain` to
    repeat, and a way to keep a trigger where it was stamped."""
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"--val-fraction {val_fraction} is outside [0, 1): use e.g. 0.1")
    cfg = TrainConfig()
    for k, v in {"epochs": epochs, "batch_size": batch_size, "lr": lr, "optimizer": optimizer,
                 "precision": precision, "weight_decay": weight_decay, "augment": augment}.items():
        if v is not None:
            setattr(cfg, k, v)
    if not (cfg.epochs >= 1 and cfg.batch_size >= 1 and 0 < cfg.lr < float("inf") and cfg.optimizer in ("sgd", "adam")
            and cfg.precision in PRECISIONS and 0 <= cfg.weight_decay < float("inf")):
        raise UserError(f"--epochs and --batch-size must be >= 1, --lr > 0, --weight-decay finite >= 0, --optimizer "
                        f"sgd or adam, --precision "
                        f"one of {', '.join(PRECISIONS)}")
    return cfg


def import_checkpoint(checkpoint: str | Path, arch: str, data: str = "digits", out: str | Path = "runs/import", *,
                      arch_kwargs: dict[str, Any] | None = None, data_root: str | Path | None = None,
                      image_size: int | None = None, val_fraction: float = DEFAULT_VAL_FRACTION,
                      epochs: int | None = None, batch_size: int | None = None, lr: float | None = None,
                      optimizer: str | None = None, weight_decay: float | None = None,
                      augment: bool | None = None, seed: int = 0, overwrite: bool = False) -> Path:
    """Make a run directory from a model trained elsewhere (a state_dict in .safetensors, .pt or .pth).

    `.pt`/`.pth` files are read with `torch.load(weights_only=True)` only: a pickle that would run code is
    refused (see `engine.checkpoint`). The training flags record how the model was trained, which is what
    `forget --retrain` repeats without the forget set. The run is evaluated on `data` as a sanity check.
    """
    from .engine.safeload import load_into, read_state_dict

    writer = RunWriter(out, overwrite, inputs=(checkpoint,))
    cfg = _recipe(epochs, batch_size, lr, optimizer, val_fraction, weight_decay=weight_decay, augment=augment)
    state = read_state_dict(checkpoint)
    bundle = load_dataset(data, data_root, image_size)
    meta = RunMeta({
        "kind": "import", "arch": {"name": arch, "kwargs": dict(arch_kwargs or {})},
        "num_classes": bundle.num_classes, "classes": bundle.classes, "input_shape": list(bundle.input_shape),
        "normalization": {"mean": list(bundle.mean), "std": list(bundle.std)},
        "data": data_ref(bundle.spec, data_root, image_size, val_fraction), "train": cfg.to_dict(), "seed": seed,
        "source": {"checkpoint": str(Path(checkpoint).resolve()), "sha256": file_digest(checkpoint)},
        "recipe_known": epochs is not None,  # without --epochs the recipe is our default, not how it was trained
    })
    device = get_device()
    model = new_model_fn(meta)()
    check_input_shape(model, meta, torch.device("cpu"))
    if load_into(model, state, checkpoint):  # an unlearnkit state_dict brings its own normalisation
        meta["normalization"] = {"mean": model.mean.flatten().tolist(), "std": model.std.flatten().tolist()}
    model = model.to(device).eval()
    metrics, _ = input_metrics(Run(Path(checkpoint), meta), model, bundle,
                                Request("none", None, split_of(meta, bundle, None)), seed, None)
    if metrics["test_acc"] < 1.5 * 100.0 / bundle.num_classes:
        say(f"warning: test accuracy {metrics['test_acc']:.2f}% is near chance: check --arch, --data and the "
            f"input normalisation the model was trained with")
    meta["versions"] = versions()
    with writer:
        writer.save_model(model)
        writer.write_json("meta.json", meta)
        writer.write_json("metrics.json", metrics)
        return writer.commit()


# --------------------------------------------------------------------------- evaluate

def evaluate(run: str | Path, reference: str | Path | None = None, data_root: str | Path | None = None) -> dict:
    """Recompute the metrics of a run (against a reference run, if given), with a verdict. Writes nothing."""
    src = load_run(run)
    bundle = load_run_data(src.meta, data_root)
    spec, scenario = src.meta.forget_spec, src.meta.scenario
    req = Request(scenario or "none", spec, split_of(src.meta, bundle, spec))
    device = get_device()
    seed = src.meta.seed
    metrics, p = input_metrics(src, src.build_model(device), bundle, req, seed, src.meta.seconds)
    if scenario == "backdoor":
        add_der(metrics, parent_metrics(src.meta))
    if reference is None and src.meta.reference == "reference" and (src.path / "reference").is_dir():
        reference = src.path / "reference"
    if reference is not None:
        ref = check_reference(reference, src, req)
        ref_metrics, p_ref = input_metrics(ref, ref.build_model(device), bundle, req, seed, ref.meta.seconds)
        metrics = compare(metrics, ref_metrics, p, p_ref, timed=timed_alike(src.meta, ref.meta))
    if isinstance(src.metrics.get("original"), dict):
        metrics["original"] = src.metrics["original"]  # the model before unlearning is not in this run
    if src.metrics.get("agreement_with_original") is not None:  # nor can its predictions be compared again
        metrics["agreement_with_original"] = src.metrics["agreement_with_original"]
    add_training_speedup(metrics, src.meta)
    judged = verdict(metrics, scenario)
    if judged is not None:
        metrics["verdict"] = judged
    return metrics


# --------------------------------------------------------------------------- predict

def predict(run: str | Path, images: list[str | Path], top: int = 5) -> list[dict]:
    """Top-k classes with probabilities for each image file."""
    from .data.imagefolder import read_image
    from .data.transforms import to_float

    src = load_run(run)
    c, h, _ = src.meta.input_shape
    if top < 1:
        raise UserError(f"--top {top} must be at least 1")
    k, classes = min(top, src.meta.num_classes), src.meta.classes
    device = get_device()
    model = src.build_model(device)
    logits = []
    for path in images:
        x = read_image(Path(path), h)
        x = x.float().mean(0, keepdim=True).round().to(torch.uint8) if c == 1 else x
        with torch.no_grad():
            lg = model(to_float(x[None].to(device)))[0].float().cpu()
        if not torch.isfinite(lg).all():
            raise UserError(f"the model in {run} outputs NaN/inf for {path}: its weights or meta.json are unusable; "
                            f"re-create the run")
        logits.append(lg)
    extras = _predict_extras(src, torch.stack(logits)) if logits else []
    out = []
    for n, (path, lg) in enumerate(zip(images, logits, strict=True)):
        p, i = torch.softmax(lg, 0).topk(k)
        out.append({"image": str(path), "top": [{"class": classes[j], "index": int(j),
                                                "prob": round(float(q), 6)} for q, j in zip(p, i, strict=True)]})
        if n < len(extras) and extras[n]:
            out[-1]["extra"] = extras[n]
    return out


def _predict_extras(src: Run, logits: torch.Tensor) -> list[dict]:
    """A forget run's method may add per-image numbers (e.g. the adversarial method's discriminator score)."""
    name = src.meta.method_name
    if not src.meta.is_forget or not name or name not in METHODS:
        return []
    cls = METHODS.get(name)
    return cls(make_config(cls, src.meta.method_config)).predict_extras(src.path, src.meta, logits)
