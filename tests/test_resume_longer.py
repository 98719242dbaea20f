"""A library caller who resumes a run with more epochs gets the schedule of the new length.

``fit(resume=..., epochs=2)`` after a 1-epoch run keeps the caller's schedule as built for
2 epochs, at the saved epoch; so 1 epoch and a resume to 2 equal 2 epochs straight (the
CLI's ``--resume --epochs`` goes through the same path).
"""

from __future__ import annotations

import numpy as np
from test_training import assert_same_weights, fit, tiny_setup

from minigrad.checkpoint import load_checkpoint
from minigrad.optim import CosineAnnealingLR


def _setup(epochs: int) -> dict:
    run = tiny_setup()
    run["schedule"] = CosineAnnealingLR(run["optimizer"], T_max=epochs)  # the run's length
    return run


def test_fit_resumed_with_more_epochs_replans_the_schedule(tmp_path) -> None:
    straight, split = tmp_path / "straight", tmp_path / "split"
    a_rows = fit(_setup(2), straight, epochs=2)
    fit(_setup(1), split, epochs=1)
    assert load_checkpoint(split / "last.npz")["epochs"] == 1
    b_rows = fit(_setup(2), split, epochs=2, resume=split / "last.npz")
    assert [r["lr"] for r in a_rows] == [r["lr"] for r in b_rows]
    assert b_rows[1]["lr"] > 0  # the 1-epoch cosine would have ended at 0
    a, b = load_checkpoint(straight / "last.npz"), load_checkpoint(split / "last.npz")
    assert a["schedule"] == b["schedule"] and b["epochs"] == 2
    assert_same_weights(a["model"], b["model"])


def test_a_resume_of_the_same_length_keeps_the_saved_schedule(tmp_path) -> None:
    """Same length: the checkpoint's schedule state is restored as saved (no re-planning)."""
    fit(_setup(3), tmp_path, epochs=1)
    saved = load_checkpoint(tmp_path / "last.npz")["schedule"]
    run = _setup(3)
    fit(run, tmp_path, epochs=1, resume=tmp_path / "last.npz")  # complete: restores only
    assert run["schedule"].state_dict() == saved
    np.testing.assert_allclose(run["optimizer"].param_groups[0]["lr"], saved["_last_lr"][0])
