"""Reports: text tables for the terminal and the self-contained HTML page (`unlearnkit report`)."""

from .html import report

__all__ = ["report"]
