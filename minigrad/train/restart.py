"""What the training command and the launcher (``python -m minigrad.distributed.run``) tell
each other, so that a restarted job continues the run it was training.

The launcher makes a state folder and passes it to every rank in ``MINIGRAD_RUN_STATE``,
with the attempt number in ``MINIGRAD_RESTART_COUNT`` (0 for the first start). There:

* ``run.json``: rank 0 of ``train`` records its run folder once it has claimed it
  (:func:`record_run_folder`); a restarted ``train`` continues that folder
  (:func:`restart_args`): from its ``last.npz`` when there is one, else afresh in it;
* ``rank-R.json``: each rank's pid and host (written by :func:`minigrad.distributed.init`),
  so that the launcher can name the rank behind a pid in MPICH's report of a killed process;
* ``failure.json``: the first rank that ended the job and its exit code
  (:func:`minigrad.distributed.stop_job`).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from minigrad.distributed.world import RUN_STATE_ENV

__all__ = [
    "RESTART_ENV",
    "RUN_STATE_ENV",
    "read_state",
    "record_run_folder",
    "restart_args",
    "restart_count",
]

#: the attempt number the launcher started (0: the first start, 1: the first restart, ...)
RESTART_ENV = "MINIGRAD_RESTART_COUNT"


def restart_count() -> int:
    """The launcher's attempt number (0 when not restarted or not launched by it)."""
    value = os.environ.get(RESTART_ENV, "")
    return int(value) if value.isdigit() else 0


def _state_folder() -> Path | None:
    folder = os.environ.get(RUN_STATE_ENV)
    return Path(folder) if folder else None


def read_state(folder: str | os.PathLike, name: str) -> dict[str, Any] | None:
    """The JSON record ``name`` of a state folder (None if absent or unreadable)."""
    try:
        return json.loads((Path(folder) / name).read_text())
    except (OSError, ValueError):
        return None


def record_run_folder(out: Path) -> None:
    """Rank 0: record the run folder for the launcher (nothing without a launcher)."""
    folder = _state_folder()
    if folder is None:
        return
    tmp = folder / ".run.json.tmp"
    tmp.write_text(json.dumps({"out": str(Path(out).resolve())}))
    os.replace(tmp, folder / "run.json")


def restart_args(args: argparse.Namespace) -> argparse.Namespace:
    """``train``'s arguments on a launcher's restart: the recorded run folder is continued
    (``--resume`` it when it holds ``last.npz``, whatever the command line resumed from at
    first; else start afresh in it, replacing what the failed attempt left). Unchanged on
    the first start, without a launcher, or when the failed attempt recorded no folder."""
    if restart_count() == 0:
        return args
    folder = _state_folder()
    run = read_state(folder, "run.json") if folder is not None else None
    if run is None:  # the failed attempt stopped before it chose its folder
        return args
    out = Path(run["out"])
    if (out / "last.npz").exists():
        return argparse.Namespace(**{**vars(args), "resume": str(out), "out": str(out)})
    if args.resume:  # it had not written a checkpoint of its own yet: resume as it did
        return args
    return argparse.Namespace(**{**vars(args), "out": str(out), "overwrite": True})
