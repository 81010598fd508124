"""The HTML report (checked by parsing it and by loading it in headless Chromium), log.txt and TensorBoard."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from PIL import Image

import unlearnkit
from unlearnkit.cli import main
from unlearnkit.errors import UserError


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def all(self, tag: str) -> list[dict]:
        return [a for t, a in self.tags if t == tag]


def _parse(page: Path) -> _Tags:
    p = _Tags()
    p.feed(page.read_text(encoding="utf-8"))
    return p


@pytest.fixture(scope="module")
def runs(tmp_path_factory, mlp_run):
    """A trained run, a class-forgetting run with its retrained reference, a random-forgetting run without."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only add overhead (and thrash a busy machine)
    d = tmp_path_factory.mktemp("report")
    one = mlp_run  # read-only; shared with other tests
    f1 = unlearnkit.forget(one, "finetune", d / "forget-class", forget_class="3", settings={"epochs": 2},
                           retrain=True)
    f2 = unlearnkit.forget(one, "finetune", d / "forget-random", forget_random=0.1, settings={"epochs": 2})
    f3 = unlearnkit.forget(one, "random-label", d / "forget-class-rl", forget_class="3", settings={"epochs": 1},
                           reference=f1 / "reference")  # the same task as f1: the two are ranked together
    page = unlearnkit.report([f1, f2, one, f3], d / "report.html")
    yield {"dir": d, "one": one, "f1": f1, "f2": f2, "f3": f3, "page": page}
    torch.set_num_threads(threads)


def test_page_is_self_contained_and_shows_every_section(runs):
    p = _parse(runs["page"])
    assert not p.all("script") and not p.all("link")  # nothing to execute, nothing fetched
    text = " ".join(p.text)
    srcs = [a["src"] for a in p.all("img")]
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).verify()  # a whole, valid PNG
    # per run: per-class, membership, curves, confusion; +8 forget/test samples; +1 chart for the one group
    # of two runs (f1 and f3 forgot the same class; f2 and the trained run are groups of one)
    assert len(srcs) == 1 + 4 * (4 + 8)
    alts = [a["alt"] for a in p.all("img")]
    for title in ("Per-class test accuracy", "Membership-inference picture", "Training curves",
                  "Confusion matrices (test set)", "comparison chart: class on digits: forget class “3”"):
        assert title in alts
    ids = {a.get("id") for _, a in p.tags}
    assert {"compare", "run-0", "run-1", "run-2", "run-3"} <= ids
    m = json.loads((runs["f1"] / "metrics.json").read_text())
    assert f"{m['forget_acc']:.2f}" in compare_tables(runs["page"])[0] and \
        f"{m['gap']['avg']:.2f}" in compare_tables(runs["page"])[0]
    assert "asked to forget class “3”" in text and "a random 10% of the training samples" in text
    assert text.count("Full configuration (meta.json)") == 4 and '"finetune"' in text  # meta.json, escaped
    assert "train: epoch 10/10" in text  # the run's log.txt
    # issue 22: each forget run's verdict comes first in its section, coloured by its status, with its reasons
    html = runs["page"].read_text()
    for i in (0, 1):  # run-0 is f1, run-1 is f2
        section = html.split(f'id="run-{i}"')[1]
        assert section.index(f'id="verdict-{i}"') < section.index('class="lede"')
        status = json.loads((runs[f"f{i + 1}"] / "metrics.json").read_text())["verdict"]["status"]
        assert f"Verdict: {status.upper()}" in section.split("</div>")[0]
    # a run without a retrained reference is timed against training the original instead (f2; f1 has retraining)
    run0, run1 = html.split('id="run-1"')[0].split('id="run-0"')[1], html.split('id="run-1"')[1].split('id="run-2"')[0]
    assert "training the original" in run1 and "training the original" not in run0 and "retraining" in run0


def compare_tables(page: Path) -> list[str]:
    return page.read_text().split('id="compare"')[1].split("</section>")[0].split("</table>")[:-1]


def test_comparison_groups_runs_by_task_and_ranks_only_within_a_group(runs):
    """Issue 22: "best" went to a no-op run of another dataset and scenario; now each task is its own table."""
    tables = compare_tables(runs["page"])
    assert len(tables) == 3  # class-3 (f1, f3), random 10% (f2), trained (one)
    assert "forget class “3”" in tables[0] and "random 10%" in tables[1] and "trained models" in tables[2]
    assert [t.count("<tr>") for t in tables] == [3, 2, 2]  # header + its runs
    gaps = {k: json.loads((runs[k] / "metrics.json").read_text())["gap"]["avg"] for k in ("f1", "f3")}
    winner = min(gaps, key=gaps.get)
    assert tables[0].count('class="best"') == 1
    row = next(r for r in tables[0].split("<tr>") if 'class="best"' in r)
    assert f"#run-{0 if winner == 'f1' else 3}" in row
    assert 'class="best"' not in tables[1] + tables[2]  # a group of one ranks nothing
    for k in ("f1", "f3"):  # each row says its verdict
        assert json.loads((runs[k] / "metrics.json").read_text())["verdict"]["status"] in tables[0]


def test_method_figures_are_shown_as_diagnostics_not_as_success():
    """Issue 22: the discriminator score is a diagnostic (it scored a no-op run best), never the verdict."""
    from unlearnkit.report.figures import diagnostics

    meta = {"method": {"name": "adversarial"}}
    m = {"adversarial": {"steps": 30, "train_disc": {"forget_train": {"mean": 0.4955}}, "history": {"d_loss": [1, 2]},
                         "samples": [{"disc_score": 0.5}]}, "verdict": {"status": "forgotten"}}
    html = diagnostics(meta, m)
    assert "not evidence of forgetting" in html and "train_disc/forget_train/mean" in html and "0.4955" in html
    assert "history/" not in html and "samples/" not in html  # curves and per-image records live elsewhere
    assert diagnostics(meta, {"verdict": {}}) == "" and diagnostics({}, m) == ""


def test_forget_run_records_the_loss_curves_of_its_training_loops(runs):
    m = json.loads((runs["f1"] / "metrics.json").read_text())
    assert len(m["finetune"]["loss"]) == 2  # shown under "Training curves"


def test_report_without_the_data_still_renders_from_metrics(runs, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(runs["f2"], moved)
    meta = json.loads((moved / "meta.json").read_text())
    meta["data"]["spec"] = f"imagefolder:{tmp_path / 'gone'}"
    (moved / "meta.json").write_text(json.dumps(meta))
    page = unlearnkit.report(moved, tmp_path / "r.html")
    p = _parse(page)
    assert "Predictions could not be recomputed" in " ".join(p.text)
    assert {a["alt"] for a in p.all("img")} == {"Per-class test accuracy", "Training curves",
                                                "Confusion matrices (test set)"}


def test_cli_refuses_an_existing_output_unless_overwrite(runs, capsys):
    out = runs["dir"] / "cli.html"
    out.write_text("keep")
    assert main(["report", str(runs["one"]), "--out", str(out), "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_text() == "keep"
    assert main(["report", str(runs["one"]), "--out", str(out), "--quiet", "--overwrite"]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    with pytest.raises(UserError, match="does not exist"):
        unlearnkit.report([runs["dir"] / "nope"], runs["dir"] / "x.html")


# --------------------------------------------------------------------------- a real browser

PROBE_HEAD = """<script>window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || e.target.tagName)), true);
</script>"""
PROBE_TAIL = """<script>window.addEventListener('load', () => {
  const imgs = [...document.images];
  const painted = imgs.filter(i => {  // loaded, decoded and drawn: some pixel is not transparent
    if (!i.complete || i.naturalWidth === 0) return false;
    const c = document.createElement('canvas');
    c.width = i.naturalWidth; c.height = i.naturalHeight;
    const g = c.getContext('2d');
    g.drawImage(i, 0, 0);
    return g.getImageData(0, 0, c.width, c.height).data.some((v, k) => k % 4 === 3 && v > 0);
  });
  const d = document.createElement('div');
  d.id = 'probe';
  d.setAttribute('data-total', imgs.length);
  d.setAttribute('data-ok', painted.length);
  d.setAttribute('data-errors', window.__errors.join('|'));
  // issue 22: the verdict is on the page, and every comparison column is visible without scrolling
  const vs = [...document.querySelectorAll('.verdict')].filter(v => v.getBoundingClientRect().height > 0);
  d.setAttribute('data-verdicts', vs.length);
  const wide = [...document.querySelectorAll('table.compare')].filter(
    t => t.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5);
  d.setAttribute('data-overflow', wide.length);
  d.setAttribute('data-width', document.documentElement.clientWidth);
  document.body.appendChild(d);
});</script>"""


def _chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


@pytest.mark.skipif(_chromium() is None, reason="needs Chromium (`apt-get install chromium`; .ci/run installs it)")
def test_page_loads_in_headless_chromium_and_every_image_renders(runs, tmp_path):
    page = runs["page"].read_text(encoding="utf-8")
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("<head>", "<head>" + PROBE_HEAD, 1).replace("</body>", PROBE_TAIL + "</body>"),
                      encoding="utf-8")
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000", "--window-size=1400,900",
           "--dump-dom",
           probed.as_uri()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-2000:]
    probe = re.search(r'<div id="probe" data-total="(\d+)" data-ok="(\d+)" data-errors="([^"]*)" '
                      r'data-verdicts="(\d+)" data-overflow="(\d+)" data-width="(\d+)"', res.stdout)
    assert probe, f"the page did not finish loading: {res.stdout[-500:]} {res.stderr[-1500:]}"
    total, ok, errors = int(probe[1]), int(probe[2]), probe[3]
    assert total == page.count("<img ") > 0
    assert ok == total, f"{total - ok} images did not decode"
    assert errors == ""
    assert int(probe[4]) == 3  # one visible verdict per forget run
    assert int(probe[6]) <= 1400 and int(probe[5]) == 0, "a comparison table is wider than a 1400-px window"


# --------------------------------------------------------------------------- log.txt and TensorBoard

def test_each_run_directory_has_a_log(runs):
    log = (runs["f1"] / "log.txt").read_text()
    assert "finetune: epoch 2/2, mean loss" in log and "retrain: epoch 10/10" in log
    assert "unlearning with finetune" in log  # what was printed (even when quiet)
    for section in ("== log", "== timings", "== summary", "== configuration (meta.json)"):
        assert section in log
    assert "retraining the reference:" in log and "forget-set accuracy" in log and '"name": "finetune"' in log


def test_tensorboard_logs_every_loss_and_metric(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = unlearnkit.train("digits", "mlp", tmp_path / "run", epochs=2, batch_size=256, tensorboard=tmp_path / "tb")
    acc = EventAccumulator(str(tmp_path / "tb" / "run"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert [e.step for e in acc.Scalars("train/loss")] == [0, 1]  # live, one point per epoch
    m = json.loads((run / "metrics.json").read_text())
    assert acc.Scalars("metrics/test_acc")[0].value == pytest.approx(m["test_acc"])
    assert {"curves/train_loss", "metrics/retain_acc", "metrics/seconds"} <= tags


def test_tensorboard_missing_is_a_one_line_user_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were not installed
    with pytest.raises(UserError, match=r"pip install 'unlearnkit\[tb\]'"):
        unlearnkit.train("digits", "mlp", tmp_path / "run", epochs=1, tensorboard=tmp_path / "tb")
    assert not (tmp_path / "run").exists()


def test_a_malformed_metrics_json_is_ignored_not_an_internal_error(runs, tmp_path):
    """Issue 19: a hand-edited metrics.json (a string where a number belongs) made `report` an internal error.
    Metrics are derived numbers: a malformed file is ignored as an unreadable one is, and the page still renders."""
    from unlearnkit.cli import main

    bad = tmp_path / "bad"
    shutil.copytree(runs["one"], bad)
    m = json.loads((bad / "metrics.json").read_text())
    (bad / "metrics.json").write_text(json.dumps({**m, "test_acc": "abc", "per_class_acc": {"test": "x"}}))
    assert main(["report", str(bad), "--out", str(tmp_path / "r.html"), "--quiet"]) == 0
    assert (tmp_path / "r.html").is_file()
