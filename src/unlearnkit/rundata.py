"""What a run directory's meta.json says about its data and model: rebuild the dataset (with its poisoning), check
that it fits the model, rebuild the split, build a fresh model of the same architecture, measure its attack.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from .data import DataBundle, ForgetSpec, Split, load_dataset, make_split
from .errors import UserError
from .runmeta import RunMeta


def load_run_data(meta: dict, data_root: str | Path | None = None) -> DataBundle:
    """Rebuild the dataset a run was trained on (with its poisoning, if any) and check it fits the model."""
    m = RunMeta.of(meta)
    d = m.data
    bundle = load_dataset(d.spec, data_root or d.root, d.image_size)
    if m.poison:
        from .attacks import poison_bundle

        try:
            bundle = poison_bundle(bundle, m.poison)
        except (KeyError, TypeError, ValueError, IndexError) as err:  # a hand-edited or corrupted meta.json
            raise UserError(f"the poison spec in meta.json is malformed ({type(err).__name__}: {err}): re-create "
                            f"the run") from err
    check_fits(m, bundle)
    return bundle


def check_fits(meta: dict, bundle: DataBundle) -> None:
    m = RunMeta.of(meta)
    if m.num_classes != bundle.num_classes:
        raise UserError(f"the model has {m.num_classes} classes but the data {bundle.spec!r} has "
                        f"{bundle.num_classes}: use the dataset the model was trained on")
    if m.input_shape != tuple(bundle.input_shape):
        raise UserError(f"the model takes inputs of shape {m.input_shape} but the data gives "
                        f"{bundle.input_shape}: pass the same --image-size as in training")


def check_input_shape(model: nn.Module, meta: dict, device: torch.device) -> None:
    """One forward pass on blank images: an architecture that cannot take the data's image size fails here, with
    a message, instead of deep inside training."""
    m = RunMeta.of(meta)
    was_training = model.training
    model.eval()  # no BatchNorm statistics are touched
    try:
        with torch.no_grad():
            model(torch.zeros(2, *m.input_shape, device=device))
    except RuntimeError as err:
        why = " ".join(str(err).split())[:120]
        raise UserError(f"model {m.arch_name!r} cannot take {m.input_shape} images ({why}): "
                        f"choose another --arch or a larger --image-size") from err
    finally:
        model.train(was_training)


def split_of(meta: dict, bundle: DataBundle, spec: ForgetSpec | None) -> Split:
    """The run's split of the training set. A poisoned run's held-out split never holds a poisoned sample.

    A backdoored run made by this version draws its split on the clean labels (`split_on: clean labels` in its
    poison spec), the split its poisoned samples were chosen outside of. Runs made before drew it on the poisoned
    labels, which is another split: about a tenth of their poisoned samples (triggered, labelled with the target)
    sat in the held-out split, where every backdoor defence drew its "clean" set and its guard slice from, so the
    defences were taught the backdoor again. Those runs keep the split they trained on, without the poisoned
    samples in its held-out part (they were never trained on, and now are used nowhere)."""
    m = RunMeta.of(meta)
    d, poison = m.data, m.poison
    if not poison:
        return make_split(bundle.y_train, d.val_fraction, d.split_seed, spec)
    from .attacks import SPLIT_ON_CLEAN_LABELS, clean_labels, poisoned_indices

    labels = clean_labels(bundle) if poison.get("split_on") == SPLIT_ON_CLEAN_LABELS else None
    return make_split(bundle.y_train, d.val_fraction, d.split_seed, spec, split_labels=labels,
                      never_held_out=poisoned_indices(poison))


def new_model_fn(meta: dict) -> Callable[[], nn.Module]:
    return RunMeta.of(meta).new_model


def attack_metrics(model: nn.Module, bundle: DataBundle, meta: dict, device: torch.device) -> dict:
    poison = RunMeta.of(meta).poison
    if not poison:
        return {}
    from .attacks import backdoor_metrics

    return backdoor_metrics(model, bundle, poison, device)
