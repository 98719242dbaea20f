"""Does the Imagenette loader keep a 224 px GoogLeNet training step fed?

Two rates, measured in the same run on the same machine:

- the loader's: images/s out of ``DataLoader`` over Imagenette's training pipeline (JPEG
  decode with Pillow, ``RandomResizedCrop(224)`` + flip per image, then
  ``PhotometricDistortion`` + normalisation per batch), for 0, 1 and 2 worker threads;
- the training step's need: images/s that one train-mode step of torchvision's GoogLeNet
  (aux heads, loss, backward, SGD) consumes at 224 px (``--width`` to scale it).

The ratio loader / step says how many times over the loader keeps the step fed; its
inverse is the share of the cores that loading takes from training (both use the same
cores: a loader at 20x the step's rate takes about 5 % of them).

The JPEGs are synthetic, at Imagenette-160's geometry (shorter side 160, 4:3), smooth
gradients with noise, so decoding costs what a photo of that size costs (a stand-in: the
real archive needs the network).

    python benchmarks/bench_loader.py                      # 224 px, width 1, batch 16
    python benchmarks/bench_loader.py --width 0.25 --batch 32 --steps 3
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # googlenet.py

from _common import Device, GemmCeiling, median_time

import googlenet
import minigrad as mg
from minigrad import optim
from minigrad.data import DataLoader, dataset_info, get_dataset
from minigrad.data.imagenette import IMAGENETTE_WNIDS


def write_jpegs(root: Path, n: int, seed: int = 0) -> None:
    """``n`` JPEGs (160 x 213, quality 90) in Imagenette-160's extracted layout."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:160, 0:213]
    for i in range(n):
        wnid = IMAGENETTE_WNIDS[i % 10]
        folder = root / "imagenette2-160" / "train" / wnid
        folder.mkdir(parents=True, exist_ok=True)
        base = np.stack([(xx * rng.uniform(0.5, 1.2) + yy * rng.uniform(0.2, 1)) % 256
                         for _ in range(3)], axis=-1)  # fmt: skip
        a = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="JPEG", quality=90)
        (folder / f"{wnid}_{i}.JPEG").write_bytes(buf.getvalue())
    (root / "imagenette2-160" / "val").mkdir(parents=True, exist_ok=True)
    for wnid in IMAGENETTE_WNIDS:
        (root / "imagenette2-160" / "val" / wnid).mkdir(exist_ok=True)


def loader_rate(root: Path, size: int, batch: int, workers: int, batches: int) -> float:
    """Images/s out of the training DataLoader (one warm-up batch not timed)."""
    info = dataset_info("imagenette", image_size=size)
    ds = get_dataset("imagenette", root=root, train=True, image_size=size)
    loader = DataLoader(ds, batch, shuffle=True, drop_last=True, num_workers=workers,
                        transform=info.train_transform, seed=0)  # fmt: skip
    it = iter(loader)
    next(it)
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        x, _ = next(it)
        n += len(x)
    return n / (time.perf_counter() - t0)


def step_rate(size: int, batch: int, width: float, steps: int, dev: Device) -> float:
    """Images/s of train-mode steps of torchvision's GoogLeNet (median step time)."""
    mg.manual_seed(0)
    model = googlenet.GoogLeNet.torchvision(10, width=width).to(dev.name)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = mg.tensor(dev.randn(rng, batch, 3, size, size))
    y = rng.integers(0, 10, batch)

    def step() -> None:
        opt.zero_grad()
        googlenet.loss_terms(model.train()(x), y)["total"].backward()
        opt.step()

    return batch / median_time(step, steps, dev.sync)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--width", type=float, default=1.0, help="GoogLeNet width of the step")
    p.add_argument("--steps", type=int, default=2, help="timed training steps (median)")
    p.add_argument("--batches", type=int, default=6, help="timed loader batches")
    p.add_argument("--workers", default="0,1,2", help="loader thread counts to time")
    args = p.parse_args()
    from minigrad import runtime

    runtime.configure_cpu_training(None)  # the CLI's settings for the step
    dev = Device("cpu")
    gemm = GemmCeiling(dev, 1024)
    gemm.sample(3)
    need = step_rate(args.image_size, args.batch, args.width, args.steps, dev)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_jpegs(root, args.batch * (args.batches + 1) + 10)
        rates = {w: loader_rate(root, args.image_size, args.batch, w, args.batches)
                 for w in map(int, args.workers.split(","))}  # fmt: skip
    print(f"GEMM ceiling (float32, n=1024): {gemm.rate() / 1e9:.1f} GFLOP/s")
    print(f"training step (torchvision GoogLeNet, width {args.width:g}, {args.image_size} px, "
          f"batch {args.batch}): {need:.2f} images/s")  # fmt: skip
    print("| loader workers | images/s | x the step's need | cores' share it takes |")
    print("|---:|---:|---:|---:|")
    for w, r in rates.items():
        print(f"| {w} | {r:.1f} | {r / need:.1f} | {100 * need / r:.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
