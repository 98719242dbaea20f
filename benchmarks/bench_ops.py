"""conv2d forward+backward on every distinct conv shape of GoogLeNet (CIFAR stem), against
a matrix-product ceiling measured in the same run.

For each layer: the median time of ``y = F.conv2d(x, w, b); y.backward(gy)`` (gradients for
x, w and b), its FLOPs (3 products of ``2*N*C_out*OH*OW*C_in*KH*KW`` each: forward, gw and
gx), and the median time of the same three products as plain float32 matrix products of
the same shapes on contiguous arrays (the ceiling: what the FLOPs cost with no im2col,
col2im, transposes or bookkeeping). ``ratio = conv time / ceiling time``; the issue's
target is a median ratio <= 2.0 on the CPU.

    python benchmarks/bench_ops.py                      # all layers, batch 64, CPU
    python benchmarks/bench_ops.py --layers 3a,4e.3x3   # names or prefixes
    python benchmarks/bench_ops.py --device cuda --batch 128
    MINIGRAD_NUM_THREADS=1 python benchmarks/bench_ops.py --clock cpu  # one core, CPU time
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass
from typing import Any

import numpy as np
from _common import Device, add_clock_and_mode, median_time, set_clock

import minigrad as mg
import minigrad.functional as F

# name: (in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj), map size with the CIFAR stem
INCEPTION = {
    "3a": (192, 64, 96, 128, 16, 32, 32, 32),
    "3b": (256, 128, 128, 192, 32, 96, 64, 32),
    "4a": (480, 192, 96, 208, 16, 48, 64, 16),
    "4b": (512, 160, 112, 224, 24, 64, 64, 16),
    "4c": (512, 128, 128, 256, 24, 64, 64, 16),
    "4d": (512, 112, 144, 288, 32, 64, 64, 16),
    "4e": (528, 256, 160, 320, 32, 128, 128, 16),
    "5a": (832, 256, 160, 320, 32, 128, 128, 8),
    "5b": (832, 384, 192, 384, 48, 128, 128, 8),
}


@dataclass(frozen=True)
class Layer:
    name: str
    C_in: int
    C_out: int
    K: int
    size: int

    @property
    def padding(self) -> int:
        return self.K // 2

    def shape_key(self) -> tuple[int, int, int, int]:
        return (self.C_in, self.C_out, self.K, self.size)


def googlenet_layers() -> list[Layer]:
    """Every distinct (C_in, C_out, K, map size) conv of GoogLeNet with the CIFAR stem."""
    layers = [Layer("stem", 3, 192, 3, 32)]
    for name, (cin, c1, c3r, c3, c5r, c5, pp, s) in INCEPTION.items():
        layers += [
            Layer(f"{name}.1x1", cin, c1, 1, s),
            Layer(f"{name}.3x3red", cin, c3r, 1, s),
            Layer(f"{name}.3x3", c3r, c3, 3, s),
            Layer(f"{name}.5x5red", cin, c5r, 1, s),
            Layer(f"{name}.5x5", c5r, c5, 5, s),
            Layer(f"{name}.pool", cin, pp, 1, s),
        ]
    # aux heads: 1x1 conv to 128 channels on the 4x4 map after average pooling of 4a / 4d
    layers += [Layer("aux1.conv", 512, 128, 1, 4), Layer("aux2.conv", 528, 128, 1, 4)]
    seen: set[tuple[int, int, int, int]] = set()
    distinct = []
    for layer in layers:
        if layer.shape_key() not in seen:
            seen.add(layer.shape_key())
            distinct.append(layer)
    return distinct


def bench_layer(
    layer: Layer, batch: int, repeats: int, device: str, ceiling_threads: int | None = None
) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    N, C, S, K, Co = batch, layer.C_in, layer.size, layer.K, layer.C_out
    dev = Device(device)
    sync = dev.sync

    def arr(*shape: int) -> Any:
        return dev.randn(rng, *shape)

    # channel-major (N, C, H, W) views of (C, N, H, W) arrays, as inside the network
    x = mg.tensor(arr(C, N, S, S).swapaxes(0, 1), device=dev.name, requires_grad=True)
    w = arr(Co, C, K, K) * np.float32(1.0 / (C * K * K) ** 0.5)
    w = mg.tensor(w, device=dev.name, requires_grad=True)
    b = mg.tensor(arr(Co), device=dev.name, requires_grad=True)
    gy = arr(Co, N, S, S).swapaxes(0, 1)  # padding K // 2, stride 1: same size out

    def step() -> None:
        x.grad = w.grad = b.grad = None
        F.conv2d(x, w, b, stride=1, padding=layer.padding).backward(gy)

    t_conv = median_time(step, repeats, sync)
    x = w = b = gy = None  # free before the ceiling's arrays are made

    # the ceiling: the same three products on plain contiguous float32 arrays
    Kc, M = C * K * K, N * S * S
    a_w, a_col, a_gy = arr(Co, Kc), arr(Kc, M), arr(Co, M)
    a_colT, a_wT = arr(M, Kc), arr(Kc, Co)

    def gemms() -> None:
        a_w @ a_col  # forward   (C_out, K) @ (K, M)
        a_gy @ a_colT  # gw      (C_out, M) @ (M, K)
        a_wT @ a_gy  # gcol      (K, C_out) @ (C_out, M)

    from minigrad import runtime

    before = runtime.blas_threads() if ceiling_threads else None
    if before is not None:  # the ceiling on all the machine's BLAS threads
        runtime.set_blas_threads(ceiling_threads)
    try:
        t_ceiling = median_time(gemms, repeats, sync)
    finally:
        if before is not None:
            runtime.set_blas_threads(before)
    flops = 3 * 2 * N * Co * S * S * C * K * K
    return {"t_conv": t_conv, "t_ceiling": t_ceiling, "flops": flops}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--layers", default="", help="comma-separated names or prefixes (e.g. 3a,4e.3x3,stem)"
    )
    parser.add_argument("--device", default="cpu")
    add_clock_and_mode(parser, "wall time (default) or process CPU time (MINIGRAD_NUM_THREADS=1)")
    args = parser.parse_args(argv)
    set_clock(args.clock)
    device = Device(args.device).name
    threads = None
    if device == "cpu" and args.mode == "tuned":
        from minigrad import runtime

        runtime.configure_cpu_training()
        threads = runtime.host_threads()
    layers = googlenet_layers()
    if args.layers:
        wanted = [s.strip() for s in args.layers.split(",") if s.strip()]
        layers = [ly for ly in layers if any(ly.name.startswith(p) for p in wanted)]
        if not layers:
            parser.error(f"--layers {args.layers!r} matches none of the layer names")

    print(
        f"conv2d fwd+bwd, batch {args.batch}, float32, {device}, {args.mode} mode, "
        f"{args.clock} clock, median of {args.repeats}"
    )
    head = (
        f"{'layer':<10} {'C_in->C_out':>11} {'k':>3} {'map':>5} {'GFLOP':>7} "
        f"{'conv ms':>8} {'GFLOP/s':>8} {'gemm ms':>8} {'GFLOP/s':>8} {'ratio':>6}"
    )
    print(head)
    print("-" * len(head))
    ratios = []
    for layer in layers:
        r = bench_layer(layer, args.batch, args.repeats, device, threads)
        ratio = r["t_conv"] / r["t_ceiling"]
        ratios.append(ratio)
        gf = r["flops"] / 1e9
        print(
            f"{layer.name:<10} {f'{layer.C_in}->{layer.C_out}':>11} {layer.K:>3} "
            f"{f'{layer.size}x{layer.size}':>5} {gf:>7.2f} {r['t_conv'] * 1e3:>8.1f} "
            f"{gf / r['t_conv']:>8.1f} {r['t_ceiling'] * 1e3:>8.1f} "
            f"{gf / r['t_ceiling']:>8.1f} {ratio:>6.2f}",
            flush=True,
        )
    print("-" * len(head))
    print(
        f"median ratio over {len(ratios)} layers: {statistics.median(ratios):.2f} "
        f"(max {max(ratios):.2f}); target <= 2.0"
    )


if __name__ == "__main__":
    main()
