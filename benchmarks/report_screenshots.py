"""Screenshots of three HTML reports (a class request, a backdoor, several runs) in headless Chromium at 1400 px.

    python benchmarks/report_screenshots.py --out docs/screenshots [--work DIR]

Trains small models on scikit-learn's digits (a minute or two on 2 CPU cores), forgets with a few methods,
writes `class.html`, `backdoor.html` and `multi.html` and their screenshots (`*.png`, the top 1400 x 1300
pixels of each page: what a reader sees first). Issue 22 asks that these show the verdict first and every
column of the comparison; the same checks run in the browser test of tests/test_report.py.
Needs Chromium (`apt-get install chromium`).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from PIL import Image

import unlearnkit

WIDTH, HEIGHT = 1400, 1300


def chromium() -> str:
    path = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if path is None:
        raise SystemExit("needs Chromium: apt-get install chromium")
    return path


def screenshot(page: Path, png: Path, profile: Path) -> None:
    """The top WIDTH x HEIGHT pixels of `page`, as a reader's 1400-px browser window shows them."""
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-dev-shm-usage",
           f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}", "--virtual-time-budget=10000",
           f"--screenshot={png}", page.as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=180)
    Image.open(png).convert("RGB").quantize(256).save(png, optimize=True)  # a third of the bytes, same look


def build_runs(work: Path) -> dict[str, list[Path]]:
    """The runs behind the three pages: one class request, one backdoor, and several methods side by side."""
    quick = {"batch_size": 64}
    model = unlearnkit.train("digits", "cnn-small", work / "digits", epochs=10, overwrite=True, **quick)
    adv = unlearnkit.forget(model, "adversarial", work / "forget3-adversarial", forget_class="3", retrain=True,
                            overwrite=True)
    ref = adv / "reference"
    ft = unlearnkit.forget(model, "finetune", work / "forget3-finetune", forget_class="3", reference=ref,
                           overwrite=True)
    ga = unlearnkit.forget(model, "grad-ascent", work / "forget3-grad-ascent", forget_class="3", reference=ref,
                           overwrite=True)
    poisoned = unlearnkit.train("digits", "cnn-small", work / "digits-badnets", epochs=10, lr=0.05, poison="badnets",
                                target=0, overwrite=True, **quick)
    bd = unlearnkit.forget(poisoned, "finetune", work / "badnets-finetune", backdoor=True, clean_size=140,
                           overwrite=True)
    return {"class": [adv], "backdoor": [bd], "multi": [adv, ft, ga, bd]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for the pages and their screenshots")
    ap.add_argument("--work", help="folder for the runs (default: a temporary folder)")
    a = ap.parse_args()
    out = Path(a.out).resolve()  # Chromium takes file:// URIs, which must be absolute
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(a.work) if a.work else Path(tmp)
        for name, runs in build_runs(work).items():
            page = unlearnkit.report(runs, out / f"{name}.html", overwrite=True)
            screenshot(page, out / f"{name}.png", Path(tmp) / "profile")
            print(f"{name}: {page} -> {out / (name + '.png')}")


if __name__ == "__main__":
    main()
