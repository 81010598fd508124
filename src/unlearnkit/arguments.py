"""The `unlearnkit` command line's arguments: every subcommand, option, default and help text (`build_parser`).
`cli.py` runs the commands; this file only declares what they accept.
"""

from __future__ import annotations

import argparse

from .engine.train import TrainConfig
from .errors import UserError


class _Help(argparse.HelpFormatter):
    """`--help` with every option's default (argparse's own ArgumentDefaultsHelpFormatter skips options that
    have no help text and prints `None` and `False` defaults, which say nothing)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        silent = default is None or default is False or default == [] or default == argparse.SUPPRESS
        if "%(default)" in text or silent or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)".strip()


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2), like every other bad input."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (see `{self.prog} --help`)")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bars or status lines")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads for torch (default: torch's choice, all cores); give each of several jobs on "
                        "one machine its share, e.g. --threads 1 for two jobs on 2 cores")


def _resume(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run of the same command from its last checkpoint")


def _tensorboard(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tensorboard", metavar="DIR",
                   help="also log losses and metrics for TensorBoard under DIR/<run name> (needs unlearnkit[tb])")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="unlearnkit", description="Make a trained image classifier forget, and measure it.")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    d = sub.add_parser("demo", help="end-to-end on the embedded default (digits), < 2 min on a CPU")
    d.add_argument("--out", default="unlearnkit-demo", help="folder for the demo's runs and report")
    d.add_argument("--forget-class", default="3", help="the digit to forget")
    d.add_argument("--method", default=None,
                   help="unlearning method (default: the best available, see `unlearnkit list methods`)")
    _common(d)

    t = sub.add_parser("train", help="train a classifier (optionally with a backdoor) into a run directory")
    t.add_argument("--data", default="digits", help="dataset spec: digits, fashion-mnist, imagefolder:PATH, ...")
    t.add_argument("--arch", default="cnn-small", help="model name (see `unlearnkit list models`)")
    t.add_argument("--arch-kwargs", nargs="*", metavar="KEY=VALUE", help="model options, e.g. stem=cifar")
    t.add_argument("--out", required=True, help="the run directory to write (refused if it exists)")
    recipe = TrainConfig()
    t.add_argument("--epochs", type=int, help=f"training epochs (default: {recipe.epochs})")
    t.add_argument("--batch-size", type=int, help=f"batch size (default: {recipe.batch_size})")
    t.add_argument("--lr", type=float, help=f"learning rate, cosine schedule (default: {recipe.lr})")
    t.add_argument("--optimizer", choices=["sgd", "adam"], help=f"optimiser (default: {recipe.optimizer})")
    t.add_argument("--weight-decay", type=float, help=f"the optimiser's L2 penalty (default: {recipe.weight_decay})")
    t.add_argument("--no-augment", action="store_true",
                   help="train on the images as they are (default: the dataset's crop / flip augmentation)")
    t.add_argument("--precision", choices=["auto", "fp32", "bf16"],
                   help="auto (default): bf16 autocast and channels_last on a GPU, fp32 on the CPU")
    t.add_argument("--seed", type=int, default=0, help="seed of the split, the initialisation and the batches")
    t.add_argument("--data-root",
                   help="where datasets are read (default: $UNLEARNKIT_DATA, else ~/.cache/unlearnkit/data)")
    t.add_argument("--image-size", type=int, help="resize images to this side (default: the dataset's own size)")
    t.add_argument("--val-fraction", type=float, default=0.1,
                   help="share of the training split held out (clean sets of backdoor defences, guards)")
    t.add_argument("--poison", metavar="ATTACK", help="plant a backdoor (see `unlearnkit list attacks`)")
    t.add_argument("--target", type=int, default=0, help="the backdoor's target class")
    t.add_argument("--poison-ratio", type=float, default=0.1, help="share of the training set poisoned")
    t.add_argument("--all-to-all", action="store_true", help="all-to-all backdoor: class c goes to c + 1")
    t.add_argument("--poison-set", nargs="*", metavar="KEY=VALUE", help="attack options")
    _resume(t)
    _tensorboard(t)
    _common(t)

    im = sub.add_parser("import", help="make a run directory from your own trained model (a state_dict file)")
    im.add_argument("checkpoint", help=".safetensors, .pt or .pth state_dict (pickles are read weights-only)")
    im.add_argument("--arch", required=True, help="the architecture the weights belong to")
    im.add_argument("--arch-kwargs", nargs="*", metavar="KEY=VALUE")
    im.add_argument("--data", required=True, help="the dataset the model was trained on")
    im.add_argument("--out", required=True)
    im.add_argument("--data-root")
    im.add_argument("--image-size", type=int)
    im.add_argument("--val-fraction", type=float, default=0.1)
    im.add_argument("--epochs", type=int, help="the training recipe, repeated by `forget --retrain`")
    im.add_argument("--batch-size", type=int)
    im.add_argument("--lr", type=float)
    im.add_argument("--optimizer", choices=["sgd", "adam"])
    im.add_argument("--weight-decay", type=float)
    im.add_argument("--no-augment", action="store_true", help="the model was trained without crop / flip")
    im.add_argument("--seed", type=int, default=0)
    _common(im)

    f = sub.add_parser("forget", help="unlearn a class, samples or a backdoor; writes a new run directory")
    f.add_argument("run", help="the run directory of the model to unlearn from (never modified)")
    f.add_argument("--method", required=True, help="see `unlearnkit list methods --settings`")
    f.add_argument("--out", required=True, help="the run directory to write (refused if it exists)")
    g = f.add_mutually_exclusive_group(required=True)
    g.add_argument("--forget-class", metavar="C[,C...]", help="forget these classes (names or indices)")
    g.add_argument("--forget-random", type=float, metavar="FRAC", help="forget a random share of the training set")
    g.add_argument("--forget-indices", metavar="FILE",
                   help="forget these training-set indices (.txt one per line, .json list or .npy integers)")
    g.add_argument("--backdoor", action="store_true", help="remove the run's backdoor with a clean set only")
    f.add_argument("--clean-size", type=int,
                   help="backdoor: clean images drawn from the held-out split (default: all of it)")
    f.add_argument("--no-guard", action="store_true",
                   help="backdoor removal: train on the whole clean set and return the defence's final model, "
                        "even if its held-out clean accuracy collapsed (the guard is on by default)")
    f.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", dest="settings",
                   help="the method's settings (see `unlearnkit list methods --settings`)")
    r = f.add_mutually_exclusive_group()
    r.add_argument("--reference", metavar="RUN", help="a retrained run to compare with")
    r.add_argument("--retrain", action="store_true", help="also retrain without the forget set, to compare with")
    f.add_argument("--seed", type=int, default=0, help="seed of the method's randomness")
    f.add_argument("--data-root", help="where datasets are read (default: as the run was trained)")
    _resume(f)
    _tensorboard(f)
    _common(f)

    e = sub.add_parser("evaluate", help="recompute a run's metrics (writes nothing)")
    e.add_argument("run")
    e.add_argument("--reference", help="a retrained run to compare with (default: the run's own)")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    e.add_argument("--data-root")
    e.add_argument("--quiet", action="store_true")

    pr = sub.add_parser("predict", help="top-K classes of image files")
    pr.add_argument("run")
    pr.add_argument("images", nargs="+")
    pr.add_argument("--top", type=int, default=5, help="how many classes per image")
    pr.add_argument("--json", action="store_true", help="print JSON")
    pr.add_argument("--quiet", action="store_true")

    ls = sub.add_parser("list", help="what is available")
    ls.add_argument("what", choices=["methods", "attacks", "datasets", "models"])
    ls.add_argument("--settings", action="store_true",
                    help="with methods or attacks: every --set setting, its default and what it does")

    rp = sub.add_parser("report", help="one self-contained HTML page of one or several runs (plots embedded)")
    rp.add_argument("runs", nargs="+", metavar="RUN")
    rp.add_argument("--out", required=True, metavar="FILE.html")
    rp.add_argument("--data-root")
    rp.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    rp.add_argument("--quiet", action="store_true")

    h = sub.add_parser("hyperforget", help="train a diffusion hypernetwork once, then sample unlearned models")
    hs = h.add_subparsers(dest="hyperforget_command", parser_class=_Parser)
    ht = hs.add_parser("train", help="collect checkpoints per forgettable class and train the hypernetwork")
    ht.add_argument("run")
    ht.add_argument("--out", required=True)
    ht.add_argument("--variant", default="dihyfo-1", choices=["dihyfo-1", "dihyfo-2"],
                    help="conditioning: forget/retain loss prompts (dihyfo-1) or per-class loss prompts (dihyfo-2)")
    ht.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", dest="settings",
                    help="settings, e.g. steps=3000 runs_per_class=6 (see unlearnkit.hyperforget.HyperForgetConfig)")
    ht.add_argument("--seed", type=int, default=0)
    ht.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoints")
    ht.add_argument("--data-root")
    _common(ht)
    hp = hs.add_parser("sample", help="sample unlearned models for one forget request (ordinary run directories)")
    hp.add_argument("hypernet")
    hp.add_argument("--forget-class", required=True, metavar="C")
    hp.add_argument("--out", required=True)
    hp.add_argument("--n", type=int, default=1, help="samples; with n > 1, OUT/sample-0 ... OUT/sample-<n-1>")
    hp.add_argument("--forget-loss", type=float, help="prompted forget-set loss (default: as retraining)")
    hp.add_argument("--retain-loss", type=float, help="prompted retain-set loss (default: as retraining)")
    hp.add_argument("--start", choices=["scratch", "original"],
                    help="like a head retrained from scratch (default) or unlearned from the original head")
    hp.add_argument("--steps", type=int, help="denoising steps (default: the hypernetwork's)")
    hp.add_argument("--temperature", type=float, help="scale of the sampling noise (default: the hypernetwork's)")
    hp.add_argument("--seed", type=int, default=0)
    hp.add_argument("--reference", metavar="RUN", help="also write metrics.json against this retrained run")
    hp.add_argument("--evaluate", action="store_true", help="also write metrics.json")
    hp.add_argument("--data-root")
    _common(hp)

    b = sub.add_parser("bench", help="run a benchmark suite (tables of methods x scenarios x seeds)")
    b.add_argument("suite")
    b.add_argument("--out", required=True, help="folder for the suite's tables and runs")
    b.add_argument("--seeds", type=int, default=3, help="seeds per row (mean and std over them)")
    b.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", dest="settings",
                   help="the suite's settings, e.g. epochs=3 methods=finetune,scrub")
    add_parallel_bench_args(b)
    _common(b)
    return p


def seed_list(text: str) -> list[int]:
    """`--only-seeds 1,2` as a list of seeds (an argparse type: a bad value is a usage error, exit 2)."""
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of seeds: write e.g. --only-seeds 1,2")
    return seeds


def add_parallel_bench_args(p: argparse.ArgumentParser) -> None:
    """Flags that split a suite over processes (one per seed on a GPU, say) and read their rows back."""
    p.add_argument("--only-seeds", type=seed_list, default=None, metavar="S[,S...]",
                   help="run only these seeds (e.g. one process per seed; a last run over --seeds reads them back)")
    p.add_argument("--reuse-only", action="store_true",
                   help="run nothing: tabulate the rows that earlier invocations into --out finished (each row's "
                        "seed count is shown when some are missing)")
    p.add_argument("--machine", default=None, help="with --reuse-only: where the rows were run (default: here)")
