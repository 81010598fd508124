"""Metrics: pure functions over predictions, and their registry (`registry.py`; the built-ins in `builtin.py`)."""

from .accuracy import accuracy, confusion_matrix, per_class_accuracy
from .backdoor import backdoor_scores, defense_effectiveness_rating
from .divergence import avg_gap, js_divergence
from .mia import loss_mia, mia_efficacy, per_sample_loss, true_label_confidence

__all__ = ["accuracy", "avg_gap", "backdoor_scores", "confusion_matrix", "defense_effectiveness_rating",
           "js_divergence", "loss_mia", "mia_efficacy", "per_class_accuracy", "per_sample_loss",
           "true_label_confidence"]
