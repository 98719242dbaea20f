"""Full GoogLeNet training steps against the machine's float32 matrix-product rate.

One step = train-mode forward with both aux heads, ``loss_terms`` (CE + AUX_WEIGHT x the two
aux CEs), backward, ``SGD(momentum=0.9).step()``, on random images and labels. Per
configuration the table gives the median step time, images/s, the training FLOPs per
image, the achieved FLOP/s, the float32 GEMM rate measured in the same run, their ratio,
and the peak memory (host RSS of the process on the CPU, CuPy's pool on the GPU).

FLOP convention: forward FLOPs = 2 x the multiply-adds of every conv and linear layer,
counted from the layer shapes of a real forward (aux heads included; BN, ReLU, pooling,
LRN, softmax and the optimizer are not counted); training FLOPs = 3 x forward (forward,
input gradient, weight gradient: the same products again twice).

The ceiling is one n x n @ n x n float32 product (n = 2048 on the CPU, 8192 on the GPU),
timed once after every training step so both see the same load; its median is the
"GEMM" rate. Each configuration runs in a fresh interpreter so peak memory is its own.
Two more columns say where a step's time went on the host threads
(:func:`minigrad.functional._threads.idle_stats`): *idle s*, the time host threads sat
waiting inside the sections that ran on several threads (a late worker, lock waits), and
*serial s*, the time outside such sections (one host thread working: small or unchunked
ops, the engine, the optimizer); both medians over the steps.

Configs: the CIFAR stem (width 1 and 0.25) and, at 224 px with the ImageNet stem, the
paper's model (``-paper``: conv + bias + ReLU, LRN, no batch norm) and the BN model
(``-bn``), each at batch 8 and 32 (issue 22's fine-tuning workload).

``--peer PYTHON`` runs the same step in PyTorch (``benchmarks/torch_peer.py``, under an
interpreter that has torch; PyTorch is never a dependency of minigrad or of its tests) in a
second process, and the parent alternates the two processes' steps so that both see the
same load; *vs torch* = torch's step time / minigrad's, the median over pairs of
neighbouring steps. The peer runs with PyTorch's own OpenMP setting (``OMP_WAIT_POLICY``
unset, ``--peer-omp-wait default``): that is how a user runs it. ``passive`` made torch's
224-px steps 1.2-1.8x slower on a quiet machine (paper-b8 2.13 s against 1.35 s), which
flatters minigrad; ``active`` keeps torch's threads spinning between regions, so they steal
a core from minigrad's alternating steps. Under heavy load torch's own setting loses far
more than minigrad (threads spinning for a partner that lost its core: BN batch 8 took
7.7-9.8 s at load 3-4), so read *vs torch* on a quiet machine. ``--baseline DIR`` does
the same with the minigrad of another checkout (``git archive <commit> | tar -x -C DIR``):
*vs base* = its step time / this one's.
``--runs R`` repeats each config in R fresh sets of processes and prints the medians.

    python benchmarks/bench_train.py                         # CPU: both CIFAR configs
    python benchmarks/bench_train.py --configs imagenet      # CPU: the six 224-px configs
    python benchmarks/bench_train.py --configs w1 --steps 3  # names or prefixes
    python benchmarks/bench_train.py --configs w1 --batch 128 --steps 1   # memory check
    python benchmarks/bench_train.py --threads 1 --clock cpu  # one core (shared machine)
    python benchmarks/bench_train.py --mode plain            # without the CLI's settings
    python benchmarks/bench_train.py --device cuda --precision float32,tf32
    python benchmarks/bench_train.py --configs imagenet --runs 3 \\
        --peer /work/wt/torchvenv/bin/python --baseline /tmp/old   # 224 px vs PyTorch

The steps run with the training CLI's process settings (``--mode tuned``:
``minigrad.runtime.configure_cpu_training``: malloc keeps freed memory, each product on
one BLAS thread, minigrad's chunks on all cores); the ceiling always uses all ``--threads``
BLAS threads, so the ratio is against what the whole machine's BLAS can do.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

# googlenet.py and minigrad from this checkout, or from the tree --baseline names
sys.path.insert(0, os.environ.get("BENCH_TREE") or str(Path(__file__).resolve().parent.parent))

from _common import (
    Device,
    GemmCeiling,
    add_clock_and_mode,
    fmt_bytes,
    set_clock,
    timed,
)

from minigrad.runtime import BLAS_ENV_DEFAULTS


@dataclass(frozen=True)
class Config:
    name: str
    stem: str
    width: float
    batch: int
    size: int  # input height = width
    num_classes: int
    target: str  # the target, for the table
    batch_norm: bool = True  # False: the paper's network (conv + bias + ReLU, LRN in the stem)
    variant: str = "paper"  # "torchvision": GoogLeNet.torchvision() (3x3 "5x5" branch, ...)


_TARGET_224 = ">=60% GEMM, >=1.1x torch"
CPU_CONFIGS = [
    Config("cifar-w1", "cifar", 1.0, 32, 32, 10, ">=50% of GEMM"),
    Config("cifar-w0.25", "cifar", 0.25, 64, 32, 10, ">=25% of GEMM"),
    # 224 px, the fine-tuning workload (issue 22): the paper's model and the BN model
    Config("imagenet-paper-b8", "imagenet", 1.0, 8, 224, 1000, _TARGET_224, batch_norm=False),
    Config("imagenet-paper-b32", "imagenet", 1.0, 32, 224, 1000, _TARGET_224, batch_norm=False),
    Config("imagenet-bn-b8", "imagenet", 1.0, 8, 224, 1000, _TARGET_224),
    Config("imagenet-bn-b32", "imagenet", 1.0, 32, 224, 1000, _TARGET_224),
    # torchvision's network (the pretrained weights' architecture, fine-tuned on Imagenette)
    Config("imagenet-tv-b8", "imagenet", 1.0, 8, 224, 1000, _TARGET_224, variant="torchvision"),
    Config("imagenet-tv-b32", "imagenet", 1.0, 32, 224, 1000, _TARGET_224, variant="torchvision"),
]
GPU_CONFIGS = [
    Config("cifar-w1", "cifar", 1.0, 128, 32, 10, ">=1800 img/s"),
    Config("cifar-w0.25", "cifar", 0.25, 128, 32, 10, ""),
    Config("imagenet-w1", "imagenet", 1.0, 64, 224, 1000, ">=900 img/s"),
]


def config_json(cfg: Config) -> str:
    """``cfg`` as JSON for a child process; ``variant`` only when not the paper's, so that a
    ``--baseline`` checkout from before the field still reads the paper's configs."""
    d = asdict(cfg)
    if d["variant"] == "paper":
        del d["variant"]
    return json.dumps(d)


def count_forward_flops(model: Any, x: Any) -> int:
    """2 x multiply-adds of every Conv2d and Linear in one forward of ``x``, per image."""
    from minigrad import nn, no_grad

    macs = [0]

    def hook(module: Any, inputs: tuple[Any, ...], out: Any) -> None:
        w = module.weight.shape  # conv (C_out, C_in, KH, KW) | linear (out, in)
        per_output = int(np.prod(w[1:]))  # multiply-adds per output value
        macs[0] += int(np.prod(out.shape)) * per_output

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    try:
        with no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return 2 * macs[0] // x.shape[0]


def make_step(cfg: Config, dev: Device, seed: int = 0) -> tuple[Callable[[], Any], Any, Any]:
    """(step function, model, images) for ``cfg`` on ``dev``: one full training step."""
    import minigrad as mg
    from googlenet import GoogLeNet, loss_terms
    from minigrad.optim import SGD

    mg.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if cfg.variant == "torchvision":
        model = GoogLeNet.torchvision(cfg.num_classes, width=cfg.width)
    else:
        model = GoogLeNet(
            cfg.num_classes, stem=cfg.stem, batch_norm=cfg.batch_norm, width=cfg.width
        )
    model.to(dev.name)
    model.train()
    opt = SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = mg.tensor(dev.randn(rng, cfg.batch, 3, cfg.size, cfg.size), device=dev.name)
    labels = rng.integers(0, cfg.num_classes, size=cfg.batch).astype(np.int64)
    y = mg.tensor(labels, device=dev.name)

    def step() -> Any:
        opt.zero_grad()
        loss = loss_terms(model(x), y)["total"]
        loss.backward()
        opt.step()
        return loss

    return step, model, x


def serve(cfg: Config, device: str, gemm_n: int, mode: str, threads: int) -> None:
    """Child process: build ``cfg``'s step, print ``ready``, then run one timed step per
    ``step`` line on stdin (printing its time) and, on ``done``, print the row as JSON.

    The parent drives the steps so that they can alternate with a peer's (``--peer``):
    both processes then see the same load, step by step.
    """
    from minigrad import runtime
    from minigrad.functional import _threads

    if device == "cpu" and mode == "tuned":  # exactly what the training CLI does
        runtime.configure_cpu_training(threads)
    elif device == "cpu":
        runtime.set_blas_threads(threads)
        runtime.set_host_threads(threads)
    dev = Device(device)
    step, model, x = make_step(cfg, dev)
    step()  # warm-up: allocator, BLAS threads, momentum buffers
    dev.sync()
    ceiling = GemmCeiling(dev, gemm_n, threads=threads)
    times, idle, parallel = [], [], []
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "step":
            break
        stats = getattr(_threads, "idle_stats", lambda reset=False: {})  # older trees: none
        stats(reset=True)
        times.append(timed(step, dev.sync))
        stats = {"idle_s": float("nan"), "parallel_s": float("nan"), **stats()}
        idle.append(stats["idle_s"])
        parallel.append(stats["parallel_s"])
        ceiling.sample(2)
        print(times[-1], flush=True)
    flops_fwd = count_forward_flops(model, x[:2])
    t = statistics.median(times)
    train_flops = 3 * flops_fwd  # per image
    achieved = train_flops * cfg.batch / t
    row = {
        "config": asdict(cfg),
        "device": dev.name,
        "steps": len(times),
        "step_s": t,
        "step_times": times,
        "images_per_s": cfg.batch / t,
        "train_gflop_per_image": train_flops / 1e9,
        "achieved_gflops": achieved / 1e9,
        "gemm_gflops": ceiling.rate() / 1e9,
        "ratio": achieved / ceiling.rate(),
        "idle_s": statistics.median(idle),
        "serial_s": statistics.median(t - p for t, p in zip(times, parallel)),
        "peak_bytes": dev.peak_memory_bytes(),
        "runtime": runtime.settings() if device == "cpu" else {},
    }
    print(json.dumps(row), flush=True)


class _Child:
    """A benchmark process driven line by line over its stdin/stdout (see :func:`serve`)."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.err = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
            text=True,
        )  # fmt: skip

    def read(self) -> str:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            self.err.seek(0)
            sys.exit(f"{self.name} failed:\n{self.err.read()}")
        return line.strip()

    def ask(self, command: str) -> str:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.read()

    def wait_ready(self) -> None:
        while self.read() != "ready":
            pass

    def finish(self) -> dict[str, Any]:
        out = json.loads(self.ask("done"))
        self.proc.wait()
        return out


def run_config(cfg: Config, args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    """One run of ``cfg``: a fresh minigrad process (and a fresh peer process with
    ``--peer``), their timed steps alternating (who goes first swaps every step)."""
    cmd = [sys.executable, __file__, "--device", args.device, "--child", config_json(cfg)]
    cmd += ["--gemm", str(args.gemm), "--clock", args.clock, "--threads", str(args.threads)]
    cmd += ["--mode", args.mode]
    children = [_Child(cfg.name, cmd, env)]
    if args.baseline:  # the same script, importing minigrad and googlenet from that tree
        base_env = {**env, "BENCH_TREE": str(Path(args.baseline).resolve())}
        children.append(_Child(f"{cfg.name} (baseline)", cmd, base_env))
    if args.peer:
        peer = [args.peer, str(Path(__file__).with_name("torch_peer.py"))]
        env = {k: v for k, v in env.items() if k != "OMP_WAIT_POLICY"}  # default: unset
        if args.peer_omp_wait != "default":
            env["OMP_WAIT_POLICY"] = args.peer_omp_wait.upper()
        children.append(_Child("torch peer", [*peer, config_json(cfg), str(args.threads)], env))
    for child in children:
        child.wait_ready()
    times: dict[str, list[float]] = {child.name: [] for child in children}
    for i in range(args.steps):  # rotate who goes first
        k = i % len(children)
        for child in children[k:] + children[:k]:
            times[child.name].append(float(child.ask("step")))
    row = children[0].finish()
    if args.baseline:
        base = children[1].finish()
        row["baseline"] = base
        pairs = zip(base["step_times"], row["step_times"])
        row["vs_baseline"] = statistics.median(b / m for b, m in pairs)
    if args.peer:
        summary = children[-1].finish()
        peer_times = times[children[-1].name]
        row["peer"] = {**summary, "step_s": statistics.median(peer_times), "step_times": peer_times}
        # speed-up per pair of neighbouring steps (same load), then the median
        pairs = zip(peer_times, row["step_times"])
        row["vs_peer"] = statistics.median(p / m for p, m in pairs)
    return row


def _columns(base: bool, peer: bool) -> str:
    head = (
        f"{'config':<18} {'batch':>5} {'step s':>7} {'img/s':>6} {'GFLOP/img':>9} "
        f"{'GFLOP/s':>7} {'GEMM GFLOP/s':>12} {'ratio':>6} {'idle s':>6} {'serial s':>8} "
        f"{'peak mem':>9}"
    )
    if base:
        head += f" {'base s':>7} {'vs base':>7}"
    if peer:
        head += f" {'torch s':>7} {'vs torch':>8} {'torch mem':>9}"
    return head + "  target"


def print_head(title: str, base: bool, peer: bool) -> None:
    head = _columns(base, peer)
    print(title)
    print(head)
    print("-" * len(head), flush=True)


def print_row(r: dict[str, Any], base: bool, peer: bool) -> None:
    c = r["config"]
    line = (
        f"{c['name']:<18} {c['batch']:>5} {r['step_s']:>7.3f} {r['images_per_s']:>6.1f} "
        f"{r['train_gflop_per_image']:>9.3f} {r['achieved_gflops']:>7.1f} "
        f"{r['gemm_gflops']:>12.1f} {r['ratio']:>6.1%} {r['idle_s']:>6.3f} "
        f"{r['serial_s']:>8.3f} {fmt_bytes(r['peak_bytes']):>9}"
    )
    if base:
        line += f" {r['baseline']['step_s']:>7.3f} {r['vs_baseline']:>6.2f}x"
    if peer:
        p = r["peer"]
        line += f" {p['step_s']:>7.3f} {r['vs_peer']:>7.2f}x {fmt_bytes(p['peak_bytes']):>9}"
    print(f"{line}  {c['target']}", flush=True)


def print_summary(rows: list[dict[str, Any]]) -> None:
    """Median over the runs of each config: step time, share of the GEMM rate, vs the peer."""
    names = list(dict.fromkeys(r["config"]["name"] for r in rows))
    print("median over runs:")
    for name in names:
        rs = [r for r in rows if r["config"]["name"] == name]
        line = (
            f"  {name:<18} {len(rs)} runs  step {statistics.median(r['step_s'] for r in rs):.3f} s"
            f"  GEMM share {statistics.median(r['ratio'] for r in rs):.1%}"
        )
        if all("vs_baseline" in r for r in rs):
            ratios = ", ".join(f"{r['vs_baseline']:.2f}" for r in rs)
            med = statistics.median(r["vs_baseline"] for r in rs)
            line += f"  vs baseline {med:.2f}x ({ratios})"
        if all("vs_peer" in r for r in rs):
            ratios = ", ".join(f"{r['vs_peer']:.2f}" for r in rs)
            line += f"  vs torch {statistics.median(r['vs_peer'] for r in rs):.2f}x ({ratios})"
        print(line)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--configs", default="", help="comma-separated names or prefixes")
    parser.add_argument("--batch", type=int, default=0, help="override every config's batch")
    parser.add_argument("--steps", type=int, default=0, help="timed steps (CPU 3, GPU 20)")
    parser.add_argument("--runs", type=int, default=1, help="fresh processes per config")
    parser.add_argument("--precision", default="float32", help="float32, tf32, or both: a,b")
    parser.add_argument("--gemm", type=int, default=0, help="ceiling size n (CPU 2048, GPU 8192)")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads for the steps and the ceiling (default: the CPU count)",
    )
    parser.add_argument(
        "--peer",
        default="",
        help="a Python interpreter with PyTorch: run benchmarks/torch_peer.py's same step "
        "under it, alternating with minigrad's steps (CPU only; 'vs torch' = torch's step "
        "time / minigrad's, median over pairs of neighbouring steps)",
    )
    parser.add_argument(
        "--baseline",
        default="",
        help="a checkout of another commit (git archive | tar -x): run its minigrad step "
        "too, alternating with this one's ('vs base' = its step time / this one's)",
    )
    parser.add_argument(
        "--peer-omp-wait",
        default="default",
        choices=["passive", "active", "default"],
        help="OMP_WAIT_POLICY of the peer (default: unset, torch's own setting, which is "
        "how users run it; passive slows torch 1.2-1.8x at 224 px and flatters minigrad, "
        "active spins its threads and steals a core from minigrad's steps)",
    )
    add_clock_and_mode(parser, "wall time (default) or process CPU time (with --threads 1)")
    parser.add_argument("--json", default="", help="also write the rows to this file")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)  # one config, JSON out
    args = parser.parse_args(argv)
    is_cpu = args.device == "cpu"
    args.steps = args.steps or (3 if is_cpu else 20)
    args.gemm = args.gemm or (2048 if is_cpu else 8192)
    args.threads = args.threads or os.cpu_count() or 1
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu adds up the time of every thread: use it with --threads 1")
    if args.peer and (not is_cpu or args.clock != "wall"):
        parser.error("--peer compares CPU wall-clock steps: use it with --device cpu")
    set_clock(args.clock)
    if args.child:
        cfg = Config(**json.loads(args.child))
        serve(cfg, args.device, args.gemm, args.mode, args.threads)
        return
    if not is_cpu:
        from minigrad import cuda_available

        if not cuda_available():
            parser.error(f"--device {args.device}: CuPy or a CUDA device is not available here")
    configs = CPU_CONFIGS if is_cpu else GPU_CONFIGS
    if not args.configs and is_cpu:  # the 224-px configs take minutes: --configs imagenet
        configs = [c for c in configs if c.stem == "cifar"]
    if args.configs:
        wanted = [s.strip() for s in args.configs.split(",") if s.strip()]
        configs = [c for c in configs if any(c.name.startswith(w) for w in wanted)]
        if not configs:
            parser.error(f"--configs {args.configs!r} matches none of the config names")
    if args.batch:
        configs = [replace(c, batch=args.batch) for c in configs]
    precisions = [p.strip() for p in args.precision.split(",")]
    for p in precisions:
        if p not in ("float32", "tf32"):
            parser.error(f"--precision: expected float32 or tf32, got {p!r}")
        if p == "tf32" and is_cpu:
            parser.error("--precision tf32 needs --device cuda (NumPy has no TF32 products)")
    rows = []
    for precision in precisions:
        env = dict(os.environ)
        env["CUPY_TF32"] = "1" if precision == "tf32" else "0"  # read when CuPy loads
        if args.mode == "tuned":  # read when NumPy loads OpenBLAS
            for var, value in BLAS_ENV_DEFAULTS.items():
                env.setdefault(var, value)
        title = (
            f"GoogLeNet training step (aux heads, SGD momentum 0.9; -paper: no BN, LRN; "
            f"else BN), {args.device}, {precision}, {args.threads} threads, {args.mode} mode, "
            f"{args.clock} clock, median of {args.steps} steps"
        )
        prows = []
        print_head(title, bool(args.baseline), bool(args.peer))
        for cfg in configs:
            for _ in range(args.runs):
                row = run_config(cfg, args, env)
                row["precision"] = precision
                prows.append(row)
                print_row(row, bool(args.baseline), bool(args.peer))
        if args.runs > 1:
            print_summary(prows)
        print()
        rows += prows
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
