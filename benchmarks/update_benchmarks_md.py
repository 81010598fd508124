"""Regenerate sections of BENCHMARKS.md from benchmark outputs, so every table there comes from a command.

    python benchmarks/update_benchmarks_md.py class=runs/bench-class random=runs/bench-random
    python benchmarks/update_benchmarks_md.py throughput=runs/throughput.txt

Each NAME=PATH replaces the text between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`: with PATH/table.md
when PATH is a `unlearnkit bench` output directory, or with the file's text otherwise (e.g. a script's saved
output, fenced as a code block unless it is markdown: a `.md` file or text that opens with a table or a
heading).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def section(path: Path) -> str:
    if path.is_dir():
        return (path / "table.md").read_text().strip()
    text = path.read_text().strip()
    markdown = path.suffix == ".md" or text.startswith(("|", "#"))
    return text if markdown else f"```\n{text}\n```"


def replace(doc: str, name: str, body: str) -> str:
    # the body between the markers may be empty (a new section placed by hand before its first run)
    pat = re.compile(rf"(<!-- bench:{re.escape(name)} -->\n)(?:.*?\n)?(<!-- /bench:{re.escape(name)} -->)", re.S)
    if not pat.search(doc):
        return doc.rstrip() + f"\n\n<!-- bench:{name} -->\n{body}\n<!-- /bench:{name} -->\n"
    return pat.sub(lambda m: m.group(1) + body + "\n" + m.group(2), doc)


def main(args: list[str]) -> None:
    doc = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    for arg in args:
        name, _, path = arg.partition("=")
        if not path:
            sys.exit(f"expected NAME=PATH, got {arg!r}")
        doc = replace(doc, name, section(Path(path)))
    DOC.write_text(doc)


if __name__ == "__main__":
    main(sys.argv[1:])
