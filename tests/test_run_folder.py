"""A run folder belongs to one run, and the best weights are never lost (issue 16, §1-2).

Each run is a GoogLeNet of width 1/16 on 48 digits of 16x16 (3 steps an epoch, seconds).
Two-process cases run a real ``googlenet.py train`` in a child process that waits inside
its first step until the test lets it go.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import googlenet
from minigrad.checkpoint import load_checkpoint
from minigrad.train import run_folder

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--limit", "48", "--batch-size", "16", "--width", "0.0625", "--image-size", "16",
        "--no-plots"]  # fmt: skip
pytest.importorskip("fcntl", reason="run folders are locked with fcntl (POSIX)")

# a training that stops in its first step until the file argv[1] exists
WAITING = """
import sys, time, pathlib
from dataclasses import replace
import googlenet
go = pathlib.Path(sys.argv[1])
def waiting(outputs, target, **options):
    print("IN-STEP", flush=True)
    while not go.exists():
        time.sleep(0.02)
    return googlenet.loss_terms(outputs, target, **options)
googlenet.APP = replace(googlenet.APP, loss_terms=waiting)
sys.exit(googlenet.main(sys.argv[2:]))
"""


def start_training(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, Path]:
    """A child ``googlenet.py train ARGS`` that is inside its first step when this returns."""
    go = tmp_path / f"go-{time.monotonic_ns()}"
    child = subprocess.Popen(
        [sys.executable, "-c", WAITING, str(go), "train", *args], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    for line in child.stdout:  # blocks until the child is in its first step
        if line.strip() == "IN-STEP":
            return child, go
    child.wait()
    raise AssertionError(f"the child ended before its first step: {child.stderr.read()}")


def train(*args: str) -> int:
    return googlenet.main(["train", *TINY, *args])


# ---------------------------------------------------------------------------- 1. one run
def test_resume_into_another_runs_folder_is_refused_naming_both(tmp_path, capsys) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert train("--epochs", "1", "--out", str(a)) == 0
    assert train("--epochs", "1", "--seed", "1", "--out", str(b)) == 0
    before = {p.name: p.read_bytes() for p in b.iterdir()}
    capsys.readouterr()
    rc = googlenet.main(["train", "--resume", str(a / "last.npz"), "--out", str(b),
                         "--epochs", "2"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert str(a) in err[0] and f"--out {b} holds another run" in err[0]
    assert {p.name: p.read_bytes() for p in b.iterdir()} == before  # B is untouched
    # an empty --out continues a copy of A there; A itself is untouched
    a_last = (a / "last.npz").read_bytes()
    copy = tmp_path / "copy"
    rc = googlenet.main(["train", "--resume", str(a), "--out", str(copy), "--epochs", "2"])
    assert rc == 0 and (a / "last.npz").read_bytes() == a_last
    assert load_checkpoint(copy / "last.npz")["epoch"] == 2
    config = json.loads((copy / "config.json").read_text())
    assert config["run_id"] == json.loads((a / "config.json").read_text())["run_id"]


def test_a_second_training_in_the_same_folder_fails_at_once_naming_the_holder(
    tmp_path, capsys
) -> None:
    out = tmp_path / "c"
    child, go = start_training(tmp_path, *TINY, "--epochs", "1", "--out", str(out))
    try:
        for extra in ([*TINY, "--epochs", "1", "--out", str(out)], ["--resume", str(out)]):
            capsys.readouterr()
            began = time.monotonic()
            assert googlenet.main(["train", *extra]) == 2
            assert time.monotonic() - began < 30  # at once, not after a training
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1, err
            assert f"{out} is in use by another run (process {child.pid} holds" in err[0]
        assert sorted(p.name for p in out.iterdir()) == [".lock", "config.json"]
    finally:
        go.touch()
        printed, errors = child.communicate(timeout=120)
    assert child.returncode == 0, errors
    assert "checkpoints in" in printed
    assert sorted(p.name for p in out.iterdir()) == [
        "best.npz", "config.json", "last.npz", "metrics.csv", "metrics.json"
    ]  # fmt: skip


def test_a_run_killed_before_its_first_checkpoint_resumes_from_its_config(tmp_path, capsys) -> None:
    """kill -9 in the first step: config.json and a stale .lock are left; the kernel has
    released the lock, and --resume starts the run from its config."""
    out = tmp_path / "k"
    child, _ = start_training(tmp_path, *TINY, "--epochs", "1", "--seed", "3", "--out", str(out))
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    assert sorted(p.name for p in out.iterdir()) == [".lock", "config.json"]
    assert googlenet.main(["train", "--resume", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "holds no checkpoint yet" in printed and "final test accuracy" in printed
    ckpt = load_checkpoint(out / "last.npz")
    assert ckpt["epoch"] == 1 and ckpt["config"]["seed"] == 3  # its own config
    assert not (out / ".lock").exists()


def test_a_folder_left_by_a_killed_run_can_be_reused_without_overwrite(tmp_path) -> None:
    out = tmp_path / "k"
    child, _ = start_training(tmp_path, *TINY, "--epochs", "1", "--out", str(out))
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    assert train("--epochs", "1", "--seed", "5", "--out", str(out)) == 0
    assert load_checkpoint(out / "last.npz")["config"]["seed"] == 5


# ---------------------------------------------------------------------------- 2. best weights
def failing_save(monkeypatch: pytest.MonkeyPatch, when: Any, error: BaseException) -> None:
    """``RunFolder.save`` raises ``error`` on the first save for which ``when(name, ckpt)``."""
    real, state = run_folder.save_checkpoint, {"done": False}

    def save(path: Any, **ckpt: Any) -> None:
        if not state["done"] and when(Path(path).name, ckpt):
            state["done"] = True
            raise error
        real(path, **ckpt)

    monkeypatch.setattr(run_folder, "save_checkpoint", save)


@pytest.mark.parametrize(
    "error", [KeyboardInterrupt(), OSError(28, "No space left on device")], ids=["ctrl-c", "disk"]
)
def test_the_recorded_best_always_names_a_file_that_exists(
    error, tmp_path, monkeypatch, capsys
) -> None:
    out = tmp_path / "r"
    failing_save(monkeypatch, lambda name, ckpt: name == "best.npz", error)
    assert train("--epochs", "2", "--out", str(out)) in (2, 130)
    last = load_checkpoint(out / "last.npz") if (out / "last.npz").exists() else None
    if last is not None and last["best"] > -1:  # a best score is recorded: its file exists
        assert (out / "best.npz").exists()
    monkeypatch.undo()
    assert googlenet.main(["train", "--resume", str(out), "--epochs", "2"]) == 0
    assert (out / "best.npz").exists()
    best, last = load_checkpoint(out / "best.npz"), load_checkpoint(out / "last.npz")
    assert best["best"] == last["best"] == max(r["val_acc"] for r in best["metrics"])
    capsys.readouterr()
    assert googlenet.main(["eval", str(out)]) == 0
    captured = capsys.readouterr()
    assert "best.npz" in captured.out and "note:" not in captured.err


def test_eval_of_a_folder_without_best_npz_says_it_uses_last_npz(tmp_path, capsys) -> None:
    out = tmp_path / "r"
    assert train("--epochs", "1", "--out", str(out)) == 0
    (out / "best.npz").unlink()
    capsys.readouterr()
    assert googlenet.main(["eval", str(out)]) == 0
    assert f"note: {out} has no best.npz; using last.npz" in capsys.readouterr().err


def interrupt_at(monkeypatch: pytest.MonkeyPatch, call: int) -> None:
    """SIGINT to this process in the ``call``-th loss evaluation (as a Ctrl-C would)."""
    calls = {"n": 0}

    def loss(outputs: Any, target: Any, **options: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == call:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        return googlenet.loss_terms(outputs, target, **options)

    monkeypatch.setattr(googlenet, "APP", replace(googlenet.APP, loss_terms=loss))


@pytest.mark.parametrize("presses", [1, 2])
def test_more_ctrl_c_during_the_interrupts_save_never_claim_a_save_that_did_not_happen(
    presses, tmp_path, monkeypatch, capsys
) -> None:
    """One more Ctrl-C while last.npz is written is held back (the save completes); two
    more abandon it, and then the message says that last.npz was NOT saved."""
    out = tmp_path / "r"
    interrupt_at(monkeypatch, 2)  # Ctrl-C in the 2nd step of epoch 1
    real = run_folder.save_checkpoint

    def pressing(path: Any, **ckpt: Any) -> None:
        for _ in range(presses):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        real(path, **ckpt)

    monkeypatch.setattr(run_folder, "save_checkpoint", pressing)
    assert train("--epochs", "1", "--out", str(out)) == 130
    printed = capsys.readouterr().out
    assert "still writing" in printed
    if presses == 1:
        assert "interrupted: saved" in printed
        assert load_checkpoint(out / "last.npz")["interrupted"] is True
    else:
        assert "saved " not in printed.replace("NOT saved", "")
        assert "last.npz was NOT saved (a second interrupt); no checkpoint was written" in printed
        assert not (out / "last.npz").exists()
        assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_the_interrupt_message_counts_steps_within_the_epoch(tmp_path, monkeypatch, capsys):
    out = tmp_path / "r"
    interrupt_at(monkeypatch, 6)  # calls 1-3: epoch 1, 4: its evaluation, 5-6: epoch 2
    assert train("--epochs", "2", "--out", str(out)) == 130
    printed = capsys.readouterr().out
    assert "at epoch 2, step 1 of the epoch (step 4 of the run); continue with" in printed
    saved = load_checkpoint(out / "last.npz")
    assert saved["epoch"] == 1 and saved["step"] == 4


def test_fit_locks_its_folder_too_and_gives_it_back(tmp_path) -> None:
    lock = run_folder.RunLock.acquire(tmp_path / "f")
    try:
        again = run_folder.RunLock.acquire(tmp_path / "f")  # re-entrant in one process
        again.release()
        assert (tmp_path / "f" / ".lock").read_text().strip() == str(os.getpid())
    finally:
        lock.release()
    assert not (tmp_path / "f").exists()  # created by the lock, empty: removed
    shutil.rmtree(tmp_path, ignore_errors=True)
