"""`forget_loss`: the mean cross-entropy of the forget set, next to the retrained model's.

Accuracy says whether the forgotten samples are still classified right; their loss says how sure the model
still is. A model can reach 0% forget accuracy while its loss on the forget set stays far below that of a
model that never saw them (the samples are merely pushed over a boundary), which the loss-based membership
attack then exploits. This file is the whole of the metric: registering it is all evaluation, metrics.json,
the gap to the retrained model and the report need.
"""

from __future__ import annotations

from .mia import per_sample_loss
from .registry import FORGET_SCENARIOS, EvalContext, Metric, register_metric


def _forget_loss(ctx: EvalContext) -> float | None:
    if not ctx.has_forget:
        return None
    return round(float(per_sample_loss(ctx.p.forget_logits, ctx.p.forget.y).mean()), 4)


register_metric(Metric("forget_loss", "forget-set loss", "forget loss", "mean cross-entropy, nats", 65,
                       FORGET_SCENARIOS, gap=True, percent=False, compute=_forget_loss))
