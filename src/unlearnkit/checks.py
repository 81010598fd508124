"""A command's arguments checked in one place, before any work starts (issue 19).

Two kinds of check, both one-line `UserError`s (exit 2) that name the problem and the fix:

- *ranges*: every numeric option of every subcommand against one table (`RANGES`), so that a seed of -1 or
  10**23, a held-out fraction of 0.999 or a sample count of 10**9 is refused instead of failing deep inside
  (or allocating gigabytes) after minutes of work;
- *inputs vs outputs*: no command may write inside, or over, a path it reads. `report RUN --out RUN/meta.json
  --overwrite` replaced the run's own meta.json with HTML, and `forget RUN --tensorboard RUN` wrote into the run
  it read; an output that contains an input would be deleted by `--overwrite` with the input in it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .errors import UserError

SEED_MAX = 2**32 - 1  # what NumPy's and torch's seeders take

#: option (argparse dest) -> (lowest, highest, whether the lowest itself is allowed, the flag as the user types it)
RANGES: dict[str, tuple[float, float, bool, str]] = {
    "seed": (0, SEED_MAX, True, "--seed"),
    "seeds": (1, 1000, True, "--seeds"),
    "epochs": (1, 100_000, True, "--epochs"),
    "batch_size": (1, 1_000_000, True, "--batch-size"),
    "lr": (0, 100, False, "--lr"),
    "val_fraction": (0, 0.5, True, "--val-fraction"),
    "poison_ratio": (0, 1, False, "--poison-ratio"),
    "target": (0, 1_000_000, True, "--target"),
    "image_size": (8, 2048, True, "--image-size"),
    "clean_size": (1, 100_000_000, True, "--clean-size"),
    "top": (1, 100_000, True, "--top"),
    "n": (1, 1000, True, "--n"),
    "steps": (1, 1_000_000, True, "--steps"),
    "temperature": (0, 100, False, "--temperature"),
    "forget_loss": (0, 1000, True, "--forget-loss"),
    "retain_loss": (0, 1000, True, "--retain-loss"),
    "threads": (1, 1024, True, "--threads"),
}


def check_ranges(args: dict[str, Any]) -> None:
    """Refuse any option of `args` (argparse's namespace as a dict) outside its range in `RANGES`."""
    for dest, (lo, hi, lo_ok, flag) in RANGES.items():
        v = args.get(dest)
        if v is None or isinstance(v, bool):
            continue
        finite = isinstance(v, int) or math.isfinite(v)
        if not finite or v > hi or v < lo or (v == lo and not lo_ok):
            low = f"{lo:g} (inclusive)" if lo_ok else f"above {lo:g}"
            raise UserError(f"{flag} {v} is out of range: give a value from {low} to {hi:g}")
    if args.get("val_fraction") == 0 and args.get("poison"):
        raise UserError("--val-fraction 0 leaves no held-out split, which a backdoored run needs (its defences draw "
                        "their clean images there): give e.g. --val-fraction 0.1")


def _resolved(p: str | Path) -> Path:
    return Path(p).expanduser().resolve(strict=False)


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_outputs(inputs: list[str | Path], outputs: dict[str, str | Path]) -> None:
    """Refuse an output (flag -> path) that is, or lies inside, an input, or that contains one."""
    ins = [(str(p), _resolved(p)) for p in inputs if p]
    for flag, out in outputs.items():
        if not out:
            continue
        o = _resolved(out)
        for text, i in ins:
            if _inside(o, i):
                raise UserError(f"{flag} {out} is inside {text}, which this command reads: nothing may be written "
                                f"into an input; choose a path outside it")
            if _inside(i, o):
                raise UserError(f"{flag} {out} contains {text}, which this command reads (--overwrite would delete "
                                f"it): choose another {flag}")


def check_command(args: dict[str, Any]) -> None:
    """Every check for one parsed command line, before any work."""
    check_ranges(args)
    inputs = [args.get(k) for k in ("run", "reference", "hypernet", "checkpoint", "forget_indices")]
    inputs += list(args.get("runs") or [])
    check_outputs(inputs, {"--out": args.get("out"), "--tensorboard": args.get("tensorboard")})
    if args.get("out") and args.get("command") not in (None, "list", "evaluate", "predict"):
        from .engine.distributed import is_main

        if is_main():
            lock_output(args["out"])


_LOCKS: list[Any] = []


def lock_output(out: str | Path, flag: str = "--out") -> None:
    """Hold a lock beside `out` until the process ends, so that a second command writing the same output gets a
    one-line error instead of silently replacing the first one's work or colliding in its `.partial` folder.

    Also checks, before any work, that the output can be written at all: a parent that is a file, a read-only
    or missing place (/proc/x) or an over-long name fails here, not after the training."""
    import fcntl
    import os

    path = Path(out).expanduser()
    parent = path.parent if str(path.parent) else Path(".")
    probe = parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{flag} {out}: {probe} is not a folder: choose an output inside a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {out}: {probe} is not writable: choose an output where you can write")
    if len(path.name.encode("utf-8", "surrogateescape")) > 200:
        raise UserError(f"{flag} {out}: the name is longer than 200 bytes: choose a shorter one")
    try:
        path.name.encode("utf-8")
    except UnicodeEncodeError as err:
        raise UserError(f"{flag} {out!r}: the name is not valid UTF-8: choose a name in plain characters") from err
    if probe != parent:
        return  # nothing there yet to lock; the folders are made when the run is written
    lock = parent / f".{path.name}.lock"
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise UserError(f"{flag} {out}: cannot write beside it ({err.strerror}): choose another output") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            raise UserError(f"another unlearnkit command is writing {flag} {out} right now: wait for it to finish "
                            f"or choose another {flag}") from err
        try:  # the file we locked must still be the one at that path (a finishing holder may have removed it)
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            _LOCKS.append((fd, lock))
            return
        os.close(fd)


def holds_lock(out: str | Path) -> bool:
    """Whether this process holds the lock on `out` (taken by `lock_output`)."""
    path = Path(out).expanduser()
    want = (path.parent / f".{path.name}.lock").resolve()
    return any(Path(lock).resolve() == want for _, lock in _LOCKS)


def release_outputs() -> None:
    """Remove and release the locks this process holds (the end of a command)."""
    import os

    while _LOCKS:
        fd, lock = _LOCKS.pop()
        try:
            os.unlink(lock)
        except OSError:
            pass
        os.close(fd)
