"""GoogLeNet's 3x3 convolutions by im2col and by Winograd's F(2x2, 3x3) and F(4x4, 3x3),
and with ``--kernel 5`` its 5x5 convolutions by im2col and by F(2x2, 5x5) (issue 22).

Every distinct 3x3 (or 5x5) convolution of the network at the chosen stem, width and batch
(channel-major input, as in the tuned training step), timed on the chunked path with each
of the three (``minigrad.functional.conv.WINOGRAD`` and ``WINOGRAD_TILE``), rounds
interleaved in one process (best of ``--rounds`` each, twice): forward alone, and forward +
backward (gradients for x and w). "rule" is the library's choice for the layer
(:func:`~minigrad.functional.conv.winograd_tile`); with ``--all`` the map and pixel
thresholds are off, so every layer can take either tile and the table shows where the
rule's thresholds come from (the 5x5 rule's channel threshold shows in the "rule" column
either way). The last columns are the largest differences of y, gx and gw
from im2col's, relative to the largest value: the rounding of float32 either way.

    python benchmarks/ab_winograd.py --stem imagenet --batch 8
    python benchmarks/ab_winograd.py --stem cifar --batch 32 --all
    python benchmarks/ab_winograd.py --stem cifar --batch 64 --width 0.25 --all
    python benchmarks/ab_winograd.py --kernel 5 --stem imagenet --batch 8
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import minigrad as mg
import minigrad.functional as F
from minigrad import runtime
from minigrad.functional import conv

#: (in, out) channels of GoogLeNet's 3x3 convolutions (stem 3x3 and the blocks' 3x3 column),
#: and the map size after the CIFAR / ImageNet stem
LAYERS = [
    (64, 192, 32, 56),
    (96, 128, 32, 28),
    (128, 192, 32, 28),
    (96, 208, 16, 14),
    (112, 224, 16, 14),
    (128, 256, 16, 14),
    (144, 288, 16, 14),
    (160, 320, 16, 14),
    (160, 320, 8, 7),
    (192, 384, 8, 7),
]
#: the same for the 5x5 column (#5x5red -> #5x5 of Table 1; torchvision's model has 3x3 there)
LAYERS_5X5 = [
    (16, 32, 32, 28),
    (32, 96, 32, 28),
    (16, 48, 16, 14),
    (24, 64, 16, 14),
    (32, 64, 16, 14),
    (32, 128, 16, 14),
    (32, 128, 8, 7),
    (48, 128, 8, 7),
]


def forward_backward(x: Any, w: Any, gy: Any) -> tuple[Any, ...]:
    """y, gx, gw of one convolution (stride 1, padding: the kernel's half) on the chunked
    path."""
    x.grad = w.grad = None
    y = F.conv2d(x, w, None, 1, w.shape[-1] // 2)
    y.backward(gy)
    return y.numpy(), np.asarray(x.grad), np.asarray(w.grad)


def best(fn: Any, rounds: int) -> float:
    fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stem", default="imagenet", choices=["cifar", "imagenet"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--width", type=float, default=1.0, help="GoogLeNet's width multiplier")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--all", action="store_true", help="no map or pixel threshold")
    parser.add_argument("--kernel", type=int, default=3, choices=[3, 5])
    args = parser.parse_args()
    runtime.configure_cpu_training(None)
    N, k = args.batch, args.kernel

    def scaled(c: int) -> int:
        return max(1, round(c * args.width))  # googlenet.scale_channels

    maps = [
        (scaled(C), scaled(C_out), s32 if args.stem == "cifar" else s224)
        for C, C_out, s32, s224 in (LAYERS if k == 3 else LAYERS_5X5)
    ]
    # the library's rule, taken before --all switches it off
    shape = (k, k), (1, 1), (k // 2, k // 2)
    rules = [conv.winograd_tile((N, C, H, H), (C_out, C, *shape[0]), *shape[1:])
             for C, C_out, H in maps]  # fmt: skip
    if args.all:
        conv.WINOGRAD_MIN_MAP = conv.WINOGRAD_MIN_PIXELS = 0
    rng = np.random.default_rng(0)
    # im2col, F(2x2, 3x3), F(4x4, 3x3); for 5x5 im2col and F(2x2, 5x5)
    tiles, names = ((0, 2, 4), ["im2col", "F2", "F4"]) if k == 3 else ((0, 2), ["im2col", "F2"])
    min_5x5 = conv.WINOGRAD_5X5_MIN_CHANNELS

    def take(tile: int) -> None:  # every layer on this tile (0: im2col)
        conv.WINOGRAD, conv.WINOGRAD_TILE = tile > 0, tile or None
        conv.WINOGRAD_5X5_MIN_CHANNELS = 0 if tile else min_5x5

    print(f"{k}x{k} convolutions, stem {args.stem}, batch {N}, best of {args.rounds}, ms")
    cols = " ".join(f"{name:>6}" for name in names[1:])
    print(
        f"{'C -> C_out @ map':<20} {'rule':>5} {'fwd im2col':>10} {cols}"
        f" {'f+b im2col':>10} {cols}  {'best':>6}"
        "   rel. diff to im2col y / gx / gw: " + "; ".join(names[1:])
    )
    totals = dict.fromkeys(tiles + ("rule",), 0.0)
    for (C, C_out, H), rule in zip(maps, rules):
        xc = rng.standard_normal((C, N, H, H), dtype=np.float32)
        x = mg.tensor(xc.swapaxes(0, 1), requires_grad=True)  # channel-major
        w = mg.tensor(rng.standard_normal((C_out, C, k, k), dtype=np.float32) * 0.15 / k,
                      requires_grad=True)  # fmt: skip
        gy = rng.standard_normal((C_out, N, H, H), dtype=np.float32).swapaxes(0, 1)
        forward = functools.partial(F.conv2d, x, w, None, 1, k // 2)
        both = functools.partial(forward_backward, x, w, gy)

        times = {t: [float("inf"), float("inf")] for t in tiles}
        results: dict[int, tuple[Any, ...]] = {}
        for tile in tiles + tiles:  # interleaved: the same load for each; the best of both
            take(tile)
            now = [best(forward, args.rounds), best(both, args.rounds)]
            times[tile] = [min(a, b) for a, b in zip(times[tile], now)]
            results[tile] = both()
        conv.WINOGRAD, conv.WINOGRAD_TILE = True, None
        conv.WINOGRAD_5X5_MIN_CHANNELS = min_5x5
        diffs = [
            [np.abs(a - b).max() / np.abs(b).max() for a, b in zip(results[t], results[0])]
            for t in tiles[1:]
        ]
        fwd = [times[t][0] * 1e3 for t in tiles]
        fb = [times[t][1] * 1e3 for t in tiles]
        for t in tiles:
            totals[t] += times[t][1]
        totals["rule"] += times[rule][1]
        print(
            f"{C:>4} -> {C_out:<4} @ {H:<3}   {f'F{rule}' if rule else 'no':>5}"
            f" {fwd[0]:>10.2f} "
            + " ".join(f"{t:>6.2f}" for t in fwd[1:])
            + f" {fb[0]:>10.2f} "
            + " ".join(f"{t:>6.2f}" for t in fb[1:])
            + f"  {names[fb.index(min(fb))]:>6}   "
            + "; ".join(" / ".join(f"{d:.1e}" for d in ds) for ds in diffs)
        )
    print(
        "all layers, forward + backward, ms: "
        + ", ".join(f"{name} {totals[t] * 1e3:.1f}" for name, t in zip(names, tiles))
        + f", the rule's choice {totals['rule'] * 1e3:.1f}"
    )


if __name__ == "__main__":
    main()
