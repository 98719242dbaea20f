"""``python -m minigrad.data``: list the datasets, fetch one ahead of time, time the loader.

examples:
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

SUBCOMMANDS = {
    "list": "list the registered datasets: classes and the image shape the model sees",
    "download": "fetch a dataset's files (both splits) into --root ahead of time, md5-checked",
    "bench": "time the data loader: images per second through the training transforms",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m minigrad.data",
        description=__doc__.replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,  # the examples, one a line
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("list", help=SUBCOMMANDS["list"], description=SUBCOMMANDS["list"])
    for name in ("download", "bench"):
        p = sub.add_parser(name, help=SUBCOMMANDS[name], description=SUBCOMMANDS[name],
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
        p.add_argument("dataset", choices=DATASET_NAMES, help="which dataset")
        p.add_argument("--root", default=None, help="data folder; None: $MINIGRAD_DATA, "
                       "else ~/.cache/minigrad")  # fmt: skip
        p.add_argument("--size", default="160", help="Imagenette: 160, 320 or full")
    bench = sub.choices["bench"]
    bench.add_argument("--batch-size", type=int, default=128, help="images per batch")
    bench.add_argument("--num-workers", type=int, default=0, help="loader threads")
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
