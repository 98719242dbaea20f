"""``python -m minigrad.data``: list the datasets, fetch one ahead of time, time the loader.

python -m minigrad.data list
python -m minigrad.data download cifar10 --root data
python -m minigrad.data bench digits --batch-size 128 --num-workers 2
"""

from __future__ import annotations

import argparse
import sys
import time

from minigrad.data.loader import DataLoader
from minigrad.data.registry import DATASET_NAMES, dataset_info, get_dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minigrad.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the registered datasets and their shapes")
    for name in ("download", "bench"):
        p = sub.add_parser(name)
        p.add_argument("dataset", choices=DATASET_NAMES)
        p.add_argument("--root", default=None, help="data folder (default $MINIGRAD_DATA)")
        p.add_argument("--size", default="160", help="Imagenette: 160, 320 or full")
    bench = sub.choices["bench"]
    bench.add_argument("--batch-size", type=int, default=128)
    bench.add_argument("--num-workers", type=int, default=0)
    bench.add_argument("--eval", action="store_true", help="the eval split and transforms")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except (OSError, ValueError) as e:  # missing files, no network (DownloadError), bad files
        print(f"error: {e}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command == "list":
        for name in DATASET_NAMES:
            info = dataset_info(name)
            print(
                f"{name:14s} {info.num_classes:4d} classes  "
                f"{info.in_channels}x{info.image_size}x{info.image_size}"
            )
        return 0
    if args.command == "download":
        for train in (True, False):
            ds = get_dataset(args.dataset, args.root, train=train, download=True, size=args.size)
            print(f"{ds!r}: {len(ds)} images")
        return 0
    info = dataset_info(args.dataset, size=args.size)
    ds = get_dataset(args.dataset, args.root, train=not args.eval, size=args.size)
    tf = info.eval_transform if args.eval else info.train_transform
    loader = DataLoader(ds, args.batch_size, shuffle=True, transform=tf,
                        num_workers=args.num_workers, seed=0)  # fmt: skip
    start, n = time.perf_counter(), 0
    for images, _ in loader:
        n += len(images)
    seconds = time.perf_counter() - start
    print(
        f"{args.dataset} {'eval' if args.eval else 'train'}: {n} images of "
        f"{tuple(images.shape[1:])} in {seconds:.2f} s = {n / seconds:,.0f} images/s "
        f"(batch {args.batch_size}, num_workers {args.num_workers})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
