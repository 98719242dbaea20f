"""A lost rank ends the whole ``mpiexec -n 2`` job in bounded time, and the run resumes.

The signals are sent from the test to one rank's pid (not to ``mpiexec``): SIGTERM and
SIGINT to rank 1 or rank 0, and ``kill -9``. Each rank of the small CNN example sleeps
before the optimizer step of its ``AT``-th step until a signal arrives (the test waits for
the rank's "ready" file, which holds its pid), so the signal always lands at the same point.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from minigrad.checkpoint import load_checkpoint
from tests.distributed.conftest import ROOT, killed_status, mpi_flavor, mpiexec_path
from tests.distributed.test_train_cli import APP

#: what the docs promise: a lost rank ends the job within this many seconds here (the
#: signal, one step of the small model, rank 0's checkpoint, MPI_Abort)
BOUND_S = 10.0

RUN = (
    APP
    + """
import os, time
from minigrad import distributed, optim
VICTIM, AT = int(os.environ["VICTIM"]), int(os.environ["AT_STEP"])
real_step, count = optim.SGD.step, [0]
def step(self, *args, **kwargs):
    count[0] += 1
    rank = distributed.rank()  # whichever launcher (MPICH, Open MPI) started the job
    if count[0] == AT and rank == VICTIM:  # before the update: a clean point to stop
        with open(f"ready-{rank}.tmp", "w") as f:
            f.write(str(os.getpid()))
        os.replace(f"ready-{rank}.tmp", f"ready-{rank}")
        time.sleep(60)  # the test's signal arrives here
    return real_step(self, *args, **kwargs)
optim.SGD.step = step
train("--epochs", "2", "--out", "run", *os.environ.get("EXTRA", "").split())
"""
)


def _start(tmp_path, victim: int, at: int, env: dict[str, str] | None = None):
    exe = mpiexec_path()
    script = tmp_path / "run.py"
    script.write_text("import warnings\nwarnings.simplefilter('error')\n" + RUN)
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "MINIGRAD_DISABLE_CUPY": "1",
               "OMP_NUM_THREADS": "1", "VICTIM": str(victim), "AT_STEP": str(at),
               "MINIGRAD_DIST_TIMEOUT": "60", **(env or {})}  # fmt: skip
    return subprocess.Popen(
        [exe, "-n", "2", sys.executable, str(script)],
        cwd=tmp_path, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_ready(proc, path, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate(timeout=10)
            pytest.fail(f"the rank never got ready (rc {proc.returncode}):\n{out}\n{err}")
        time.sleep(0.05)
    return int(path.read_text())


def _ends_within(proc, bound: float) -> tuple[int, str, str, float]:
    start = time.monotonic()
    try:
        out, err = proc.communicate(timeout=bound + 20)  # a hang must not hang the suite
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=10)
        pytest.fail(f"the job still ran {bound + 20:g} s after the signal:\n{out}\n{err}")
    return proc.returncode, out, err, time.monotonic() - start


@pytest.fixture
def needs_mpi(mpirun):
    return mpirun  # skips without mpi4py or mpiexec


@pytest.mark.parametrize(
    ("victim", "sig"),
    [(1, signal.SIGTERM), (1, signal.SIGINT), (0, signal.SIGTERM)],
    ids=["sigterm-rank1", "sigint-rank1", "sigterm-rank0"],
)
def test_a_signal_to_one_rank_ends_the_job_and_rank_0_saves(needs_mpi, tmp_path, victim, sig):
    at = 3  # the 3rd step of the first epoch (63 images, global batch 16: 3 steps an epoch)
    proc = _start(tmp_path, victim, at)
    pid = _wait_ready(proc, tmp_path / f"ready-{victim}")
    os.kill(pid, sig)
    code, out, err, took = _ends_within(proc, BOUND_S)
    assert took < BOUND_S, (took, err)
    assert code == 130, (code, out, err)  # the exit codes' "interrupted"
    ckpt = load_checkpoint(tmp_path / "run" / "last.npz")
    # rank 0 stopped at its last completed step: the victim's step 3 had not been applied
    # (rank 0's step 3 was, when rank 1 is the victim: rank 1 sleeps after the all-reduce)
    assert ckpt["interrupted"] is True and ckpt["epoch"] == 0
    assert ckpt["step"] == (at - 1 if victim == 0 else at), ckpt["step"]
    assert "continue with --resume" in out
    if victim == 1:
        assert "[rank 1] interrupted: rank 0 saves last.npz" in err
        assert "interrupted: rank 1 was interrupted" in err  # rank 0 says why it stopped


def test_kill_9_of_one_rank_ends_the_job_and_the_run_resumes(needs_mpi, tmp_path):
    proc = _start(tmp_path, 1, 5)  # step 5 = the 2nd of epoch 2: after epoch 1's checkpoint
    pid = _wait_ready(proc, tmp_path / "ready-1")
    os.kill(pid, signal.SIGKILL)
    code, out, err, took = _ends_within(proc, BOUND_S)
    assert took < BOUND_S and code == killed_status(), (took, code, err)  # MPICH 9, Open MPI 137
    ckpt = load_checkpoint(tmp_path / "run" / "last.npz")
    if mpi_flavor() == "mpich":  # Hydra kills rank 0 too: epoch 1's checkpoint, intact
        assert "Killed (signal 9)" in out + err
        assert ckpt["epoch"] == 1 and ckpt["interrupted"] is False
        step = 3
    else:  # Open MPI sends rank 0 SIGTERM: it saves where it stopped, in epoch 2
        assert "exited on signal 9 (Killed)" in " ".join((out + err).split())
        assert ckpt["interrupted"] is True
        step = int(ckpt["step"])
        assert step in (4, 5), step
    # resume on 2 ranks (nobody is killed this time): the weights of an uninterrupted run
    again = needs_mpi(APP + "train('--epochs', '2', '--resume', 'run')\n"
                      "train('--epochs', '2', '--out', 'ref')\n", timeout=60)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert f"resumed at epoch 2 (step {step})" in again.stdout
    got, want = (load_checkpoint(tmp_path / d / "last.npz")["model"] for d in ("run", "ref"))
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_sigterm_to_rank_1_then_resume_gives_the_uninterrupted_weights(needs_mpi, tmp_path):
    proc = _start(tmp_path, 1, 2)
    os.kill(_wait_ready(proc, tmp_path / "ready-1"), signal.SIGTERM)
    code, out, err, _ = _ends_within(proc, BOUND_S)
    assert code == 130, err
    again = needs_mpi(APP + "train('--epochs', '2', '--resume', 'run')\n"
                      "train('--epochs', '2', '--out', 'ref')\n", timeout=60)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "resumed at epoch 1 (step 2)" in again.stdout  # mid-epoch, exactly where it stopped
    got, want = (load_checkpoint(tmp_path / d / "last.npz")["model"] for d in ("run", "ref"))
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
