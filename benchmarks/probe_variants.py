"""One backdoored run, one defence, several settings compared on held-out probe images (never the test split).

    python benchmarks/probe_variants.py RUN --method ngf --clean-size 2500 --out DIR \\
        --variant "default:" --variant "paper: preset=paper"

Why a sibling of `defence_variants.py`: that one reports each setting's test-split metrics, which may describe a
default but never choose one. This one runs each variant through the same guarded code path
(`forgetting.execute_method`, what `unlearnkit forget RUN --backdoor` runs) and scores it on the held-out split's
images outside the clean set (`unlearnkit.bench.probe`): clean accuracy and attack success rate there, the drop
in probe clean accuracy, whether the guard stepped in, and the method's seconds. Writes DIR/table.md.
"""

from __future__ import annotations

from pathlib import Path

import torch

from defence_variants import arguments, guard_note, parse_variant
from unlearnkit.bench.probe import build_probe
from unlearnkit.bench.runner import machine_description
from unlearnkit.engine.device import get_device
from unlearnkit.engine.rundir import load_run
from unlearnkit.forgetting import clean_part, execute_method, parse_request
from unlearnkit.rundata import load_run_data


def main() -> None:
    a = arguments(__doc__.splitlines()[0]).parse_args()
    variants = [parse_variant(v) for v in a.variant]
    torch.manual_seed(a.seed)
    src = load_run(a.run)
    bundle = load_run_data(src.meta)
    req = parse_request(src.meta, bundle, backdoor=True, seed=a.seed)
    clean = clean_part(bundle, req.split, a.clean_size, a.seed)
    probe = build_probe(bundle, req.split, clean, src.meta["poison"])
    device = get_device()
    model = src.build_model(device).eval()
    before = probe.scores(model, device)
    lines = [f"`{a.method}` on {a.run}, {a.clean_size} clean images, seed {a.seed}; probe: {len(probe.y)} held-out "
             f"images outside the clean set ({len(probe.y_bd)} triggered), test split not read; "
             f"machine: {machine_description()}", "",
             f"before: probe clean acc. {before['clean_acc']:.2f}, probe ASR {before['asr']:.2f}", "",
             "| variant | settings | probe clean acc. | probe ASR | drop | guard | seconds |", "|" + "---|" * 7]
    print("\n".join(lines), flush=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for label, settings in variants:
        r = execute_method(a.method, settings, model, src.meta, bundle, req, a.seed, a.clean_size)
        s, acted = probe.scores(r.model, device), guard_note(r.figures.get("guard") or {})
        lines.append(f"| {label} | {' '.join(settings) or '(defaults)'} | {s['clean_acc']:.2f} | {s['asr']:.2f} | "
                     f"{before['clean_acc'] - s['clean_acc']:.2f} | {acted} | {r.seconds:.1f} |")
        print(lines[-1], flush=True)
        (out / "table.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
