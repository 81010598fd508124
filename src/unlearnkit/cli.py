"""The `unlearnkit` command: parses arguments (declared in `arguments.py`), calls the Python API, prints. No logic
of its own.

Exit codes: 0 success, 2 bad input (one line naming the problem and the fix), 1 internal or numerical error
(one line; `UNLEARNKIT_DEBUG=1` prints the traceback), 130 interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from .arguments import add_parallel_bench_args, build_parser, seed_list
from .engine.distributed import is_main
from .errors import NumericalError, UserError
from .settings import parse_pairs, parse_untyped

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}
__all__ = ["COMMANDS", "add_parallel_bench_args", "build_parser", "command", "entry", "main", "seed_list"]


def call_api(fn: Callable[..., Any], a: argparse.Namespace, **given: Any) -> Any:
    """Call the Python API function `fn` with each of its parameters that the command's arguments name the same.

    Why: a flag is then written twice, once in `arguments.py` and once in the API's signature, and never
    forwarded by hand (issue 20: each was written three times, and a forwarding slip drops a flag silently).
    `given` supplies what the command spells differently or parses first (`guard=not a.no_guard`); a test checks
    that every option of every command reaches its function, one way or the other."""
    names = inspect.signature(fn).parameters
    return fn(**{**{k: getattr(a, k) for k in names if hasattr(a, k)}, **given})


def command(name: str):
    def deco(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = fn
        return fn

    return deco


@command("demo")
def _demo(a: argparse.Namespace) -> int:
    from .demo import best_method, demo, format_table
    from .metrics.verdict import format_verdict

    method = a.method or best_method()
    m = demo(a.out, a.forget_class, a.overwrite, method)
    print(format_table(m, method))
    print(format_verdict(m.get("verdict")))
    print(f"runs written under {a.out}/ (original/, forget/, forget/reference/)")
    return 0


@command("train")
def _train(a: argparse.Namespace) -> int:
    from .pipeline import train

    out = call_api(train, a, arch_kwargs=parse_untyped(a.arch_kwargs, "--arch-kwargs"),
                   poison_settings=parse_pairs(a.poison_set, "--poison-set", "size=3"),
                   augment=False if a.no_augment else None)
    if not is_main():  # under torchrun rank 0 wrote the run (maybe on another node): nothing to read back here
        return 0
    m = json.loads((out / "metrics.json").read_text())
    extra = "".join(f", {k} {m[k]:.2f}" for k in ("asr", "clean_acc") if k in m)
    print(f"{out}: test accuracy {m['test_acc']:.2f}%{extra} in {m['seconds']:.1f}s")
    return 0


@command("forget")
def _forget(a: argparse.Namespace) -> int:
    from .metrics.table import summary_table
    from .metrics.verdict import format_verdict
    from .pipeline import forget

    out = call_api(forget, a, guard=not a.no_guard)
    if not is_main():
        return 0
    m = json.loads((out / "metrics.json").read_text())
    print(summary_table(m, a.method))
    if m.get("verdict"):
        print(format_verdict(m["verdict"]))
    print(f"written: {out}")
    return 0


@command("import")
def _import(a: argparse.Namespace) -> int:
    from .pipeline import import_checkpoint

    out = call_api(import_checkpoint, a, arch_kwargs=parse_untyped(a.arch_kwargs, "--arch-kwargs"),
                   augment=False if a.no_augment else None)
    m = json.loads((out / "metrics.json").read_text())
    print(f"{out}: imported {a.checkpoint}; test accuracy {m['test_acc']:.2f}%")
    return 0


@command("evaluate")
def _evaluate(a: argparse.Namespace) -> int:
    from .metrics.table import summary_table
    from .metrics.verdict import format_verdict
    from .pipeline import evaluate

    m = call_api(evaluate, a)
    print(json.dumps(m, indent=2) if a.json else summary_table(m, "this run"))
    if m.get("verdict") and not a.json:
        print(format_verdict(m["verdict"]))
    return 0


@command("predict")
def _predict(a: argparse.Namespace) -> int:
    from .pipeline import predict

    res = call_api(predict, a)
    if a.json:
        print(json.dumps(res, indent=2))
    for r in [] if a.json else res:
        extra = "".join(f"; {k} {v:.3f}" for k, v in r.get("extra", {}).items() if isinstance(v, (int, float)))
        print(r["image"] + ": " + ", ".join(f"{t['class']} {t['prob']:.3f}" for t in r["top"]) + extra)
    return 0


@command("list")
def _list(a: argparse.Namespace) -> int:
    from .api import describe

    for name, text in describe(a.what, settings=a.settings):
        print(f"{name:22s}{text}" if len(name) < 22 else f"{name}  {text}")
    return 0


@command("report")
def _report(a: argparse.Namespace) -> int:
    from .report import report

    out = call_api(report, a)
    print(f"written: {out}")
    return 0

@command("hyperforget")
def _hyperforget(a: argparse.Namespace) -> int:
    from .hyperforget import sample, summary, train_hypernet
    from .metrics.table import summary_table

    if a.hyperforget_command == "train":
        out = call_api(train_hypernet, a)
        print(summary(out))
        return 0
    if a.hyperforget_command == "sample":
        out = call_api(sample, a)
        runs = [out] if a.n == 1 else [out / f"sample-{i}" for i in range(a.n)]
        for r in runs:
            if (r / "metrics.json").is_file():
                print(f"{r}:")
                print(summary_table(json.loads((r / "metrics.json").read_text()), "hyperforget"))
        seconds = json.loads((runs[0] / "meta.json").read_text())["seconds"]
        print(f"written: {out} ({a.n} sample{'s' if a.n > 1 else ''}, {seconds:.4f}s each)")
        return 0
    raise UserError("choose `unlearnkit hyperforget train` or `unlearnkit hyperforget sample` (see --help)")


@command("bench")
def _bench(a: argparse.Namespace) -> int:
    from .bench import run_suite

    out = call_api(run_suite, a, name=a.suite, settings=parse_untyped(a.settings))
    print((out / "table.md").read_text())
    return 0


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _interrupt(signum: int, frame: object) -> None:
    from .engine.progress import request_stop

    request_stop()  # sticky: every loop's next step raises again, should this raise be lost (see request_stop)
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C: temporary outputs removed, checkpoints kept


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every failure is one line on stderr (UNLEARNKIT_DEBUG=1 adds tracebacks)."""
    parser = build_parser()
    a, threads = None, 0
    from .engine.progress import clear_stop

    clear_stop()
    handled = (signal.SIGTERM, signal.SIGINT) if threading.current_thread() is threading.main_thread() else ()
    previous = {sig: signal.signal(sig, _interrupt) for sig in handled}  # Ctrl-C and SIGTERM alike
    try:
        a = parser.parse_args(argv)
        if a.command is None:
            parser.print_help()
            raise UserError("no command given: choose one of the commands above")
        from .checks import check_command
        from .engine.progress import set_quiet
        from .engine.runlog import set_command

        check_command(vars(a))
        if getattr(a, "threads", None):
            import torch

            threads = torch.get_num_threads()  # restored at the end: main() also runs inside tests and notebooks
            torch.set_num_threads(a.threads)

        set_command(list(sys.argv[1:] if argv is None else argv))
        set_quiet(getattr(a, "quiet", False))
        if not is_main():  # under torchrun, only rank 0 talks
            with contextlib.redirect_stdout(io.StringIO()):
                return COMMANDS[a.command](a)
        return COMMANDS[a.command](a)
    except UserError as err:
        print(f"unlearnkit: error: {_one_line(err)}", file=sys.stderr)
        return UserError.exit_code
    except NumericalError as err:
        _debug()
        print(f"unlearnkit: numerical error: {_one_line(err)}; nothing was written", file=sys.stderr)
        return NumericalError.exit_code
    except KeyboardInterrupt:
        hint = "; rerun with --resume to continue from the last checkpoint" if getattr(a, "resume", None) is not None \
            else ""
        print(f"unlearnkit: interrupted; no output was written{hint}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0  # output piped into e.g. `head`, which stopped reading
    except Exception as err:  # noqa: BLE001 - a bug: one line, the traceback on request
        _debug()
        print(f"unlearnkit: internal error: {type(err).__name__}: {_one_line(err)[:300]} (a bug: please report it; "
              f"UNLEARNKIT_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1
    finally:
        from .checks import release_outputs

        release_outputs()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        clear_stop()
        if threads:
            import torch

            torch.set_num_threads(threads)


def _debug() -> None:
    if os.environ.get("UNLEARNKIT_DEBUG"):
        traceback.print_exc()


def entry() -> None:
    """The console script. A KeyboardInterrupt that escapes `main` (a SIGTERM or Ctrl-C landing in its clean-up,
    after the interrupt was reported) still exits 130, not by the signal (-2): the test suite saw that, rarely."""
    try:
        code = main()
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    entry()
