"""GoogLeNet's 3x3 convolutions with and without Winograd's F(2x2, 3x3) (issue 22).

Every distinct 3x3 convolution of the network at the chosen stem and batch (channel-major
input, as in the tuned training step), timed on the chunked path with
``minigrad.functional.conv.WINOGRAD`` on and off, rounds interleaved in one process (best
of ``--rounds`` each): forward alone, and forward + backward (gradients for x and w). With
the library's rule for where Winograd applies switched off (``--all``) every layer takes
it, so the table shows where the rule's thresholds come from. The last columns are the
largest differences of y, gx and gw between the two, relative to the largest value: the
rounding of float32 either way.

    python benchmarks/ab_winograd.py --stem imagenet --batch 8
    python benchmarks/ab_winograd.py --stem cifar --batch 32 --all
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


def forward_backward(x: Any, w: Any, gy: Any) -> tuple[Any, ...]:
    """y, gx, gw of one 3x3 convolution (stride 1, padding 1) on the chunked path."""
    x.grad = w.grad = None
    y = F.conv2d(x, w, None, 1, 1)
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
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--all", action="store_true", help="Winograd on every layer")
    args = parser.parse_args()
    runtime.configure_cpu_training(None)
    N = args.batch
    maps = [(C, C_out, s32 if args.stem == "cifar" else s224) for C, C_out, s32, s224 in LAYERS]
    # the library's rule, taken before --all switches it off
    rules = [
        conv.winograd_fits((N, C, H, H), (C_out, C, 3, 3), (1, 1), (1, 1)) for C, C_out, H in maps
    ]
    if args.all:
        conv.WINOGRAD_MIN_MAP = conv.WINOGRAD_MIN_CHANNELS = conv.WINOGRAD_MIN_PIXELS = 0
    rng = np.random.default_rng(0)
    print(f"3x3 convolutions, stem {args.stem}, batch {N}, best of {args.rounds}, ms")
    print(
        f"{'C -> C_out @ map':<20} {'rule':>5} {'fwd im2col':>10} {'winograd':>9} {'x':>6}"
        f" {'f+b im2col':>10} {'winograd':>9} {'x':>6}   rel. diff y / gx / gw"
    )
    totals = [0.0, 0.0]
    for (C, C_out, H), rule in zip(maps, rules):
        xc = rng.standard_normal((C, N, H, H), dtype=np.float32)
        x = mg.tensor(xc.swapaxes(0, 1), requires_grad=True)  # channel-major
        w = mg.tensor(rng.standard_normal((C_out, C, 3, 3), dtype=np.float32) * 0.05,
                      requires_grad=True)  # fmt: skip
        gy = rng.standard_normal((C_out, N, H, H), dtype=np.float32).swapaxes(0, 1)
        forward = functools.partial(F.conv2d, x, w, None, 1, 1)
        both = functools.partial(forward_backward, x, w, gy)

        times: dict[bool, list[float]] = {True: [], False: []}
        for winograd in (True, False, True, False):  # interleaved: the same load for both
            conv.WINOGRAD = winograd
            times[winograd] = [best(forward, args.rounds), best(both, args.rounds)]
        conv.WINOGRAD = True
        with_w = both()
        conv.WINOGRAD = False
        without = both()
        conv.WINOGRAD = True
        diff = [np.abs(a - b).max() / np.abs(b).max() for a, b in zip(with_w, without)]
        (f1, b1), (f0, b0) = times[True], times[False]
        totals[0] += b0
        totals[1] += b1
        print(
            f"{C:>4} -> {C_out:<4} @ {H:<3}   {'yes' if rule else 'no':>5} {f0 * 1e3:>10.2f}"
            f" {f1 * 1e3:>9.2f} {f0 / f1:>5.2f}x {b0 * 1e3:>10.2f} {b1 * 1e3:>9.2f}"
            f" {b0 / b1:>5.2f}x   {diff[0]:.1e} / {diff[1]:.1e} / {diff[2]:.1e}"
        )
    print(f"all layers, forward + backward: im2col {totals[0] * 1e3:.1f} ms, "
          f"Winograd {totals[1] * 1e3:.1f} ms ({totals[0] / totals[1]:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
