"""Activation checkpointing (``GoogLeNet(recompute_blocks=True)``): memory and step time.

Per configuration, two models from the same seed, plain and recomputing each Inception
block (:func:`minigrad.recompute`, branch by branch), run full training steps (train-mode
forward with both aux heads, ``loss_terms``, backward, SGD with momentum) on the same
random batch. Reported:

- ``kept``: bytes still allocated after the forward pass (what the graph saved for
  backward, plus the loss) -- the activations recomputation avoids keeping;
- ``peak``: the highest allocation during forward + backward, above what was allocated
  before the step (parameters, optimizer state; ``.grad`` cleared): activations plus the
  parameters' gradients as they appear;
- ``step s``: median wall time of the timed steps, the two models alternating step by
  step so both see the same load (a shared machine is noisy: compare the ratio);
- whether the first step's gradients of the two models are identical, bit for bit.

Memory is measured with ``tracemalloc``, which sees every NumPy allocation (CPU only; a
traced step is not timed). Target (issue 18): peak activation memory down by >= 40 % for
<= 35 % more step time.

    python benchmarks/bench_recompute.py                        # both configs (CPU: long)
    python benchmarks/bench_recompute.py --configs cifar --batch 32 --steps 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # googlenet.py


@dataclass(frozen=True)
class Config:
    name: str
    stem: str
    batch: int
    size: int
    num_classes: int


CONFIGS = [
    Config("imagenet-w1", "imagenet", 32, 224, 1000),
    Config("cifar-w1", "cifar", 128, 32, 10),
]


def make(cfg: Config, recompute: bool) -> tuple[Any, Any, Any, Any]:
    """(model, optimizer, images, labels) from seed 0 (the same for both modes)."""
    import minigrad as mg
    from googlenet import GoogLeNet
    from minigrad.optim import SGD

    mg.manual_seed(0)
    model = GoogLeNet(cfg.num_classes, stem=cfg.stem, batch_norm=True, recompute_blocks=recompute)
    model.train()
    rng = np.random.default_rng(0)
    x = mg.tensor(rng.standard_normal((cfg.batch, 3, cfg.size, cfg.size), dtype=np.float32))
    y = mg.tensor(rng.integers(0, cfg.num_classes, size=cfg.batch).astype(np.int64))
    return model, SGD(model.parameters(), lr=0.01, momentum=0.9), x, y


def traced_step(model: Any, opt: Any, x: Any, y: Any) -> tuple[int, int]:
    """(bytes kept after forward, peak bytes during forward + backward) above the start."""
    import minigrad as mg
    from googlenet import loss_terms

    opt.zero_grad()
    mg.manual_seed(1)  # the same dropout masks in both modes
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        loss = loss_terms(model(x), y)["total"]
        kept, _ = tracemalloc.get_traced_memory()
        loss.backward()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return kept - start, peak - start


def timed_step(model: Any, opt: Any, x: Any, y: Any) -> float:
    from googlenet import loss_terms

    t0 = time.perf_counter()
    opt.zero_grad()
    loss_terms(model(x), y)["total"].backward()
    opt.step()
    return time.perf_counter() - t0


def run(cfg: Config, steps: int) -> dict[str, Any]:
    plain, rc = make(cfg, False), make(cfg, True)
    mem = {name: traced_step(*m) for name, m in (("plain", plain), ("recompute", rc))}
    identical = all(
        np.array_equal(a.grad, b.grad) for a, b in zip(plain[0].parameters(), rc[0].parameters())
    )
    times: dict[str, list[float]] = {"plain": [], "recompute": []}
    for _ in range(steps):
        times["plain"].append(timed_step(*plain))
        times["recompute"].append(timed_step(*rc))
    return {
        "cfg": cfg,
        "identical": identical,
        **{f"{k}_{m}": v for m, (k_, p) in mem.items() for k, v in (("kept", k_), ("peak", p))},
        **{f"time_{m}": statistics.median(t) for m, t in times.items()},
    }


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default="", help="comma-separated names or prefixes")
    parser.add_argument("--batch", type=int, default=0, help="override every config's batch")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per mode")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    from minigrad import runtime

    runtime.configure_cpu_training(args.threads)  # as the training CLI
    wanted = [w for w in args.configs.split(",") if w]
    configs = [c for c in CONFIGS if not wanted or any(c.name.startswith(w) for w in wanted)]
    head = (
        f"{'config':<12} {'batch':>5} {'mode':<10} {'kept':>10} {'peak':>10} {'step s':>7}"
        f"  {'vs plain':<26} identical"
    )
    print(head)
    print("-" * len(head))
    for cfg in configs:
        if args.batch:
            cfg = Config(cfg.name, cfg.stem, args.batch, cfg.size, cfg.num_classes)
        r = run(cfg, args.steps)
        for m in ("plain", "recompute"):
            vs = ""
            if m == "recompute":
                dk = 1 - r["kept_recompute"] / r["kept_plain"]
                dp = 1 - r["peak_recompute"] / r["peak_plain"]
                dt = r["time_recompute"] / r["time_plain"] - 1
                vs = f"kept -{dk:.0%} peak -{dp:.0%} time +{dt:.0%}"
            print(
                f"{cfg.name:<12} {cfg.batch:>5} {m:<10} {mib(r['kept_' + m]):>10} "
                f"{mib(r['peak_' + m]):>10} {r['time_' + m]:>7.2f}  {vs:<26} "
                f"{'yes' if r['identical'] else 'NO'}",
                flush=True,
            )


if __name__ == "__main__":
    main()
