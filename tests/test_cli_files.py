"""The command line against files that could steer it, flags that could exhaust the
machine, and the smaller faults of issue 16 (§4, §6, §7, §8) and issue 17 (§5).

Every run is a GoogLeNet of width 1/16 on a few dozen 16x16 digits (seconds each).
"""

from __future__ import annotations

import errno
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import googlenet
import minigrad.data
from minigrad.checkpoint import load_checkpoint, save_checkpoint
from minigrad.data import ArrayDataset
from minigrad.train import memory

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--limit", "48", "--batch-size", "16", "--width", "0.0625", "--image-size", "16",
        "--no-plots"]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """One finished 1-epoch run folder (read-only: copy it before changing it)."""
    out = tmp_path_factory.mktemp("files") / "run"
    assert googlenet.main(["train", *TINY, "--epochs", "1", "--out", str(out)]) == 0
    return out


def crafted(run: Path, tmp_path: Path, **config: Any) -> Path:
    """A copy of ``run``'s last.npz whose run config has ``config`` changed."""
    ckpt = load_checkpoint(run / "last.npz")
    ckpt["config"] = {**ckpt["config"], **config}
    path = tmp_path / "crafted" / "last.npz"
    path.parent.mkdir(exist_ok=True)
    save_checkpoint(path, **ckpt)
    return path


def one_error_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert "Traceback" not in err[0] and "[Errno" not in err[0]
    return err[0]


def no_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a dataset fails the test: the check must come before it."""

    def loading(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the dataset was loaded before the memory check")

    monkeypatch.setattr(minigrad.data, "get_dataset", loading)


# ---------------------------------------------------------------------------- §4 memory
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--image-size", "4096"], "--image-size 4096: the digits images would take about"),
        (["--image-size", "100000"], "--image-size 100000: the digits images would take about"),
        (["--image-size", "2048", "--limit", "4", "--batch-size", "4"],
         "--image-size 2048: the digits images"),
    ],
)  # fmt: skip
def test_every_flag_that_scales_memory_is_checked_before_anything_is_allocated(
    flags, message, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setattr(memory, "available_memory", lambda device: 8 * 10**9)
    no_data(monkeypatch)
    out = tmp_path / "r"
    assert googlenet.main(["train", *TINY, *flags, "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert message in line and "8.00 GB is available" in line
    fits = int(line.rsplit("largest --image-size that fits is about ", 1)[1])
    assert 16 < fits < int(flags[1])
    assert not out.exists()  # a refused command leaves no folder


def test_a_large_image_size_that_fits_the_data_is_checked_for_the_step(
    tmp_path, monkeypatch, capsys
) -> None:
    """The step at --image-size 512 is estimated from probes of at most 256 pixels
    (scaled by the area), never by running the model at the full size."""
    monkeypatch.setattr(memory, "available_memory", lambda device: 8 * 10**9)
    monkeypatch.setattr(memory, "PROBE_IMAGE_SIZE", 32)  # keep the probes tiny
    no_data(monkeypatch)
    flags = ["--image-size", "512", "--batch-size", "512", "--width", "1"]
    assert googlenet.main(["train", *TINY, *flags, "--out", str(tmp_path / "r")]) == 2
    line = one_error_line(capsys)
    assert "--width 1 --batch-size 512 --image-size 512: a training step needs about" in line
    assert "the largest --image-size is " in line


def test_a_checkpoint_declaring_absurd_sizes_is_one_line(run, tmp_path, capsys) -> None:
    huge = crafted(run, tmp_path, num_classes=2**40)
    image = tmp_path / "x.png"
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(image)
    for argv in (["eval", str(huge)], ["predict", "--resume", str(huge), str(image)],
                 ["train", "--resume", str(huge), "--epochs", "2"]):  # fmt: skip
        assert googlenet.main(argv) == 2, argv
        line = one_error_line(capsys)
        assert "num_classes 1099511627776, but digits has 10" in line and str(huge) in line
    wide = crafted(run, tmp_path, width=1000.0)
    assert googlenet.main(["eval", str(wide)]) == 2
    assert "its config describes a model of about" in one_error_line(capsys)


# ---------------------------------------------------------------------------- §6 files
def test_predict_prints_a_checkpoints_class_names_escaped(run, tmp_path, capsys) -> None:
    hostile = ["\x1b]0;pwned\x07", "\x1b[2J", *map(str, range(2, 10))]
    path = crafted(run, tmp_path, class_names=hostile)
    image = tmp_path / "x.png"
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(image)
    assert googlenet.main(["predict", "--resume", str(path), "--top", "10", str(image)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b]0;pwned\\x07" in out and "\\x1b[2J" in out


def test_a_checkpoints_data_dir_and_download_are_never_used(
    run, tmp_path, monkeypatch, capsys
) -> None:
    victim = tmp_path / "victim"
    path = crafted(run, tmp_path, data_dir=str(victim), download=True)
    asked = []
    real = minigrad.data.get_dataset

    def recording(name: str, **kwargs: Any) -> Any:
        asked.append((kwargs.get("root"), kwargs.get("download")))
        return real(name, **kwargs)

    monkeypatch.setattr(minigrad.data, "get_dataset", recording)
    assert googlenet.main(["eval", str(path)]) == 0
    assert googlenet.main(["train", "--resume", str(path), "--epochs", "2"]) == 0
    assert asked and all(a == (None, False) for a in asked), asked
    assert f"the run was started with --data-dir {victim}" in capsys.readouterr().err
    asked.clear()  # the user's own flag is used
    assert googlenet.main(["eval", str(path), "--data-dir", str(tmp_path)]) == 0
    assert asked == [(str(tmp_path), False)]


def test_another_programs_checkpoint_is_refused_in_one_line(tmp_path, capsys) -> None:
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import small_cnn_digits
    finally:
        sys.path.remove(str(ROOT / "examples"))
    out = tmp_path / "cnn"
    args = ["train", "--limit", "48", "--batch-size", "16", "--epochs", "1", "--no-plots"]
    assert small_cnn_digits.main([*args, "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["program"] == "small_cnn_digits.py" and config["model"] == "SmallCNN"
    capsys.readouterr()
    study = ["study", "--checkpoint", str(out), "--no-plots", "--out", str(tmp_path / "s")]
    for argv in (["eval", str(out)], ["train", "--resume", str(out), "--epochs", "2"], study):
        assert googlenet.main(argv) == 2
        line = one_error_line(capsys)
        assert "is a run of small_cnn_digits.py (model SmallCNN), not of googlenet.py" in line


@pytest.mark.parametrize("fault", ["memory", "missing dataset", "no gpu"])
def test_a_refused_command_leaves_no_out_folder(fault, tmp_path, monkeypatch, capsys) -> None:
    from minigrad import devices

    out = tmp_path / "new" / "run"
    flags = {"memory": ["--width", "100"], "missing dataset": ["--dataset", "cifar10",
             "--data-dir", str(tmp_path)], "no gpu": ["--device", "cuda"]}[fault]  # fmt: skip
    if fault == "memory":
        monkeypatch.setattr(memory, "available_memory", lambda device: 8 * 10**9)
    if fault == "no gpu" and devices.cuda_available():
        pytest.skip("a GPU is present")
    args = TINY[:-3] + ["--no-plots"] if fault != "memory" else TINY  # without --image-size
    assert googlenet.main(["train", *args, *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert not (tmp_path / "new").exists()


# ---------------------------------------------------------------------------- §7 empty splits
def empty_split(monkeypatch: pytest.MonkeyPatch, train: bool) -> None:
    real = minigrad.data.get_dataset

    def loading(name: str, **kwargs: Any) -> Any:
        if kwargs.get("train", True) == train:
            return ArrayDataset(np.zeros((0, 1, 16, 16), np.float32), np.zeros(0, np.int64))
        return real(name, **kwargs)

    monkeypatch.setattr(minigrad.data, "get_dataset", loading)


@pytest.mark.parametrize("split", ["test", "training"])
def test_an_empty_split_is_an_error(split, tmp_path, monkeypatch, capsys) -> None:
    empty_split(monkeypatch, train=split == "training")
    out = tmp_path / "r"
    args = [a for a in TINY if a not in ("--limit", "48")]
    assert googlenet.main(["train", *args, "--epochs", "1", "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert f"the {split} split of digits is empty" in line
    assert "batch-size 0" not in line and not out.exists()


def test_evaluate_refuses_an_empty_loader() -> None:
    from minigrad import nn
    from minigrad.train.loop import evaluate

    with pytest.raises(ValueError, match="evaluate: the loader yielded no images"):
        evaluate(nn.Linear(4, 3), [])


# ---------------------------------------------------------------------------- §8 smaller
def test_a_full_disk_at_start_names_the_file_and_leaves_no_temporary(
    tmp_path, monkeypatch, capsys
) -> None:
    real = Path.write_text

    def full(self: Path, data: str, *args: Any, **kwargs: Any) -> int:
        if "config.json" in self.name:
            real(self, data[:10], *args, **kwargs)  # a partial write, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    out = tmp_path / "r"
    assert googlenet.main(["train", *TINY, "--epochs", "1", "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert f"{out / 'config.json'}" in line and "No space left on device" in line
    assert not out.exists() or not [p for p in out.iterdir() if "tmp" in p.name]


def test_error_messages_never_start_with_errno(run, tmp_path, capsys) -> None:
    (tmp_path / "file.txt").write_text("x")
    out = tmp_path / "file.txt" / "confusion"  # a folder under a file: NotADirectoryError
    assert googlenet.main(["eval", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {out}: Not a directory"]


@pytest.mark.parametrize("batch_norm", [True, False])
def test_the_nan_stop_suggests_batch_norm_only_without_it(
    batch_norm, tmp_path, monkeypatch, capsys
) -> None:
    def exploding(outputs: Any, target: Any, **options: Any) -> Any:
        terms = googlenet.loss_terms(outputs, target, **options)
        return {**terms, "total": terms["total"] * float("nan")}

    monkeypatch.setattr(googlenet, "APP", replace(googlenet.APP, loss_terms=exploding))
    flag = "--batch-norm" if batch_norm else "--no-batch-norm"
    assert googlenet.main(["train", *TINY, flag, "--out", str(tmp_path / "r")]) == 3
    out = capsys.readouterr().out
    assert "stopped: the training loss is nan at epoch 1, step 1 of the epoch" in out
    assert ("use batch norm" in out) is not batch_norm


def test_numpy_floating_point_warnings_do_not_leak(tmp_path, monkeypatch, capsys) -> None:
    def overflowing(outputs: Any, target: Any, **options: Any) -> Any:
        np.exp(np.float32(1000))  # RuntimeWarning: overflow encountered in exp
        return googlenet.loss_terms(outputs, target, **options)

    monkeypatch.setattr(googlenet, "APP", replace(googlenet.APP, loss_terms=overflowing))
    assert googlenet.main(["train", *TINY, "--epochs", "1", "--out", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    assert "RuntimeWarning" not in err and "overflow" not in err


def test_a_copied_run_folder_keeps_working(run, tmp_path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    assert googlenet.main(["train", "--resume", str(copy), "--epochs", "2"]) == 0
    assert load_checkpoint(copy / "last.npz")["epoch"] == 2


def test_eval_of_a_library_checkpoint_takes_the_users_dataset(tmp_path, capsys) -> None:
    """``googlenet.fit`` records the architecture but no dataset: ``eval --dataset`` names it."""
    from minigrad import optim
    from minigrad.data import DataLoader, get_dataset

    model = googlenet.GoogLeNet(10, 1, stem="cifar", width=1 / 16)
    data = get_dataset("digits", image_size=16)
    loader = DataLoader(ArrayDataset(data.data[:16], data.targets[:16]), 16)
    opt = optim.SGD(model.parameters(), lr=0.01)
    googlenet.fit(model, loader, opt, epochs=1, out_dir=tmp_path / "lib", plots=False)
    assert googlenet.main(["eval", str(tmp_path / "lib")]) == 2
    line = one_error_line(capsys)
    assert "does not name its dataset" in line and "pass --dataset" in line
    given = ["--dataset", "digits", "--image-size", "16"]
    assert googlenet.main(["eval", str(tmp_path / "lib"), *given]) == 0
