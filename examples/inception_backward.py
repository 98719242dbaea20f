"""One Inception block, forward and backward, taken apart.

    python examples/inception_backward.py             # writes runs/inception_backward/
    python examples/inception_backward.py --out docs/img

1. Forward a small batch through one Inception block (four branches, concatenated).
2. Backward from a random projection of the output, with a full backward hook on each
   branch: the hook's ``grad_input`` is what that branch sends back to the block input.
   The four add up to ``x.grad`` (the engine sums them where the branches meet); each
   branch's share is the projection ``<g_b, g>/|g|^2``, so the shares add up to 1.
3. ``gradcheck`` of the whole block (input and every weight) in float64.
4. The block's autograd graph as Graphviz DOT, rendered to SVG when ``dot`` is installed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

import minigrad as mg
import minigrad.viz as viz
from googlenet import Inception
from minigrad.gradcheck import gradcheck

BRANCHES = {
    "branch1": "1x1",
    "branch2": "1x1 -> 3x3",
    "branch3": "1x1 -> 5x5",
    "branch4": "pool -> 1x1",
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", default="runs/inception_backward", help="folder for the DOT/SVG")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # 1. a block like 3a at 1/16 width: 12 input channels -> 4 + 8 + 2 + 2 = 16 channels
    mg.manual_seed(0)
    block = Inception(12, 4, 6, 8, 1, 2, 2).double()
    rng = np.random.default_rng(0)
    x = mg.tensor(rng.standard_normal((2, 12, 8, 8)), requires_grad=True)  # (N, C, H, W)

    # 2. hooks on the branches (registered before the forward pass, which wires them in)
    sent: dict[str, np.ndarray] = {}
    handles = [
        getattr(block, b).register_full_backward_hook(
            lambda mod, gin, gout, b=b: sent.__setitem__(b, gin[0])
        )
        for b in BRANCHES
    ]
    y = block(x)  # (2, 16, 8, 8)
    print(f"forward: x {x.shape} -> y {y.shape} (channels 4 | 8 | 2 | 2 from the 4 branches)")
    r = mg.tensor(rng.standard_normal(y.shape))
    (y * r).sum().backward()  # L = <r, y>, so dL/dy = r
    for h in handles:
        h.remove()
    g = x.grad
    total = sum(sent.values())
    print(f"\nbackward: |dL/dx| = {np.linalg.norm(g):.4f}; the four branches' input gradients")
    print(f"add up to it: max |sum - dL/dx| = {np.abs(total - g).max():.1e}\n")
    print(f"{'branch':<10} {'path':<12} {'|g_b|':>8} {'share':>7}")
    for b, path in BRANCHES.items():
        share = float((sent[b] * g).sum() / (g * g).sum())
        print(f"{b:<10} {path:<12} {np.linalg.norm(sent[b]):8.4f} {share:7.3f}")
    shares = [float((sent[b] * g).sum() / (g * g).sum()) for b in BRANCHES]
    print(f"{'sum':<23} {'':>8} {sum(shares):7.3f}")

    # 3. gradcheck of x and all 16 weight/bias tensors of the block at once
    params = list(block.parameters())
    n = x.data.size + sum(q.data.size for q in params)
    t0 = time.perf_counter()
    gradcheck(lambda x, *ps: block(x), [x, *params], mode="full")
    print(f"\ngradcheck (float64, all {n} inputs and weights): passed in "
          f"{time.perf_counter() - t0:.1f} s")  # fmt: skip

    # 4. the graph, with module names on the ops and parameter names on the leaves
    small = mg.tensor(rng.standard_normal((1, 12, 4, 4)), requires_grad=True)
    small.name = "x"  # leaves show their .name
    with viz.trace_modules(block):
        loss = block(small).sum()
    dot = viz.to_dot(loss)
    dot_path = out / "inception_block.dot"
    dot_path.write_text(dot)
    print(f"\nDOT graph ({dot.count('shape=box')} ops) written to {dot_path}")
    if shutil.which("dot"):
        print(f"rendered: {viz.render(dot, out / 'inception_block.svg')}")
    else:
        print("Graphviz's `dot` is not installed: render it with "
              f"`dot -Tsvg {dot_path} -o inception_block.svg` once it is")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
