"""Figures of the HTML report, as PNG data URIs that the page embeds (it needs no other file).

Drawn on matplotlib's Agg canvas through `Figure` objects, never `pyplot`: no display, no global figure
state, safe in a headless job. One palette throughout the page, so "before", "after" and "retrained"
(and "forget", "retain", "test") keep their colours from one figure to the next.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter
from PIL import Image

MODEL_COLORS = {"before": "#94a3b8", "after": "#2563eb", "retrained": "#f59e0b"}
PART_COLORS = {"forget": "#dc2626", "retain": "#2563eb", "test": "#16a34a", "test, forgotten classes": "#a855f7"}
EXTRA_COLORS = ("#0d9488", "#db2777", "#65a30d", "#7c3aed", "#ea580c", "#0284c7")
INK, GRID = "#1f2937", "#e5e7eb"
LOGIT_TICKS = (0.001, 0.1, 0.5, 0.9, 0.999, 0.99999)


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _style(ax) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.spines[["left", "bottom"]].set_color("#9ca3af")
    ax.tick_params(colors=INK, labelsize=8)
    ax.grid(axis="y", color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)


def data_uri(fig: Figure) -> str:
    """PNG bytes of `fig` as a `data:` URI for an <img src>."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="white")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _color(name: str, i: int, palette: dict[str, str]) -> str:
    return palette.get(name, EXTRA_COLORS[i % len(EXTRA_COLORS)])


def per_class_accuracy(classes: Sequence[str], series: dict[str, Sequence[float | None]],
                       highlight: Sequence[int] = ()) -> str:
    """Grouped bars of test accuracy per class for each model; forgotten classes shaded."""
    n, k = len(classes), len(series)
    fig = _figure(min(16.0, max(9.0, 0.3 * n * k + 1.5)), 3.0)
    ax = fig.add_subplot()
    width = 0.8 / max(1, k)
    x = np.arange(n)
    for c in highlight:
        ax.axvspan(c - 0.45, c + 0.45, color="#fee2e2", zorder=0)
    for i, (name, values) in enumerate(series.items()):
        v = np.array([np.nan if a is None else a for a in values], dtype=float)
        ax.bar(x - 0.4 + width * (i + 0.5), v, width, label=name, color=_color(name, i, MODEL_COLORS))
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylim(0, 105)
    ax.set_ylabel("test accuracy (%)", color=INK, fontsize=9)
    if n <= 40:
        ax.set_xticks(x, [str(c) for c in classes], rotation=45 if max(map(len, classes)) > 3 else 0,
                      ha="right" if max(map(len, classes)) > 3 else "center")
    else:
        ax.set_xlabel("class index", color=INK, fontsize=9)
    ax.legend(frameon=False, fontsize=8, ncols=k, loc="lower left", bbox_to_anchor=(0, 1.0))
    _style(ax)
    return data_uri(fig)


def confidence_histograms(panels: dict[str, dict[str, np.ndarray]]) -> str:
    """For each model, histograms of the softmax confidence in the true label, one per part of the data.

    A membership attack sees exactly this: a part whose histogram sits on the retain set's looks like
    training data, one that sits on the test set's looks unseen. The axis is logit-scaled (as in LiRA):
    a trained model puts most samples above 0.9, where 0.99 and 0.9999 are worlds apart. The panels share
    their y scale, so that "before", "after" and "retrained" compare at a glance (a panel with its own scale
    makes a flat histogram look as tall as a spike), and one legend sits above them, covering no data.
    """
    lo, hi = 1e-4, 1 - 1e-6
    fig = _figure(3.9 * len(panels) + 0.4, 3.4)
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    bins = 1 / (1 + np.exp(-np.linspace(np.log(lo / (1 - lo)), np.log(hi / (1 - hi)), 36)))
    bins[0], bins[-1] = lo, hi  # exactly: clipped values must land in the end bins, not just outside
    legend: dict[str, object] = {}
    for ax, (model, parts) in zip(axes, panels.items(), strict=True):
        for i, (part, conf) in enumerate(parts.items()):
            if len(conf) == 0:
                continue
            c = np.clip(np.asarray(conf, dtype=np.float64), lo, hi)  # float64: float32 would round below lo
            w = np.full(len(c), 100.0 / len(c))
            color = _color(part, i, PART_COLORS)
            ax.hist(c, bins=bins, weights=w, histtype="stepfilled", alpha=0.15, color=color)
            _, _, line = ax.hist(c, bins=bins, weights=w, histtype="step", linewidth=1.6, color=color)
            legend.setdefault(f"{part} (n={len(c)})", line[0])
        ax.set_xscale("logit")
        ax.set_xlim(lo, hi)
        ax.set_xticks(LOGIT_TICKS, [f"{t:g}" for t in LOGIT_TICKS])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(model, color=INK, fontsize=10)
        ax.set_xlabel("confidence in the true label", color=INK, fontsize=9)
        _style(ax)
        ax.tick_params(axis="x", labelsize=7)
    axes[0].set_ylabel("share of samples (%)", color=INK, fontsize=9)
    if legend:
        fig.legend(list(legend.values()), list(legend), loc="outside upper center", ncols=len(legend),
                   frameon=False, fontsize=8)
    return data_uri(fig)


def curves(named: dict[str, Sequence[float]]) -> str:
    """Small multiples, one panel per curve (loss per epoch, per-round figures of a method)."""
    cols = min(3, len(named))
    rows = math.ceil(len(named) / cols)
    fig = _figure(3.7 * cols + 0.3, 2.5 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).flatten()
    for i, (ax, (name, values)) in enumerate(zip(axes, named.items(), strict=False)):
        x = np.arange(1, len(values) + 1)
        ax.plot(x, values, color=EXTRA_COLORS[i % len(EXTRA_COLORS)] if i else MODEL_COLORS["after"],
                linewidth=1.8, marker="o" if len(values) <= 30 else None, markersize=3)
        ax.set_title(name, color=INK, fontsize=9)
        ax.set_xlabel("step" if len(values) > 200 else "epoch / round", color=INK, fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        _style(ax)
    for ax in axes[len(named):]:
        ax.set_visible(False)
    return data_uri(fig)


def confusion_matrices(mats: dict[str, Sequence[Sequence[int]]], classes: Sequence[str]) -> str:
    """Row-normalised confusion matrices (true class down, predicted across), counts written when small."""
    n = len(classes)
    side = 3.6 if n <= 12 else 4.6
    fig = _figure(side * len(mats) + 0.8, side)
    axes = fig.subplots(1, len(mats), squeeze=False)[0]
    im = None
    for ax, (name, m) in zip(axes, mats.items(), strict=True):
        counts = np.asarray(m, dtype=float)
        rate = counts / np.maximum(counts.sum(1, keepdims=True), 1)
        im = ax.imshow(rate, cmap="Blues", vmin=0, vmax=1)
        if n <= 12:
            for (r, c), v in np.ndenumerate(counts):
                if v:
                    ax.text(c, r, f"{int(v)}", ha="center", va="center", fontsize=6.5,
                            color="white" if rate[r, c] > 0.55 else INK)
            labels = [str(c) for c in classes]  # whole names: "Ankle bo" is not a class
            ax.set_xticks(range(n), labels, rotation=90 if max(map(len, labels)) > 2 else 0, fontsize=7)
            ax.set_yticks(range(n), labels, fontsize=7)
        ax.set_title(name, color=INK, fontsize=10)
        ax.set_xlabel("predicted", color=INK, fontsize=8)
        ax.set_ylabel("true", color=INK, fontsize=8)
    if im is not None:
        fig.colorbar(im, ax=list(axes), shrink=0.8, label="share of the true class")
    return data_uri(fig)


def grouped_bars(groups: dict[str, dict[str, float]], ylabel: str, ymax: float | None = 105.0) -> str:
    """Bars per group (e.g. per metric), one colour per series (e.g. per model or run), values written on top."""
    names = list(dict.fromkeys(s for g in groups.values() for s in g))
    fig = _figure(max(4.5, 1.1 * len(groups) * max(1, len(names)) * 0.55 + 1.5), 3.0)
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        xs = [j - 0.4 + width * (i + 0.5) for j, g in enumerate(groups.values()) if name in g]
        vs = [g[name] for g in groups.values() if name in g]
        bars = ax.bar(xs, vs, width, label=name, color=_color(name, i, MODEL_COLORS))
        ax.bar_label(bars, fmt="%.1f", fontsize=7, color=INK, padding=1)
    ax.set_xticks(range(len(groups)), list(groups), fontsize=8)
    if ymax is not None:
        ax.set_ylim(0, ymax)
    ax.set_ylabel(ylabel, color=INK, fontsize=9)
    ax.legend(frameon=False, fontsize=8, ncols=min(len(names), 4), loc="lower left", bbox_to_anchor=(0, 1.0))
    _style(ax)
    return data_uri(fig)


def image_uri(img: np.ndarray, size: int = 96) -> str:
    """One uint8 image (C, H, W) as a PNG data URI, enlarged to about `size` pixels (pixelated when tiny)."""
    arr = img.transpose(1, 2, 0)
    pil = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr[:, :, :3])
    h, w = arr.shape[:2]
    scale = max(1, round(size / max(h, w)))
    if scale > 1:
        pil = pil.resize((w * scale, h * scale), Image.NEAREST if max(h, w) <= 32 else Image.BILINEAR)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
