"""Train GoogLeNet (CIFAR stem, batch norm, aux heads) on CIFAR-10 with the library API.

    pip install -e ".[train]"
    OPENBLAS_THREAD_TIMEOUT=4 python examples/train_cifar10.py --download --width 0.25  # CPU
    python examples/train_cifar10.py --download --device cuda --epochs 30            # GPU

What it does, step by step: fetch and verify the CIFAR-10 tarball (md5-checked, 163 MB),
build loaders with the standard augmentation (random crop with 4 px padding, horizontal
flip, per-channel normalisation), build the model, SGD with Nesterov momentum, one warmup
epoch then a cosine schedule, an EMA of the weights for evaluation, and hand everything to
``googlenet.fit``, which writes ``runs/cifar10-example/{last,best}.npz``, ``metrics.csv`` and
``curves.png`` after every epoch. Ctrl-C saves a checkpoint; ``--resume`` continues.

What to expect on 2 CPU cores (measured: training steps of batch 128 with the CLI's CPU
settings, which this script applies too, ``minigrad.runtime.configure_cpu_training``): the
full-width model (10.2 M parameters) runs at ~12 images/s, about 68 minutes per
50,000-image epoch; ``--width 0.25`` (649 k parameters) at ~63 images/s, about 13 minutes
per epoch. The CIFAR stem keeps 32x32 maps through 3a/3b, so CIFAR costs more per image
than Imagenette's 128x128 with the ImageNet stem. Train it fully on a GPU
(``pip install cupy-cuda12x``, ``--device cuda``; not measured here).
"""

from __future__ import annotations

import argparse

import minigrad as mg
from googlenet import GoogLeNet, evaluate, fit, loss_terms
from minigrad.data import DataLoader, dataset_info, get_dataset
from minigrad.optim import EMA, SGD, CosineAnnealingLR, LinearWarmup


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data-dir", default="data", help="dataset folder")
    p.add_argument("--download", action="store_true", help="fetch the dataset when missing")
    p.add_argument("--epochs", type=int, default=30, help="epochs to train")
    p.add_argument("--batch-size", type=int, default=128, help="images per step")
    p.add_argument("--width", type=float, default=1.0, help="channel multiplier")
    p.add_argument("--device", default=mg.default_device(), help="cpu, cuda or cuda:N")
    p.add_argument("--resume", default=None, help="a last.npz to continue from")
    p.add_argument(
        "--out", default="runs/cifar10-example", help="run folder (checkpoints, metrics)"
    )
    args = p.parse_args()
    if args.device == "cpu":  # what `python googlenet.py` does: see minigrad.runtime
        from minigrad import runtime

        runtime.configure_cpu_training()

    # data: (N, 3, 32, 32) float32 batches, augmented on a background thread
    info = dataset_info("cifar10")
    train = get_dataset("cifar10", root=args.data_dir, train=True, download=args.download)
    test = get_dataset("cifar10", root=args.data_dir, train=False, download=args.download)
    train_loader = DataLoader(train, args.batch_size, shuffle=True, drop_last=True,
                              transform=info.train_transform, seed=0)  # fmt: skip
    test_loader = DataLoader(test, 256, transform=info.eval_transform)

    # model and optimisation: the same seed gives the same initial weights on every run
    mg.manual_seed(0)
    model = GoogLeNet(10, in_channels=3, stem="cifar", batch_norm=True, width=args.width)
    model.to(args.device)
    print(f"GoogLeNet: {model.num_parameters():,} parameters on {args.device}")
    opt = SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    cosine = CosineAnnealingLR(opt, T_max=max(args.epochs - 1, 1))
    schedule = LinearWarmup(opt, warmup_steps=1, after=cosine)  # stepped once per epoch
    ema = EMA(model, decay=0.999, warmup=True)

    # the loop: loss = CE(main) + AUX_WEIGHT * (CE(aux1) + CE(aux2)); evaluation uses the EMA
    fit(model, train_loader, opt, epochs=args.epochs, val_loader=test_loader,
        schedule=schedule, ema=ema, device=args.device, out_dir=args.out,
        num_classes=10, resume=args.resume, config={"dataset": "cifar10"})  # fmt: skip

    with ema.swap(model):
        result = evaluate(model, test_loader, device=args.device, num_classes=10,
                          loss_fn=loss_terms)  # fmt: skip
    print(f"test top-1 {result['top1']:.4f}, top-5 {result['top5']:.4f}")
    worst = result["confusion"].diagonal() / result["confusion"].sum(axis=1)
    print("hardest class:", info.class_names[int(worst.argmin())])


if __name__ == "__main__":
    main()
