"""An Inception block's three 1x1 heads: three convolutions against one (``fused_heads``).

For each of GoogLeNet's nine blocks (224-px stem, or the CIFAR stem with ``--stem cifar``),
at ``--batch`` and ``--width``: the three 1x1 convolutions that read the block's input
(branch 1, and the reductions of branches 2 and 3), forward and backward on the chunked
path with channel-major arrays as in a training step, timed two ways in one process:

- ``three``: three ``Conv2d`` ops, then the two sums of their input gradients (what the
  engine adds when the heads run one by one);
- ``one``: the stacked weights and biases, one ``Conv2d``, and the concatenation of the
  three output gradients that ``Split``'s chunked backward makes.

Median of ``--repeats``, the two ways alternating. ``GEMM`` is the time the block's
products would take at the machine's matrix-product rate measured in the same run (a
2048 x 2048 product on all cores): a ratio against it shows how far each way is from the
ceiling.

    python benchmarks/ab_heads.py                      # 224 px, batch 8
    python benchmarks/ab_heads.py --stem cifar --batch 64 --width 0.25
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import Device, GemmCeiling

import googlenet
from minigrad import runtime
from minigrad.functional.conv import Conv2d
from minigrad.functional.shape import cat_channel_major

#: each block's map size: the 224-px stem's and the CIFAR stem's
SIZES = {
    "imagenet": {"3a": 28, "3b": 28, "4a": 14, "4b": 14, "4c": 14, "4d": 14, "4e": 14,
                 "5a": 7, "5b": 7},
    "cifar": {"3a": 32, "3b": 32, "4a": 16, "4b": 16, "4c": 16, "4d": 16, "4e": 16,
              "5a": 8, "5b": 8},
}  # fmt: skip


def _op() -> Conv2d:
    op = Conv2d((1, 1), (0, 0))
    op.needs_input_grad, op.requires_grad = (True, True, True), True
    return op


def time_block(
    x: np.ndarray, ws: list[np.ndarray], bs: list[np.ndarray], gys: list[np.ndarray],
    repeats: int,
) -> tuple[float, float]:  # fmt: skip
    """Median ms of the three heads one by one and as one, forward + backward."""

    def three() -> None:
        gx = None
        for w, b, gy in zip(ws, bs, gys):
            op = _op()
            op.forward_chunked(x, w, b)
            g = op.backward_chunked(gy)[0]
            gx = g if gx is None else gx + g  # the engine's sum

    def one() -> None:
        op = _op()
        op.forward_chunked(x, np.concatenate(ws), np.concatenate(bs))
        op.backward_chunked(cat_channel_major(gys))

    times: dict[str, list[float]] = {"three": [], "one": []}
    for _ in range(repeats):
        for name, fn in (("three", three), ("one", one)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return statistics.median(times["three"]) * 1e3, statistics.median(times["one"]) * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stem", choices=["imagenet", "cifar"], default="imagenet")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=9)
    args = p.parse_args()
    runtime.configure_cpu_training(None)
    rng = np.random.default_rng(0)
    ceiling = GemmCeiling(Device("cpu"), 2048, threads=runtime.host_threads())

    def channel_major(n: int, c: int, h: int) -> np.ndarray:
        return rng.standard_normal((c, n, h, h), dtype=np.float32).swapaxes(0, 1)

    print(f"Inception 1x1 heads, stem {args.stem}, batch {args.batch}, width {args.width}, "
          f"forward + backward, median of {args.repeats}, ms")  # fmt: skip
    print(f"{'block':<5} {'C -> heads':<22} {'three':>7} {'one':>7} {'GEMM':>6} {'speed-up':>8}")
    total = {"three": 0.0, "one": 0.0, "gemm": 0.0}
    for row in googlenet.scale_table(googlenet.INCEPTION_TABLE, args.width):
        h, C = SIZES[args.stem][row.name], row.in_channels
        outs = [row.ch1x1, row.ch3x3red, row.ch5x5red]
        x = channel_major(args.batch, C, h)
        ws = [rng.standard_normal((o, C, 1, 1), dtype=np.float32) * 0.05 for o in outs]
        bs = [np.zeros(o, np.float32) for o in outs]
        gys = [channel_major(args.batch, o, h) for o in outs]

        t3, t1 = time_block(x, ws, bs, gys, args.repeats)
        ceiling.sample(1)
        flops = 3 * 2 * args.batch * h * h * C * sum(outs)  # forward, gx, gw
        gemm = flops / ceiling.rate() * 1e3
        total["three"] += t3
        total["one"] += t1
        total["gemm"] += gemm
        heads = f"{C} -> {'+'.join(map(str, outs))}"
        print(f"{row.name:<5} {heads:<22} {t3:7.2f} {t1:7.2f} {gemm:6.2f} {t3 / t1:7.2f}x")
    print(f"all blocks: three {total['three']:.1f} ms, one {total['one']:.1f} ms "
          f"({total['three'] / total['one']:.2f}x); at the GEMM rate "
          f"({ceiling.rate() / 1e9:.0f} GFLOP/s) {total['gemm']:.1f} ms: three at "
          f"{total['gemm'] / total['three']:.0%} of it, one at "
          f"{total['gemm'] / total['one']:.0%}")  # fmt: skip


if __name__ == "__main__":
    main()
