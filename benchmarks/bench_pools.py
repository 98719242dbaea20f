"""GoogLeNet's 3x3/1 pad-1 max pools (the Inception pool branch), forward and forward +
backward, on channel-major float32 input as inside the network, median of ``--repeats``.
``--avg``: the aux heads' 5x5/3 average pools instead, each with the library's choice of
path and with the matrix path off (``avg_pool.MATRIX_MAX_ENTRIES = 0``: window slices).

Prints the minigrad on the import path: to compare two trees, run it once with each on
``PYTHONPATH`` (a checkout: ``git archive COMMIT | tar -x -C DIR``)::

    python benchmarks/bench_pools.py
    PYTHONPATH=/tmp/base22 python benchmarks/bench_pools.py
    python benchmarks/bench_pools.py --avg
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np

import minigrad as mg
import minigrad.functional as F
from minigrad import runtime
from minigrad.functional import avg_pool

#: (N, C, H, W) of the pool branch's input: 224 px at batch 8 (3b, 4b-4d, 5b) and CIFAR
#: size (width 0.25 at batch 64: 3b, 4b, 5b, 3a; width 1 at batch 32: 4b)
SHAPES = [
    (8, 256, 28, 28),
    (8, 512, 14, 14),
    (8, 832, 7, 7),
    (64, 120, 32, 32),
    (64, 128, 16, 16),
    (64, 208, 8, 8),
    (32, 480, 16, 16),
]
#: (N, C, H, W) of the aux heads' 5x5/3 average pool: 224 px at batch 8 and 32 (4a, 4d),
#: CIFAR size (width 0.25 at batch 64, width 1 at batch 32: 4a)
AVG_SHAPES = [
    (8, 512, 14, 14),
    (8, 528, 14, 14),
    (32, 512, 14, 14),
    (64, 128, 16, 16),
    (32, 512, 16, 16),
]


def median_ms(fn: Any, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--avg", action="store_true", help="the aux heads' average pools")
    args = parser.parse_args()
    runtime.configure_cpu_training(None)
    rng = np.random.default_rng(0)
    if args.avg:
        average_pools(rng, args.repeats)
        return
    print(f"minigrad from {mg.__file__}; 3x3/1 pad-1 max pool, median of {args.repeats}, ms")
    print(f"{'input (N, C, H, W)':<22} {'forward':>8} {'fwd+bwd':>8}")
    for N, C, H, W in SHAPES:
        x = mg.tensor(rng.standard_normal((C, N, H, W), dtype=np.float32).swapaxes(0, 1),
                      requires_grad=True)  # fmt: skip
        gy = rng.standard_normal((C, N, H, W), dtype=np.float32).swapaxes(0, 1)
        fwd = median_ms(lambda x=x: F.max_pool2d(x, 3, 1, 1), args.repeats)
        both = median_ms(lambda x=x, gy=gy: F.max_pool2d(x, 3, 1, 1).backward(gy), args.repeats)
        print(f"{str((N, C, H, W)):<22} {fwd:>8.2f} {both:>8.2f}")


def average_pools(rng: Any, repeats: int) -> None:
    """The aux heads' 5x5/3 average pools, with the library's path and without the
    matrix path, interleaved (best of two medians each)."""
    print(f"minigrad from {mg.__file__}; 5x5/3 average pool, median of {repeats}, ms")
    print(f"{'input (N, C, H, W)':<22} {'forward':>8} {'fwd+bwd':>8} {'slices':>8} {'x':>6}")
    default = avg_pool.MATRIX_MAX_ENTRIES
    for N, C, H, W in AVG_SHAPES:
        x = mg.tensor(rng.standard_normal((C, N, H, W), dtype=np.float32).swapaxes(0, 1),
                      requires_grad=True)  # fmt: skip
        OH, OW = (H - 5) // 3 + 1, (W - 5) // 3 + 1
        gy = rng.standard_normal((C, N, OH, OW), dtype=np.float32).swapaxes(0, 1)
        times: dict[int, list[float]] = {default: [], 0: []}
        for limit in (default, 0, default, 0):
            avg_pool.MATRIX_MAX_ENTRIES = limit
            fwd = median_ms(lambda x=x: F.avg_pool2d(x, 5, 3), repeats)
            both = median_ms(lambda x=x, gy=gy: F.avg_pool2d(x, 5, 3).backward(gy), repeats)
            times[limit].append((both, fwd))
        avg_pool.MATRIX_MAX_ENTRIES = default
        (both, fwd), (slices, _) = min(times[default]), min(times[0])  # by fwd+bwd
        ratio = slices / both
        print(f"{str((N, C, H, W)):<22} {fwd:>8.2f} {both:>8.2f} {slices:>8.2f} {ratio:>5.1f}x")


if __name__ == "__main__":
    main()
