"""Help texts a first day reads (issue 17): the data tool's examples one a line and its
subcommands described, the examples' defaults shown, --data-dir's default as the docs say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import googlenet
from minigrad.data.__main__ import main as data_main

ROOT = Path(__file__).resolve().parent.parent


def test_the_data_tools_examples_are_one_a_line_and_its_commands_have_help(capsys):
    with pytest.raises(SystemExit):
        data_main(["--help"])
    out = capsys.readouterr().out
    lines = out.splitlines()
    for example in ("list", "download cifar10 --root data", "bench digits --batch-size 128"):
        assert any(s.strip().startswith(f"python -m minigrad.data {example}") for s in lines)
    for command in ("list", "download", "bench"):
        assert any(s.strip().startswith(command + " ") for s in lines), (command, out)


@pytest.mark.parametrize("command", ["download", "bench"])
def test_the_data_subcommands_describe_themselves_and_their_defaults(command, capsys):
    with pytest.raises(SystemExit):
        data_main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: 160)" in out and "~/.cache/minigrad" in out


@pytest.mark.parametrize(
    "script, default",
    [
        ("inception_backward.py", "(default: runs/inception_backward)"),
        ("aux_loss_study.py", "(default: 6)"),
        ("train_cifar10.py", "(default: data)"),
        ("train_imagenette.py", "(default: 40)"),
    ],
)
def test_the_examples_help_shows_the_defaults(script, default):
    out = subprocess.run([sys.executable, str(ROOT / "examples" / script), "--help"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert default in " ".join(out.split())


def test_data_dir_help_gives_the_documented_default(capsys):
    assert googlenet.main(["train", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "dataset folder (default: $MINIGRAD_DATA, else ~/.cache/minigrad)" in out
    docs = (ROOT / "docs" / "training.md").read_text()
    assert "| `--data-dir` | `$MINIGRAD_DATA` or `~/.cache/minigrad` |" in docs
