"""Train the paper's GoogLeNet (ImageNet stem, aux heads) on Imagenette with the library API.

    pip install -e ".[train]"
    python examples/train_imagenette.py --data-dir data --download --device cuda
    python examples/train_imagenette.py --data-dir data --width 0.25 --epochs 2   # CPU try

Imagenette is 10 easy ImageNet classes (9,469 train / 3,925 val JPEGs). This script uses
the 160 px archive (94 MB) and 128x128 crops, the paper's recipe where it fits: the
ImageNet stem (7x7/2 conv, pools, 3x3/2 pools between stages), random-resized crops of
8-100% of the area with aspect 3/4-4/3 and a random interpolation, photometric
distortion, SGD with momentum 0.9, the learning rate cut by 4% every 8 epochs, and Polyak
averaging (an EMA of the weights) for evaluation. Batch norm is on (the paper's network had
LRN instead; pass --no-batch-norm for it). JPEGs are decoded by a pool of threads.

What to expect on 2 CPU cores (measured: training steps of batch 32 on 128x128 inputs with
the CLI's CPU settings, which this script applies too): width 1.0 (10.3 M parameters) about
20 images/s, ~8 min per epoch; width 0.25 (657 k) about 72 images/s, ~2.2 min per epoch.
Start it as ``OPENBLAS_THREAD_TIMEOUT=4 python examples/...`` on the CPU (googlenet.py sets
that itself). GPU: ``pip install cupy-cuda12x`` and ``--device cuda`` (not measured here).
Checkpoints, metrics and curves go to ``runs/imagenette-example``; ``python googlenet.py
eval runs/imagenette-example/best.npz --data-dir data`` prints top-1/top-5 and saves the
confusion matrix.
"""

from __future__ import annotations

import argparse

import minigrad as mg
from googlenet import GoogLeNet, evaluate, fit
from minigrad.data import DataLoader, dataset_info, get_dataset
from minigrad.optim import EMA, SGD, PaperSchedule


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data-dir", default="data", help="dataset folder")
    p.add_argument("--download", action="store_true", help="fetch the dataset when missing")
    p.add_argument("--epochs", type=int, default=40, help="epochs to train")
    p.add_argument("--batch-size", type=int, default=64, help="images per step")
    p.add_argument("--width", type=float, default=1.0, help="channel multiplier")
    p.add_argument(
        "--batch-norm",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="conv + batch norm + ReLU (off: the paper's LRN network)",
    )
    p.add_argument("--workers", type=int, default=4, help="JPEG-decoding threads")
    p.add_argument("--device", default=mg.default_device(), help="cpu, cuda or cuda:N")
    p.add_argument(
        "--out", default="runs/imagenette-example", help="run folder (checkpoints, metrics)"
    )
    args = p.parse_args()
    if args.device == "cpu":  # what `python googlenet.py` does: see minigrad.runtime
        from minigrad import runtime

        runtime.configure_cpu_training()

    # data: per-image random-resized crop + flip while decoding, per-batch colour distortion
    info = dataset_info("imagenette", size="160")  # 3x128x128 crops
    kw = {"root": args.data_dir, "download": args.download, "size": "160"}
    train = get_dataset("imagenette", train=True, **kw)
    val = get_dataset("imagenette", train=False, **kw)  # resize to 146, center crop 128
    train_loader = DataLoader(
        train,
        args.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=args.workers,
        transform=info.train_transform,
        seed=0,
    )
    val_loader = DataLoader(val, 128, num_workers=args.workers, transform=info.eval_transform)

    mg.manual_seed(0)
    model = GoogLeNet(10, 3, stem="imagenet", batch_norm=args.batch_norm, width=args.width)
    model.to(args.device)
    print(f"GoogLeNet: {model.num_parameters():,} parameters on {args.device}; "
          f"{len(train)} train / {len(val)} val images")  # fmt: skip
    lr = 0.05 if args.batch_norm else 0.01  # without batch norm a high rate diverges
    opt = SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=2e-4)
    schedule = PaperSchedule(opt)  # lr * 0.96 ** (epoch // 8)
    ema = EMA(model, decay=0.999, warmup=True)

    # the loop; fit adds the model's settings to the config saved in every checkpoint
    fit(model, train_loader, opt, epochs=args.epochs, val_loader=val_loader,
        schedule=schedule, ema=ema, device=args.device, out_dir=args.out,
        config={"dataset": "imagenette", "image_size": 128})  # fmt: skip

    with ema.swap(model):
        result = evaluate(model, val_loader, device=args.device)
    print(f"val top-1 {result['top1']:.4f}, top-5 {result['top5']:.4f} (EMA weights)")


if __name__ == "__main__":
    main()
