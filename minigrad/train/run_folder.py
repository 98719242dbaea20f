"""A run's folder: choosing it, claiming it before training, and the files written into it.

``run_folder_path`` picks the folder, ``claim_run_folder`` locks it for this process and
refuses one that holds another run, ``write_config`` records the run config, and
:class:`RunFolder` writes the checkpoints, the metrics log and the curves while training.

A run folder belongs to one run at a time: :class:`RunLock` holds an exclusive ``flock`` on
``FOLDER/.lock`` (which names the holder's PID) for the whole run. The kernel releases it
when the process ends, however it ends, so a stale lock never blocks; a second process is
refused at once. (Without ``fcntl``, e.g. on Windows, nothing is locked.)
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from minigrad.checkpoint import save_checkpoint
from minigrad.train.metrics import MetricLog

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "CHECKPOINTS",
    "LOCK_FILE",
    "RUN_FILES",
    "RunFolder",
    "RunLock",
    "claim_run_folder",
    "new_run_id",
    "read_config",
    "run_folder_path",
    "write_config",
]


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
#: a folder holds a run once it holds one of these; before (a run killed before its first
#: checkpoint: config.json, maybe metrics) it is started again from its config.json
CHECKPOINTS = ("last.npz", "best.npz")
LOCK_FILE = ".lock"


def new_run_id() -> str:
    """A fresh run's identity, recorded in its config (``run_id``): a resume checks it."""
    return secrets.token_hex(8)


class RunLock:
    """An exclusive lock on a run folder, held by this process until :meth:`release`.

    ``RunLock.acquire(folder)`` creates the folder (and its parents) when needed, then takes
    ``flock(LOCK_EX | LOCK_NB)`` on ``folder/.lock`` and writes this process's PID into it.
    Locks are re-entrant within a process (``fit`` inside the CLI's ``train`` shares the
    CLI's lock). :meth:`release` removes the lock file and, when nothing else was written,
    the folders that :meth:`acquire` created, so a refused command leaves nothing behind.
    """

    _held: dict[str, RunLock] = {}  # resolved folder -> this process's lock on it

    def __init__(self, folder: Path, fd: int | None, created: list[Path]) -> None:
        self.folder, self.fd, self.created, self.count = folder, fd, created, 1

    @classmethod
    def acquire(cls, folder: str | os.PathLike, flag: str = "--out") -> RunLock:
        """Lock ``folder`` for this process (creating it).

        Raises:
            ValueError: another process holds the folder (naming it and that process's
                PID), or the folder cannot be created or written (one line each).
        """
        folder = Path(folder)
        key = os.path.realpath(folder)
        held = cls._held.get(key)
        if held is not None:
            held.count += 1
            return held
        created = [p for p in (folder, *folder.parents) if not p.exists()]
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = _lock_file(folder, flag)
        except OSError as e:
            _remove_empty(created)
            raise ValueError(f"{flag} {folder}: cannot write the run folder there "
                             f"({e.strerror or e})") from None  # fmt: skip
        except BaseException:
            _remove_empty(created)
            raise
        lock = cls(folder, fd, created)
        cls._held[key] = lock
        return lock

    def release(self) -> None:
        """Give the lock back (the last of a re-entrant chain removes ``.lock``, then any
        folder :meth:`acquire` created that is still empty)."""
        self.count -= 1
        if self.count > 0:
            return
        RunLock._held.pop(os.path.realpath(self.folder), None)
        if self.fd is not None:
            with contextlib.suppress(OSError):  # still ours: only the holder unlinks it
                os.unlink(self.folder / LOCK_FILE)
            os.close(self.fd)
            self.fd = None
        _remove_empty(self.created)


def _lock_file(folder: Path, flag: str) -> int | None:
    """An open descriptor of ``folder/.lock`` holding an exclusive flock (None without fcntl)."""
    if fcntl is None:  # pragma: no cover
        return None
    path = folder / LOCK_FILE
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = _holder(path)
            raise ValueError(
                f"{flag} {folder} is in use by another run ({holder} holds {path}); wait for "
                "it to end, or choose another folder"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        try:  # the holder before us may have unlinked the file between our open and flock
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except BaseException:
        os.close(fd)
        raise
    return fd


def _holder(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        pid = ""
    return f"process {pid}" if pid.isdigit() else "another process"


def _remove_empty(created: Sequence[Path]) -> None:
    """Remove the folders in ``created`` (deepest first) that are empty."""
    for p in created:
        try:
            p.rmdir()
        except OSError:
            return


def read_config(folder: Path) -> dict[str, Any] | None:
    """The run config in ``folder/config.json`` (None when there is none).

    Raises:
        ValueError: the file is not a JSON object (one line naming it).
    """
    path = folder / "config.json"
    if not path.is_file():
        return None
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable run config ({e})") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: not a run config (a JSON {type(cfg).__name__})")
    return cfg


def claim_run_folder(
    out: Path,
    fresh: bool,
    overwrite: bool,
    *,
    run_id: str | None = None,
    resumed_from: Path | None = None,
) -> RunLock:
    """Lock ``out`` for this run and make sure it can hold it, before anything is computed.

    A fresh run refuses a folder that already holds a run (unless ``overwrite``, which
    removes that run's files); the files of a run that never saved a checkpoint (its
    ``config.json``, maybe metrics) are no run, and are replaced. A resume
    (``fresh=False``, ``resumed_from`` its checkpoint) refuses a folder that holds another
    run: one whose ``config.json`` has another ``run_id``, or, without ids, a folder that is
    not the checkpoint's own.

    Returns:
        The :class:`RunLock`; release it when the run ends (or is refused).

    Raises:
        ValueError: the folder is in use by another process, holds a run, or cannot be
            created or written (one line).
    """
    lock = RunLock.acquire(out)
    try:
        taken = [n for n in RUN_FILES if (out / n).exists()]
        started = [n for n in taken if n in CHECKPOINTS]
        if fresh and started and not overwrite:
            raise ValueError(
                f"--out {out} already holds a run ({', '.join(taken)}); continue it with "
                f"--resume {out}, choose a new folder, or pass --overwrite to replace it"
            )
        if not fresh and taken and not _same_run(out, run_id, resumed_from):
            raise ValueError(
                f"--resume {resumed_from} belongs to the run in {resumed_from.parent}, "
                f"but --out {out} holds another run "
                f"({', '.join(taken)}); resume without --out to continue in "
                f"{resumed_from.parent}, or pass an empty --out for a copy"
            )
        probe = out / f".write-test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        if fresh and (overwrite or not started):  # a run without checkpoints is replaced
            for name in (*taken, "curves.png"):
                with contextlib.suppress(FileNotFoundError):
                    (out / name).unlink()
    except OSError as e:
        lock.release()
        raise ValueError(f"--out {out}: cannot write the run folder there "
                         f"({e.strerror or e})") from None  # fmt: skip
    except BaseException:
        lock.release()
        raise
    return lock


def _same_run(out: Path, run_id: str | None, resumed_from: Path | None) -> bool:
    """Whether ``out`` holds the run that ``resumed_from`` (with ``run_id``) belongs to."""
    if resumed_from is not None and out.resolve() == resumed_from.parent.resolve():
        return True
    try:
        theirs = (read_config(out) or {}).get("run_id")
    except ValueError:
        return False
    return run_id is not None and theirs == run_id


def write_config(out: Path, cfg: dict[str, Any]) -> None:
    """Write the run config as ``config.json`` (atomically), before training starts.

    Raises:
        OSError: it cannot be written (a full disk): one message naming the file; no
            temporary file is left behind.
    """
    tmp = out / f".config.json.{os.getpid()}.tmp"
    try:
        tmp.write_text(json.dumps(cfg, indent=1, default=str))
        os.replace(tmp, out / "config.json")
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OSError(e.errno, f"cannot write {out / 'config.json'}: "
                      f"{e.strerror or e}") from None  # fmt: skip


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
            from minigrad.train.run_plots import plot_curves  # noqa: PLC0415 - matplotlib

            plot_curves(history, self.path / "curves.png")
