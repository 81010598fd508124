"""Bad input: exit code 2, a one-line message naming the problem and the fix, nothing written or changed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from unlearnkit.cli import main

from .conftest import make_imagefolder, tree_hash


def run_bad(capsys, args: list[str], *expect: str) -> str:
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for e in expect:
        assert e in err, err
    return err


def _forget(run: Path, out: Path, *extra: str) -> list[str]:
    return ["forget", str(run), "--method", "finetune", "--out", str(out), "--quiet", *extra]


def test_unknown_class_lists_valid_ones(capsys, digits_run, tmp_path):
    before = tree_hash(digits_run)
    run_bad(capsys, _forget(digits_run, tmp_path / "o", "--forget-class", "elephant"), "elephant", "0, 1, 2")
    assert not (tmp_path / "o").exists() and tree_hash(digits_run) == before


def test_class_index_out_of_range(capsys, digits_run, tmp_path):
    run_bad(capsys, _forget(digits_run, tmp_path / "o", "--forget-class", "12"), "out of range", "0..9")
    assert not (tmp_path / "o").exists()


def test_empty_forget_set(capsys, digits_run, tmp_path):
    (tmp_path / "empty.txt").write_text("")
    run_bad(capsys, _forget(digits_run, tmp_path / "o", "--forget-indices", str(tmp_path / "empty.txt")), "empty")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("frac", ["0", "1", "1.5", "-0.2"])
def test_fraction_outside_open_interval(capsys, digits_run, tmp_path, frac):
    run_bad(capsys, _forget(digits_run, tmp_path / "o", f"--forget-random={frac}"), "outside (0, 1)")
    assert not (tmp_path / "o").exists()


def test_missing_or_incomplete_run_directory(capsys, digits_run, tmp_path):
    run_bad(capsys, _forget(tmp_path / "nope", tmp_path / "o", "--forget-class", "1"), "does not exist")
    broken = tmp_path / "broken"
    shutil.copytree(digits_run, broken)
    (broken / "model.safetensors").unlink()
    run_bad(capsys, _forget(broken, tmp_path / "o", "--forget-class", "1"), "incomplete", "model.safetensors")
    run_bad(capsys, ["evaluate", str(broken)], "incomplete")
    assert not (tmp_path / "o").exists()


def test_existing_output_without_overwrite(capsys, digits_run, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    run_bad(capsys, _forget(digits_run, out, "--forget-class", "1"), "already exists", "--overwrite")
    assert (out / "keep.txt").read_text() == "mine" and len(list(out.iterdir())) == 1


def test_unreadable_image_names_the_file(capsys, tmp_path):
    root = make_imagefolder(tmp_path / "imgs", {"a": 4, "b": 4})
    (root / "b" / "broken.png").write_bytes(b"not an image")
    run_bad(capsys, ["train", "--data", f"imagefolder:{root}", "--out", str(tmp_path / "o"), "--quiet"],
            "broken.png")
    assert not (tmp_path / "o").exists()


def test_model_class_count_differs_from_data(capsys, tmp_path):
    root = make_imagefolder(tmp_path / "imgs", {"a": 6, "b": 6, "c": 6})
    assert main(["train", "--data", f"imagefolder:{root}", "--arch", "mlp", "--epochs", "1", "--image-size", "8",
                 "--out", str(tmp_path / "run"), "--quiet"]) == 0
    make_imagefolder(root, {"a": 6, "b": 6, "c": 6, "d": 6})  # the data gained a class
    before = tree_hash(tmp_path / "run")
    run_bad(capsys, _forget(tmp_path / "run", tmp_path / "o", "--forget-class", "a"), "3 classes", "4")
    assert tree_hash(tmp_path / "run") == before and not (tmp_path / "o").exists()


def test_unknown_method_model_dataset_list_valid_ones(capsys, digits_run, tmp_path):
    run_bad(capsys, ["forget", str(digits_run), "--method", "magic", "--out", str(tmp_path / "o"),
                     "--forget-class", "1"], "unknown method 'magic'", "finetune", "retrain")
    run_bad(capsys, ["train", "--arch", "resnet-9000", "--out", str(tmp_path / "o")], "unknown model", "resnet18")
    run_bad(capsys, ["train", "--data", "imagenet-22k", "--out", str(tmp_path / "o")], "unknown dataset", "digits")
    run_bad(capsys, ["train", "--arch", "torchvision:nonet", "--out", str(tmp_path / "o")], "unknown torchvision")
    run_bad(capsys, ["bench", "nosuite", "--out", str(tmp_path / "o")], "unknown bench suite")
    assert not (tmp_path / "o").exists()


def test_usage_errors_are_one_line(capsys, tmp_path):
    run_bad(capsys, ["forget", "x", "--out", str(tmp_path / "o")], "required")
    run_bad(capsys, ["train", "--epochs", "many", "--out", str(tmp_path / "o")], "invalid int")
    run_bad(capsys, ["frobnicate"], "invalid choice")


def test_bad_set_value(capsys, digits_run, tmp_path):
    run_bad(capsys, _forget(digits_run, tmp_path / "o", "--forget-class", "1", "--set", "epochs=lots"), "epochs")
    run_bad(capsys, _forget(digits_run, tmp_path / "o", "--forget-class", "1", "--set", "warp=9"), "no setting")


def test_bench_only_seeds_must_be_seeds(capsys, tmp_path):
    run_bad(capsys, ["bench", "class", "--out", str(tmp_path / "b"), "--only-seeds", "one,2"],
            "'one,2' is not a list of seeds", "--only-seeds 1,2")
    assert not (tmp_path / "b").exists()


def test_no_command_writes_into_or_over_a_run_it_reads(capsys, digits_run, tmp_path):
    """Issue 19's three data-loss cases, and their relatives: refused before any work, the run byte-identical."""
    before = tree_hash(digits_run)
    run_bad(capsys, ["report", str(digits_run), "--out", str(digits_run / "meta.json"), "--overwrite", "--quiet"],
            "--out", "inside", "reads")
    run_bad(capsys, ["report", str(digits_run), "--out", str(digits_run / "report.html"), "--quiet"], "inside")
    run_bad(capsys, _forget(digits_run, tmp_path / "o", "--forget-class", "3", "--tensorboard", str(digits_run)),
            "--tensorboard", "inside")
    run_bad(capsys, _forget(digits_run, digits_run / "sub", "--forget-class", "3"), "--out", "inside")
    run_bad(capsys, _forget(digits_run, digits_run.parent, "--forget-class", "3", "--overwrite"),
            "contains", "--overwrite would delete")
    assert tree_hash(digits_run) == before and not (tmp_path / "o").exists()


@pytest.mark.parametrize("args, expect", [
    (["--seed", "-1"], "--seed -1 is out of range"),
    (["--seed", "99999999999999999999999"], "--seed"),
    (["--clean-size", "0", "--backdoor"], "--clean-size 0"),
])
def test_ranges_are_checked_before_any_work(capsys, digits_run, tmp_path, args, expect):
    extra = args if "--backdoor" in args else [*args, "--forget-class", "3"]
    err = run_bad(capsys, _forget(digits_run, tmp_path / "o", *extra), expect, "from")
    assert "unlearning" not in err and not (tmp_path / "o").exists()


@pytest.mark.parametrize("args, expect", [
    (["--val-fraction", "0.999"], "--val-fraction 0.999"),
    (["--seed", "4294967296"], "--seed"),
    (["--lr", "nan"], "--lr nan"),
    (["--epochs", "0"], "--epochs 0"),
    (["--threads", "0"], "--threads 0"),
])
def test_train_ranges(capsys, tmp_path, args, expect):
    run_bad(capsys, ["train", "--out", str(tmp_path / "o"), "--quiet", *args], expect)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args, expect", [(["--method", "bogus"], "bogus"), (["--forget-class", "99"], "99"),
                                          (["--method", "ibau"], "does not forget classes")])
def test_demo_checks_its_arguments_before_training(capsys, tmp_path, args, expect):
    run_bad(capsys, ["demo", "--out", str(tmp_path / "d"), "--quiet", *args], expect)
    assert not (tmp_path / "d").exists()


def test_a_second_command_on_the_same_out_is_refused_and_unusable_outputs_fail_first(capsys, digits_run, tmp_path):
    """Issue 19: two commands writing one --out collided (or the later silently replaced the earlier); an
    output that cannot be written failed only after the training."""
    from unlearnkit.checks import lock_output, release_outputs

    out = tmp_path / "o"
    lock_output(out)  # another command holds it
    try:
        run_bad(capsys, _forget(digits_run, out, "--forget-class", "3"), "another unlearnkit command", "--out")
    finally:
        release_outputs()
    assert not out.exists() and not list(tmp_path.glob(".o*"))
    (tmp_path / "file").write_text("x")
    run_bad(capsys, ["train", "--out", str(tmp_path / "file" / "run"), "--quiet"], "is not a folder")
    run_bad(capsys, ["train", "--out", str(tmp_path / ("n" * 250)), "--quiet"], "longer than 200 bytes")
    run_bad(capsys, ["train", "--out", "/proc/x", "--quiet"], "/proc/x")
    run_bad(capsys, ["train", "--out", os.fsdecode(bytes(tmp_path / "o") + b"\xff"), "--quiet"], "not valid UTF-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.parametrize("args, expect", [
    (["bench", "class", "--reuse-only", "--set", "epochs=abc", "quick=true"], "epochs=abc is not a whole number"),
    (["bench", "class", "--reuse-only", "--set", "epochs=nan", "quick=true"], "epochs=nan"),
    (["bench", "backdoor", "--reuse-only", "--set", "clean=abc", "quick=true"], "clean=abc"),
    (["bench", "random", "--reuse-only", "--set", "fraction=abc", "quick=true"], "fraction=abc is not a number"),
    (["bench", "class", "--reuse-only", "--set", "bogus=1", "quick=true"], "no setting 'bogus'"),
    (["bench", "backdoor-cifar10", "--reuse-only", "--set", "ratio=2"], "ratio=2 is out of range"),
    (["train", "--arch", "mlp", "--arch-kwargs", "hidden=0", "--epochs", "1"], "hidden=0"),
    (["train", "--arch", "mlp", "--arch-kwargs", "depth=-1", "--epochs", "1"], "depth=-1"),
])
def test_former_internal_errors_are_one_line_errors(capsys, tmp_path, args, expect):
    """Issue 19: each of these was an internal error (exit 1) or silently accepted."""
    run_bad(capsys, [*args, "--out", str(tmp_path / "o"), "--quiet"], expect)
    assert not list(tmp_path.iterdir())


def test_unknown_optimizer_is_a_user_error_and_leaves_nothing(capsys, digits_run, tmp_path):
    run_bad(capsys, _forget(digits_run, tmp_path / "o", "--forget-class", "3", "--set", "optimizer=bogus"),
            "optimizer=bogus", "sgd or adam")
    assert not list(tmp_path.iterdir())


def test_leftovers_of_a_killed_final_write_are_swept_and_never_read_as_runs(capsys, digits_run, tmp_path):
    """Issue 19: `.OUT.tmp-*` folders left by a kill during the final write were never cleaned, and `evaluate`
    accepted one as a run."""
    left = tmp_path / ".o.tmp-0123abcd"
    shutil.copytree(digits_run, left)
    run_bad(capsys, ["evaluate", str(left), "--quiet"], "unfinished output of an interrupted command")
    assert main(_forget(digits_run, tmp_path / "o", "--forget-class", "3", "--set", "epochs=1")) == 0
    assert not left.exists() and (tmp_path / "o" / "model.safetensors").is_file()


@pytest.mark.parametrize("cmd, shown", [
    (["train"], ["(default: 5)", "(default: 0.05)", "(default: 0.1)", "(default: digits)"]),
    (["forget"], ["(default: 0)", "(default: all of it)"]),
    (["bench"], ["(default: 3)"]),
])
def test_help_shows_every_default(capsys, cmd, shown):
    with pytest.raises(SystemExit) as ended:
        main([*cmd, "--help"])
    assert ended.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for s in shown:
        assert s in text, s
    assert "(default: None)" not in text and "(default: False)" not in text


def test_every_cli_option_reaches_its_api_function():
    """`cli.call_api` passes each option to the API parameter of the same name: an option that matches none (and
    is not one the command reads itself) would be dropped silently, so every one is accounted for here."""
    import argparse
    import inspect

    from unlearnkit.arguments import build_parser
    from unlearnkit.bench import run_suite
    from unlearnkit.hyperforget import sample, train_hypernet
    from unlearnkit.pipeline import evaluate, forget, import_checkpoint, predict, train
    from unlearnkit.report import report

    apis = {"train": train, "import": import_checkpoint, "forget": forget, "evaluate": evaluate, "predict": predict,
            "report": report, "hyperforget train": train_hypernet, "hyperforget sample": sample, "bench": run_suite}
    # read by the command itself (printing, process set-up) or handed over under another name (`call_api`'s `given`)
    own = {"quiet", "threads", "json"}
    renamed = {"train": {"poison_set", "no_augment"}, "import": {"no_augment"}, "forget": {"no_guard"},
               "bench": {"suite"}}

    def parsers(p: argparse.ArgumentParser, prefix: str = ""):
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from parsers(sub, f"{prefix}{name} ")
        if prefix:
            yield prefix.strip(), p

    checked = set()
    for name, p in parsers(build_parser()):
        if name not in apis:
            continue
        dests = {a.dest for a in p._actions if a.dest != "help" and not isinstance(a, argparse._SubParsersAction)}
        params = set(inspect.signature(apis[name]).parameters)
        assert dests - params - own - renamed.get(name, set()) == set(), name
        checked.add(name)
    assert checked == set(apis)


@pytest.mark.parametrize("wd", ["-1", "nan", "inf"])
def test_negative_or_non_finite_weight_decay_is_refused(capsys, tmp_path, wd):
    run_bad(capsys, ["train", "--data", "digits", "--arch", "mlp", "--epochs", "1", "--weight-decay", wd,
                     "--out", str(tmp_path / "o"), "--quiet"], "--weight-decay finite >= 0")
    assert not (tmp_path / "o").exists()


def test_weight_decay_is_part_of_the_recipe_retrain_repeats(tmp_path):
    """A model trained with --weight-decay 0 (Adam as Keras trains) records it; `retrain` reads the recipe back."""
    import json

    from unlearnkit.engine.train import TrainConfig

    out = tmp_path / "r"
    assert main(["train", "--data", "digits", "--arch", "mlp", "--epochs", "1", "--optimizer", "adam", "--lr", "1e-3",
                 "--weight-decay", "0", "--out", str(out), "--quiet"]) == 0
    recipe = TrainConfig.from_dict(json.loads((out / "meta.json").read_text())["train"])
    assert recipe.weight_decay == 0.0 and recipe.optimizer == "adam"
    assert TrainConfig().weight_decay == 5e-4  # the default is unchanged for everyone else


def test_no_augment_trains_on_the_images_as_they_are_and_retrain_repeats_it(tmp_path, monkeypatch):
    """`train --no-augment` records augment=false in the recipe, and `fit` then asks its batches for no crop or
    flip (every batch of the run, not just the flag in meta.json); without the flag the dataset's augmentation is
    used; `import --no-augment` records the same for `retrain`."""
    import json

    from unlearnkit.data import bundle as bundle_mod
    from unlearnkit.engine.train import TrainConfig

    asked = []
    real = bundle_mod.Part.batches

    def spy(self, *args, **kwargs):
        if kwargs.get("shuffle"):  # training batches (evaluation reads in order)
            asked.append(kwargs.get("augment", False))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(bundle_mod.Part, "batches", spy)
    plain, aug = tmp_path / "plain", tmp_path / "aug"
    assert main(["train", "--data", "digits", "--arch", "mlp", "--epochs", "2", "--no-augment", "--out", str(plain),
                 "--quiet"]) == 0
    assert asked and not any(asked)
    assert TrainConfig.from_dict(json.loads((plain / "meta.json").read_text())["train"]).augment is False
    asked.clear()
    assert main(["train", "--data", "digits", "--arch", "mlp", "--epochs", "1", "--out", str(aug), "--quiet"]) == 0
    assert asked and all(asked)
    assert json.loads((aug / "meta.json").read_text())["train"]["augment"] is True
    imported = tmp_path / "imp"
    assert main(["import", str(plain / "model.safetensors"), "--arch", "mlp", "--data", "digits", "--epochs", "2",
                 "--no-augment", "--out", str(imported), "--quiet"]) == 0
    assert json.loads((imported / "meta.json").read_text())["train"]["augment"] is False
