"""Backdoor metrics (BackdoorBench's definitions): pure functions over predictions and metric dicts."""

from __future__ import annotations

from torch import Tensor

from .accuracy import accuracy


def backdoor_scores(clean_logits: Tensor, y_clean: Tensor, bd_logits: Tensor, y_true: Tensor,
                    y_mapped: Tensor) -> dict[str, float]:
    """Clean accuracy, attack success rate and robust accuracy, in percent.

    Args:
        clean_logits, y_clean: the model on the clean test set.
        bd_logits: the model on triggered test samples whose label the attack changes (for all-to-one:
            true label != target; for all-to-all: every sample).
        y_true, y_mapped: those samples' true labels and the labels the attack maps them to.
    """
    return {"clean_acc": accuracy(clean_logits, y_clean), "asr": accuracy(bd_logits, y_mapped),
            "robust_acc": accuracy(bd_logits, y_true)}


def defense_effectiveness_rating(before: dict, after: dict) -> float:
    """DER = [max(0, dASR) - max(0, dACC) + 1] / 2, with d = before - after as fractions (BackdoorBench).

    1 is a perfect defence (ASR from 100% to 0 at no accuracy cost); 0.5 means nothing changed.
    """
    d_asr = (before["asr"] - after["asr"]) / 100.0
    d_acc = (before["clean_acc"] - after["clean_acc"]) / 100.0
    return (max(0.0, d_asr) - max(0.0, d_acc) + 1.0) / 2.0
