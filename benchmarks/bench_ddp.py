"""GoogLeNet training steps on N MPI ranks (DistributedDataParallel) against the GEMM rate.

The same step as ``bench_train.py`` (train-mode forward with both aux heads, CE + 0.3 x aux
CEs, backward, SGD momentum 0.9, random data), per configuration in three runs:

- ``1 rank``: one process, one thread, the per-rank batch B: the unit of scaling;
- ``1 proc``: one process with N threads on the global batch N x B (the single-process
  figure ``bench_train.py`` reports);
- ``N ranks``: ``mpiexec -n N``, each rank one thread and batch B, the model wrapped in
  ``DistributedDataParallel`` (gradients averaged by bucketed ``Iallreduce``).

Per run: median step time, images/s (global), achieved training FLOP/s, the float32 GEMM
rate of the whole machine (an n x n product on N BLAS threads, sampled after every step
while the other ranks wait in a barrier) and their ratio. For the N-rank run also the
scaling efficiency (N-rank images/s over N x the 1-rank images/s) and the seconds per step
spent waiting for the all-reduces at the end of backward (what the overlap did not hide).

``--sync-bn`` adds a row per configuration: the N-rank run with ``SyncBatchNorm`` (the
batch statistics all-reduced in every batch norm's forward and backward), and its step time
over the plain N-rank run's ("sync/plain").

    python benchmarks/bench_ddp.py                     # -n 2, both CIFAR configs
    python benchmarks/bench_ddp.py --ranks 2 --configs w1 --steps 3
    python benchmarks/bench_ddp.py --sync-bn           # also N ranks with SyncBatchNorm

Needs the ``dist`` extra (mpi4py and MPICH's ``mpiexec`` in the venv).
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
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # googlenet.py

from _common import Device, GemmCeiling, timed
from bench_train import CPU_CONFIGS, Config, count_forward_flops

from minigrad.runtime import BLAS_ENV_DEFAULTS


def child(
    cfg: Config, steps: int, gemm_n: int, threads: int, gemm_threads: int, sync_bn: bool = False
) -> None:
    """One rank (or the single process): time ``steps`` steps, rank 0 prints a JSON row."""
    import minigrad as mg
    from googlenet import GoogLeNet, loss_terms
    from minigrad import distributed as dist
    from minigrad import nn, runtime
    from minigrad.optim import SGD

    dist.init(timeout=600)
    runtime.configure_cpu_training(threads)
    R = dist.world_size()
    dev = Device("cpu")
    mg.manual_seed(0)
    rng = np.random.default_rng(dist.rank())
    model = GoogLeNet(cfg.num_classes, stem=cfg.stem, batch_norm=True, width=cfg.width)
    model.train()
    x = mg.tensor(dev.randn(rng, cfg.batch, 3, cfg.size, cfg.size))
    # per image; before SyncBN (whose forward is a collective: rank 0 alone would hang)
    train_flops = 3 * count_forward_flops(model, x[:2])
    if sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ddp = nn.DistributedDataParallel(model) if R > 1 else model
    opt = SGD(model.parameters(), lr=0.01, momentum=0.9)
    y = mg.tensor(rng.integers(0, cfg.num_classes, size=cfg.batch).astype(np.int64))

    def step() -> None:
        opt.zero_grad()
        loss_terms(ddp(x), y)["total"].backward()
        opt.step()

    step()  # warm-up (and the bucket rebuild)
    ceiling = GemmCeiling(dev, gemm_n, threads=gemm_threads) if dist.is_main() else None
    times, waits = [], []
    for _ in range(steps):
        dist.barrier()
        times.append(timed(step, dev.sync))
        waits.append(ddp.last_sync.get("wait_s", 0.0) if R > 1 else 0.0)
        dist.barrier()
        if ceiling is not None:  # the other ranks wait in the barrier below
            ceiling.sample(2)
        dist.barrier()
    if not dist.is_main():
        return
    t = statistics.median(times)
    achieved = train_flops * cfg.batch * R / t
    row = {
        "config": asdict(cfg),
        "ranks": R,
        "threads": threads,
        "step_s": t,
        "images_per_s": cfg.batch * R / t,
        "achieved_gflops": achieved / 1e9,
        "gemm_gflops": ceiling.rate() / 1e9,
        "ratio": achieved / ceiling.rate(),
        "allreduce_wait_s": statistics.median(waits),
        "buckets": ddp.last_sync.get("buckets", 0) if R > 1 else 0,
        "allreduce_bytes": ddp.last_sync.get("bytes", 0) if R > 1 else 0,
        "sync_bn": sync_bn,
    }
    print(json.dumps(row), flush=True)


def launch(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", type=int, default=2, help="MPI ranks (default 2)")
    parser.add_argument("--configs", default="", help="comma-separated names or parts (w1)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (default 3)")
    parser.add_argument("--gemm", type=int, default=2048, help="ceiling size n (default 2048)")
    parser.add_argument("--json", default="", help="also write the rows to this file")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    parser.add_argument("--sync-bn", action="store_true",
                        help="add an N-rank row with SyncBatchNorm")  # fmt: skip
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    N = args.ranks
    if args.child:
        cfg = Config(**json.loads(args.child))
        child(cfg, args.steps, args.gemm, args.threads, gemm_threads=N, sync_bn=args.sync_bn)
        return
    mpiexec = Path(sys.executable).parent / "mpiexec"
    mpiexec = str(mpiexec) if mpiexec.exists() else shutil.which("mpiexec")
    if mpiexec is None:
        parser.error("mpiexec not found: pip install -e '.[dist]'")
    configs = CPU_CONFIGS
    if args.configs:
        wanted = [s.strip() for s in args.configs.split(",") if s.strip()]
        configs = [c for c in configs if any(w in c.name for w in wanted)]
        if not configs:
            parser.error(f"--configs {args.configs!r} matches none of the config names")
    env = {**os.environ, **BLAS_ENV_DEFAULTS}
    print(
        f"GoogLeNet training step (batch_norm=True, aux heads, SGD momentum 0.9), cpu, "
        f"float32, median of {args.steps} steps; GEMM = {args.gemm}^3 product on {N} threads"
    )
    head = (
        f"{'config':<12} {'run':<9} {'batch':>9} {'step s':>7} {'img/s':>7} {'GFLOP/s':>8} "
        f"{'GEMM':>7} {'ratio':>6} {'scaling':>7} {'allreduce s':>11}"
    )
    print(head)
    print("-" * len(head))
    rows = []
    for cfg in configs:
        base = [sys.executable, __file__, "--steps", str(args.steps), "--gemm", str(args.gemm)]
        big = replace(cfg, batch=cfg.batch * N)
        runs = [
            ("1 rank", cfg, [*base, "--child", json.dumps(asdict(cfg)), "--threads", "1"]),
            ("1 proc", big, [*base, "--child", json.dumps(asdict(big)), "--threads", str(N)]),
            (
                f"{N} ranks",
                cfg,
                [mpiexec, "-n", str(N), *base, "--child", json.dumps(asdict(cfg))],
            ),
        ]
        if args.sync_bn:
            runs.append((f"{N} SyncBN", cfg, [*runs[-1][2], "--sync-bn"]))
        one = plain = None
        for name, c, cmd in runs:
            start = time.perf_counter()
            row = launch(cmd, env)
            row["run"], row["wall_s"] = name, time.perf_counter() - start
            one = row if name == "1 rank" else one
            plain = row if name == f"{N} ranks" else plain
            scaling = row["images_per_s"] / (row["ranks"] * one["images_per_s"])
            row["scaling"] = scaling if row["ranks"] > 1 else None
            batch = f"{N}x{c.batch}" if row["ranks"] > 1 else str(c.batch)
            print(
                f"{cfg.name:<12} {name:<9} {batch:>9} {row['step_s']:>7.3f} "
                f"{row['images_per_s']:>7.1f} {row['achieved_gflops']:>8.1f} "
                f"{row['gemm_gflops']:>7.1f} {row['ratio']:>6.1%} "
                f"{'' if row['scaling'] is None else format(scaling, '.0%'):>7} "
                f"{row['allreduce_wait_s'] if row['ranks'] > 1 else '':>11.3}",
                flush=True,
            )
            if row["sync_bn"]:
                row["sync_over_plain"] = row["step_s"] / plain["step_s"]
                print(f"{'':<12} SyncBN step / plain BN step at {N} ranks: "
                      f"{row['sync_over_plain']:.3f}", flush=True)  # fmt: skip
            rows.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
