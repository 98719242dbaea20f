"""Full GoogLeNet training steps against the machine's float32 matrix-product rate.

One step = train-mode forward with both aux heads, ``loss_terms`` (CE + AUX_WEIGHT x the two
aux CEs), backward, ``SGD(momentum=0.9).step()``, on random images and labels. Per
configuration the table gives the median step time, images/s, the training FLOPs per
image, the achieved FLOP/s, the float32 GEMM rate measured in the same run, their ratio,
and the peak memory (host RSS of the process on the CPU, CuPy's pool on the GPU).

FLOP convention: forward FLOPs = 2 x the multiply-adds of every conv and linear layer,
counted from the layer shapes of a real forward (aux heads included; BN, ReLU, pooling,
LRN, softmax and the optimizer are not counted); training FLOPs = 3 x forward (forward,
input gradient, weight gradient: the same products again twice).

The ceiling is one n x n @ n x n float32 product (n = 2048 on the CPU, 8192 on the GPU),
timed once after every training step so both see the same load; its median is the
"GEMM" rate. Each configuration runs in a fresh interpreter so peak memory is its own.

    python benchmarks/bench_train.py                         # CPU: both CIFAR configs
    python benchmarks/bench_train.py --configs w1 --steps 3  # names or prefixes
    python benchmarks/bench_train.py --configs w1 --batch 128 --steps 1   # memory check
    python benchmarks/bench_train.py --threads 1 --clock cpu  # one core (shared machine)
    python benchmarks/bench_train.py --mode plain            # without the CLI's settings
    python benchmarks/bench_train.py --device cuda --precision float32,tf32

The steps run with the training CLI's process settings (``--mode tuned``:
``minigrad.runtime.configure_cpu_training``: malloc keeps freed memory, each product on
one BLAS thread, minigrad's chunks on all cores); the ceiling always uses all ``--threads``
BLAS threads, so the ratio is against what the whole machine's BLAS can do.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # googlenet.py

from _common import (
    Device,
    GemmCeiling,
    add_clock_and_mode,
    fmt_bytes,
    set_clock,
    timed,
)

from minigrad.runtime import BLAS_ENV_DEFAULTS


@dataclass(frozen=True)
class Config:
    name: str
    stem: str
    width: float
    batch: int
    size: int  # input height = width
    num_classes: int
    target: str  # the target, for the table


CPU_CONFIGS = [
    Config("cifar-w1", "cifar", 1.0, 32, 32, 10, ">=50% of GEMM"),
    Config("cifar-w0.25", "cifar", 0.25, 64, 32, 10, ">=25% of GEMM"),
]
GPU_CONFIGS = [
    Config("cifar-w1", "cifar", 1.0, 128, 32, 10, ">=1800 img/s"),
    Config("cifar-w0.25", "cifar", 0.25, 128, 32, 10, ""),
    Config("imagenet-w1", "imagenet", 1.0, 64, 224, 1000, ">=900 img/s"),
]


def count_forward_flops(model: Any, x: Any) -> int:
    """2 x multiply-adds of every Conv2d and Linear in one forward of ``x``, per image."""
    from minigrad import nn, no_grad

    macs = [0]

    def hook(module: Any, inputs: tuple[Any, ...], out: Any) -> None:
        w = module.weight.shape  # conv (C_out, C_in, KH, KW) | linear (out, in)
        per_output = int(np.prod(w[1:]))  # multiply-adds per output value
        macs[0] += int(np.prod(out.shape)) * per_output

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    try:
        with no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return 2 * macs[0] // x.shape[0]


def make_step(cfg: Config, dev: Device, seed: int = 0) -> tuple[Callable[[], Any], Any, Any]:
    """(step function, model, images) for ``cfg`` on ``dev``: one full training step."""
    import minigrad as mg
    from googlenet import GoogLeNet, loss_terms
    from minigrad.optim import SGD

    mg.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = GoogLeNet(cfg.num_classes, stem=cfg.stem, batch_norm=True, width=cfg.width)
    model.to(dev.name)
    model.train()
    opt = SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = mg.tensor(dev.randn(rng, cfg.batch, 3, cfg.size, cfg.size), device=dev.name)
    labels = rng.integers(0, cfg.num_classes, size=cfg.batch).astype(np.int64)
    y = mg.tensor(labels, device=dev.name)

    def step() -> Any:
        opt.zero_grad()
        loss = loss_terms(model(x), y)["total"]
        loss.backward()
        opt.step()
        return loss

    return step, model, x


def run_config(
    cfg: Config, device: str, steps: int, gemm_n: int, mode: str, threads: int
) -> dict[str, Any]:
    """Time ``steps`` training steps of ``cfg`` (after one warm-up step) in this process."""
    from minigrad import runtime

    if device == "cpu" and mode == "tuned":  # exactly what the training CLI does
        runtime.configure_cpu_training(threads)
    elif device == "cpu":
        runtime.set_blas_threads(threads)
        runtime.set_host_threads(threads)
    dev = Device(device)
    step, model, x = make_step(cfg, dev)
    step()  # warm-up: allocator, BLAS threads, momentum buffers
    dev.sync()
    ceiling = GemmCeiling(dev, gemm_n, threads=threads)
    times = []
    for _ in range(steps):
        times.append(timed(step, dev.sync))
        ceiling.sample(2)
    flops_fwd = count_forward_flops(model, x[:2])
    t = statistics.median(times)
    train_flops = 3 * flops_fwd  # per image
    achieved = train_flops * cfg.batch / t
    return {
        "config": asdict(cfg),
        "device": dev.name,
        "steps": steps,
        "step_s": t,
        "step_times": times,
        "images_per_s": cfg.batch / t,
        "train_gflop_per_image": train_flops / 1e9,
        "achieved_gflops": achieved / 1e9,
        "gemm_gflops": ceiling.rate() / 1e9,
        "ratio": achieved / ceiling.rate(),
        "peak_bytes": dev.peak_memory_bytes(),
        "runtime": runtime.settings() if device == "cpu" else {},
    }


def print_table(rows: list[dict[str, Any]], title: str) -> None:
    print(title)
    head = (
        f"{'config':<17} {'batch':>5} {'step s':>7} {'img/s':>7} {'GFLOP/img':>9} "
        f"{'GFLOP/s':>8} {'GEMM GFLOP/s':>12} {'ratio':>6} {'peak mem':>10}  target"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        c = r["config"]
        print(
            f"{c['name']:<17} {c['batch']:>5} {r['step_s']:>7.3f} {r['images_per_s']:>7.1f} "
            f"{r['train_gflop_per_image']:>9.3f} {r['achieved_gflops']:>8.1f} "
            f"{r['gemm_gflops']:>12.1f} {r['ratio']:>6.1%} {fmt_bytes(r['peak_bytes']):>10}  "
            f"{c['target']}",
            flush=True,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--configs", default="", help="comma-separated names or prefixes")
    parser.add_argument("--batch", type=int, default=0, help="override every config's batch")
    parser.add_argument("--steps", type=int, default=0, help="timed steps (CPU 3, GPU 20)")
    parser.add_argument("--precision", default="float32", help="float32, tf32, or both: a,b")
    parser.add_argument("--gemm", type=int, default=0, help="ceiling size n (CPU 2048, GPU 8192)")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads for the steps and the ceiling (default: the CPU count)",
    )
    add_clock_and_mode(parser, "wall time (default) or process CPU time (with --threads 1)")
    parser.add_argument("--json", default="", help="also write the rows to this file")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)  # one config, JSON out
    args = parser.parse_args(argv)
    is_cpu = args.device == "cpu"
    steps = args.steps or (3 if is_cpu else 20)
    gemm_n = args.gemm or (2048 if is_cpu else 8192)
    threads = args.threads or os.cpu_count() or 1
    if args.clock == "cpu" and threads != 1:
        parser.error("--clock cpu adds up the time of every thread: use it with --threads 1")
    set_clock(args.clock)
    if args.child:
        cfg = Config(**json.loads(args.child))
        print(json.dumps(run_config(cfg, args.device, steps, gemm_n, args.mode, threads)))
        return
    if not is_cpu:
        from minigrad import cuda_available

        if not cuda_available():
            parser.error(f"--device {args.device}: CuPy or a CUDA device is not available here")
    configs = CPU_CONFIGS if is_cpu else GPU_CONFIGS
    if args.configs:
        wanted = [s.strip() for s in args.configs.split(",") if s.strip()]
        configs = [c for c in configs if any(c.name.startswith(w) for w in wanted)]
        if not configs:
            parser.error(f"--configs {args.configs!r} matches none of the config names")
    if args.batch:
        configs = [replace(c, batch=args.batch) for c in configs]
    precisions = [p.strip() for p in args.precision.split(",")]
    for p in precisions:
        if p not in ("float32", "tf32"):
            parser.error(f"--precision: expected float32 or tf32, got {p!r}")
        if p == "tf32" and is_cpu:
            parser.error("--precision tf32 needs --device cuda (NumPy has no TF32 products)")
    rows = []
    for precision in precisions:
        env = dict(os.environ)
        env["CUPY_TF32"] = "1" if precision == "tf32" else "0"  # read when CuPy loads
        if args.mode == "tuned":  # read when NumPy loads OpenBLAS
            for var, value in BLAS_ENV_DEFAULTS.items():
                env.setdefault(var, value)
        title = (
            f"GoogLeNet training step (batch_norm=True, aux heads, SGD momentum 0.9), "
            f"{args.device}, {precision}, {threads} threads, {args.mode} mode, "
            f"{args.clock} clock, median of {steps} steps"
        )
        prows = []
        for cfg in configs:
            cmd = [sys.executable, __file__, "--device", args.device, "--child"]
            cmd += [json.dumps(asdict(cfg)), "--steps", str(steps), "--gemm", str(gemm_n)]
            cmd += ["--clock", args.clock, "--threads", str(threads), "--mode", args.mode]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"{cfg.name} failed:\n{out.stderr}")
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row["precision"] = precision
            prows.append(row)
        print_table(prows, title)
        print()
        rows += prows
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
