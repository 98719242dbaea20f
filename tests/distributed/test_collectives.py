"""Collectives over MPI on 2 ranks, the single-process world, the timeout and failure paths."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from minigrad import distributed as dist
from minigrad.distributed import collectives


def test_collectives_on_two_ranks(mpirun):
    res = mpirun(
        """
        import numpy as np
        from minigrad import distributed as dist
        dist.init(timeout=20)
        r, R = dist.rank(), dist.world_size()
        assert R == 2 and dist.is_main() == (r == 0)
        for dtype in (np.float32, np.float64):
            for shape in [(1,), (7,), (3, 5, 2), (1031,), ()]:
                rng = np.random.default_rng(r)
                x = rng.standard_normal(shape).astype(dtype)
                mine = x.copy()
                xs = [np.random.default_rng(k).standard_normal(shape).astype(dtype)
                      for k in range(R)]
                tol = dict(rtol=1e-6 if dtype == np.float32 else 1e-13)
                s = dist.all_reduce(x)
                assert s.dtype == dtype and s.shape == x.shape
                np.testing.assert_allclose(s, xs[0] + xs[1], **tol)
                mean = dist.all_reduce(x, op="mean")
                np.testing.assert_allclose(mean, (xs[0] + xs[1]) / 2, **tol)
                np.testing.assert_array_equal(dist.broadcast(x, root=1), xs[1])
                g = dist.all_gather(x)
                assert g.shape == (R, *shape)
                np.testing.assert_array_equal(g, np.stack(xs))
                np.testing.assert_array_equal(x, mine)  # inputs untouched
        # non-contiguous input, an integer sum, the async form
        a = np.arange(12, dtype=np.int64).reshape(3, 4)[:, ::2] * (r + 1)
        np.testing.assert_array_equal(dist.all_reduce(a), 3 * np.arange(12).reshape(3, 4)[:, ::2])
        w = dist.all_reduce_async(np.full(5, r + 1.0), op="mean")
        np.testing.assert_array_equal(w.wait(), np.full(5, 1.5))
        dist.barrier()
        print(f"ok {r}", flush=True)
        """
    )
    assert res.returncode == 0, res.stderr
    assert sorted(re.findall(r"ok \d", res.stdout)) == ["ok 0", "ok 1"]


def test_timeout_names_collective_and_rank(mpirun):
    # rank 1 never joins the all_reduce: rank 0 must raise within the timeout, and the job
    # must end non-zero (the exception hook aborts every rank)
    start = time.monotonic()
    res = mpirun(
        """
        import time
        import numpy as np
        from minigrad import distributed as dist
        dist.init(timeout=1.5)
        if dist.rank() == 0:
            dist.all_reduce(np.ones(3))
        else:
            time.sleep(30)
        """,
        timeout=40,
    )
    elapsed = time.monotonic() - start
    assert res.returncode != 0
    assert "DistributedTimeoutError: all_reduce: rank 0 of 2 waited 1.5 s" in res.stderr
    assert elapsed < 20  # not the sleeping rank's 30 s: the abort ended it


def test_timeout_from_environment(mpirun):
    res = mpirun(
        """
        from minigrad import distributed as dist
        dist.init()
        assert dist.get_timeout() == 2.5, dist.get_timeout()
        if dist.rank() == 1:
            dist.barrier()
        """,
        env={"MINIGRAD_DIST_TIMEOUT": "2.5"},
    )
    assert res.returncode != 0
    assert "barrier: rank 1 of 2 waited 2.5 s" in res.stderr


def test_a_rank_that_raises_ends_the_job_with_its_message(mpirun):
    start = time.monotonic()
    res = mpirun(
        """
        import numpy as np
        from minigrad import distributed as dist
        dist.init(timeout=60)
        if dist.rank() == 1:
            raise RuntimeError("boom on purpose")
        dist.all_reduce(np.ones(3))  # rank 0 would wait here for the full timeout
        """,
        timeout=50,
    )
    assert res.returncode != 0
    assert "[rank 1]" in res.stderr and "RuntimeError: boom on purpose" in res.stderr
    assert time.monotonic() - start < 30


def test_single_process_world():
    dist.init()
    assert dist.world_size() == 1 and dist.rank() == 0 and dist.is_main()
    x = np.arange(5.0)
    for y in (dist.all_reduce(x), dist.all_reduce(x, "mean"), dist.broadcast(x)):
        np.testing.assert_array_equal(y, x)
        assert y is not x
    assert dist.all_gather(x).shape == (1, 5)
    dist.barrier()


def test_argument_errors():
    with pytest.raises(ValueError, match="all_reduce: op must be one of"):
        dist.all_reduce(np.ones(2), op="max")
    with pytest.raises(TypeError, match="all_reduce: op='mean' needs a floating-point"):
        dist.all_reduce(np.ones(2, dtype=np.int32), op="mean")
    with pytest.raises(TypeError, match=r"broadcast: expected a NumPy or CuPy array, got list"):
        dist.broadcast([1.0])
    with pytest.raises(ValueError, match="broadcast: root must be a rank in 0..0, got 1"):
        dist.broadcast(np.ones(2), root=1)
    with pytest.raises(ValueError, match="init: timeout must be a positive number"):
        dist.init(timeout=0)


def test_gpu_arrays_dispatch_to_nccl(monkeypatch):
    """CuPy arrays go to the NCCL group, NumPy arrays to MPI (a fake world of 2 and fakes)."""

    class FakeGpuArray(np.ndarray):  # is_cupy_array looks at the type's module
        pass

    FakeGpuArray.__module__ = "cupy"
    calls = []

    class FakeEvent:
        done = True

    class FakeGroup:
        def all_reduce(self, x):
            calls.append(("nccl", "all_reduce"))
            return FakeEvent(), np.asarray(x) * 2

        def wait(self, event, name):
            calls.append(("nccl-wait", name))

    def fake_iallreduce(x):
        calls.append(("mpi", "all_reduce"))
        return "request", np.asarray(x) * 2

    monkeypatch.setattr(collectives._nccl, "group_for", lambda x: FakeGroup())
    mpi = collectives._MPITransport
    monkeypatch.setattr(mpi, "all_reduce", staticmethod(fake_iallreduce))
    mpi_wait = staticmethod(lambda req, name: calls.append(("mpi-wait", name)))
    monkeypatch.setattr(mpi, "wait", mpi_wait)
    w = dist.world._world
    monkeypatch.setattr(w, "initialized", True)
    monkeypatch.setattr(w, "size", 2)
    gpu = np.ones(3).view(FakeGpuArray)
    np.testing.assert_array_equal(np.asarray(dist.all_reduce(gpu, op="mean")), np.ones(3))
    np.testing.assert_array_equal(dist.all_reduce(np.ones(3)), np.full(3, 2.0))
    assert calls == [
        ("nccl", "all_reduce"),
        ("nccl-wait", "all_reduce"),
        ("mpi", "all_reduce"),
        ("mpi-wait", "all_reduce"),
    ]


def test_nccl_needs_cupy_with_nccl():
    from minigrad import backend

    try:
        backend.nccl_module()
    except ValueError as e:
        assert "nccl_module: collectives on GPU arrays need CuPy built with NCCL" in str(e)
    else:
        pytest.skip("CuPy with NCCL is installed here")
