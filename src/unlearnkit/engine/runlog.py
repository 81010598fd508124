"""The run log: status lines, epoch losses and timings of a command, kept for `log.txt` and TensorBoard.

Everything `say()` prints and every epoch `fit()` finishes is recorded here, quiet or not, so a run
directory explains itself later: `RunWriter.commit()` writes the lines recorded since it was created into
`log.txt`, together with the command, the machine, the configuration and the summary table.

TensorBoard is optional (`pip install 'unlearnkit[tb]'`): with `--tensorboard DIR`, every epoch loss is
logged live and, at the end, every scalar and every curve of metrics.json.
"""

from __future__ import annotations

import json
import platform
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from .._version import __version__
from ..errors import UserError

_T0 = time.perf_counter()
_LINES: list[str] = []
_COMMAND: list[str] | None = None
_TB: Any = None
_TB_STEPS: dict[str, int] = {}
_EPOCHS: list[tuple[str, float]] = []
_LIVE: TextIO | None = None
NOT_CURVES = ("per_class_acc", "confusion_test", "mia_loss_auc_ci")
X_AXES = ("step", "steps", "epoch", "epochs", "round", "rounds")  # counters: the x of a curve, not one


def set_command(argv: list[str]) -> None:
    """Remember the command line (the CLI calls this; the Python API leaves it unset)."""
    global _COMMAND
    _COMMAND = ["unlearnkit", *argv]


def log(msg: str) -> None:
    """Record one line, stamped with the seconds since the process started (and append it to the live log)."""
    global _LIVE
    for line in str(msg).splitlines() or [""]:
        _LINES.append(f"[{time.perf_counter() - _T0:8.1f}s] {line}")
        if _LIVE is not None:
            try:
                _LIVE.write(_LINES[-1] + "\n")
            except OSError:  # a full disk ends the live copy, never the run
                _LIVE = None


def write_as_you_go(path: Path, since: int = 0) -> None:
    """From now on, append every recorded line to `path` as it comes (first those since `mark()` gave `since`).

    Why: `log.txt` lands inside the run directory only when the run is complete, and a long job watched outside
    a terminal (nohup, CI) must be followable (`tail -f`) and must leave its story behind when it is killed.
    The checkpoint folder `.OUT.partial/` holds this file; it goes with that folder when the run completes."""
    global _LIVE
    stop_writing()
    try:
        live = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 (open until stop_writing)
        live.write("".join(line + "\n" for line in _LINES[since:]))
    except OSError:
        return
    _LIVE = live


def stop_writing() -> None:
    """Close the live log (the run's end, or another folder takes it over)."""
    global _LIVE
    if _LIVE is not None:
        try:
            _LIVE.close()
        except OSError:
            pass
        _LIVE = None


def mark() -> int:
    """A position in the log; `lines_since(mark)` returns what was recorded after it."""
    return len(_LINES)


def lines_since(start: int) -> list[str]:
    return _LINES[start:]


def epoch(desc: str, index: int, total: int, loss: float) -> None:
    """Record a finished epoch of a training loop (and log its loss to TensorBoard)."""
    log(f"{desc}: epoch {index}/{total}, mean loss {loss:.5f}")
    _EPOCHS.append((desc, loss))
    scalar(f"{desc}/loss", loss)


def epoch_mark() -> int:
    return len(_EPOCHS)


def losses_since(start: int) -> dict[str, list[float]]:
    """The epoch losses recorded after `epoch_mark()`, one curve per training loop ('finetune_loss': [...])."""
    out: dict[str, list[float]] = {}
    for desc, loss in _EPOCHS[start:]:
        out.setdefault(f"{desc}_loss", []).append(round(loss, 5))
    return out


# --------------------------------------------------------------------------- TensorBoard

def open_tensorboard(directory: str | Path) -> None:
    """Start logging scalars under `directory` (one TensorBoard run)."""
    global _TB
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise UserError("--tensorboard needs the tensorboard package: pip install 'unlearnkit[tb]'") from err
    close_tensorboard()
    _TB = SummaryWriter(log_dir=str(directory))
    _TB_STEPS.clear()


def scalar(tag: str, value: float, step: int | None = None) -> None:
    """Log one point of the curve `tag` (the next step, unless given); a no-op without TensorBoard."""
    if _TB is None:
        return
    if step is None:
        step = _TB_STEPS.get(tag, 0)
        _TB_STEPS[tag] = step + 1
    _TB.add_scalar(tag, float(value), step)


def close_tensorboard(metrics: dict | None = None) -> None:
    """Log every scalar (`metrics/...`) and curve (`curves/...`) of `metrics`, then close the writer."""
    global _TB
    if _TB is None:
        return
    for key, value in flat_scalars(metrics or {}).items():
        _TB.add_scalar(f"metrics/{key}", value, 0)
    for key, values in curves(metrics or {}).items():
        for i, v in enumerate(values):
            _TB.add_scalar(f"curves/{key}", v, i)
    _TB.close()
    _TB = None


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def flat_scalars(d: dict, prefix: str = "") -> dict[str, float]:
    """Every number in a nested dict, keyed by its slash-joined path (e.g. 'gap/avg')."""
    out: dict[str, float] = {}
    for k, v in d.items():
        if _is_num(v):
            out[prefix + str(k)] = float(v)
        elif isinstance(v, dict):
            out.update(flat_scalars(v, f"{prefix}{k}/"))
    return out


def curves(d: dict, prefix: str = "") -> dict[str, list[float]]:
    """Every list of at least two numbers in a nested dict (loss curves, per-round figures), by path.

    Per-class accuracies and confusion matrices are tables, not curves, and step / epoch counters are the
    x-axis of the curves beside them: all are left out (a counter drawn as a curve is a straight line that
    reads like a rising loss).
    """
    out: dict[str, list[float]] = {}
    for k, v in d.items():
        if k in NOT_CURVES or k in X_AXES:
            continue
        if isinstance(v, list) and len(v) >= 2 and all(_is_num(x) for x in v):
            out[prefix + str(k)] = [float(x) for x in v]
        elif isinstance(v, dict):
            out.update(curves(v, f"{prefix}{k}/"))
    return out


# --------------------------------------------------------------------------- log.txt

def render(start: int, meta: dict, metrics: dict, wall_seconds: float) -> str:
    """The text of `log.txt`: command, machine, log lines, timings, summary and full configuration.

    `meta` is whatever meta.json the run directory holds (a run's `RunMeta`, or a hypernetwork's, whose `seconds`
    is a table, not a number): the timings below are printed only when they are numbers."""
    from ..metrics.table import summary_table
    from ..runmeta import RunMeta
    from .device import device_name
    from .distributed import world_size

    cmd = shlex.join(_COMMAND) if _COMMAND else f"(Python API) {shlex.join(sys.argv)}"
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    m = RunMeta.of(meta)
    lines = [f"unlearnkit {__version__}: {m.kind if m else 'a'} run finished {when}",  # no meta.json: samples
             f"command: {cmd}",
             f"machine: {platform.platform()}, python {platform.python_version()}, device {device_name()}, "
             f"processes {world_size()}",
             "", "== log", *lines_since(start), "", "== timings",
             f"wall time of this command: {wall_seconds:.1f}s"]
    for key, label in (("seconds", "training / unlearning"), ("parent_seconds", "training of the input run")):
        if _is_num(meta.get(key)):
            lines.append(f"{label}: {meta[key]:.1f}s")
    if _is_num(metrics.get("reference", {}).get("seconds")):
        lines.append(f"retraining the reference: {metrics['reference']['seconds']:.1f}s")
    if metrics:
        name = m.method_name or "this run"
        lines += ["", "== summary", summary_table(metrics, name)]
    lines += ["", "== configuration (meta.json)", json.dumps(meta, indent=2, default=str)]
    return "\n".join(lines) + "\n"
