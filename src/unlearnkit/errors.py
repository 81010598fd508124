"""Errors that reach the user.

`UserError` is bad input: the command line prints its one-line message and exits with code 2.
Anything else is an internal error (exit code 1).
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input. The message names the problem and the fix, on one line."""

    exit_code = 2


class NumericalError(RuntimeError):
    """A loss or a weight became NaN or infinite: the method stops instead of writing garbage."""

    exit_code = 1


def require(condition: bool, message: str) -> None:
    """Raise `UserError(message)` unless `condition` holds."""
    if not condition:
        raise UserError(message)
