"""Small formatting helpers shared by the report's page (`html.py`) and its figures (`figures.py`)."""

from __future__ import annotations

import html

from ..runmeta import RunMeta

e = html.escape


def num(v, digits: int = 2) -> str:
    return "–" if not isinstance(v, (int, float)) or isinstance(v, bool) else f"{v:.{digits}f}"


def secs(v) -> str:
    if not isinstance(v, (int, float)):
        return "–"
    return f"{v:.2f} s" if v < 10 else f"{v:.0f} s" if v < 600 else f"{v / 60:.1f} min"


def gap_class(g) -> str:
    if not isinstance(g, (int, float)):
        return ""
    return "good" if g < 2 else "warn" if g < 10 else "bad"


def img(uri: str, alt: str, cls: str = "plot") -> str:
    return f'<img class="{cls}" src="{uri}" alt="{e(alt)}">'


def figure(title: str, uri: str, caption: str, wide: bool = False) -> str:
    return (f'<figure class="panel{" wide" if wide else ""}"><h3>{e(title)}</h3>{img(uri, title)}'
            f"<figcaption>{caption}</figcaption></figure>")


def method_name(meta: dict) -> str:
    m = RunMeta.of(meta)
    return (m.method_name or "") if m.is_forget else "train"


def forget_what(meta: dict) -> str:
    m = RunMeta.of(meta)
    f, classes = m.get("forget") or {}, m.classes
    if m.scenario == "backdoor":
        return "the backdoor"
    if f.get("kind") == "class":
        names = [str(classes[c]) if c < len(classes) else str(c) for c in f.get("classes", [])]
        return "class " + ", ".join(f"“{n}”" for n in names)
    if f.get("kind") == "random":
        return f"a random {100 * float(f.get('fraction', 0)):.0f}% of the training samples"
    if f.get("kind") == "indices":
        return f"{len(f.get('indices') or [])} chosen training samples"
    return ""
