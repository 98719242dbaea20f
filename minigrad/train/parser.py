"""The command line's flags: ``train`` (the default), ``eval``, ``predict`` and a ``study``
entry for ``--help``; the model's own flags come from ``spec.add_arguments``.
"""

from __future__ import annotations

import argparse

from minigrad.train import finetune
from minigrad.train.args import (
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    unit_interval,
)
from minigrad.train.exit_codes import EXIT_CODES
from minigrad.train.spec import ModelSpec

__all__ = ["build_parser"]


def _epilog() -> str:
    import textwrap  # noqa: PLC0415

    codes = "\n".join(
        textwrap.fill(what, 79, initial_indent=f"  {code:>3}  ", subsequent_indent=" " * 7)
        for code, what in EXIT_CODES.items()
    )
    return f"exit status:\n{codes}"


def _add_data_flags(p: argparse.ArgumentParser, evaluating: bool = False) -> None:
    from minigrad.data import DATASET_NAMES  # noqa: PLC0415

    about = "default: the checkpoint's" if evaluating else "default: digits (embedded)"
    p.add_argument("--dataset", choices=DATASET_NAMES, help=about)
    p.add_argument("--data-dir", help="dataset folder (default: $MINIGRAD_DATA, "
                   "else ~/.cache/minigrad)")  # fmt: skip
    p.add_argument("--download", action="store_true", default=None, help="fetch missing files")
    p.add_argument("--image-size", type=positive_int,
                   help="input side (digits 16, imagenette 128)")  # fmt: skip
    batch = (
        "images per batch (default 256)"
        if evaluating
        else "images per step (default 128; digits 64); under mpiexec -n N the global batch, "
        "N must divide it"
    )
    p.add_argument("--batch-size", type=positive_int, help=batch)
    p.add_argument("--num-workers", type=non_negative_int,
                   help="loader threads (default 0; imagenette 4)")  # fmt: skip
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: best available)")
    p.add_argument("--threads", type=positive_int,
                   help="CPU threads for the ops (default: the available cores; under "
                   "mpiexec divided among the ranks on each machine)")  # fmt: skip
    limit = ("score only N test images (default: the whole split)" if evaluating
             else "use only N images of each split (quick trials)")  # fmt: skip
    p.add_argument("--limit", type=positive_int, help=limit)


def build_parser(spec: ModelSpec) -> argparse.ArgumentParser:
    """``train`` (the default), ``eval``, ``predict`` (and a ``study`` entry for ``--help``).

    ``train`` gets the generic flags and, in a group of its own, the model's
    (``spec.add_arguments``).
    """
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog=spec.prog,
        description=f"{spec.description}\nThe command defaults to train: `{spec.prog} "
        f"--epochs 2` is `{spec.prog} train --epochs 2`.",
        epilog=_epilog(),
        formatter_class=fmt,
    )
    sub = parser.add_subparsers(dest="command", metavar="{train,eval,predict,study}",
                                title="commands (default: train)")  # fmt: skip
    t = sub.add_parser("train", help="train a model (the default command)", epilog=_epilog(),
                       formatter_class=fmt)  # fmt: skip
    _add_data_flags(t)
    t.add_argument("--epochs", type=positive_int, help="epochs in total (default 30; digits 8)")
    t.add_argument("--lr", type=positive_float, help="peak learning rate (default 0.05)")
    t.add_argument("--momentum", type=unit_interval, help="SGD momentum (default 0.9)")
    t.add_argument("--weight-decay", type=non_negative_float,
                   help="L2 / decoupled decay (default 5e-4)")  # fmt: skip
    t.add_argument(
        "--schedule",
        choices=("cosine", "paper", "step", "constant"),
        help="per-epoch LR schedule; paper = -4%% every 8 epochs (default cosine)",
    )
    t.add_argument("--warmup", type=non_negative_int, help="epochs of linear LR warmup (default 0)")
    t.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), help="default sgd")
    t.add_argument("--seed", type=non_negative_int,
                   help="seed of weights, shuffling, dropout (default 0)")  # fmt: skip
    t.add_argument(
        "--ema",
        type=unit_interval,
        metavar="DECAY",
        help="evaluate with an EMA of the weights, e.g. 0.999 (default off)",
    )
    t.add_argument("--precision", choices=("float32", "tf32"), help="tf32: CUDA matmuls only")
    t.add_argument(
        "--grad-norms",
        type=positive_int,
        metavar="N",
        help="record per-layer gradient norms every N steps (minigrad.study)",
    )
    t.add_argument("--resume", metavar="CKPT_OR_DIR",
                   help="continue from a checkpoint (or a run folder's last.npz)")  # fmt: skip
    t.add_argument("--out", help="run folder (default runs/DATASET, -2, -3 ... if taken); "
                   "an existing run there is never overwritten unless --overwrite")  # fmt: skip
    t.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in --out (its checkpoints and metrics)",
    )
    t.add_argument("--no-plots", action="store_true", help="do not write curves.png")
    t.add_argument(
        "--sync-bn",
        action="store_true",
        default=None,
        help="batch norm statistics over all ranks (SyncBatchNorm; for mpiexec runs)",
    )
    spec.add_arguments(t.add_argument_group("model", "the model's own options"))
    finetune.add_weights_arguments(t, train=True)
    e = sub.add_parser("eval", help="top-1/top-5 on the test split + confusion matrix PNG",
                       epilog=_epilog(), formatter_class=fmt)  # fmt: skip
    e.add_argument(
        "checkpoint",
        nargs="?",
        help="a .npz from train, or a run folder (its best.npz, else last.npz)",
    )
    e.add_argument("--resume", metavar="CKPT_OR_DIR", help="same as the positional checkpoint")
    _add_data_flags(e, evaluating=True)
    e.add_argument("--out", help="folder for confusion.png (default: the checkpoint's)")
    e.add_argument("--crops", type=int, choices=(1, 10, 144), default=1,
                   help="test-time crops per image, softmax averaged: 1 (centre), 10 (corners "
                   "and centre, mirrored), 144 (the paper's: 4 scales x 3 squares x 6 crops x "
                   "2 mirrors); default 1")  # fmt: skip
    finetune.add_weights_arguments(e)
    sub.add_parser("study", add_help=False,
                   help="gradient flow per layer, branch and loss (study --help)")  # fmt: skip
    pr = sub.add_parser("predict", help="top-5 classes of image files", epilog=_epilog(),
                        formatter_class=fmt)  # fmt: skip
    pr.add_argument("images", nargs="+", help="image files (anything Pillow opens)")
    pr.add_argument("--resume", "--checkpoint", dest="checkpoint",
                    metavar="CKPT_OR_DIR",
                    help="the trained model: a .npz from train, or a run folder (its "
                    "best.npz, else last.npz); or --weights")  # fmt: skip
    pr.add_argument("--device", help="cpu or cuda (default cpu)")
    pr.add_argument(
        "--top",
        type=positive_int,
        default=5,
        help="classes to print per image, 1 to the class count (default 5)",
    )
    pr.add_argument("--dataset", help="the classes of --weights (default: ImageNet's 1,000)")
    finetune.add_weights_arguments(pr, download=True)
    return parser
