"""`unlearnkit report RUN... --out FILE.html`: one self-contained page that shows what happened.

For each run: a one-sentence verdict, the key numbers before / after / retrained, per-class accuracy, the
membership-inference picture, training curves, confusion matrices, backdoor figures, sample images with
their top-3 predictions, the full configuration and the run's log. Several runs also get a comparison
table and chart. Plots are PNGs embedded as data URIs and the style sheet is inline: the file can be
mailed or archived alone, and it loads nothing from the network (it contains no script at all).

Figures that need predictions (membership, samples, triggered images) are recomputed from the run
directories: the run's own model, its parent ("before") and its retrained reference, on the data rebuilt
from meta.json. When the data cannot be rebuilt, the page says so and shows what metrics.json holds.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

from ..engine import distributed
from ..engine.atomic import write_atomic
from ..engine.progress import say
from ..engine.rundir import LOG_FILE, Run, load_run
from ..errors import UserError
from ..metrics import registry as metric_registry
from ..metrics.verdict import ratio
from ..runmeta import RunMeta
from . import plots
from .figures import (
    Evidence,
    backdoor,
    confusions,
    curves_section,
    diagnostics,
    membership,
    per_class,
    samples,
    triggered,
)
from .format import e, forget_what, gap_class, img, method_name, num, secs
from .style import CSS


def _table_metrics() -> list[tuple[str, str, str]]:
    """(key, label, hint) of every table metric, in order, read from the metric registry at call time."""
    return [(m.key, m.label, m.hint) for m in metric_registry.ordered() if m.table]


def _card_keys() -> tuple[str, ...]:
    return tuple(m.key for m in metric_registry.ordered() if m.card)



# --------------------------------------------------------------------------- entry point

def report(runs: list[str | Path] | str | Path, out: str | Path, *, data_root: str | Path | None = None,
           overwrite: bool = False) -> Path:
    """Write one self-contained HTML page about `runs` to `out`; return its path."""
    paths = [Path(r) for r in ([runs] if isinstance(runs, (str, Path)) else runs)]
    if not paths:
        raise UserError("no run given: pass one or more run directories")
    out = Path(out).expanduser()
    if out.is_dir():
        raise UserError(f"--out {out} is a directory: give a file name such as report.html")
    if out.exists() and not overwrite:
        raise UserError(f"output {out} already exists: choose another --out or pass --overwrite")
    loaded = [load_run(p) for p in paths]
    labels = _labels(paths)
    sections = []
    for i, (label, run) in enumerate(zip(labels, loaded, strict=True)):
        say(f"report: {label} ...")
        sections.append(_run_section(i, label, run, data_root))
    page = _page(labels, loaded, sections)
    if not distributed.is_main():  # under torchrun every rank helped predict; rank 0 writes
        distributed.barrier()
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, page)
    distributed.barrier()
    return out


def _labels(paths: list[Path]) -> list[str]:
    """Short unique names: each run's path relative to the runs' common folder."""
    full = [p.resolve() for p in paths]
    if len(full) == 1:
        return [full[0].name]
    common = Path(os.path.commonpath(full))
    return [str(p.relative_to(common)) if p != common else p.name for p in full]


# --------------------------------------------------------------------------- the page

def _page(labels: list[str], runs: list[Run], sections: list[str]) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    nav = "".join(f'<a href="#run-{i}">{e(label)} <small>{e(method_name(r.meta))}</small></a>'
                  for i, (label, r) in enumerate(zip(labels, runs, strict=True)))
    compare = _comparison(labels, runs) if len(runs) > 1 else ""
    if compare:
        nav = '<a href="#compare">comparison</a>' + nav
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>unlearnkit report: {e(", ".join(labels))}</title>
<style>{CSS}</style></head>
<body><header><div class="wrap"><h1>unlearnkit report</h1>
<p>{len(runs)} run{"s" if len(runs) > 1 else ""} · generated {when}</p><nav>{nav}</nav></div></header>
<main class="wrap">{compare}{"".join(sections)}</main>
<footer class="wrap">Accuracies in percent. “Retrained” is the model trained from scratch without the forget
set: the gold standard a good unlearning method is indistinguishable from. Gap = |after − retrained|.</footer>
</body></html>
"""


def _task(meta: dict) -> str:
    """What a run was asked to do, as a heading: runs compare (and rank) only against runs with the same task."""
    meta = RunMeta.of(meta)
    data = meta.data.spec
    if not meta.is_forget:
        return f"trained models on {data}"
    return f"{meta.scenario or 'forget'} on {data}: forget {forget_what(meta)}"


def _comparison(labels: list[str], runs: list[Run]) -> str:
    """One table per task (dataset, scenario, forget request); "best" only among runs of the same task.

    Why grouped: an average gap says how close a run came to *its* retrained model; a no-op run on an easy
    task can have a smaller gap than a good run on a hard one, so ranking across tasks crowns the wrong run.
    Each table keeps only its task's columns, so that all of them fit a 1400-px window without scrolling.
    """
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(runs):
        groups.setdefault(_task(r.meta), []).append(i)
    blocks = [_comparison_group(task, [(i, labels[i], runs[i]) for i in idx]) for task, idx in groups.items()]
    several = any(len(idx) > 1 for idx in groups.values())
    lede = ("Runs grouped by task (dataset, scenario, forget request); within a group the average gap to the "
            "retrained reference (lower is better) decides which forgot most like retraining." if several else
            "Each run did a different task (dataset, scenario or forget request), so none is ranked against "
            "another.")
    return f"""<section id="compare" class="card"><h2>Comparison</h2>
<p class="lede">{lede}</p>{"".join(blocks)}</section>"""


def _comparison_group(task: str, members: list[tuple[int, str, Run]]) -> str:
    keys = [(k, metric_registry.short(k)) for k, _, _ in _table_metrics()
            if any(k in r.metrics for _, _, r in members)]
    head = "".join(f"<th>{e(label)}</th>" for _, label in keys)
    gaps = [r.metrics.get("gap", {}).get("avg") for _, _, r in members]
    ranked = [g for g in gaps if isinstance(g, (int, float))]
    best = min(ranked) if len(ranked) > 1 else None
    rows = []
    for (i, label, r), g in zip(members, gaps, strict=True):
        m = r.metrics
        v = m.get("verdict") if isinstance(m.get("verdict"), dict) else {}
        status = str(v.get("status", "–"))
        cells = "".join(f"<td>{num(m.get(k), 0 if k == 'seconds' else 2)}</td>" for k, _ in keys)
        star = ' <span class="best">best</span>' if best is not None and g == best else ""
        sp = m.get("speedup")
        rows.append(f'<tr><th><a href="#run-{i}">{e(label)}</a></th><td>{e(method_name(r.meta))}</td>'
                    f'<td class="vcell v-{e(status.replace(" ", "-"))}">{e(status)}</td>{cells}'
                    f'<td class="{gap_class(g)}">{num(g)}{star}</td>'
                    f'<td class="{_speed_class(sp)}">{_times(sp)}</td></tr>')
    chart = ""
    if len(members) > 1:
        chart_keys = [k for k in _card_keys() if any(k in r.metrics for _, _, r in members)]  # all in percent
        bars = {metric_registry.short(k): {label: r.metrics[k] for _, label, r in members if k in r.metrics}
                for k in chart_keys}
        chart = img(plots.grouped_bars(bars, "percent"), f"comparison chart: {task}") if bars else ""
    return f"""<div class="group"><h3>{e(task)}</h3>
<table class="metrics compare"><thead><tr><th>run</th><th>method</th><th>verdict</th>{head}
<th>avg gap</th><th>speed-up</th></tr></thead><tbody>{"".join(rows)}</tbody></table>{chart}</div>"""


def _times(v) -> str:
    """A speed ratio (`metrics.verdict.ratio`: never "1.0" for a run just slower), or num's dash when missing."""
    return ratio(v) if isinstance(v, (int, float)) else num(v, 1)


def _speed_class(sp) -> str:
    """Green from 10x faster than retraining, red when slower than retraining."""
    if not isinstance(sp, (int, float)):
        return ""
    return "good" if sp >= 10 else "warn" if sp >= 1 else "bad"


def _run_section(index: int, label: str, run: Run, data_root: str | Path | None) -> str:
    m, meta = run.metrics, run.meta
    related = _related(run)
    badges = [meta.kind, method_name(meta) if meta.is_forget else "", meta.scenario or "", meta.data.spec,
              meta.arch_name]
    parts = [f'<section class="run card" id="run-{index}"><h2>{e(label)} '
             + "".join(f'<span class="badge">{e(b)}</span>' for b in badges if b) + "</h2>",
             _verdict_box(index, m), f'<p class="lede">{_verdict(meta, m)}</p>', _cards(m)]
    if not m:
        parts.append('<p class="note">This run has no metrics.json: run <code>unlearnkit evaluate</code>.</p>')
    try:
        ev = Evidence(run, related, data_root)
    except UserError as err:
        ev = None
        parts.append(f'<p class="note">Predictions could not be recomputed ({e(str(err))}); the figures below '
                     f"come from metrics.json alone.</p>")
    table = _metrics_table(m, meta)
    parts += [f'<div class="panel wide"><h3>Numbers</h3>{table}</div>' if table else "",
              per_class(meta, m),
              backdoor(m),
              membership(ev) if ev is not None else "",
              curves_section(run),
              confusions(meta, m, related)]
    if ev is not None:
        parts += [samples(ev), triggered(ev)]
    parts += [diagnostics(meta, m), _config(run), "</section>"]
    return "\n".join(p for p in parts if p)


def _related(run: Run) -> dict[str, Run]:
    """The run's parent ("before") and retrained reference, when their directories still exist."""
    out: dict[str, Run] = {}
    meta = run.meta
    ref = meta.reference
    candidates = {"before": meta.parent, "retrained": run.path / "reference" if ref == "reference" else ref}
    for name, p in candidates.items():
        if p and Path(p).is_dir():
            try:
                out[name] = load_run(p)
            except UserError:
                pass
    return out


# --------------------------------------------------------------------------- headline

def _verdict_box(index: int, m: dict) -> str:
    """The verdict first, coloured by its status, with its reasons and warnings (metrics.json's `verdict`)."""
    v = m.get("verdict")
    if not isinstance(v, dict) or "status" not in v:
        return ""
    status = str(v["status"])
    reasons = "".join(f"<li>{e(str(r))}</li>" for r in v.get("reasons") or [])
    warnings = "".join(f'<li class="warn">warning: {e(str(w))}</li>' for w in v.get("warnings") or [])
    basis = "a retrained model" if v.get("basis") == "reference" else "absolute thresholds"
    return (f'<div class="verdict v-{e(status.replace(" ", "-"))}" id="verdict-{index}"><strong>Verdict: '
            f"{e(status.upper())}</strong> (judged against {basis})<ul>{reasons}{warnings}</ul></div>")


def _verdict(meta: dict, m: dict) -> str:
    """One sentence saying what happened, from the numbers."""
    meta = RunMeta.of(meta)
    if not meta.is_forget:
        epochs = meta.recipe.get("epochs")
        s = (f"Trained <b>{e(meta.arch_name)}</b> on <b>{e(meta.data.spec)}</b> for {epochs} epochs in "
             f"{num(m.get('seconds'), 1)} s: test accuracy <b>{num(m.get('test_acc'))}%</b>.")
        if "asr" in m:
            s += (f" Planted backdoor: attack success rate <b>{num(m['asr'])}%</b>, clean accuracy "
                  f"{num(m.get('clean_acc'))}%.")
        return s
    o, r = m.get("original", {}), m.get("reference", {})
    method = e(method_name(meta))

    def move(key: str, what: str) -> str:
        if key not in m:
            return ""
        s = f"{what} {num(o.get(key))}% → <b>{num(m[key])}%</b>"
        return s + (f" (retrained: {num(r[key])}%)" if key in r else "")

    if meta.scenario == "backdoor":
        body = [move("asr", "attack success rate"), move("clean_acc", "clean accuracy")]
    elif meta.scenario == "class":
        body = [move("forget_test_acc", "test accuracy on the forgotten class"), move("test_acc",
                                                                                     "on the other classes")]
    else:
        body = [move("forget_acc", "forget-set accuracy"), move("mia_efficacy", "MIA efficacy"),
                move("test_acc", "test accuracy")]
    s = f"<b>{method}</b>, asked to forget {e(forget_what(meta))}: " + "; ".join(b for b in body if b) + "."
    extras = []
    if "avg" in m.get("gap", {}):
        extras.append(f"average gap to retraining <b>{num(m['gap']['avg'])}</b>")
    if "speedup" in m:
        sp = m["speedup"]
        extras.append(f"<b>{_times(sp)}×</b> faster than retraining" if sp >= 1 else
                      f"<b>slower than retraining</b> ({_times(1 / sp)}× its time)" if sp > 0 else "")
    elif "speedup_over_training" in m:
        st = m["speedup_over_training"]
        extras.append(f"<b>{_times(st)}×</b> faster than training the original" if st >= 1 else
                      f"<b>slower than training the original</b> ({_times(1 / st)}× its time)" if st > 0 else "")
    if extras:
        tail = ", ".join(extras)
        s += " " + tail[0].upper() + tail[1:] + "."
    return s


def _card_class(k: str, m: dict) -> str:
    """A card's colour: its gap to the retrained model where there is one; else, for a backdoor, the ASR and
    the clean-accuracy drop against absolute bars (ASR <= 5% good, > 20% bad; a drop <= 2 points good, > 10
    bad, the verdict's "damaged" line), so that a card at 89% ASR is never neutral grey."""
    g, o = m.get("gap", {}), m.get("original", {})
    if k in g:
        return gap_class(g[k])
    v = m.get(k)
    if not isinstance(v, (int, float)):
        return ""
    if k == "asr":
        return "good" if v <= 5 else "warn" if v <= 20 else "bad"
    if k == "clean_acc" and isinstance(o.get(k), (int, float)):
        drop = o[k] - v
        return "good" if drop <= 2 else "warn" if drop <= 10 else "bad"
    return ""


def _cards(m: dict) -> str:
    o, r, g = m.get("original", {}), m.get("reference", {}), m.get("gap", {})
    labels = {k: label for k, label, _ in _table_metrics()}
    cards = []
    first = ("asr", "clean_acc") if "asr" in m else ()  # a backdoor run: its two numbers lead
    for k in first + tuple(k for k in _card_keys() if k not in first):
        if k not in m:
            continue
        sub = " · ".join(x for x in (f"before {num(o[k])}" if k in o else "",
                                      f"retrained {num(r[k])}" if k in r else "") if x)
        cards.append(f'<div class="stat {_card_class(k, m)}"><div class="k">{e(labels[k])}</div>'
                     f'<div class="v">{num(m[k], 1)}<small>%</small></div><div class="s">{sub}</div></div>')
    if "avg" in g:
        cards.append(f'<div class="stat {gap_class(g["avg"])}"><div class="k">average gap</div>'
                     f'<div class="v">{num(g["avg"])}</div><div class="s">UA, RA, TA, MIA vs retrained</div></div>')
    if "speedup" in m:
        sp = m["speedup"]
        what = "speed-up" if not isinstance(sp, (int, float)) or sp >= 1 else "slower than retraining"
        cards.append(f'<div class="stat {_speed_class(sp)}"><div class="k">{what}</div><div class="v">'
                     f'{_times(sp)}<small>×</small></div><div class="s">{secs(m.get("seconds"))} vs '
                     f'{secs(r.get("seconds"))} retraining</div></div>')
    elif "speedup_over_training" in m:
        st = m["speedup_over_training"]
        what = "speed-up over training" if st >= 1 else "slower than training"
        cards.append(f'<div class="stat {_speed_class(st)}"><div class="k">{what}</div><div class="v">'
                     f'{_times(st)}<small>×</small></div><div class="s">{secs(m.get("seconds"))} vs '
                     f'{secs(m["seconds"] * st if m.get("seconds") else None)} training the original</div></div>')
    return f'<div class="stats">{"".join(cards)}</div>' if cards else ""


def _interval(d: dict, k: str) -> str:
    """A metric's 95% interval where metrics.json has one (`<key>_ci`), e.g. the loss-MIA AUC's bootstrap."""
    ci = d.get(f"{k}_ci")
    if not (isinstance(ci, list) and len(ci) == 2 and all(isinstance(x, (int, float)) for x in ci)):
        return ""
    return f'<small class="ci">[{ci[0]:.1f}, {ci[1]:.1f}]</small>'


def _metrics_table(m: dict, meta: dict) -> str:
    o, r, g = m.get("original", {}), m.get("reference", {}), m.get("gap", {})
    cols = [("before", o), ("after" if RunMeta.of(meta).is_forget else "this model", m), ("retrained", r)]
    cols = [(n, d) for n, d in cols if d]
    rows = []
    for k, label, hint in _table_metrics():
        if not any(k in d for _, d in cols):
            continue
        cells = "".join(f"<td>{num(d.get(k), 3 if k in ('js_div', 'der') else 2)}{_interval(d, k)}</td>"
                        for _, d in cols)
        gap = f'<td class="{gap_class(g.get(k))}">{num(g.get(k))}</td>' if g else ""
        rows.append(f'<tr><th>{e(label)}<small>{e(hint)}</small></th>{cells}{gap}</tr>')
    if not rows:
        return ""
    head = "".join(f"<th>{e(n)}</th>" for n, _ in cols) + ("<th>gap</th>" if g else "")
    return f'<table class="metrics"><thead><tr><th></th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


# --------------------------------------------------------------------------- configuration and log

def _config(run: Run) -> str:
    meta = json.dumps(run.meta, indent=2, default=str)
    out = (f'<details class="panel wide"><summary>Full configuration (meta.json)</summary>'
           f"<pre>{e(meta)}</pre></details>")
    log = run.path / LOG_FILE
    if log.is_file():
        out += (f'<details class="panel wide"><summary>Log (log.txt)</summary>'
                f"<pre>{e(log.read_text(errors='replace'))}</pre></details>")
    return out
