"""Reports: text tables for the terminal (and, later, the HTML report)."""
