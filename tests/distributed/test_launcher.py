"""``python -m minigrad.distributed.run``: a job that loses a rank to ``kill -9`` is started
again from its last checkpoint and ends with the weights of a run never interrupted."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from minigrad.checkpoint import load_checkpoint
from minigrad.distributed import run
from tests.distributed.conftest import ROOT, killed_status, mpi_flavor
from tests.distributed.test_train_cli import APP

# rank 1 kills itself with SIGKILL before the 2nd step of epoch 2, on the first attempt only
KILLED = (
    APP
    + """
import os, signal
from minigrad import distributed, optim
from minigrad.train import restart
real_step, count = optim.SGD.step, [0]
def step(self, *args, **kwargs):
    count[0] += 1
    if count[0] == 5 and distributed.rank() == 1 and restart.restart_count() == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_step(self, *args, **kwargs)
optim.SGD.step = step
train("--epochs", "2", "--out", "run", "--sync-bn")
"""
)


def _launch(tmp_path, *flags: str) -> subprocess.CompletedProcess:
    script = tmp_path / "job.py"
    script.write_text(KILLED)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MINIGRAD_DISABLE_CUPY": "1",
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    cmd = [sys.executable, "-m", "minigrad.distributed.run", *flags,
           "--state-dir", str(tmp_path / "state"), str(script)]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, cwd=tmp_path, env=env)


def _weights(folder):
    return load_checkpoint(folder / "last.npz")["model"]


@pytest.mark.parametrize("restart_ranks", [2, 1], ids=["2-then-2-ranks", "2-then-1-rank"])
def test_a_killed_rank_restarts_and_ends_with_the_uninterrupted_weights(
    mpirun, tmp_path, restart_ranks
):
    res = _launch(tmp_path, "-n", "2", "--max-restarts", "2",
                  "--restart-ranks", str(restart_ranks))  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    log = [line for line in res.stderr.splitlines() if line.startswith("minigrad.distributed")]
    rs = "s" * (restart_ranks != 1)
    # MPICH's Hydra kills rank 0 too: the run continues from epoch 1's checkpoint (step 3).
    # Open MPI sends rank 0 SIGTERM: it saves where it stopped in epoch 2 (step 4 or 5)
    step = "3" if mpi_flavor() == "mpich" else "[45]"
    want = (
        f"minigrad.distributed.run: rank 1 on {re.escape(os.uname().nodename)} was killed by "
        f"signal 9 \\(SIGKILL\\); restart 1 of 2 on {restart_ranks} rank{rs}, continuing "
        f"{re.escape(str(tmp_path / 'run' / 'last.npz'))} at epoch 2, step ({step})"
    )
    assert len(log) == 1 and re.fullmatch(want, log[0]), res.stderr
    assert f"resumed at epoch 2 (step {re.fullmatch(want, log[0]).group(1)})" in res.stdout
    ref = mpirun(APP + "train('--epochs', '2', '--out', 'ref', '--sync-bn')\n", timeout=60)
    assert ref.returncode == 0, ref.stderr
    got, want = _weights(tmp_path / "run"), _weights(tmp_path / "ref")
    for k in want:
        if restart_ranks == 2:  # the same ranks: bit for bit
            np.testing.assert_array_equal(got[k], want[k], err_msg=k)
        else:  # 1 rank x 16 images sums in another order than 2 x 8: float32 rounding
            np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_without_restarts_left_the_launcher_exits_with_the_jobs_status(mpirun, tmp_path):
    res = _launch(tmp_path, "-n", "2")
    assert res.returncode == killed_status(), res.stderr  # MPICH 9, Open MPI 137
    assert res.stderr.splitlines()[-1].startswith("minigrad.distributed.run: rank 1 on ")
    assert f"no restarts left (0 allowed), exit status {killed_status()}" in res.stderr


def test_describe_failure_names_the_rank_and_why(tmp_path):
    (tmp_path / "rank-0.json").write_text(json.dumps({"rank": 0, "pid": 11, "host": "a"}))
    (tmp_path / "rank-1.json").write_text(json.dumps({"rank": 1, "pid": 12, "host": "b"}))
    hydra = "=   PID 12 RUNNING AT b\n=   EXIT CODE: 9\n=   CLEANING UP REMAINING PROCESSES\n"
    killed = "rank 1 on b was killed by signal 9 (SIGKILL)"
    assert run.describe_failure(tmp_path, 9, hydra) == killed
    unknown = "the job ended with exit code 1 (internal error)"
    assert run.describe_failure(tmp_path, 1, "") == unknown
    (tmp_path / "failure.json").write_text(json.dumps({"rank": 1, "code": 130}))
    assert run.describe_failure(tmp_path, 130, hydra) == (
        "rank 1 stopped with exit code 130 (interrupted by Ctrl-C or SIGTERM)"
    )
    # Open MPI names the dead rank itself, then sends SIGTERM to the others: rank 0's
    # record of that (130) is a consequence, the death is the cause
    (tmp_path / "failure.json").write_text(json.dumps({"rank": 0, "code": 130}))
    prte = ("prterun noticed that process rank 1 with PID 31502 on node b exited on\n"
            "signal 9 (Killed).\n")  # fmt: skip
    assert run.describe_failure(tmp_path, 137, prte) == killed
    assert run.NO_RESTART == (0, 2, 3)


def test_the_hostfile_flag_follows_the_mpi(monkeypatch):
    import argparse

    monkeypatch.setattr(run, "_mpiexec", lambda: "/x/mpiexec")
    args = argparse.Namespace(hostfile="hosts", mpiexec_arg=["-iface", "eth1"], script="t.py",
                              args=["--out", "a"])  # fmt: skip
    tail = ["-iface", "eth1", sys.executable, "t.py", "--out", "a"]
    for flavor, flag in (("mpich", "-f"), ("openmpi", "--hostfile")):
        monkeypatch.setitem(run._flavors, "/x/mpiexec", flavor)
        assert run.mpiexec_command(args, 4) == ["/x/mpiexec", "-n", "4", flag, "hosts", *tail]


def test_mpi_flavor_reads_the_version_banner(tmp_path):
    for banner, flavor in (("mpiexec (Open MPI) 5.0.11", "openmpi"),
                           ("HYDRA build details:\n    Version: 4.3.0", "mpich")):  # fmt: skip
        exe = tmp_path / f"mpiexec-{flavor}"
        exe.write_text(f"#!/bin/sh\nprintf '%s\\n' '{banner}'\n")
        exe.chmod(0o755)
        assert run.mpi_flavor(str(exe)) == flavor
    assert run.mpi_flavor(str(tmp_path / "missing")) == "mpich"  # no banner: Hydra's flags


def test_a_restarted_train_continues_the_recorded_run_folder(tmp_path, monkeypatch):
    import argparse

    from minigrad.train import restart

    monkeypatch.setenv(restart.RUN_STATE_ENV, str(tmp_path))
    args = argparse.Namespace(resume=None, out=None, overwrite=False)
    monkeypatch.setenv(restart.RESTART_ENV, "0")
    restart.record_run_folder(tmp_path / "run")  # rank 0, first attempt
    assert restart.restart_args(args) is args  # the first attempt: as given
    monkeypatch.setenv(restart.RESTART_ENV, "1")
    again = restart.restart_args(args)  # killed before its first checkpoint: afresh, there
    assert (again.out, again.overwrite, again.resume) == (str(tmp_path / "run"), True, None)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.npz").write_bytes(b"")
    given = argparse.Namespace(resume="old/last.npz", out="run", overwrite=False)
    again = restart.restart_args(given)  # its own checkpoint, not the one it started from
    assert (again.resume, again.out) == (str(tmp_path / "run"), str(tmp_path / "run"))
