"""Timing, ceiling and memory helpers shared by the benchmark scripts.

Everything here works on CPU (NumPy) and GPU (CuPy, reached only through
``minigrad.backend``): ``Device`` knows how to make arrays, wait for queued work and read
the memory high-water mark of the process or of the device pool.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from minigrad import backend, devices


class Device:
    """One benchmark device: array factory, synchronisation and memory read-outs."""

    def __init__(self, device: str) -> None:
        self.name = devices.normalize_device(device)
        self.xp = backend.get_array_module(devices.to_device(np.zeros(1, np.float32), self.name))
        self.is_cpu = self.name == "cpu"

    def sync(self) -> None:
        """Wait until the device has finished the queued work (a no-op on the CPU)."""
        if not self.is_cpu:
            self.xp.cuda.get_current_stream().synchronize()

    def randn(self, rng: np.random.Generator, *shape: int) -> Any:
        """Standard-normal float32 array on this device."""
        return devices.to_device(rng.standard_normal(shape, dtype=np.float32), self.name)

    def peak_memory_bytes(self) -> int:
        """Host: peak resident set size of this process. GPU: bytes held by CuPy's pool.

        CuPy's default pool keeps every block it ever allocated until asked to free it, so
        its ``total_bytes()`` after a run is the run's device-memory high-water mark.
        """
        if self.is_cpu:
            kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            return kib if sys.platform == "darwin" else kib * 1024  # macOS reports bytes
        return int(self.xp.get_default_memory_pool().total_bytes())


def median_time(fn: Callable[[], Any], repeats: int, sync: Callable[[], None]) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, after one untimed warm-up call."""
    fn()  # warm-up (allocator, BLAS threads, CuPy kernel compilation)
    sync()
    times = []
    for _ in range(repeats):
        times.append(timed(fn, sync))
    return statistics.median(times)


#: the clock ``timed`` reads: wall time, or the CPU time of this process (``set_clock``)
_clock: Callable[[], float] = time.perf_counter


def set_clock(name: str) -> None:
    """``"wall"`` (default) or ``"cpu"``: process CPU time, user + system, all threads.

    On a machine shared with other busy processes, CPU time leaves out the time this
    process waited for a core; with one BLAS thread it is the most stable figure there.
    With several threads it adds up their times, so use it only with ``--threads 1``.
    """
    global _clock
    _clock = {"wall": time.perf_counter, "cpu": time.process_time}[name]


def timed(fn: Callable[[], Any], sync: Callable[[], None]) -> float:
    """Time of one ``fn()`` call, the device synchronised before the clock stops."""
    t0 = _clock()
    fn()
    sync()
    return _clock() - t0


class GemmCeiling:
    """The float32 matrix-product rate of this machine: an ``n x n @ n x n`` product.

    ``sample()`` times one product; call it between the timed steps of a benchmark so the
    ceiling is measured under the same load (other processes, clocks) as the work it is
    compared with, and take ``rate()``, the FLOP/s of the median sample.
    """

    def __init__(self, dev: Device, n: int, seed: int = 0, threads: int | None = None) -> None:
        rng = np.random.default_rng(seed)
        self.dev, self.n, self.threads = dev, n, threads
        self.a, self.b = dev.randn(rng, n, n), dev.randn(rng, n, n)
        self.out = dev.xp.empty((n, n), dtype=np.float32)
        self.times: list[float] = []
        self.sample(1)  # warm-up
        self.times.clear()

    def sample(self, count: int = 1) -> None:
        """Time ``count`` products; on the CPU with ``threads`` BLAS threads (restored after)."""
        from minigrad import runtime

        before = runtime.blas_threads() if self.dev.is_cpu and self.threads else None
        if before is not None:
            runtime.set_blas_threads(self.threads)
            self.dev.xp.matmul(self.a, self.b, out=self.out)  # wake the BLAS threads
        try:
            for _ in range(count):
                self.times.append(
                    timed(lambda: self.dev.xp.matmul(self.a, self.b, out=self.out), self.dev.sync)
                )
        finally:
            if before is not None:
                runtime.set_blas_threads(before)

    @property
    def flops(self) -> int:
        return 2 * self.n**3

    def rate(self) -> float:
        """FLOP/s of the median sampled product."""
        return self.flops / statistics.median(self.times)


def add_clock_and_mode(parser: Any, clock_help: str) -> None:
    """The ``--clock wall|cpu`` and ``--mode tuned|plain`` flags every benchmark takes."""
    parser.add_argument("--clock", default="wall", choices=["wall", "cpu"], help=clock_help)
    parser.add_argument(
        "--mode",
        default="tuned",
        choices=["tuned", "plain"],
        help="tuned (default): the training CLI's CPU settings (runtime.configure_cpu_training;"
        " OPENBLAS_THREAD_TIMEOUT=4 where the script starts its own interpreters); plain: "
        "glibc's allocator, BLAS threads each product",
    )


def fmt_bytes(n: float) -> str:
    """Bytes as MiB or GiB with one decimal."""
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"
