"""Property-based bad input: every generated command line, forget spec, poison spec and corrupted run directory
either works or exits 2 with a one-line message: never a traceback, never a partial output, never a changed input."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import load_file, save_file

from unlearnkit.cli import main
from unlearnkit.engine.progress import set_quiet
from unlearnkit.engine.rundir import load_run
from unlearnkit.pipeline import train

# UNLEARNKIT_FUZZ=500 for a long, randomised hunt (the default is a short, reproducible one for the suite)
FUZZ = int(os.environ.get("UNLEARNKIT_FUZZ", "0"))
SETTINGS = settings(max_examples=FUZZ or 25, deadline=None, derandomize=not FUZZ, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
WRITES = {"train", "forget", "import"}


# --------------------------------------------------------------------------- a workspace of inputs

def _attacks() -> list[str]:
    import unlearnkit.attacks as attacks

    return attacks.ATTACKS.names() if hasattr(attacks, "make_poison_spec") else []


class Workspace:
    """A trained run, its checkpoint, images, index files and junk files, made once for the module."""

    def __init__(self, root: Path) -> None:
        set_quiet(True)
        self.root = root
        self.run = train("digits", "mlp", root / "run", epochs=1, batch_size=128, arch_kwargs={"hidden": 16})
        self.runs = [self.run]
        if _attacks():  # a backdoored run too, so that corrupted poison specs are tried
            self.runs.append(train("digits", "mlp", root / "poisoned", epochs=1, batch_size=128, poison=_attacks()[0],
                                   arch_kwargs={"hidden": 16}))
        self.ckpt = root / "model.pt"
        torch.save({k.removeprefix("net."): v for k, v in load_file(str(self.run / "model.safetensors")).items()
                    if k.startswith("net.")}, self.ckpt)
        img = (np.random.default_rng(0).random((8, 8)) * 255).astype(np.uint8)
        Image.fromarray(img).save(root / "img.png")
        (root / "junk.png").write_bytes(b"not an image")
        (root / "empty.txt").write_text("")
        (root / "idx.txt").write_text("0\n1\n2\n5\n")
        (root / "idx_bad.txt").write_text("1, two, 3")
        (root / "idx_far.json").write_text("[99999]")
        (root / "idx.json").write_text("{\"a\": 1}")
        np.save(root / "idx_obj.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
        (root / "evil.pt").write_bytes(pickle.dumps({"x": _Plant(root / "PWNED")}))
        for c in ("a", "b"):  # a tiny imagefolder
            (root / "folder" / c).mkdir(parents=True)
            for i in range(6):
                Image.fromarray(np.full((8, 8, 3), 20 * i + (120 if c == "b" else 0), np.uint8)).save(
                    root / "folder" / c / f"{i}.png")
        self.digest = tree_digest(root)

    def fresh(self, name: str = "out") -> Path:
        return self.root / "outs" / f"{name}-{uuid.uuid4().hex[:8]}"


class _Plant:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "outs" not in p.relative_to(root).parts}


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("bad_input"))


def run_cli(args: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(args)
    return code, err.getvalue()


def check_outcome(ws: Workspace, args: list[str], out: Path | None) -> int:
    """Works (and writes a complete run) or exits 2 with one line (and writes nothing); inputs untouched.

    A legal but absurd setting (say --lr 1e29) may also make training diverge: that is a numerical fault, exit 1
    with its own one line, and nothing written. An internal error (a bug) is never acceptable.
    """
    code, err = run_cli(args)
    event(f"{args[0] if args else '-'} -> exit {code}")
    assert "Traceback" not in err, (args, err)
    assert code in (0, 1, 2), (args, code, err)
    if code in (1, 2):
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        kind = "error" if code == 2 else "numerical error"
        assert lines[-1].startswith(f"unlearnkit: {kind}: "), (args, err)
        assert sum("error" in ln for ln in lines) == 1, (args, err)
    if out is not None:
        leftovers = [p.name for p in out.parent.glob(f".{out.name}*")] if out.parent.exists() else []
        assert not leftovers, (args, leftovers)  # no temporary or checkpoint folder left behind
        if code == 0 and args[0] in WRITES:
            load_run(out)  # a complete, valid run directory
            assert (out / "metrics.json").is_file()
        elif code != 0:
            assert not out.exists(), args
    assert not (ws.root / "PWNED").exists()
    assert tree_digest(ws.root) == ws.digest, args
    return code


# --------------------------------------------------------------------------- generated command lines

def junk() -> st.SearchStrategy[str]:
    return st.sampled_from(["", "-1", "0", "nan", "inf", "1e309", "abc", "3,", ",", " ", "--", "é", "1" * 30])


def numbers(*good: str) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(list(good)), junk(), st.integers(-3, 5).map(str),
                     st.floats(allow_nan=True, allow_infinity=True, width=32).map(repr))


def flags(options: dict[str, st.SearchStrategy]) -> st.SearchStrategy[list[str]]:
    """A random subset of `--flag value` pairs (a value strategy of None means a bare switch)."""
    def build(chosen: list[tuple[str, st.SearchStrategy | None]]) -> st.SearchStrategy[list[str]]:
        parts = [st.just([f]) if s is None else s.map(lambda v, f=f: [f, *(v if isinstance(v, list) else [v])])
                 for f, s in chosen]
        return st.tuples(*parts).map(lambda ps: [t for p in ps for t in p]) if parts else st.just([])

    keys = sorted(options)
    return st.lists(st.sampled_from(keys), unique=True, max_size=5).flatmap(
        lambda ks: build([(k, options[k]) for k in ks]))


def train_args(ws: Workspace) -> st.SearchStrategy[list[str]]:
    opts = {
        "--data": st.sampled_from(["digits", "digits", "digits", "nope", f"imagefolder:{ws.root / 'folder'}",
                                   "imagefolder:/nonexistent", "", "imagefolder:"]),
        "--arch": st.sampled_from(["mlp", "mlp", "cnn-small", "nope", "torchvision:nope", "torchvision:squeezenet1_0"]),
        "--arch-kwargs": st.lists(st.sampled_from(["hidden=8", "hidden=-3", "width=abc", "stem=x", "nokey",
                                                   "depth=0", "hidden=0"]), max_size=2),
        "--batch-size": numbers("64", "512"), "--lr": numbers("0.01", "1e-3"),
        "--optimizer": st.sampled_from(["sgd", "adam", "rmsprop"]), "--seed": numbers("0", "7"),
        "--weight-decay": numbers("0", "5e-4", "-1"),
        "--val-fraction": numbers("0.1", "0.5", "0.99"), "--image-size": numbers("8", "4", "3", "1025"),
        "--overwrite": None, "--no-augment": None, "--bogus": junk(),
    }
    epochs = st.sampled_from(["1", "1", "1", "2", "0", "-1", "x"])
    return st.tuples(epochs, flags(opts)).map(lambda t: ["train", "--epochs", t[0], *t[1]])


def forget_args(ws: Workspace, run: str | None = None) -> st.SearchStrategy[list[str]]:
    r = ws.root
    request = st.one_of(
        st.tuples(st.just("--forget-class"), st.sampled_from(["3", "3", "3,5", "x", "-1", "10", "0,1,2,3,4,5,6,7,8,9",
                                                              "", ",", "3,3", " 4 "])),
        st.tuples(st.just("--forget-random"), numbers("0.1", "0.5", "1", "0")),
        st.tuples(st.just("--forget-indices"), st.sampled_from([str(r / n) for n in (
            "idx.txt", "idx_bad.txt", "idx_far.json", "idx.json", "idx_obj.npy", "empty.txt", "missing.txt")])),
        st.just(("--backdoor",)),
    ).map(list)
    opts = {
        "--set": st.lists(st.sampled_from(["epochs=1", "epochs=-1", "lr=nan", "lr=abc", "bogus=1", "noeq",
                                           "batch_size=0", "lr=1e-3"]), min_size=1, max_size=2),
        "--clean-size": numbers("10", "100000"), "--seed": numbers("1"),
        "--reference": st.sampled_from([str(ws.run), str(r / "missing"), str(r)]), "--retrain": None,
        "--overwrite": None,
    }
    runs = st.just(run) if run else st.sampled_from([str(ws.run)] * 4 + [str(r / "missing"), str(r / "img.png"),
                                                                          str(r)])
    method = st.sampled_from(["finetune", "finetune", "retrain", "nope"])
    return st.tuples(runs, method, request, flags(opts)).map(
        lambda t: ["forget", t[0], "--method", t[1], *t[2], "--set", "epochs=1", *t[3]])


def other_args(ws: Workspace) -> st.SearchStrategy[list[str]]:
    r = ws.root
    run = st.sampled_from([str(ws.run), str(r / "missing"), str(r)])
    return st.one_of(
        st.tuples(run, st.lists(st.sampled_from(["--json", "--quiet", "--reference", str(ws.run), "--data-root",
                                                 str(r / "nowhere")]), max_size=3))
        .map(lambda t: ["evaluate", t[0], *t[1]]),
        st.tuples(run, st.lists(st.sampled_from([str(r / "img.png"), str(r / "junk.png"), str(r / "missing.png"),
                                                 str(r / "folder")]), min_size=1, max_size=2), numbers("3", "1"))
        .map(lambda t: ["predict", t[0], *t[1], "--top", t[2]]),
        st.sampled_from(["methods", "attacks", "datasets", "models", "nope", ""]).map(lambda w: ["list", w]),
        st.tuples(st.sampled_from([str(ws.ckpt), str(r / "evil.pt"), str(r / "img.png"), str(r / "missing.pt"),
                                   str(r / "empty.txt")]), st.sampled_from(["mlp", "cnn-small", "nope"]),
                  st.sampled_from(["digits", "nope"]), st.lists(st.sampled_from(["hidden=16", "hidden=x"]), max_size=1))
        .map(lambda t: ["import", t[0], "--arch", t[1], "--data", t[2], *(["--arch-kwargs", *t[3]] if t[3] else [])]),
        st.lists(junk(), min_size=1, max_size=3),
    )


def with_out(ws: Workspace, args: list[str]) -> tuple[list[str], Path | None]:
    if args and args[0] in WRITES:
        out = ws.fresh(args[0])
        return [*args, "--out", str(out), "--quiet"], out
    return args, None


@pytest.mark.parametrize("command", ["train", "forget", "other"])
@SETTINGS
@given(data=st.data())
def test_generated_command_lines(ws: Workspace, command: str, data: st.DataObject) -> None:
    strategy = {"train": train_args, "forget": forget_args, "other": other_args}[command]
    args, out = with_out(ws, data.draw(strategy(ws)))
    check_outcome(ws, args, out)


# --------------------------------------------------------------------------- corrupted run directories

def _set(meta: dict, path: str, value: object) -> None:
    *parents, last = path.split(".")
    d = meta
    for k in parents:
        if not isinstance(d.get(k), dict):
            d[k] = {}
        d = d[k]
    d[last] = value


def _drop(meta: dict, path: str) -> None:
    *parents, last = path.split(".")
    d = meta
    for k in parents:
        d = d.get(k, {}) if isinstance(d, dict) else {}
    if isinstance(d, dict):
        d.pop(last, None)


META_PATHS = ["arch", "arch.name", "arch.kwargs", "num_classes", "classes", "input_shape", "normalization",
              "normalization.mean", "normalization.std", "data", "data.spec", "data.val_fraction", "data.split_seed",
              "data.image_size", "data.root", "train", "train.epochs", "train.lr", "seed", "kind", "scenario",
              "forget", "forget.kind", "forget.classes", "seconds"]
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-5, 20) | st.floats(allow_nan=False, width=32)
                           | st.sampled_from(["", "mlp", "digits", "x", "forget", "class", "imagefolder:/nope"]),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(
                               ["name", "kwargs", "spec", "mean", "std", "kind", "classes", "hidden"]), inner,
                               max_size=3), max_leaves=6)


def corrupt_meta(draw: st.DrawFn, d: Path) -> None:
    raw = (d / "meta.json").read_bytes()
    how = draw(st.sampled_from(["drop", "set", "set", "text"]))
    if how == "text":
        (d / "meta.json").write_bytes(draw(st.sampled_from([b"", b"{", b"[]", b"\xff\xfe", b"null", b"NaN",
                                                            raw[: len(raw) // 2], b"[" * 5000])))
        return
    try:
        meta = json.loads(raw)
    except (ValueError, RecursionError):  # already corrupted by an earlier draw
        return
    if not isinstance(meta, dict):
        return
    path = draw(st.sampled_from(META_PATHS + (["poison", "poison.attack", "poison.indices", "poison.label_map",
                                               "poison.params", "poison.input_shape"] if _attacks() else [])))
    if how == "drop":
        _drop(meta, path)
    else:
        _set(meta, path, draw(JSON_VALUES))
    (d / "meta.json").write_text(json.dumps(meta))


def corrupt_weights(draw: st.DrawFn, d: Path) -> None:
    f = d / "model.safetensors"
    how = draw(st.sampled_from(["truncate", "garbage", "nan", "inf", "shape", "drop", "extra", "dtype", "remove"]))
    if how == "truncate":
        data = f.read_bytes()
        f.write_bytes(data[: draw(st.integers(0, max(0, len(data) - 1)))])
    elif how == "garbage":
        f.write_bytes(draw(st.binary(max_size=64)))
    elif how == "remove":
        f.unlink()
    else:
        try:
            state = load_file(str(f))
        except Exception:  # noqa: BLE001 - already corrupted by an earlier draw
            return
        key = draw(st.sampled_from(sorted(state)))
        if how in ("nan", "inf"):
            state[key] = torch.full_like(state[key], float(how)) if state[key].is_floating_point() else state[key]
        elif how == "shape":
            state[key] = torch.zeros(*(s + 1 for s in state[key].shape))
        elif how == "drop":
            del state[key]
        elif how == "extra":
            state["net.surplus"] = torch.zeros(3)
        else:
            state[key] = state[key].to(torch.int64)
        save_file(state, str(f))


@st.composite
def corrupted_run(draw: st.DrawFn, ws: Workspace) -> str:
    d = ws.fresh("corrupt")
    shutil.copytree(draw(st.sampled_from(ws.runs)), d)
    for _ in range(draw(st.integers(1, 2))):
        target = draw(st.sampled_from(["meta", "meta", "weights", "metrics"]))
        if target == "meta" and (d / "meta.json").is_file():
            corrupt_meta(draw, d)
        elif target == "weights" and (d / "model.safetensors").is_file():
            corrupt_weights(draw, d)
        else:
            (d / "metrics.json").write_bytes(draw(st.sampled_from([b"", b"[1,2]", b"{bad", b"{}"])))
    return str(d)


@SETTINGS
@given(data=st.data())
def test_corrupted_run_directories(ws: Workspace, data: st.DataObject) -> None:
    run = data.draw(corrupted_run(ws))
    before = {p.name: p.read_bytes() for p in Path(run).iterdir()}
    args = data.draw(st.one_of(
        st.just(["evaluate", run]), st.just(["evaluate", run, "--json"]),
        st.just(["predict", run, str(ws.root / "img.png")]),
        forget_args(ws, run),
    ))
    args, out = with_out(ws, args)
    check_outcome(ws, args, out)
    assert {p.name: p.read_bytes() for p in Path(run).iterdir()} == before  # even a broken input is not touched


# --------------------------------------------------------------------------- poison specs

@pytest.mark.skipif(not _attacks(), reason="no backdoor attacks in this build")
@SETTINGS
@given(data=st.data())
def test_generated_poison_specs(ws: Workspace, data: st.DataObject) -> None:
    names = _attacks()
    opts = {
        "--target": numbers("0", "9", "10"), "--poison-ratio": numbers("0.1", "0.5", "1"), "--all-to-all": None,
        "--poison-set": st.lists(st.sampled_from(["size=3", "size=0", "size=99", "alpha=2", "alpha=0.2", "bogus=1",
                                                  "noeq"]), min_size=1, max_size=2),
        "--image-size": st.sampled_from(["8", "4"]),
    }
    attack = st.sampled_from([*names, "nope", ""])
    args = data.draw(st.tuples(attack, flags(opts)).map(
        lambda t: ["train", "--data", "digits", "--arch", "mlp", "--arch-kwargs", "hidden=8", "--epochs", "1",
                   "--poison", t[0], *t[1]]))
    args, out = with_out(ws, args)
    check_outcome(ws, args, out)


# --------------------------------------------------------------------------- the real command

def test_real_process_exits_2_with_one_line(ws: Workspace) -> None:
    bad = ws.fresh("bad")
    shutil.copytree(ws.run, bad)
    (bad / "meta.json").write_text("{not json")
    out = ws.fresh()
    proc = subprocess.run([sys.executable, "-m", "unlearnkit", "forget", str(bad), "--method", "finetune",
                           "--forget-class", "3", "--out", str(out)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("unlearnkit: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "not valid JSON" in proc.stderr and not out.exists()
