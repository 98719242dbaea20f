"""``python -m minigrad.distributed.run``: start a job with ``mpiexec``, restart it when it fails.

    python -m minigrad.distributed.run -n 2 --max-restarts 3 googlenet.py train --out runs/a

runs ``mpiexec -n 2 python googlenet.py train --out runs/a`` with the ``mpiexec`` beside
this Python (the ``mpich`` wheel's, else the one on ``PATH``; MPICH's Hydra or Open MPI's
PRRTE, see :func:`mpi_flavor`). When the job fails it is
started again, up to ``--max-restarts`` times, and the training command continues the run
from its last checkpoint (``minigrad.train.restart``: the launcher's state folder tells it
which run folder to resume). Each restart is logged on stderr with the rank that failed,
why, and the epoch and step the run continues from. The launcher exits with the last
attempt's status.

Not restarted: exit status 0 (done), 2 (a usage or input error: the same command would
fail again) and 3 (a NaN/inf loss: an exact resume would reach it again), and a job that
the launcher itself was told to stop (Ctrl-C or SIGTERM to the launcher is passed on to
``mpiexec``, which passes it to every rank; rank 0 saves ``last.npz``).

This module is a command-line tool on top of the training command (it reads the run's
checkpoint to say where it continues), not part of the ``minigrad.distributed`` library.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections import deque
from pathlib import Path
from typing import Any, TextIO

from minigrad.train.restart import RESTART_ENV, RUN_STATE_ENV, read_state

__all__ = [
    "NO_RESTART",
    "build_parser",
    "describe_failure",
    "main",
    "mpi_flavor",
    "mpiexec_command",
]

#: exit statuses that a restart would only repeat (see the module docstring)
NO_RESTART = (0, 2, 3)
_SIGNALS = {int(s): s.name for s in signal.Signals}


def build_parser() -> argparse.ArgumentParser:
    """``-n``, ``--max-restarts``, ``--restart-ranks``, ``--hostfile``, ``--state-dir``,
    ``--mpiexec-arg``, then the script and its arguments."""
    p = argparse.ArgumentParser(
        prog="python -m minigrad.distributed.run",
        description="Run SCRIPT on N MPI ranks with mpiexec; when the job fails, start it "
        "again from the run's last checkpoint, up to --max-restarts times.",
    )
    p.add_argument("-n", "--ranks", type=int, required=True, metavar="N", help="ranks")
    p.add_argument("--max-restarts", type=int, default=0, metavar="K",
                   help="restarts after a failure (default 0)")  # fmt: skip
    p.add_argument("--restart-ranks", type=int, metavar="M",
                   help="ranks of the restarted jobs (default N; M must divide the "
                   "global batch)")  # fmt: skip
    p.add_argument("--hostfile", "-f", metavar="F",
                   help="hostfile in the MPI's format (MPICH: 'host:ranks' lines; Open MPI: "
                   "'host slots=ranks'); rank 0 on the first host")  # fmt: skip
    p.add_argument("--state-dir", metavar="DIR",
                   help="where the ranks record their pids and run folder (default: "
                   "a temporary folder; on several hosts, one rank 0's host writes)")  # fmt: skip
    p.add_argument("--mpiexec-arg", action="append", default=[], metavar="ARG",
                   help="one more argument for mpiexec (repeatable), e.g. "
                   "--mpiexec-arg=-iface --mpiexec-arg=eth1")  # fmt: skip
    p.add_argument("script", help="the Python script to run on every rank")
    p.add_argument("args", nargs=argparse.REMAINDER, help="the script's arguments")
    return p


def _mpiexec() -> str:
    beside = Path(sys.executable).parent / "mpiexec"  # the mpich wheel puts it in the venv
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    if found is None:
        raise SystemExit("minigrad.distributed.run: no mpiexec (pip install 'minigrad[dist]')")
    return found


_flavors: dict[str, str] = {}


def mpi_flavor(mpiexec: str) -> str:
    """``"openmpi"`` when ``mpiexec --version`` names Open MPI (or its runtime, PRRTE or
    OpenRTE), else ``"mpich"`` (MPICH's Hydra and the launchers built on it, Intel MPI's
    among them). Asked once per path."""
    if mpiexec not in _flavors:
        try:
            out = subprocess.run([mpiexec, "--version"], capture_output=True, text=True,
                                 timeout=30)  # fmt: skip
            text = out.stdout + out.stderr
        except (OSError, subprocess.SubprocessError):
            text = ""
        _flavors[mpiexec] = "openmpi" if re.search(r"Open MPI|OpenRTE|PRRTE", text) else "mpich"
    return _flavors[mpiexec]


def mpiexec_command(args: argparse.Namespace, ranks: int) -> list[str]:
    """The ``mpiexec`` command line of one attempt (the hostfile as ``-f F`` for MPICH,
    ``--hostfile F`` for Open MPI)."""
    exe = _mpiexec()
    cmd = [exe, "-n", str(ranks)]
    if args.hostfile:
        cmd += ["--hostfile" if mpi_flavor(exe) == "openmpi" else "-f", args.hostfile]
    return [*cmd, *args.mpiexec_arg, sys.executable, args.script, *args.args]


def _pump(src: TextIO, dst: TextIO, tail: deque) -> None:
    for line in src:
        dst.write(line)
        dst.flush()
        tail.append(line)


def _meaning(code: int) -> str:
    from minigrad.train.exit_codes import EXIT_CODES  # noqa: PLC0415

    if code in EXIT_CODES:
        return f"exit code {code} ({EXIT_CODES[code].split(' (')[0]})"
    return f"exit code {code}"


def describe_failure(state_dir: str | os.PathLike, code: int, output: str) -> str:
    """Which rank ended the job, and why. In order: Open MPI's report of a rank that died
    by a signal ("process rank 1 ... exited on signal 9"; Open MPI then sends SIGTERM to
    the other ranks, and their records say "interrupted"); the rank's own record
    (``failure.json``); MPICH's report of a process that died ("PID p ... EXIT CODE: 9",
    matched against each rank's recorded pid; Hydra kills the other ranks after an
    abort, so a record comes first); else the job's status alone."""
    died = re.search(
        r"process rank (\d+) with PID \d+ on node (\S+) exited on\s+signal (\d+)", output
    )
    if died is not None:
        rank, host, status = int(died.group(1)), died.group(2), int(died.group(3))
        return f"rank {rank} on {host} was killed by {_signal_name(status)}"
    failure = read_state(state_dir, "failure.json")
    if failure is not None:
        return f"rank {failure['rank']} stopped with {_meaning(int(failure['code']))}"
    died = re.search(r"PID (\d+) RUNNING AT (\S+)\s*\n=\s*EXIT CODE: (\d+)", output)
    if died is not None:
        pid, host, status = int(died.group(1)), died.group(2), int(died.group(3))
        ranks = [read_state(state_dir, p.name) for p in Path(state_dir).glob("rank-*.json")]
        who = [r["rank"] for r in ranks if r and r.get("pid") == pid]
        name = f"rank {who[0]}" if who else f"the process {pid}"
        return f"{name} on {host} was killed by {_signal_name(status)}"
    return f"the job ended with {_meaning(code)}"


def _signal_name(status: int) -> str:
    return f"signal {status} ({_SIGNALS[status]})" if status in _SIGNALS else _meaning(status)


def _position(state_dir: str | os.PathLike) -> str:
    """Where the run continues: its folder's last.npz epoch and step."""
    run = read_state(state_dir, "run.json")
    if run is None:
        return "the run had not chosen its folder: it starts again from the beginning"
    last = Path(run["out"]) / "last.npz"
    if not last.exists():
        return f"no checkpoint in {run['out']} yet: the run starts again from the beginning"
    from minigrad.checkpoint import load_checkpoint  # noqa: PLC0415

    try:
        ckpt = load_checkpoint(last)
    except (OSError, ValueError) as e:
        return f"{last} cannot be read ({e})"
    return f"continuing {last} at epoch {int(ckpt['epoch']) + 1}, step {int(ckpt['step'])}"


def _attempt(cmd: list[str], env: dict[str, str], stop: dict[str, Any]) -> tuple[int, str]:
    """Run one ``mpiexec``; returns its status and the tail of its output."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, bufsize=1)  # fmt: skip
    stop["proc"] = proc
    tail: deque = deque(maxlen=200)
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, sys.stdout, tail), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, sys.stderr, tail), daemon=True),
    ]
    for t in pumps:
        t.start()
    code = proc.wait()
    for t in pumps:
        t.join(timeout=5)
    stop["proc"] = None
    return code, "".join(tail)


def main(argv: list[str] | None = None) -> int:
    """Run the job, restarting it after a failure; return the last attempt's status."""
    args = build_parser().parse_args(argv)
    if args.ranks < 1 or args.max_restarts < 0 or (args.restart_ranks or 1) < 1:
        raise SystemExit("minigrad.distributed.run: -n and --restart-ranks must be >= 1, "
                         "--max-restarts >= 0")  # fmt: skip
    state_dir = args.state_dir or tempfile.mkdtemp(prefix="minigrad-run-")
    os.makedirs(state_dir, exist_ok=True)
    stop: dict[str, Any] = {"signal": None, "proc": None}

    def forward(signum: int, frame: Any) -> None:  # to mpiexec, which tells every rank
        stop["signal"] = signum
        if stop["proc"] is not None:
            stop["proc"].send_signal(signum)

    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, forward)
    attempt, ranks = 0, args.ranks
    while True:
        for name in ("failure.json", *(p.name for p in Path(state_dir).glob("rank-*.json"))):
            Path(state_dir, name).unlink(missing_ok=True)
        env = {**os.environ, RUN_STATE_ENV: str(state_dir), RESTART_ENV: str(attempt)}
        code, output = _attempt(mpiexec_command(args, ranks), env, stop)
        if code in NO_RESTART or stop["signal"] is not None:
            return code
        why = describe_failure(state_dir, code, output)
        if attempt >= args.max_restarts:
            print(f"minigrad.distributed.run: {why}; no restarts left "
                  f"({args.max_restarts} allowed), exit status {code}",
                  file=sys.stderr)  # fmt: skip
            return code
        attempt += 1
        ranks = args.restart_ranks or args.ranks
        print(f"minigrad.distributed.run: {why}; restart {attempt} of {args.max_restarts} on "
              f"{ranks} rank{'s' * (ranks != 1)}, {_position(state_dir)}",
              file=sys.stderr, flush=True)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
