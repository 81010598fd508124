"""`python -m unlearnkit` (also what `torchrun -m unlearnkit` runs)."""

from .cli import entry

entry()
