"""The ``train`` command under ``mpiexec -n 2``: global batch, rank-0 output, sharded
evaluation, resume across world sizes, and one failing rank ending the job."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

from minigrad import nn
from minigrad.checkpoint import load_checkpoint
from minigrad.data import TensorDataset
from minigrad.train import data_parallel
from tests.distributed.conftest import ROOT

# The small CNN example (batch norm; --sync-bn makes 2 ranks x 8 images the same as 1 x 16)
# on 63 digits (odd: the test shards are 32 and 31 images), without the random crops (they
# are drawn per rank's batch, so only an augmentation-free run is the same on 1 and 2 ranks).
APP = f"""
import dataclasses, sys
sys.path.insert(0, {str(ROOT / "examples")!r})
import small_cnn_digits as app
from minigrad.train import cli, resolve

info = resolve.dataset_info_for
resolve.dataset_info_for = lambda cfg: dataclasses.replace(
    info(cfg), train_transform=info(cfg).eval_transform
)
COMMON = ["--limit", "63", "--batch-size", "16", "--channels", "4", "--no-plots", "--lr", "0.1"]
def train(*args):
    code = cli.main(["train", *COMMON, *args], app.SPEC)
    assert code == 0, code
"""


def _weights(folder) -> dict[str, np.ndarray]:
    return load_checkpoint(folder / "last.npz")["model"]


def _assert_same_weights(got, want) -> None:
    assert list(got) == list(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-5, err_msg=k)


def _single(source: str, tmp_path) -> subprocess.CompletedProcess:
    """``source`` in one plain process (no mpiexec: a single-process world)."""
    script = tmp_path / "single.py"
    script.write_text("import warnings\nwarnings.simplefilter('error')\n" + source)
    env = {"PYTHONPATH": str(ROOT), "MINIGRAD_DISABLE_CUPY": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env={**os.environ, **env})  # fmt: skip


def test_two_ranks_equal_one_rank_and_resume_across_world_sizes(mpirun, tmp_path):
    # one process: 2 epochs straight (the reference), and 1 epoch to resume on 2 ranks
    one = _single(APP + "train('--epochs', '2', '--out', 'ref')\n"
                        "train('--epochs', '1', '--out', 'one')\n", tmp_path)  # fmt: skip
    assert one.returncode == 0, one.stderr
    # 2 ranks: 2 epochs straight; 1 epoch to resume on 1 rank; the 1-rank run resumed
    two = mpirun(
        APP + "train('--epochs', '2', '--out', 'two', '--sync-bn')\n"
        "train('--epochs', '1', '--out', 'half', '--sync-bn')\n"
        "train('--epochs', '2', '--resume', 'one', '--sync-bn')\n",
        timeout=120,
    )
    assert two.returncode == 0, two.stdout + two.stderr
    back = _single(APP + "train('--epochs', '2', '--resume', 'half')\n", tmp_path)
    assert back.returncode == 0, back.stderr
    ref = _weights(tmp_path / "ref")
    _assert_same_weights(_weights(tmp_path / "two"), ref)  # 2 x 8 images == 1 x 16
    _assert_same_weights(_weights(tmp_path / "one"), ref)  # resumed on 2 ranks
    _assert_same_weights(_weights(tmp_path / "half"), ref)  # resumed on 1 rank
    assert "resumed at epoch 2" in two.stdout and "resumed at epoch 2" in back.stdout
    # rank 0 alone prints: one start line, one final line per run
    assert two.stdout.count("final test accuracy") == 3
    assert two.stdout.count("2 ranks x 8 images per step") == 3
    # the sharded evaluation counts each of the 63 test images once, as one process does
    assert "(63 images)" in two.stdout
    for name in ("two", "one", "half"):
        rows = load_checkpoint(tmp_path / name / "last.npz")["metrics"]
        want = load_checkpoint(tmp_path / "ref" / "last.npz")["metrics"]
        assert [r["epoch"] for r in rows] == [1, 2]
        for r, w in zip(rows, want):
            assert r["val_acc"] == w["val_acc"]
            assert r["val_loss"] == pytest.approx(w["val_loss"], rel=1e-4)


def test_googlenet_two_ranks_sync_bn_writes_on_rank_0_only(mpirun, tmp_path):
    res = mpirun(
        f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        import googlenet
        code = googlenet.main(["train", "--limit", "64", "--epochs", "1", "--width", "0.0625",
                               "--batch-size", "16", "--sync-bn", "--no-plots", "--out", "run"])
        assert code == 0, code
        from minigrad import distributed as dist
        from minigrad.train import data_parallel
        print(f"rank {{dist.rank()}} is local rank {{data_parallel.local_rank()}}", flush=True)
        """,
        timeout=60,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("epoch 1/1:") == 1  # rank 1 is silent
    assert "rank 1 is local rank 1" in res.stdout  # both ranks on this machine
    assert res.stdout.count("final test accuracy") == 1
    ckpt = load_checkpoint(tmp_path / "run" / "last.npz")
    assert ckpt["config"]["sync_bn"] is True and ckpt["config"]["batch_size"] == 16
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "best.npz", "config.json", "last.npz", "metrics.csv", "metrics.json",
    ]  # fmt: skip


# rank 1 fails inside the training loop (an exception, or a caught error's exit code) while
# rank 0 waits for it in the gradient all-reduce: the job must end with rank 1's message
FAILING = """
import sys
sys.path.insert(0, {root!r})
import googlenet
from minigrad import distributed as dist
from minigrad.train import fit, loop

dist.init(timeout=60)
def broken(*args, **kwargs):
    {action}
if dist.rank() == 1:
    fit.train_one_epoch = broken
code = googlenet.main(["train", "--limit", "64", "--epochs", "1", "--width", "0.0625",
                       "--batch-size", "16", "--no-plots", "--out", "run"])
sys.exit(code)
"""


@pytest.mark.parametrize(
    ("action", "message"),
    [
        # an internal error: its traceback, exit status 1, and the abort that names the rank
        ("raise RuntimeError('disk on fire')", "RuntimeError: disk on fire"),
        ("raise RuntimeError('disk on fire')", "[rank 1] exit code 1"),
        # a NaN/inf loss: exit status 3 (EXIT_CODES), said by the rank before the abort
        ("raise loop.NonFiniteLossError(float('nan'), 0, 0, 0.1)", "[rank 1] exit code 3"),
        ("raise loop.NonFiniteLossError(float('nan'), 0, 0, 0.1)", "[rank 1] stopped: the"),
    ],
    ids=["exception", "exception-exit-code", "nan-exit-code", "nan-message"],
)
def test_a_failing_rank_ends_all_ranks_with_its_message(mpirun, action, message):
    start = time.perf_counter()
    res = mpirun(FAILING.format(root=str(ROOT), action=action), timeout=50)
    assert res.returncode != 0
    assert message in res.stderr, res.stderr
    assert time.perf_counter() - start < 40  # well before the 60 s collective timeout
    assert "final test accuracy" not in res.stdout


def test_the_global_batch_must_divide_by_the_ranks():
    assert data_parallel.per_rank_batch(64, data_parallel.RankContext(1, 4)) == 16
    with pytest.raises(ValueError, match=re.escape("--batch-size 30 is the global batch")):
        data_parallel.per_rank_batch(30, data_parallel.RankContext(0, 4))


def test_rank_seeds_differ_and_rank_0_keeps_the_run_seed():
    seeds = [data_parallel.rank_seed(5, data_parallel.RankContext(r, 4)) for r in range(4)]
    assert seeds[0] == 5 and len(set(seeds)) == 4
    assert seeds == [data_parallel.rank_seed(5, data_parallel.RankContext(r, 4)) for r in range(4)]


def test_eval_shards_cover_the_split_exactly_once():
    data = TensorDataset(np.zeros((11, 1, 2, 2), np.float32), np.zeros(11, np.int64))
    shards = [data_parallel.eval_shard(data, data_parallel.RankContext(r, 3)) for r in range(3)]
    got = np.sort(np.concatenate([s.indices for s in shards]))
    np.testing.assert_array_equal(got, np.arange(11))


def test_single_process_sync_bn_converts_and_does_not_wrap():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    wrapped = data_parallel.wrap_model(model, data_parallel.RankContext(0, 1), sync_bn=True)
    assert wrapped is model and isinstance(model[1], nn.SyncBatchNorm)
    assert data_parallel.unwrap(wrapped) is model
    assert data_parallel.train_sampler(list(range(8)), 0, data_parallel.RankContext(0, 1)) is None


def test_on_n_ranks_cuda_means_the_local_ranks_gpu(monkeypatch):
    from minigrad import devices

    monkeypatch.setattr(data_parallel, "local_rank", lambda: 1)
    two = data_parallel.RankContext(1, 2)
    assert data_parallel.rank_device("cuda", two) == "cuda:1"
    assert data_parallel.rank_device("cuda:0", two) == "cuda:0"  # explicit: as given
    assert data_parallel.rank_device("cpu", two) == "cpu"
    assert data_parallel.rank_device("cuda", data_parallel.RankContext(0, 1)) == "cuda"
    monkeypatch.setattr(devices, "default_device", lambda: "cuda:0")
    assert data_parallel.rank_device(None, two) == "cuda:1"
    monkeypatch.setattr(devices, "default_device", lambda: "cpu")
    assert data_parallel.rank_device(None, two) is None


def test_threads_default_to_the_cores_divided_among_the_ranks_on_the_machine(monkeypatch):
    from minigrad import runtime

    monkeypatch.setattr(runtime, "available_cores", lambda: 8)
    monkeypatch.setattr(runtime, "ENV_NUM_THREADS", None)
    monkeypatch.setattr(data_parallel, "_LOCAL", [(1, 4)])  # 4 ranks on this machine
    four = data_parallel.RankContext(1, 4)
    assert data_parallel.rank_threads(None, four) == (2, None)
    assert data_parallel.rank_threads(2, four) == (2, None)  # explicit, fits: no warning
    threads, warning = data_parallel.rank_threads(3, four)  # explicit wins, with a warning
    assert threads == 3
    assert warning == ("warning: --threads 3 x 4 ranks on this machine = 12 threads on 8 "
                       "available cores oversubscribes them (the default would be 2)")  # fmt: skip
    monkeypatch.setattr(runtime, "ENV_NUM_THREADS", 4)  # MINIGRAD_NUM_THREADS counts as asked
    assert data_parallel.rank_threads(None, four)[0] == 4
    monkeypatch.setattr(runtime, "ENV_NUM_THREADS", None)
    monkeypatch.setattr(data_parallel, "_LOCAL", [(0, 9)])  # more ranks than cores: still 1
    assert data_parallel.rank_threads(None, data_parallel.RankContext(0, 9)) == (1, None)
    assert data_parallel.rank_threads(None, data_parallel.RankContext(0, 1)) == (
        8,
        None,
    )  # one process
    assert data_parallel.threads_note(8, data_parallel.RankContext(0, 1)) == "8 threads"
    # a library script under mpiexec: the launcher's local size divides the cores too
    monkeypatch.setenv("MPI_LOCALNRANKS", "2")
    monkeypatch.setattr(runtime, "_settings", {**runtime._settings, "host_threads": None})
    assert runtime.launcher_local_size() == 2 and runtime.host_threads() == 4
    monkeypatch.delenv("MPI_LOCALNRANKS")
    assert runtime.host_threads() == 8


def test_two_ranks_print_their_threads_once_and_warn_when_oversubscribing(mpirun):
    res = mpirun(
        APP
        + """
import os
from minigrad import runtime
cores = runtime.available_cores()
train("--epochs", "1", "--out", "a")
assert runtime.host_threads() == max(cores // 2, 1), runtime.host_threads()
train("--epochs", "1", "--out", "b", "--threads", str(cores + 1))
assert runtime.host_threads() == cores + 1
print("cores", cores, flush=True)
""",
        env={"MINIGRAD_NUM_THREADS": ""},
    )
    assert res.returncode == 0, res.stdout + res.stderr
    # cores: this rank's (Open MPI binds each of 2 ranks to one core: 1 here)
    cores = int(re.search(r"cores (\d+)", res.stdout).group(1))
    default = max(cores // 2, 1)
    note = f"({default} thread{'s' * (default != 1)} per rank ({cores} cores / 2 ranks on this"
    assert res.stdout.count(note) == 1  # rank 0 only, the first run
    many = cores + 1  # more than the default whatever the core count
    warn = f"warning: --threads {many} x 2 ranks on this machine = {2 * many} threads"
    assert res.stderr.count(warn) == 1
