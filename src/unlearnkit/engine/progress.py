"""Progress bars: on for a terminal, off with --quiet or when stderr is not a TTY."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

from . import runlog
from .distributed import is_main

T = TypeVar("T")
_QUIET = False


def set_quiet(quiet: bool) -> None:
    global _QUIET
    _QUIET = quiet


def enabled() -> bool:
    return not _QUIET and sys.stderr.isatty() and is_main()


def progress(it: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
    """Wrap an iterable in a tqdm bar with ETA (or not at all when quiet)."""
    return iter(tqdm(it, desc=desc, total=total, disable=not enabled(), leave=False, dynamic_ncols=True))


def say(msg: str) -> None:
    """One line of status on stderr, unless quiet (and in the run's log.txt either way)."""
    runlog.log(msg)
    if not _QUIET and is_main():
        print(msg, file=sys.stderr, flush=True)
