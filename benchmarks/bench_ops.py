"""conv2d forward+backward on every distinct conv shape of GoogLeNet (CIFAR stem, or the
224-px ImageNet stem with ``--stem imagenet``), against a matrix-product ceiling measured
in the same run.

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
    python benchmarks/bench_ops.py --stem imagenet --batch 8          # the 224-px layers
    python benchmarks/bench_ops.py --streams --batch 8                # memory-bound ops

``--streams`` times the memory-bound passes of the 224-px stem instead (issue 22): the
7x7/2 conv's im2col and col2im and the 3x3/2 max pools forward and backward, each against
a copy of the same traffic (``np.copyto`` of (bytes read + bytes written) / 2: im2col's
output, col2im's input, a pool's input and output, forward and backward) measured in the
same run; ``x memcpy`` is the op's time over the copy's.
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
# (the ImageNet stem at 224 px: 28 for 3a/3b, 14 for 4a-4e, 7 for 5a/5b)
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
    stride: int = 1

    @property
    def padding(self) -> int:
        return self.K // 2

    @property
    def out_size(self) -> int:
        return (self.size + 2 * self.padding - self.K) // self.stride + 1

    def shape_key(self) -> tuple[int, int, int, int, int]:
        return (self.C_in, self.C_out, self.K, self.size, self.stride)


def googlenet_layers(stem: str = "cifar") -> list[Layer]:
    """Every distinct (C_in, C_out, K, map size, stride) conv of GoogLeNet with ``stem``."""
    if stem == "cifar":
        layers = [Layer("stem", 3, 192, 3, 32)]
    else:  # 224 px: 7x7/2 conv, 3x3/2 pool, 1x1 conv, 3x3 conv, 3x3/2 pool
        layers = [Layer("conv1", 3, 64, 7, 224, 2), Layer("conv2", 64, 64, 1, 56)]
        layers += [Layer("conv3", 64, 192, 3, 56)]
    scale = {32: 28, 16: 14, 8: 7} if stem == "imagenet" else {}
    for name, (cin, c1, c3r, c3, c5r, c5, pp, s) in INCEPTION.items():
        s = scale.get(s, s)
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
    So = layer.out_size
    gy = arr(Co, N, So, So).swapaxes(0, 1)  # padding K // 2

    def step() -> None:
        x.grad = w.grad = b.grad = None
        F.conv2d(x, w, b, stride=layer.stride, padding=layer.padding).backward(gy)

    t_conv = median_time(step, repeats, sync)
    x = w = b = gy = None  # free before the ceiling's arrays are made

    # the ceiling: the same three products on plain contiguous float32 arrays
    Kc, M = C * K * K, N * So * So
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
    flops = 3 * 2 * N * Co * So * So * C * K * K
    return {"t_conv": t_conv, "t_ceiling": t_ceiling, "flops": flops}


def bench_streams(batch: int, repeats: int, device: str) -> list[tuple[str, int, float, float]]:
    """(name, bytes written, op seconds, memcpy seconds) for the 224-px stem's memory-bound
    passes: the 7x7/2 conv's im2col (the conv's chunks: one image at a time) and col2im,
    and the 3x3/2 ceil-mode max pools (forward, backward) after conv1 and conv3."""
    from minigrad.functional._im2col import col2im, im2col
    from minigrad.functional._threads import for_blocks

    dev = Device(device)
    rng = np.random.default_rng(0)
    xp, sync = dev.xp, dev.sync
    rows = []

    def against_copy(name: str, fn: Any, out_bytes: int) -> None:
        src = xp.empty(out_bytes // 4, dtype=np.float32)
        src[...] = 1.0
        dst = xp.empty_like(src)
        t_op = median_time(fn, repeats, sync)
        t_copy = median_time(lambda: xp.copyto(dst, src), repeats, sync)
        rows.append((name, out_bytes, t_op, t_copy))

    x = dev.randn(rng, 3, batch, 224, 224).swapaxes(0, 1)  # channel-major, as in the net
    col_shape = (3 * 49, batch * 112 * 112)

    def unfold() -> None:  # as the conv's chunks do it: im2col of a few images at a time
        for_blocks(lambda ns: im2col(x[ns], 7, 7, 2, 3), batch, 147 * batch * 112 * 112, x, 1 << 20)

    against_copy("conv1 im2col 7x7/2", unfold, 4 * col_shape[0] * col_shape[1])
    col = dev.randn(rng, *col_shape)
    gx = xp.empty((3, batch, 224, 224), dtype=np.float32)

    def fold() -> None:
        def chunk(ns: slice) -> None:
            cols = slice(ns.start * 112 * 112, ns.stop * 112 * 112)
            col2im(col[:, cols], (ns.stop - ns.start, 3, 224, 224), 7, 7, 2, 3, out=gx[:, ns])

        for_blocks(chunk, batch, col.size, col, 1 << 20)

    against_copy("conv1 col2im 7x7/2", fold, 4 * col.size)
    col = gx = None
    for name, C, S in (("maxpool1 3x3/2", 64, 112), ("maxpool2 3x3/2", 192, 56)):
        xt = mg.tensor(dev.randn(rng, C, batch, S, S).swapaxes(0, 1), requires_grad=True)
        y = F.max_pool2d(xt, 3, 2, ceil_mode=True)
        gy = dev.randn(rng, *y.shape)

        def forward(xt: Any = xt) -> None:
            F.max_pool2d(xt, 3, 2, ceil_mode=True)

        def backward(xt: Any = xt, gy: Any = gy) -> None:
            xt.grad = None
            F.max_pool2d(xt, 3, 2, ceil_mode=True).backward(gy)

        # bytes copied = (read + written) / 2: a copy reads and writes each byte
        against_copy(f"{name} fwd", forward, 4 * (xt.numel() + y.numel()) // 2)
        against_copy(f"{name} fwd+bwd", backward, 4 * (xt.numel() + y.numel()))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--layers", default="", help="comma-separated names or prefixes (e.g. 3a,4e.3x3,stem)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--stem", default="cifar", choices=["cifar", "imagenet"])
    parser.add_argument(
        "--streams", action="store_true", help="the 224-px stem's im2col/col2im/pools vs memcpy"
    )
    add_clock_and_mode(parser, "wall time (default) or process CPU time (MINIGRAD_NUM_THREADS=1)")
    args = parser.parse_args(argv)
    set_clock(args.clock)
    device = Device(args.device).name
    threads = None
    if device == "cpu" and args.mode == "tuned":
        from minigrad import runtime

        runtime.configure_cpu_training()
        threads = runtime.host_threads()
    if args.streams:
        print(
            f"memory-bound passes of the 224-px stem, batch {args.batch}, float32, {device}, "
            f"{args.mode} mode, {args.clock} clock, median of {args.repeats}"
        )
        head = f"{'op':<24} {'MiB copy':>8} {'op ms':>8} {'memcpy ms':>9} {'x memcpy':>8}"
        print(head)
        print("-" * len(head))
        for name, nbytes, t_op, t_copy in bench_streams(args.batch, args.repeats, device):
            print(
                f"{name:<24} {nbytes / 2**20:>8.1f} {t_op * 1e3:>8.2f} {t_copy * 1e3:>9.2f} "
                f"{t_op / t_copy:>8.2f}",
                flush=True,
            )
        return
    layers = googlenet_layers(args.stem)
    if args.layers:
        wanted = [s.strip() for s in args.layers.split(",") if s.strip()]
        layers = [ly for ly in layers if any(ly.name.startswith(p) for p in wanted)]
        if not layers:
            parser.error(f"--layers {args.layers!r} matches none of the layer names")

    print(
        f"conv2d fwd+bwd, {args.stem} stem, batch {args.batch}, float32, {device}, "
        f"{args.mode} mode, {args.clock} clock, median of {args.repeats}"
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
            f"{layer.name:<10} {f'{layer.C_in}->{layer.C_out}':>11} "
            f"{f'{layer.K}/{layer.stride}' if layer.stride > 1 else layer.K:>3} "
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
