"""Max pooling at 224 px (issue 22): this tree's per-chunk kernels against another tree's.

GoogLeNet's max pools at 224 px, batch 8, channel-major as in the tuned training step:
the four 3x3/2 ``ceil_mode`` pools (stem and between stages) and the 3x3/1 pad-1 pool of
an Inception block at 28, 14 and 7 px. Each is timed on the chunked path
(``forward_chunked``, ``backward_chunked``), best of ``--rounds`` interleaved rounds, in one
process. With ``--baseline DIR`` (a checkout: ``git archive COMMIT | tar -x -C DIR``) the
rounds alternate between this tree's ``argmax_into``/``_route`` (the grid path's two
per-chunk kernels, as ``pool.py`` calls them) and DIR's, who goes first swapping every
round; the rest of the op is this tree's, and both gradients must agree bit for bit.
``x copy`` is a copy of the input's bytes, the floor a pool cannot beat (in cache for the
small ones). The 3x3/1 pad-1 rows take ``_pool3``'s flat passes in this tree (not
``pool.py``'s names): both columns time those; ``benchmarks/bench_pools.py`` compares them
across trees.

    python benchmarks/ab_maxpool.py --baseline /tmp/base --rounds 10
"""

from __future__ import annotations

import argparse
import ast
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from minigrad import runtime
from minigrad.functional import pool
from minigrad.tensor import Tensor

#: (name, channels, size, stride, padding, ceil_mode) of GoogLeNet's max pools at 224 px
POOLS = [
    ("stem 3x3/2 112", 64, 112, 2, 0, True),
    ("stem 3x3/2 56", 192, 56, 2, 0, True),
    ("3->4 3x3/2 28", 480, 28, 2, 0, True),
    ("4->5 3x3/2 14", 832, 14, 2, 0, True),
    ("3b branch 3x3/1 28", 256, 28, 1, 1, False),
    ("4x branch 3x3/1 14", 512, 14, 1, 1, False),
    ("5x branch 3x3/1 7", 832, 7, 1, 1, False),
]


def kernels_of(tree: Path) -> dict[str, Any]:
    """The window argmax and ``_route`` as defined in ``tree``: ``argmax_into`` in
    ``_windows.py`` (``_argmax_into`` in ``pool.py`` before it moved there) and ``_route`` in
    ``pool.py``."""
    folder = tree / "minigrad" / "functional"
    names = {"argmax_into": "argmax_into", "_argmax_into": "argmax_into", "_route": "_route"}
    namespace: dict[str, Any] = {"Any": Any}
    for file in ("_windows.py", "pool.py"):
        source = (folder / file).read_text()
        nodes = [n for n in ast.parse(source).body if getattr(n, "name", None) in names]
        exec(compile(ast.Module(nodes, []), str(folder / file), "exec"), namespace)
    return {key: namespace[name] for name, key in names.items() if name in namespace}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="a checkout whose kernels to compare")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    runtime.keep_freed_memory()
    variants = {"this": {"argmax_into": pool.argmax_into, "_route": pool._route}}
    if args.baseline:
        variants["base"] = kernels_of(args.baseline)
    rng = np.random.default_rng(0)
    cases = []
    for _, C, S, s, p, ceil_mode in POOLS:
        x = rng.standard_normal((C, args.batch, S, S), dtype=np.float32).swapaxes(0, 1)
        grid, _ = pool._geometry("max_pool2d", Tensor(x), 3, s, p, ceil_mode)
        cases.append((x, grid))
    best = {v: np.full((len(cases), 2), np.inf) for v in variants}
    grads: dict[str, list[Any]] = {v: [] for v in variants}
    for r in range(args.rounds):
        order = list(variants.items())
        for v, kernels in order if r % 2 == 0 else order[::-1]:  # who goes first swaps
            for name, f in kernels.items():
                setattr(pool, name, f)
            for i, (x, grid) in enumerate(cases):
                op = pool.MaxPool2d(grid)
                op.requires_grad = True
                t0 = time.perf_counter()
                y = op.forward_chunked(x)
                t1 = time.perf_counter()
                gy = np.random.default_rng(i).standard_normal(y.shape, dtype=np.float32)
                t2 = time.perf_counter()
                gx = op.backward_chunked(gy)
                t3 = time.perf_counter()
                best[v][i] = np.minimum(best[v][i], (t1 - t0, t3 - t2))
                if r == 0:
                    grads[v].append(gx)
    if "base" in variants:
        assert all(np.array_equal(a, b) for a, b in zip(grads["this"], grads["base"]))
    print(f"max pools at 224 px, batch {args.batch}, {runtime.host_threads()} host threads, ms")
    head = f"{'pool':20s} {'x copy':>7s}" + "".join(
        f" {v + ' fwd':>9s} {v + ' bwd':>9s}" for v in variants
    )
    print(head + ("   bwd base/this" if "base" in variants else ""))
    for (
        i,
        (name, *_),
    ) in enumerate(POOLS):
        x = cases[i][0]
        t_copy = min(_copy_time(x) for _ in range(5))
        row = f"{name:20s} {t_copy * 1e3:7.2f}"
        row += "".join(f" {best[v][i, 0] * 1e3:9.2f} {best[v][i, 1] * 1e3:9.2f}" for v in variants)
        if "base" in variants:
            row += f"   {best['base'][i, 1] / best['this'][i, 1]:.3f}"
        print(row)
    totals = "".join(
        f" {best[v][:, 0].sum() * 1e3:9.1f} {best[v][:, 1].sum() * 1e3:9.1f}" for v in variants
    )
    print(f"{'total':20s} {'':7s}{totals}")


def _copy_time(x: Any) -> float:
    """Seconds to copy ``x`` into a fresh array of its shape."""
    dst = np.empty_like(x)
    t0 = time.perf_counter()
    np.copyto(dst, x)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
