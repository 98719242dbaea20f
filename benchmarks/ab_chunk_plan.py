"""The host-thread chunk plan of issue 22 against the one before it, on full training steps.

Two measurements, both in one process on the same model and data:

- ``--balance``: deterministic. Records every ``for_blocks`` call of one step and reports,
  for each plan, the share of the elements the busiest host thread gets (50 % with two
  threads is a perfect split). No timing, so the load of the machine does not enter.
- default: alternates full steps between the two plans (``_threads.blocks`` switched at
  run time; who goes first swaps every round) and prints the median step time of each,
  the host threads' idle time, and the median over rounds of old/new.

    python benchmarks/ab_chunk_plan.py --balance --batch 8
    python benchmarks/ab_chunk_plan.py --batch 32 --no-batch-norm --rounds 4
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # googlenet.py

from _common import Device
from bench_train import Config, make_step

from minigrad import runtime
from minigrad.functional import _threads


def old_blocks(
    n: int, size: int, a: Any, chunk_elements: int = _threads.CHUNK_ELEMENTS, threads: Any = None
) -> list[list[slice]]:
    """The plan before issue 22: chunks of ``chunk_elements`` and a last one with the rest,
    one contiguous run of them per thread."""
    if n == 0:
        return [[]]
    if _threads.is_cupy_array(a) or n == 1 or getattr(_threads._inside, "busy", False):
        return [[slice(0, n)]]
    per = max(1, chunk_elements * n // max(size, 1))
    chunks = [slice(i, min(i + per, n)) for i in range(0, n, per)]
    k = runtime.host_threads() if threads is None else threads
    if size < _threads.PARALLEL_MIN_SIZE:
        k = 1
    k = max(1, min(k, len(chunks)))
    bounds = [len(chunks) * i // k for i in range(k + 1)]
    return [chunks[lo:hi] for lo, hi in zip(bounds, bounds[1:])]


PLANS = {"old": old_blocks, "new": _threads.blocks}


def balance(step: Any) -> None:
    calls = []

    def record(n: int, size: int, a: Any, chunk_elements: int = _threads.CHUNK_ELEMENTS,
               threads: Any = None) -> list[list[slice]]:  # fmt: skip
        calls.append((n, size, chunk_elements, threads))
        return PLANS["new"](n, size, a, chunk_elements, threads)

    _threads.blocks = record
    try:
        step()
    finally:
        _threads.blocks = PLANS["new"]
    a = np.zeros(1)
    for name, plan in PLANS.items():
        busiest = total = 0.0
        for n, size, chunk_elements, threads in calls:
            runs = plan(n, size, a, chunk_elements, threads)
            work = [sum(s.stop - s.start for s in run) * size / n for run in runs]
            busiest, total = busiest + max(work), total + sum(work)
        print(
            f"{name}: {len(calls)} for_blocks calls, {total / 1e6:.0f} M elements, the busiest "
            f"thread {busiest / total:.1%} of them"
        )


def alternate(step: Any, rounds: int) -> None:
    times: dict[str, list[float]] = {name: [] for name in PLANS}
    idle: dict[str, list[float]] = {name: [] for name in PLANS}
    for r in range(rounds):
        for name in list(PLANS) if r % 2 == 0 else list(PLANS)[::-1]:
            _threads.blocks = PLANS[name]
            _threads.idle_stats(reset=True)
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
            idle[name].append(_threads.idle_stats()["idle_s"])
    _threads.blocks = PLANS["new"]
    for name in PLANS:
        print(
            f"{name}: step {statistics.median(times[name]):.3f} s (median of {rounds}), "
            f"idle {statistics.median(idle[name]):.3f} s"
        )
    ratio = statistics.median(o / n for o, n in zip(times["old"], times["new"]))
    print(f"old/new, median over rounds: {ratio:.2f}x")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-norm", default=True, action=argparse.BooleanOptionalAction)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0, help="host threads (default: all)")
    parser.add_argument("--balance", action="store_true", help="the plans' split, no timing")
    args = parser.parse_args(argv)
    runtime.configure_cpu_training(args.threads or None)
    stem, classes = ("imagenet", 1000) if args.size >= 64 else ("cifar", 10)
    cfg = Config("ab", stem, 1.0, args.batch, args.size, classes, "", args.batch_norm)
    step, _, _ = make_step(cfg, Device("cpu"))
    step()  # warm-up
    print(
        f"GoogLeNet {'BN' if args.batch_norm else 'paper'} model, {args.size} px, batch "
        f"{args.batch}, {runtime.host_threads()} host threads"
    )
    if args.balance:
        balance(step)
    else:
        alternate(step, args.rounds)


if __name__ == "__main__":
    main()
