"""cProfile of one GoogLeNet training step: where the time of a step goes, by function.

Builds the same step as ``bench_train.py`` (train-mode forward with aux heads,
``loss_terms``, backward, SGD momentum step), runs one untimed warm-up step, then
profiles one step and prints the top entries by own time (``tottime``: time inside the
function itself, not in what it calls), so NumPy kernels show up under their own names.

    python benchmarks/profile_step.py                       # CIFAR stem, width 1.0, batch 32
    python benchmarks/profile_step.py --width 0.25 --batch 64 --top 30
    python benchmarks/profile_step.py --sort cumulative
    python benchmarks/profile_step.py --stem imagenet --batch 8 --no-batch-norm  # 224 px, paper
    python benchmarks/profile_step.py --threads 1 --clock cpu   # one core, CPU time
    python benchmarks/profile_step.py --stem imagenet --batch 8 --serial  # one-core time per op

With more than one host thread, cProfile sees the calling thread only: the chunks other
threads run show up as the time ``_thread.lock.acquire`` waits for them. The CLI's settings
(``--mode tuned``) are applied; ``OPENBLAS_THREAD_TIMEOUT=4`` must be in the environment
before Python starts to match the CLI fully.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
from collections import defaultdict
from typing import Any

from _common import Device, add_clock_and_mode
from bench_train import CPU_CONFIGS, Config, make_step


def serial_by_op(step: Any, top: int) -> None:
    """One step with every op's forward and backward timed: its wall time and the part
    outside multi-threaded sections (``_threads.idle_stats()["parallel_s"]`` read around
    the call), the ops with the most serial time first."""
    from minigrad.autograd import Function
    from minigrad.functional import _threads

    wall: dict[str, float] = defaultdict(float)
    parallel: dict[str, float] = defaultdict(float)
    originals = {name: getattr(Function, name) for name in ("call_forward", "call_backward")}

    def timed_call(name: str, tag: str) -> Any:
        original = originals[name]

        def call(self: Any, *args: Any) -> Any:
            p0, t0 = _threads.idle_stats()["parallel_s"], time.perf_counter()
            out = original(self, *args)
            key = f"{type(self).__name__}.{tag}"
            wall[key] += time.perf_counter() - t0
            parallel[key] += _threads.idle_stats()["parallel_s"] - p0
            return out

        return call

    Function.call_forward = timed_call("call_forward", "forward")
    Function.call_backward = timed_call("call_backward", "backward")
    try:
        t0 = time.perf_counter()
        step()
        elapsed = time.perf_counter() - t0
    finally:
        for name, original in originals.items():
            setattr(Function, name, original)
    serial = {k: wall[k] - parallel[k] for k in wall}
    print(
        f"one training step: {elapsed:.3f} s (wall clock), ops {sum(wall.values()):.3f} s, "
        f"of which outside multi-threaded sections {sum(serial.values()):.3f} s"
    )
    print(f"{'op':<28} {'wall s':>7} {'serial s':>8}")
    for key in sorted(serial, key=lambda k: -serial[k])[:top]:
        print(f"{key:<28} {wall[key]:>7.3f} {serial[key]:>8.3f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--stem", default="cifar", choices=["cifar", "imagenet"])
    parser.add_argument(
        "--batch-norm",
        default=True,
        action=argparse.BooleanOptionalAction,
        help="the BN model (default) or, with --no-batch-norm, the paper's (bias, ReLU, LRN)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--sort", default="tottime", choices=["tottime", "cumulative"])
    add_clock_and_mode(parser, "wall time (default) or process CPU time (with --threads 1)")
    parser.add_argument("--threads", type=int, default=0, help="host threads (default: all)")
    parser.add_argument(
        "--serial",
        action="store_true",
        help="instead of cProfile: per op, its wall time and the part of it outside the "
        "multi-threaded sections (one host thread working), over one step",
    )
    args = parser.parse_args(argv)
    if args.device == "cpu" and args.mode == "tuned":
        from minigrad import runtime

        runtime.configure_cpu_training(args.threads or None)
    base = CPU_CONFIGS[0]
    size, classes = (32, 10) if args.stem == "cifar" else (224, 1000)
    cfg = Config(
        "profile", args.stem, args.width, args.batch, size, classes, base.target, args.batch_norm
    )
    dev = Device(args.device)
    step, _, _ = make_step(cfg, dev)
    step()  # warm-up
    dev.sync()
    if args.serial:
        serial_by_op(step, args.top)
        return
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    prof = cProfile.Profile(clock)
    t0 = clock()
    prof.enable()
    step()
    dev.sync()
    prof.disable()
    elapsed = clock() - t0
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.strip_dirs().sort_stats(args.sort).print_stats(args.top)
    print(
        f"one training step, stem={args.stem} width={args.width} batch={args.batch} "
        f"{dev.name}: {elapsed:.3f} s ({args.clock} clock) under the profiler"
    )
    # drop pstats' preamble (the file name line and blank lines) but keep the totals line
    lines = [ln for ln in out.getvalue().splitlines() if ln.strip()]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
