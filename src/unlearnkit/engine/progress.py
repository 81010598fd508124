"""Progress: bars on a terminal, plain periodic lines off one (nohup, CI), nothing with --quiet."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

from . import runlog
from .distributed import is_main

T = TypeVar("T")
_QUIET = False
_STOP = threading.Event()


def request_stop() -> None:
    """Ctrl-C or SIGTERM arrived: every loop stops at its next step (`stop_point`), even when the KeyboardInterrupt
    the signal handler raised was lost. Python runs a signal handler between any two bytecodes, also inside a
    finaliser (a `__del__` run by garbage collection), and drops whatever a finaliser raises: a SIGTERM landing
    there vanished and the command ran on (test_sigterm's `l1-sparse` case in the full suite, where earlier tests
    leave objects to collect)."""
    _STOP.set()


def clear_stop() -> None:
    _STOP.clear()


def stop_point() -> None:
    """Raise KeyboardInterrupt if a stop was requested (cheap: called at every step of every loop)."""
    if _STOP.is_set():
        raise KeyboardInterrupt


def set_quiet(quiet: bool) -> None:
    global _QUIET
    _QUIET = quiet


def enabled() -> bool:
    return not _QUIET and sys.stderr.isatty() and is_main()


#: Off a terminal (nohup, CI, a log file), a plain progress line at most this often (seconds).
PLAIN_EVERY = 30.0
_ACTIVE: list[list] = []  # [desc, done, total, start] of each loop in progress, outermost first
_LAST = [0.0]


def progress(it: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
    """Wrap an iterable in a tqdm bar with ETA on a terminal; off a terminal (and not quiet), print a plain line
    every `PLAIN_EVERY` seconds naming every loop in progress and the outermost one's ETA (issue 22: under nohup
    or CI nothing was printed for 13 minutes)."""
    if enabled() or _QUIET or not is_main():
        return _stoppable(tqdm(it, desc=desc, total=total, disable=not enabled(), leave=False, dynamic_ncols=True))
    return _stoppable(_plain(it, desc, total))


def _stoppable(it: Iterable[T]) -> Iterator[T]:
    for item in it:
        stop_point()
        yield item


def _plain(it: Iterable[T], desc: str, total: int | None) -> Iterator[T]:
    if total is None:
        total = len(it) if hasattr(it, "__len__") else None  # type: ignore[arg-type]
    entry = [desc, 0, total, time.monotonic()]
    if not _ACTIVE:
        _LAST[0] = time.monotonic()
    _ACTIVE.append(entry)
    try:
        for item in it:
            yield item
            entry[1] += 1
            now = time.monotonic()
            if now - _LAST[0] >= PLAIN_EVERY:
                _LAST[0] = now
                print(plain_line(now), file=sys.stderr, flush=True)
    finally:
        _ACTIVE.remove(entry)


def plain_line(now: float) -> str:
    """e.g. 'train 12/40, train epoch 200/352 (3m05s elapsed, about 7m10s left)'."""
    parts = [f"{d} {n}/{t}" if t else f"{d} {n}" for d, n, t, _ in _ACTIVE]
    d, n, t, start = _ACTIVE[0]
    elapsed = now - start
    left = f", about {_clock(elapsed * (t - n) / n)} left" if t and n else ""
    return f"{', '.join(parts)} ({_clock(elapsed)} elapsed{left})"


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def say(msg: str) -> None:
    """One line of status on stderr, unless quiet (and in the run's log.txt either way)."""
    runlog.log(msg)
    if not _QUIET and is_main():
        print(msg, file=sys.stderr, flush=True)
