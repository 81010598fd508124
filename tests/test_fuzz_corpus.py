"""The bad-input corpus (issue 19): over a thousand generated command lines, each of which must exit 2 with one line
on stderr, no traceback, no output, no `.partial` or temporary folder left, and every input byte-identical.

The cases are generated, not listed, so that a new option or setting is covered the day it is added:

- every numeric option of every subcommand (read off the parser), with values below, above and outside the range
  in `checks.RANGES` and values that are not numbers at all;
- every `--set` setting of every method, with a value of the wrong type, and unknown or malformed settings;
- deletion requests that are not integer lists (issue 19's examples), in .txt, .json and .npy;
- run directories whose meta.json has a field of the wrong type, whose weights are truncated, empty, or carry a
  header that is not JSON or claims gigabytes; metrics.json that is not a dict, for `report`;
- outputs inside, over or around an input, under a file, with an undecodable or over-long name.

`run_case` is the one oracle; the module runs in about a minute on 2 cores (no case trains anything: every one
must be refused before work starts).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from unlearnkit.checks import RANGES, release_outputs
from unlearnkit.cli import build_parser, main
from unlearnkit.engine.progress import set_quiet
from unlearnkit.methods.base import METHODS
from unlearnkit.pipeline import train

NOT_NUMBERS = ["abc", "", "1,5", "--5", "0x10", "one", "1e", "½"]


# --------------------------------------------------------------------------- the workspace (made once)

@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    set_quiet(True)
    train("digits", "mlp", root / "run", epochs=1, batch_size=256, arch_kwargs={"hidden": 8})
    train("digits", "mlp", root / "poisoned", epochs=1, batch_size=256, poison="badnets", arch_kwargs={"hidden": 8})
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "img.png")
    weights = load_file(str(root / "run" / "model.safetensors"))
    sd = {k.removeprefix("net."): v for k, v in weights.items() if k.startswith("net.")}
    torch.save(sd, root / "model.pt")
    (root / "outs").mkdir()
    return root


def digest(root: Path) -> dict[str, str]:
    """Every input file under the workspace (outputs folder aside) by content."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and "outs" not in p.relative_to(root).parts:
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run_case(ws: Path, argv: list[str], capsys) -> None:
    """The oracle: exit 2, one line on stderr, no traceback, nothing written, every input unchanged."""
    before = digest(ws)
    outs = ws / "outs"
    try:
        code = main(argv)
    finally:
        release_outputs()
    err = capsys.readouterr().err.strip()
    left = sorted(p.name for p in outs.iterdir())
    for p in outs.iterdir():  # so that one failing case does not fail the next ones
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    assert code == 2, f"exit {code}: {err[-2000:]}"
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err and "please report" not in err, err
    assert not left, left
    assert digest(ws) == before


# --------------------------------------------------------------------------- generated cases

BASE = {
    "train": ["train", "--data", "digits", "--arch", "mlp", "--out", "{out}", "--quiet"],
    "import": ["import", "{ws}/model.pt", "--arch", "mlp", "--data", "digits", "--out", "{out}", "--quiet"],
    "forget": ["forget", "{ws}/run", "--method", "finetune", "--forget-class", "3", "--out", "{out}", "--quiet"],
    "forget-backdoor": ["forget", "{ws}/poisoned", "--method", "finetune", "--backdoor", "--out", "{out}",
                        "--quiet"],
    "evaluate": ["evaluate", "{ws}/run", "--quiet"],
    "predict": ["predict", "{ws}/run", "{ws}/img.png", "--quiet"],
    "demo": ["demo", "--out", "{out}", "--quiet"],
    "hyperforget train": ["hyperforget", "train", "{ws}/run", "--out", "{out}", "--quiet"],
    "hyperforget sample": ["hyperforget", "sample", "{ws}/no-hypernet", "--forget-class", "3", "--out", "{out}",
                           "--quiet"],
    "bench": ["bench", "class", "--out", "{out}", "--set", "quick=true", "--quiet"],
    "report": ["report", "{ws}/run", "--out", "{out}.html", "--quiet"],
}


def _subparsers(p: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    out = {}
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                out[f"{prefix}{name}"] = sub
                out.update(_subparsers(sub, f"{prefix}{name} "))
    return out


def bad_values(dest: str, kind: type) -> list[str]:
    """Values outside `RANGES[dest]` and values that are not numbers of the option's kind."""
    lo, hi, lo_ok, _ = RANGES[dest]
    if kind is int:
        out = [str(int(lo) - 1) if lo_ok else str(int(lo)), str(int(hi) + 1), str(10**23), "1.5", "1e3", "nan",
               "inf", "-1"]
    else:
        out = [repr(lo - 0.5) if lo_ok else repr(float(lo)), repr(hi * 2 + 1), "nan", "inf", "-inf", "1e400",
               "-1e400", "-1"]
    if dest == "seed" or dest == "target":
        out = [v for v in out if v != "1e3"]
    return sorted(set(out + NOT_NUMBERS) - ({"-1"} if lo < 0 else set()))


def option_cases() -> list[tuple[str, list[str]]]:
    cases = []
    subs = _subparsers(build_parser())
    for name, base in BASE.items():
        parser = subs[name.replace("-backdoor", "")]
        for a in parser._actions:
            if a.dest not in RANGES or not a.option_strings:
                continue
            if name == "forget" and a.dest == "clean_size":
                continue  # a backdoor option: tried on forget-backdoor
            kind = a.type if a.type in (int, float) else float
            for v in bad_values(a.dest, kind):
                cases.append((f"{name} {a.option_strings[0]} {v!r}", [*base, f"{a.option_strings[0]}={v}"]))
    return cases


def _fields(method: str) -> list[dataclasses.Field]:
    cfg = getattr(METHODS.get(method), "Config", None)
    return list(dataclasses.fields(cfg)) if cfg is not None and dataclasses.is_dataclass(cfg) else []


def setting_cases() -> list[tuple[str, list[str]]]:
    cases = []
    for m in METHODS.names():
        cls = METHODS.get(m)
        base = BASE["forget"] if "class" in cls.scenarios else [*BASE["forget-backdoor"], "--clean-size", "40"]
        base = [b if b != "finetune" else m for b in base]
        for text in ("bogus=1", "noequals", "=3", "bogus"):
            cases.append((f"{m} --set {text}", [*base, "--set", text]))
        for f in _fields(m):
            default = f.default if f.default is not dataclasses.MISSING else None
            kind = type(default) if default is not None else str(f.type)
            if kind in (int, float) or "int" in str(kind) or "float" in str(kind):
                for v in ("abc", "[1]", "1+1"):
                    cases.append((f"{m} --set {f.name}={v}", [*base, "--set", f"{f.name}={v}"]))
            elif kind is bool:
                for v in ("maybe", "2"):
                    cases.append((f"{m} --set {f.name}={v}", [*base, "--set", f"{f.name}={v}"]))
    return cases


INDEX_FILES = {
    "string.json": '"123"', "dict.json": '{"1": 2, "3": 4}', "floats.json": "[1.7, 2.2]", "bools.json": "[true, true]",
    "huge.json": "[1e400]", "nested.json": "[[1, 2]]", "null.json": "null", "neg.json": "[-1]", "far.json": "[999999]",
    "mixed.json": '[1, "2"]', "empty.json": "[]", "bad.json": "[1, 2", "floats.txt": "1.5\n2.5\n",
    "words.txt": "a\nb\n", "empty.txt": "", "neg.txt": "-3\n", "inf.txt": "inf\n", "hex.txt": "0x10\n",
    "far.txt": "1000000\n",
}
INDEX_ARRAYS = {"floats.npy": np.array([1.5, 2.5]), "bools.npy": np.array([True, False]),
                "inf.npy": np.array([np.inf]), "nan.npy": np.array([np.nan]), "empty.npy": np.array([], dtype=np.int64),
                "neg.npy": np.array([-1]), "matrix.npy": np.array([[1, 2], [3, 4]]),
                "strings.npy": np.array(["1", "2"]), "complex.npy": np.array([1 + 2j])}


def index_cases() -> list[tuple[str, list[str]]]:
    return [(f"--forget-indices {n}", [*BASE["forget"][:4], "--forget-indices", f"{{ws}}/idx/{n}",
                                       *BASE["forget"][6:]]) for n in [*INDEX_FILES, *INDEX_ARRAYS]]


READERS = {"predict": BASE["predict"], "forget": BASE["forget"], "evaluate": BASE["evaluate"]}
#: meta.json's fields (as a train run writes them) and their JSON type
META_TYPES = {"kind": str, "arch": dict, "num_classes": int, "classes": list, "input_shape": list,
              "normalization": dict, "data": dict, "train": dict, "seed": int, "seconds": float}
VALUES = [None, 123, -1.5, "x", [], {}, True]


def wrong_values(key: str) -> list:
    """Values of another JSON type than the field's (None only where the field may not be absent), and for `kind`
    an unknown name."""
    kind = META_TYPES[key]
    same = {str: str, dict: dict, int: int, list: list, float: (int, float)}[kind]
    out = [v for v in VALUES if not (isinstance(v, same) and not isinstance(v, bool))]
    if key == "seconds":
        out = [v for v in out if v is not None]  # an imported run has no time
    return out + (["unknown-kind"] if key == "kind" else [])


def meta_cases() -> list[tuple[str, list[str]]]:
    """meta.json with one field replaced by a value of another type."""
    cases = []
    for key in META_TYPES:
        for i, w in enumerate(wrong_values(key)):
            for reader in ("predict", "forget"):
                argv = [a.replace("{ws}/run", f"{{ws}}/meta/{key}-{i}") for a in READERS[reader]]
                cases.append((f"{reader} meta.json {key}={json.dumps(w)}", argv))
    return cases


WEIGHTS = {"empty": b"", "truncated": None, "not-json-header": b"\x10\x00\x00\x00\x00\x00\x00\x00not json here!!",
           "huge-header": (10**12).to_bytes(8, "little") + b"{}", "zero-header": (0).to_bytes(8, "little"),
           "text": b"this is not a safetensors file at all", "header-only": (2).to_bytes(8, "little") + b"{}"}


def weight_cases() -> list[tuple[str, list[str]]]:
    return [(f"{r} weights {n}", [a.replace("{ws}/run", f"{{ws}}/weights/{n}") for a in READERS[r]])
            for n in WEIGHTS for r in READERS]


OUTPUT_CASES = [
    ("forget --out RUN", ["forget", "{ws}/run", "--method", "finetune", "--forget-class", "3", "--out", "{ws}/run"]),
    ("forget --out RUN/x", ["forget", "{ws}/run", "--method", "finetune", "--forget-class", "3", "--out",
                            "{ws}/run/x"]),
    ("forget --out a parent of RUN", ["forget", "{ws}/run", "--method", "finetune", "--forget-class", "3", "--out",
                                      "{ws}", "--overwrite"]),
    ("forget --tensorboard RUN", ["forget", "{ws}/run", "--method", "finetune", "--forget-class", "3", "--out",
                                  "{out}", "--tensorboard", "{ws}/run"]),
    ("report --out RUN/meta.json", ["report", "{ws}/run", "--out", "{ws}/run/meta.json", "--overwrite"]),
    ("report --out RUN/report.html", ["report", "{ws}/run", "--out", "{ws}/run/report.html"]),
    ("train --out under a file", ["train", "--out", "{ws}/img.png/x"]),
    ("train --out over-long", ["train", "--out", "{ws}/outs/" + "x" * 300]),
    ("train --out undecodable", ["train", "--out", "{ws}/outs/o\udcff"]),
    ("forget --reference == --out", ["forget", "{ws}/run", "--method", "finetune", "--forget-class", "3",
                                     "--reference", "{ws}/run", "--out", "{ws}/run"]),
    ("import --out == checkpoint", ["import", "{ws}/model.pt", "--arch", "mlp", "--data", "digits", "--out",
                                    "{ws}/model.pt", "--overwrite"]),
]


def all_cases() -> list[tuple[str, list[str]]]:
    return option_cases() + setting_cases() + index_cases() + meta_cases() + weight_cases() + OUTPUT_CASES


CASES = all_cases()


@pytest.fixture(scope="module")
def prepared(ws: Path) -> Path:
    """The corrupted copies the cases read: index files, meta.json fields, weight files."""
    (ws / "idx").mkdir()
    for n, text in INDEX_FILES.items():
        (ws / "idx" / n).write_text(text)
    for n, arr in INDEX_ARRAYS.items():
        np.save(ws / "idx" / n, arr)
    meta = json.loads((ws / "run" / "meta.json").read_text())
    for key in META_TYPES:
        for i, w in enumerate(wrong_values(key)):
            d = ws / "meta" / f"{key}-{i}"
            shutil.copytree(ws / "run", d)
            (d / "meta.json").write_text(json.dumps({**meta, key: w}))
    weights = (ws / "run" / "model.safetensors").read_bytes()
    for n, data in WEIGHTS.items():
        d = ws / "weights" / n
        shutil.copytree(ws / "run", d)
        (d / "model.safetensors").write_bytes(weights[: len(weights) // 2] if data is None else data)
    return ws


def test_the_corpus_has_over_a_thousand_cases() -> None:
    assert len(CASES) >= 1000, len(CASES)
    assert len({name for name, _ in CASES}) == len(CASES)  # every case names itself


@pytest.mark.parametrize("name, argv", CASES, ids=[n for n, _ in CASES])
def test_bad_input_is_one_line_exit_2_and_touches_nothing(prepared: Path, name: str, argv: list[str], capsys,
                                                          monkeypatch) -> None:
    monkeypatch.chdir(prepared / "outs")
    out = str(prepared / "outs" / "o")
    run_case(prepared, [a.replace("{ws}", str(prepared)).replace("{out}", out) for a in argv], capsys)


def test_two_processes_writing_the_same_out_at_once(tmp_path: Path) -> None:
    """The second of two commands writing one --out while the first runs is refused (one line, exit 2)."""
    import subprocess
    import sys
    import time

    out = tmp_path / "o"
    first = subprocess.Popen([sys.executable, "-m", "unlearnkit", "train", "--data", "digits", "--arch", "mlp",
                              "--epochs", "100000", "--out", str(out), "--quiet"], stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while not (tmp_path / ".o.lock").exists() and time.time() < deadline:
            time.sleep(0.2)
        second = subprocess.run([sys.executable, "-m", "unlearnkit", "train", "--data", "digits", "--arch", "mlp",
                                 "--epochs", "1", "--out", str(out), "--quiet"], capture_output=True, text=True,
                                timeout=300)
        assert second.returncode == 2 and "right now" in second.stderr and len(second.stderr.strip().splitlines()) == 1
    finally:
        first.terminate()
        first.wait(timeout=60)
    assert not out.exists()

