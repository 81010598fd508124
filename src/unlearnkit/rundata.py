"""What a run directory's meta.json says about its data and model: rebuild the dataset (with its poisoning), check
that it fits the model, rebuild the split, build a fresh model of the same architecture, measure its attack.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .data import DataBundle, ForgetSpec, Split, load_dataset, make_split
from .errors import UserError
from .models import build_model

DEFAULT_VAL_FRACTION = 0.1

def data_spec(spec: str, data_root: str | Path | None, image_size: int | None, val_fraction: float,
              split_seed: int = 0) -> dict:
    return {"spec": spec, "root": str(data_root) if data_root else None, "image_size": image_size,
            "val_fraction": val_fraction, "split_seed": split_seed}


def load_run_data(meta: dict, data_root: str | Path | None = None) -> DataBundle:
    """Rebuild the dataset a run was trained on (with its poisoning, if any) and check it fits the model."""
    d = meta["data"]
    bundle = load_dataset(d["spec"], data_root or d.get("root"), d.get("image_size"))
    if meta.get("poison"):
        from .attacks import poison_bundle

        try:
            bundle = poison_bundle(bundle, meta["poison"])
        except (KeyError, TypeError, ValueError, IndexError) as err:  # a hand-edited or corrupted meta.json
            raise UserError(f"the poison spec in meta.json is malformed ({type(err).__name__}: {err}): re-create "
                            f"the run") from err
    check_fits(meta, bundle)
    return bundle


def check_fits(meta: dict, bundle: DataBundle) -> None:
    if int(meta["num_classes"]) != bundle.num_classes:
        raise UserError(f"the model has {meta['num_classes']} classes but the data {bundle.spec!r} has "
                        f"{bundle.num_classes}: use the dataset the model was trained on")
    if list(meta["input_shape"]) != list(bundle.input_shape):
        raise UserError(f"the model takes inputs of shape {tuple(meta['input_shape'])} but the data gives "
                        f"{bundle.input_shape}: pass the same --image-size as in training")


def check_input_shape(model: nn.Module, meta: dict, device: torch.device) -> None:
    """One forward pass on blank images: an architecture that cannot take the data's image size fails here, with
    a message, instead of deep inside training."""
    was_training = model.training
    model.eval()  # no BatchNorm statistics are touched
    try:
        with torch.no_grad():
            model(torch.zeros(2, *meta["input_shape"], device=device))
    except RuntimeError as err:
        why = " ".join(str(err).split())[:120]
        raise UserError(f"model {meta['arch']['name']!r} cannot take {tuple(meta['input_shape'])} images ({why}): "
                        f"choose another --arch or a larger --image-size") from err
    finally:
        model.train(was_training)


def split_of(meta: dict, bundle: DataBundle, spec: ForgetSpec | None) -> Split:
    d = meta["data"]
    return make_split(bundle.y_train, float(d.get("val_fraction", DEFAULT_VAL_FRACTION)),
                      int(d.get("split_seed", 0)), spec)


def new_model_fn(meta: dict):
    def new() -> nn.Module:
        return build_model(meta["arch"]["name"], int(meta["num_classes"]), tuple(meta["input_shape"]),
                           tuple(meta["normalization"]["mean"]), tuple(meta["normalization"]["std"]),
                           **meta["arch"].get("kwargs", {}))

    return new


def attack_metrics(model: nn.Module, bundle: DataBundle, meta: dict, device: torch.device) -> dict:
    if not meta.get("poison"):
        return {}
    from .attacks import backdoor_metrics

    return backdoor_metrics(model, bundle, meta["poison"], device)
