"""A cost model of DDP's gradient all-reduce, fitted and checked on 2 ranks, extrapolated.

Each rank all-reduces its gradient buckets once per step. With the ring algorithm (what
MPI and NCCL use for large messages) one all-reduce of ``n`` bytes on ``R`` ranks costs

    t(n, R) = 2 (R - 1) * alpha + 2 (R - 1) / R * n / bandwidth

(``alpha``: the latency of one message; every rank sends and receives ``2 (R-1)/R * n``
bytes). A step's communication is the sum over the buckets. The step time on R ranks lies
between ``max(T, C)`` (all of it hidden behind backward) and ``T + C`` (none hidden), with
``T`` the step's compute time on one rank; scaling is ``T / step time``.

``--measure`` (the default) runs ``mpiexec -n 2``: it times ``dist.all_reduce`` of float32
arrays from 1 KiB to 32 MiB, fits ``t(n, 2) = a + b n`` (so alpha = a / 2, bandwidth =
1 / b), then times the real buckets of GoogLeNet's DDP one after another and compares with
the model's prediction. ``--mpiexec-arg`` and ``--hostfile`` reach another transport (e.g.
two hosts; the test suite's network namespaces). Then the model predicts scaling at 8, 64
and 512 ranks for the fitted link and, with ``--link``, for named ones.

    python benchmarks/allreduce_model.py --step-s 5.5
    python benchmarks/allreduce_model.py --step-s 5.5 --link 10GbE=1.25e9,30e-6
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # googlenet.py

SIZES = [2**k for k in range(10, 26)]  # bytes: 1 KiB .. 32 MiB


def child(reps: int, config: str) -> None:
    """On each rank: the all-reduce times and the bucket sizes; rank 0 prints JSON."""
    import minigrad as mg
    from googlenet import GoogLeNet
    from minigrad import distributed as dist
    from minigrad import nn

    dist.init(timeout=600)
    width = {"cifar-w1": 1.0, "cifar-w0.25": 0.25}[config]
    mg.manual_seed(0)
    ddp = nn.DistributedDataParallel(GoogLeNet(10, stem="cifar", batch_norm=True, width=width))
    sizes_of = [p.data.nbytes for p in ddp._params]
    buckets = [int(sum(sizes_of[i] for i in b.params)) for b in ddp._buckets]

    def timed(n_bytes: int) -> float:
        x = np.ones(n_bytes // 4, dtype=np.float32)
        times = []
        for _ in range(reps):
            dist.barrier()
            t = time.perf_counter()
            dist.all_reduce(x)
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    sizes = {n: timed(n) for n in SIZES}
    arrays = [np.ones(n // 4, dtype=np.float32) for n in buckets]
    steps = []
    for _ in range(reps):
        dist.barrier()
        t = time.perf_counter()
        for a in arrays:  # one after another, each waited: no overlap with anything
            dist.all_reduce(a)
        steps.append(time.perf_counter() - t)
    if dist.is_main():
        row = {"ranks": dist.world_size(), "sizes": sizes, "buckets": buckets,
               "buckets_s": statistics.median(steps)}  # fmt: skip
        print(json.dumps(row), flush=True)


def ring_s(n: float, R: int, alpha: float, bandwidth: float) -> float:
    """Seconds of one ring all-reduce of ``n`` bytes on ``R`` ranks."""
    return 2 * (R - 1) * alpha + 2 * (R - 1) / R * n / bandwidth


def predict(buckets: list[int], R: int, alpha: float, bandwidth: float) -> float:
    """Seconds of a step's all-reduces (every bucket, one after another)."""
    return sum(ring_s(n, R, alpha, bandwidth) for n in buckets)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="cifar-w1", choices=("cifar-w1", "cifar-w0.25"))
    p.add_argument("--step-s", type=float, action="append",
                   help="compute seconds of one rank's step (repeatable; default 5.5: "
                   "bench_ddp's 1-rank row)")  # fmt: skip
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--hostfile", help="mpiexec -f FILE")
    p.add_argument("--mpiexec-arg", action="append", default=[], metavar="ARG")
    p.add_argument("--link", action="append", default=[], metavar="NAME=BYTES_PER_S,LATENCY_S",
                   help="also predict for this link, e.g. 10GbE=1.25e9,30e-6")  # fmt: skip
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.reps, args.config)
        return
    mpiexec = Path(sys.executable).parent / "mpiexec"
    mpiexec = str(mpiexec) if mpiexec.exists() else shutil.which("mpiexec")
    cmd = [mpiexec, "-n", "2", *(["-f", args.hostfile] if args.hostfile else []),
           *args.mpiexec_arg, sys.executable, __file__, "--child", "--reps", str(args.reps),
           "--config", args.config]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    n = np.array([float(k) for k in row["sizes"]])
    t = np.array(list(row["sizes"].values()))
    # t = a + b n on 2 ranks: a from the smallest message (latency-bound), b from the
    # messages of 1 MiB and more (bandwidth-bound; a least-squares line through all sizes
    # is dominated by the large ones and can give a negative a)
    a = float(t[0])
    big = n >= 2**20
    b = float(np.polyfit(n[big], t[big], 1)[0])
    alpha, bandwidth = a / 2, 1 / b
    buckets = row["buckets"]
    model = predict(buckets, 2, alpha, bandwidth)
    print(f"2 ranks, {args.config}: {len(buckets)} buckets, {sum(buckets) / 2**20:.1f} MiB of "
          f"gradients; fit t(n) = {a * 1e6:.1f} us + n / {bandwidth / 1e9:.2f} GB/s "
          f"(alpha {alpha * 1e6:.1f} us)")  # fmt: skip
    print(f"buckets one after another: measured {row['buckets_s'] * 1e3:.1f} ms, "
          f"model {model * 1e3:.1f} ms ({model / row['buckets_s']:.2f} x measured)")  # fmt: skip
    links = [("fitted", bandwidth, alpha)]
    for spec in args.link:
        name, values = spec.split("=")
        bw, lat = (float(v) for v in values.split(","))
        links.append((name, bw, lat))
    for T in args.step_s or [5.5]:
        print(f"predicted scaling with a {T:g} s step (T / step time; none hidden .. all "
              "hidden):")  # fmt: skip
        print(f"{'link':<10} {'GB/s':>6} {'alpha us':>8} "
              + " ".join(f"{f'R={R}':>16}" for R in (2, 8, 64, 512)))  # fmt: skip
        for name, bw, lat in links:
            cells = []
            for R in (2, 8, 64, 512):
                C = predict(buckets, R, lat, bw)
                cells.append(f"{T / (T + C):>6.1%} .. {T / max(T, C):>6.1%}")
            print(f"{name:<10} {bw / 1e9:>6.2f} {lat * 1e6:>8.1f} " + " ".join(cells))


if __name__ == "__main__":
    main()
