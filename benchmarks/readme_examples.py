"""Run every example of README.md as printed, in order, in an empty folder, time each command, and check what the
README says each example does.

    python benchmarks/readme_examples.py                 # full scale: Fashion-MNIST, minutes per example
    python benchmarks/readme_examples.py --small         # CI scale: a tiny generated Fashion-MNIST
    python benchmarks/readme_examples.py --work W --continue --only "Remove a backdoor"   # add one to W's runs

The examples are the fenced `bash` and `python` blocks under README's "Set-up" and "Worked examples" headings,
read from the file each time (an example edited in the README is the example run here). Each bash line runs with
`bash -c` in the work folder (the set-up's `pip install` is skipped: the script runs from the installed package);
a python block runs as one `python -c`. Files the README calls "a picture of yours"
(`shirt.png`) are made here from the test split: everything else, each example makes for itself or for the next.

`--small` changes six things, all printed: `UNLEARNKIT_DATA` points at a generated Fashion-MNIST of 1,500 + 200
28x28 images (ten classes, each a bright square at its own place on noise), `resnet18` becomes `cnn-small`,
`--clean-size 2500` becomes 100 (the tiny held-out split has 150 images), the deletion request lists every fifth
of the 1,500 indices instead of every fiftieth of 60,000, `hyperforget train` gets a small budget, and the Python
example trains 8 epochs instead of 30 (the demo already runs the 30-epoch digits recipe). The checks are the
README's statements; those about how well a model forgets (`full=True`) are checked at full scale
only, where the data and models are the README's. Exit code 1 when a command fails or a check does not hold.

`--continue` runs in a folder an earlier run left: a command whose `--out` folder already holds a finished run
(its meta.json) is not run again (its row says "kept"), so that one step of an example can be measured again by
removing only its output.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("Set-up", "Worked examples")
SMALL_REWRITES = [
    (r"--arch resnet18\b", "--arch cnn-small"),
    (r"--clean-size 2500\b", "--clean-size 100"),
    (r"epochs=30, batch_size=64", "epochs=8, batch_size=64"),
    (r"range\(0, 60000, 50\)", "range(0, 1500, 5)"),
    (r"(unlearnkit hyperforget train \S+ --out \S+)",
     r"\1 --set runs_per_class=2 head_epochs=2 checkpoints_per_run=4 width=64 depth=2 steps=150 save_every=50 "
     r"sample_steps=10 val_samples=1 rank=8"),
]


@dataclass
class Example:
    title: str
    blocks: list[tuple[str, str]] = field(default_factory=list)  # (language, code)


def read_examples(readme: Path) -> list[Example]:
    """The README's examples: one per heading under SECTIONS that holds bash or python blocks."""
    out: list[Example] = []
    section = title = None
    lines = readme.read_text().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section = title = line[3:].strip()
        elif line.startswith("### "):
            title = line[4:].strip()
        elif line.startswith("```") and line[3:].strip() in ("bash", "python") and section in SECTIONS:
            lang, j = line[3:].strip(), i + 1
            while not lines[j].startswith("```"):
                j += 1
            if not out or out[-1].title != title:
                out.append(Example(str(title)))
            out[-1].blocks.append((lang, "\n".join(lines[i + 1:j])))
            i = j
        i += 1
    return out


# --------------------------------------------------------------------------- tiny Fashion-MNIST (--small)

def _idx(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def tiny_fashion_mnist(root: Path, per_class: int = 150, test_per_class: int = 20, seed: int = 0) -> Path:
    """Fashion-MNIST's files in its format, but each class a bright 7x7 square at its own place on a noisy
    background: a small CNN learns it in a few dozen steps, so every example has a model worth unlearning."""
    rng = np.random.default_rng(seed)
    folder = root / "fashion-mnist"
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", per_class), ("t10k", test_per_class)):
        y = np.repeat(np.arange(10), n)
        rng.shuffle(y)
        x = rng.uniform(0, 90, size=(len(y), 28, 28))
        for i, c in enumerate(y):
            r, col = 2 + 7 * (c // 4), 1 + 7 * (c % 4)  # ten places on a 3 x 4 grid
            x[i, r:r + 7, col:col + 7] += 160
        _idx(folder / f"{prefix}-images-idx3-ubyte.gz", np.clip(x, 0, 255))
        _idx(folder / f"{prefix}-labels-idx1-ubyte.gz", y)
    return root


def user_files(work: Path, data_root: Path | None) -> None:
    """What the README calls the user's own: `shirt.png`, a T-shirt/top from Fashion-MNIST's test split."""
    from PIL import Image

    from unlearnkit.data.datasets import load_dataset

    bundle = load_dataset("fashion-mnist", root=data_root)
    first = int((bundle.y_test == 0).nonzero()[0])
    Image.fromarray(bundle.x_test[first, 0].numpy()).save(work / "shirt.png")


# --------------------------------------------------------------------------- checks

def metrics(work: Path, run: str) -> dict:
    return json.loads((work / run / "metrics.json").read_text())


@dataclass
class Check:
    example: str
    says: str
    holds: Callable[[Path, dict[str, str]], bool]  # (work folder, {command: what it printed})
    full: bool = False  # a statement about forgetting quality: checked at full scale only


def of(printed: dict[str, str], prefix: str) -> str:
    """What the example's first command starting with `prefix` printed."""
    return next(out for cmd, out in printed.items() if cmd.startswith(prefix))


def top_class(predict_output: str) -> str:
    """The first class `unlearnkit predict` ranks for the first image ('shirt.png: Bag 0.912, ...' -> 'Bag')."""
    line = next(ln for ln in predict_output.splitlines() if ": " in ln)
    return line.split(": ", 1)[1].split(",")[0].rsplit(" ", 1)[0]


def _status(work: Path, run: str) -> str:
    return metrics(work, run)["verdict"]["status"]


CHECKS = [
    Check("Set-up", "the demo prints a before / after / retrain table",
          lambda w, out: "speed-up over retraining" in of(out, "unlearnkit demo")
          and (w / "unlearnkit-demo" / "forget").is_dir()),
    Check("Set-up", "the demo forgets digit 3", lambda w, out: _status(w, "unlearnkit-demo/forget") == "forgotten"),
    Check("Forget a class", "forget prints a verdict", lambda w, out: "verdict: " in of(out, "unlearnkit forget")),
    Check("Forget a class", "the retrained model is written to runs/fmnist-forget0/reference/",
          lambda w, out: (w / "runs/fmnist-forget0/reference/model.safetensors").is_file()),
    Check("Forget a class", "evaluate recomputes the metrics",
          lambda w, out: "forgotten-class test acc" in of(out, "unlearnkit evaluate")),
    Check("Forget a class", "the class's test accuracy goes to about 0, as the retrained model's",
          lambda w, out: metrics(w, "runs/fmnist-forget0")["forget_test_acc"] <= 1.0, full=True),
    Check("Forget a class", "predict no longer answers T-shirt/top",
          lambda w, out: "T-shirt/top" != top_class(of(out, "unlearnkit predict")), full=True),
    Check("Honour a deletion request (samples)", "both runs measure membership inference against a retrained model",
          lambda w, out: all("mia_efficacy" in metrics(w, r) and "mia_efficacy" in metrics(w, r)["reference"]
                             for r in ("runs/del", "runs/del-scrub"))),
    Check("Honour a deletion request (samples)", "held-out indices are reported",
          lambda w, out: "requested indices are in the held-out split" in of(out, "unlearnkit forget")),
    Check("Honour a deletion request (samples)", "the second command reuses the first one's retrained model",
          lambda w, out: metrics(w, "runs/del-scrub")["reference"]["seconds"] ==
          metrics(w, "runs/del")["reference"]["seconds"]),
    Check("Honour a deletion request (samples)", "finetune spends a quarter of the original's epochs (here one)",
          lambda w, out: metrics(w, "runs/del")["finetune"]["epochs"] == 1),
    Check("Honour a deletion request (samples)", "one epoch keeps scrub cheaper than retraining",
          lambda w, out: metrics(w, "runs/del-scrub")["speedup"] > 1, full=True),
    Check("Remove a backdoor", "forget prints clean accuracy, ASR, robust accuracy and DER before and after",
          lambda w, out: all(k in metrics(w, "runs/bd-anp") and k in metrics(w, "runs/bd-anp")["original"]
                             for k in ("clean_acc", "asr", "robust_acc")) and "der" in metrics(w, "runs/bd-anp")),
    Check("Remove a backdoor", "the defence watched clean accuracy on a held-out tenth of its clean set",
          lambda w, out: "guard" in metrics(w, "runs/bd-anp")["anp"]),
    Check("Remove a backdoor", "the defence's default budget is capped below ANP's 2,000 iterations",
          lambda w, out: metrics(w, "runs/bd-anp")["anp"]["iterations"] < 2000),
    Check("Remove a backdoor", "on Fashion-MNIST anp removes the backdoor (verdict FORGOTTEN)",
          lambda w, out: _status(w, "runs/bd-anp") == "forgotten", full=True),
    Check("Remove a backdoor", "the capped defence is faster than training the model",
          lambda w, out: metrics(w, "runs/bd-anp")["speedup_over_training"] > 1, full=True),
    Check("Pay once, then sample unlearned models (HyperForget)", "ten samples, ordinary run directories",
          lambda w, out: all((w / f"runs/hf-tshirt/sample-{i}/model.safetensors").is_file() for i in range(10))),
    Check("Pay once, then sample unlearned models (HyperForget)", "samples measured against the retrained model",
          lambda w, out: "reference" in metrics(w, "runs/hf-tshirt/sample-0")),
    Check("Pay once, then sample unlearned models (HyperForget)", "report puts the runs in one HTML page",
          lambda w, out: (w / "compare.html").stat().st_size > 10_000),
    Check("Python API", "evaluate returns the metrics with a verdict",
          lambda w, out: re.search(r"^(forgotten|not forgotten|inconclusive|unchanged|damaged) [\d.]+$",
                                   of(out, "python"), re.M)
          is not None),
    Check("Python API", "the model forgets digit 3", lambda w, out: _status(w, "runs/digits-forget3") == "forgotten",
          full=True),
    Check("Python API", 'predict no longer says "3"',
          lambda w, out: re.search(r"^[0-24-9]$", of(out, "python"), re.M) is not None, full=True),
]


# --------------------------------------------------------------------------- running

def commands(example: Example, small: bool) -> list[tuple[str, str]]:
    """(language, command) in order: each bash line, each python block; `--small` rewrites applied."""
    out = []
    for lang, code in example.blocks:
        if lang == "python":
            out.append(("python", code))
            continue
        for line in code.splitlines():
            if line.startswith("pip install"):
                continue  # the set-up's install: this script runs from the installed package
            if line.strip() and not line.lstrip().startswith("#"):
                for pattern, repl in SMALL_REWRITES if small else []:
                    line = re.sub(pattern, repl, line)
                out.append(("bash", line))
    return out


def run_command(lang: str, cmd: str, work: Path, env: dict[str, str]) -> tuple[int, str, float]:
    argv = [sys.executable, "-c", cmd] if lang == "python" else ["bash", "-c", cmd]
    t0 = time.perf_counter()
    p = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr, time.perf_counter() - t0


def kept_output(cmd: str, work: Path) -> str | None:
    """The `--out` folder of `cmd` when it already holds a finished run in `work` (for --continue), else None."""
    m = re.search(r"--out\s+(\S+)", cmd)
    return m.group(1) if m and (work / m.group(1) / "meta.json").is_file() else None


def run_all(work: Path, small: bool, only: list[str] | None = None, threads: int | None = None,
            keep: bool = False) -> tuple[list, list]:
    """Run the examples in `work` (`keep`: not the commands whose finished output is there); returns (timing rows,
    failures)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    data_root = None
    if small:
        data_root = tiny_fashion_mnist(work / "data")
        env["UNLEARNKIT_DATA"] = str(data_root)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    user_files(work, data_root)
    rows, failures = [], []
    for ex in read_examples(ROOT / "README.md"):
        if only and ex.title not in only:
            continue
        printed: dict[str, str] = {}
        kept = False
        total = 0.0
        for lang, cmd in commands(ex, small):
            shown = cmd if lang == "bash" else "python -c '<the block>'"
            print(f"$ {shown}", flush=True)
            if keep and lang == "bash" and kept_output(cmd, work):
                print(f"  kept: {kept_output(cmd, work)} is a finished run from the earlier run", flush=True)
                rows.append((ex.title, shown, 0.0, "kept"))
                kept = True
                continue
            code, out, sec = run_command(lang, cmd, work, env)
            printed[cmd if lang == "bash" else "python"] = out
            total += sec
            rows.append((ex.title, shown, sec, code))
            print(f"  exit {code}, {sec:.1f} s", flush=True)
            if code != 0:
                failures.append(f"{ex.title}: `{shown}` exited {code}:\n{out[-3000:]}")
                break
        else:
            for c in CHECKS:
                if c.example != ex.title or (c.full and small):
                    continue
                try:
                    ok = bool(c.holds(work, printed))
                except (OSError, KeyError, IndexError, ValueError, StopIteration) as err:
                    if kept:  # it reads what a kept command printed or wrote: not measured this time
                        print(f"  skip {c.says} (needs a kept command's output)", flush=True)
                        continue
                    ok = False
                    printed["(check)"] = f"raised {err!r}"
                print(f"  {'ok  ' if ok else 'FAIL'} {c.says}", flush=True)
                if not ok:
                    failures.append(f"{ex.title}: the README says {c.says!r}; it does not hold. Output:\n"
                                    f"{''.join(printed.values())[-3000:]}")
        rows.append((ex.title, "(example in all)", total, 0))
    return rows, failures


def table(rows: list, small: bool) -> str:
    from unlearnkit.bench.runner import machine_description

    lines = [f"README examples, {'small scale (tiny generated data)' if small else 'as printed'}; machine: "
             f"{machine_description()}", "", "| example | command | seconds | exit |", "|---|---|---|---|"]
    lines += [f"| {t} | `{c}` | {s:.1f} | {e} |" for t, c, s, e in rows]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="tiny generated data (what CI runs)")
    ap.add_argument("--work", help="folder to run in (default: a new temporary folder); must be empty")
    ap.add_argument("--continue", dest="cont", action="store_true",
                    help="run in a --work folder an earlier run of this script left, so that the examples named by "
                         "--only reuse the runs its earlier examples made (e.g. runs/fmnist) instead of training them "
                         "again")
    ap.add_argument("--only", action="append", help="run only this example (its heading); repeatable")
    ap.add_argument("--threads", type=int, help="OMP_NUM_THREADS for the commands")
    ap.add_argument("--table", help="also write the timing table (markdown) here")
    a = ap.parse_args()
    work = Path(a.work or tempfile.mkdtemp(prefix="readme-examples-"))
    work.mkdir(parents=True, exist_ok=True)
    if a.cont and not (a.work and a.only):
        raise SystemExit("--continue needs --work (the earlier run's folder) and --only (the examples to add)")
    if any(work.iterdir()) and not a.cont:
        raise SystemExit(f"--work {work} is not empty: the examples run in an empty folder")
    print(f"work folder: {work}" + (" (small scale: " + "; ".join(shlex.quote(p) for p, _ in SMALL_REWRITES) + ")"
                                    if a.small else ""), flush=True)
    rows, failures = run_all(work, a.small, a.only, a.threads, keep=a.cont)
    text = table(rows, a.small)
    print(text)
    if a.table:
        Path(a.table).write_text(text + "\n")
    for f in failures:
        print("\nFAILED: " + f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
