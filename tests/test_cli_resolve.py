"""The command line's shared pieces (issue 21 §3, §6): the one validator factory, the
rank-aware console, and ``study`` resolving its config and device with ``train``'s code."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import googlenet
from minigrad.study import command as study_command
from minigrad.train import cli, parser
from minigrad.train.args import number, unit_interval
from minigrad.train.console import Console
from minigrad.train.resolve import resolve_config, resolve_device

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))
import small_cnn_digits  # noqa: E402


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        (cli.positive_int, "0", "must be >= 1, got 0"),
        (cli.positive_int, "1.5", "expected int, got '1.5'"),
        (cli.non_negative_int, "-1", "must be >= 0, got -1"),
        (cli.finite_float, "nan", "must be a finite number, got nan"),
        (cli.positive_float, "0", "must be > 0, got 0"),
        (cli.positive_float, "-inf", "must be a finite number, got -inf"),
        (cli.non_negative_float, "-0.5", "must be >= 0, got -0.5"),
        (unit_interval, "1", "must be in [0, 1), got 1"),
        (unit_interval, "x", "expected float, got 'x'"),
    ],
)
def test_every_numeric_flag_type_is_one_factory_with_one_line_messages(kind, text, message):
    with pytest.raises(argparse.ArgumentTypeError) as e:
        kind(text)
    assert str(e.value) == message


def test_the_factory_keeps_good_values_and_its_kind():
    assert cli.positive_int("3") == 3 and isinstance(cli.positive_int("3"), int)
    assert cli.finite_float("-2.5") == -2.5
    assert unit_interval("0") == 0.0 and unit_interval("0.999") == 0.999
    assert number(int, below=5)("4") == 4
    with pytest.raises(argparse.ArgumentTypeError, match="must be < 5, got 5"):
        number(int, below=5)("5")
    with pytest.raises(ValueError, match="not both"):
        number(int, at_least=0, above=0)


def test_the_help_names_each_flag_type(capsys):
    # argparse shows a type's __name__ in some messages: the factory's functions keep theirs
    assert cli.positive_int.__name__ == "positive_int" and unit_interval.__name__ == "unit_interval"
    assert (
        parser.build_parser(googlenet.APP).parse_args(["train", "--momentum", "0.5"]).momentum
        == 0.5
    )


def _fake_world(rank: int) -> SimpleNamespace:
    return SimpleNamespace(rank=rank, size=2, is_main=rank == 0)


def test_the_console_speaks_on_rank_0_only(capsys):
    for rank in (0, 1):
        console = Console(_fake_world(rank))
        console.say("hello")
        console.warn("warning: careful")
        console.stopping(FloatingPointError("loss is nan"))
    out, err = capsys.readouterr()
    assert out == "hello\n"
    assert err == "warning: careful\n[rank 1] stopped: loss is nan\n"
    assert Console(_fake_world(0)).bar is None and Console(_fake_world(1)).bar is False
    assert Console(_fake_world(0)).stream is None
    Console(_fake_world(1)).stream.write("nothing shows")  # a silent stream
    assert capsys.readouterr() == ("", "")


# the same flags, given to train and to study: a fresh model's config must be the same
FLAGS = [
    (googlenet.APP, []),
    (googlenet.APP, ["--width", "0.25", "--image-size", "24"]),
    (googlenet.APP, ["--dataset", "digits", "--stem", "imagenet", "--no-batch-norm", "--no-aux"]),
    (small_cnn_digits.SPEC, ["--channels", "6"]),
]


@pytest.mark.parametrize(("spec", "flags"), FLAGS)
def test_study_and_train_resolve_the_same_flags_to_the_same_config(spec, flags):
    train_args = parser.build_parser(spec).parse_args(["train", *flags])
    study_args = study_command.build_parser(spec).parse_args(flags)
    trained = resolve_config(train_args, spec)
    studied, info = study_command._config(study_args, spec, {})
    assert info.name == trained["dataset"]
    # a model option study does not take from the flags comes from spec.study_defaults
    own = {k for k in spec.study_defaults if getattr(study_args, k) is None}
    for key, value in studied.items():
        if key not in own:
            assert trained[key] == value, (key, trained[key], value)
    for key in ("dataset", "num_classes", "in_channels", "image_size", "class_names"):
        assert key in studied
    assert {k: studied[k] for k in own} == {k: spec.study_defaults[k] for k in own}


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "cpu:1"])
def test_study_and_train_resolve_a_device_the_same_way(device, tmp_path, capsys):
    with pytest.raises(ValueError) as e:
        resolve_device(device)
    app = googlenet.APP
    assert googlenet.main(["train", "--device", device, "--out", str(tmp_path / "t")]) == 2
    train_err = capsys.readouterr().err.strip()
    assert cli.main(["study", "--device", device, "--out", str(tmp_path / "s")], app) == 2
    study_err = capsys.readouterr().err.strip()
    assert train_err == study_err == f"error: {e.value}"
    assert not (tmp_path / "t").exists() and not (tmp_path / "s").exists()


def test_study_leaves_the_cpu_settings_as_they_were(monkeypatch, capsys):
    # train, eval and predict set up the CPU for training; study never did (its tables
    # would change in the 4th digit with the settings' float32 rounding), and still does not
    from minigrad import runtime

    calls = []
    monkeypatch.setattr(runtime, "configure_cpu_training", lambda threads=None: calls.append(1))
    assert resolve_device("cpu") == "cpu" and calls == [1]
    argv = ["--device", "cpu", "--batch-size", "0"]  # refused after the device is resolved
    assert study_command.main(argv, small_cnn_digits.SPEC) == 2
    assert "--batch-size must be >= 1" in capsys.readouterr().err
    assert calls == [1]
