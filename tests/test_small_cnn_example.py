"""examples/small_cnn_digits.py: another network through the same trainer and study tools."""

from __future__ import annotations

import ast
import importlib.util
import json
from pathlib import Path
from typing import Any

from minigrad.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "small_cnn_digits.py"
TINY = ["--limit", "64", "--batch-size", "16", "--channels", "4", "--no-plots"]


def example() -> Any:
    spec = importlib.util.spec_from_file_location("small_cnn_digits", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_it_trains_resumes_evaluates_and_studies_through_the_generic_tools(tmp_path, capsys):
    app = example()
    run = tmp_path / "run"
    assert app.main(["train", *TINY, "--epochs", "1", "--smoothing", "0.1", "--out", str(run)]) == 0
    assert app.main(["train", "--resume", str(run), "--epochs", "2"]) == 0
    ckpt = load_checkpoint(run / "last.npz")
    assert ckpt["epoch"] == 2 and ckpt["config"]["channels"] == 4
    assert ckpt["config"]["smoothing"] == 0.1  # the model's loss option, from its own flag
    assert "stem" not in ckpt["config"] and "aux_weight" not in ckpt["config"]
    assert {k.split(".")[0] for k in ckpt["model"]} == {"stem", "block", "conv", "head"}
    losses = [row["train_loss"] for row in ckpt["metrics"]]
    assert losses[1] < losses[0]
    out = capsys.readouterr().out
    assert "4 channels" in out and "resumed at epoch 2" in out
    assert app.main(["eval", str(run / "best.npz")]) == 0
    assert "digits test: top-1" in capsys.readouterr().out
    study = tmp_path / "study"
    argv = ["study", "--checkpoint", str(run / "last.npz"), "--batch-size", "8"]
    assert app.main([*argv, "--out", str(study), "--device", "cpu"]) == 0
    data = json.loads((study / "flow.json").read_text())
    assert data["terms"] == ["main"]
    assert [b["name"] for b in data["blocks"]] == ["block"]
    assert data["blocks"][0]["branches"] == ["near", "far"]
    assert abs(sum(data["blocks"][0]["share"].values()) - 1.0) < 1e-6
    assert (study / "study_branch_shares.png").stat().st_size > 1000
    assert "block.near" in [lay["name"] for lay in data["layers"]]


def test_it_copies_nothing_of_the_trainer_and_uses_no_googlenet() -> None:
    tree = ast.parse(EXAMPLE.read_text())
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert {"minigrad.train", "minigrad.train.spec"} <= imported
    assert not any("googlenet" in m for m in imported)
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert not defined & {"fit", "train_one_epoch", "evaluate", "gradient_flow", "build_parser"}
