"""A run's folder: choosing it, claiming it before training, and the files written into it.

``run_folder_path`` picks the folder, ``claim_run_folder`` refuses one that already holds a
run and checks it can be written, ``write_config`` records the run config, and
:class:`RunFolder` writes the checkpoints, the metrics log and the curves while training.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from minigrad.checkpoint import save_checkpoint
from minigrad.train.metrics import MetricLog

__all__ = ["RUN_FILES", "RunFolder", "claim_run_folder", "run_folder_path", "write_config"]


def run_folder_path(out: str | None, dataset: str) -> Path:
    """``out``, or the first free ``runs/DATASET``, ``runs/DATASET-2``, ... ."""
    if out:
        return Path(out)
    base = Path("runs") / dataset
    path, k = base, 1
    while path.exists():
        k += 1
        path = base.with_name(f"{dataset}-{k}")
    return path


#: the files that make a folder hold a run (curves.png is redrawn from metrics)
RUN_FILES = ("config.json", "last.npz", "best.npz", "metrics.csv", "metrics.json")


def claim_run_folder(out: Path, fresh: bool, overwrite: bool) -> None:
    """Make sure ``out`` can hold this run before anything is computed.

    A fresh run refuses a folder that already holds a run (unless ``overwrite``, which
    removes that run's files); any run checks the folder can be created and written.

    Raises:
        ValueError: the folder holds a run, or cannot be created or written (one line).
    """
    taken = [n for n in RUN_FILES if (out / n).exists()] if out.is_dir() else []
    if fresh and taken and not overwrite:
        raise ValueError(
            f"--out {out} already holds a run ({', '.join(taken)}); continue it with "
            f"--resume {out}, choose a new folder, or pass --overwrite to replace it"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ValueError(f"--out {out}: cannot write the run folder there "
                         f"({e.strerror or e})") from None  # fmt: skip
    if fresh and overwrite:
        for name in (*taken, "curves.png"):
            with contextlib.suppress(FileNotFoundError):
                (out / name).unlink()


def write_config(out: Path, cfg: dict[str, Any]) -> None:
    """Write the run config as ``config.json`` (atomically), before training starts."""
    tmp = out / ".config.json.tmp"
    tmp.write_text(json.dumps(cfg, indent=1, default=str))
    os.replace(tmp, out / "config.json")


class RunFolder:
    """A run's files: ``last.npz``/``best.npz``, ``metrics.csv``/``.json``, ``curves.png``.

    ``RunFolder(None)`` writes nothing (a library run without a folder).

    Args:
        path: the folder (created on the first write), or None.
        history: the metrics rows of a resumed run (the log is cut back to them).
        plots: redraw ``curves.png`` after every epoch (needs matplotlib).
    """

    def __init__(
        self, path: str | os.PathLike | None, history: Sequence[dict] = (), plots: bool = True
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.plots = plots
        self.log = MetricLog(self.path, resume=False) if self.path is not None else None
        if self.log is not None and history:
            self.log.rows = list(history)
            self.log.truncate(len(history))

    def file(self, name: str) -> Path | None:
        """The path of ``name`` in the folder (None without a folder)."""
        return self.path / name if self.path is not None else None

    def save(self, name: str, ckpt: dict[str, Any]) -> None:
        """Write a checkpoint (see :func:`make_checkpoint`) as ``name``."""
        if self.path is not None:
            self.path.mkdir(parents=True, exist_ok=True)  # Ctrl-C before the first epoch ends
            save_checkpoint(self.path / name, **ckpt)

    def append(self, row: dict[str, Any]) -> None:
        """Append an epoch's row to ``metrics.csv`` and ``metrics.json``."""
        if self.log is not None:
            self.log.append(row)

    def plot(self, history: list[dict[str, Any]]) -> None:
        """Redraw ``curves.png`` from the rows so far (when ``plots``)."""
        if self.path is not None and self.plots:
            from minigrad.train.plots import plot_curves  # noqa: PLC0415 - matplotlib

            plot_curves(history, self.path / "curves.png")
