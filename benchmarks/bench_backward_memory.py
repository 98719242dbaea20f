"""Peak host memory of training steps on an MLP, traced with ``tracemalloc`` (CPU only).

Each step builds ``loss`` while the previous step's ``loss`` is still bound (as in a plain
training loop), runs backward and clears the gradients. The peak shows how much of the
graph's activations are alive at once: after backward, an op keeps only data-free
stand-ins of the inputs other ops produced, so activations are freed as backward proceeds.

    python benchmarks/bench_backward_memory.py
    python benchmarks/bench_backward_memory.py --layers 16 --width 1024 --batch 128
"""

from __future__ import annotations

import argparse
import tracemalloc

import minigrad as mg
import minigrad.functional as F


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=3)
    args = p.parse_args()

    mg.manual_seed(0)
    ws = [mg.randn(args.width, args.width, requires_grad=True) for _ in range(args.layers)]
    x = mg.randn(args.batch, args.width)
    act = args.batch * args.width * 4 / 2**20  # one float32 activation, MiB
    grads = args.layers * args.width * args.width * 4 / 2**20
    print(f"{args.layers} x (linear + relu), width {args.width}, batch {args.batch}: "
          f"{2 * args.layers} activations of {act:.2f} MiB, weight gradients "
          f"{grads:.1f} MiB")  # fmt: skip
    tracemalloc.start()
    for step in range(args.steps):
        tracemalloc.reset_peak()
        h = x
        for w in ws:
            h = F.relu(F.linear(h, w))
        loss = h.sum()  # the previous step's loss is rebound only here
        del h
        loss.backward()
        for w in ws:
            w.grad = None
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        print(f"step {step}: peak traced memory {peak:.1f} MiB")


if __name__ == "__main__":
    main()
