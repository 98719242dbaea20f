"""``python googlenet.py study``: the gradient-flow report of a GoogLeNet on one batch.

    python googlenet.py study                                  # fresh small model, digits
    python googlenet.py study --checkpoint runs/digits/best.npz --out runs/digits/study

Prints the per-layer table (norms per loss term, aux shares) and the per-branch shares
at every Inception block's input, and writes ``flow.json``, ``study_attribution.png`` and
``study_branch_shares.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from minigrad import backend
from minigrad.tensor import tensor

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``study`` sub-command's arguments."""
    p = argparse.ArgumentParser(
        prog="googlenet.py study",
        description="Gradient flow through GoogLeNet on one batch: per-layer norms for the "
        "main and each aux loss, and each Inception branch's share of the gradient.",
    )
    p.add_argument("--checkpoint", help="a checkpoint from `train` (default: a fresh model)")
    p.add_argument(
        "--dataset",
        default=None,
        help="dataset of the batch (default: the checkpoint's, else digits)",
    )
    p.add_argument(
        "--image-size", type=int, default=None, help="digits/imagenette side (default: as trained)"
    )
    p.add_argument("--data-dir", default=None, help="dataset folder (not needed for digits)")
    p.add_argument("--width", type=float, default=0.125, help="fresh model's width multiplier")
    p.add_argument("--batch-size", type=int, default=32, help="images in the batch")
    p.add_argument("--aux-weight", type=float, default=0.3, help="weight of each aux loss")
    p.add_argument("--out", default="runs/study", help="folder for flow.json and the PNGs")
    p.add_argument("--device", default=None, help="cpu or cuda[:N] (default: best available)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fresh model and the batch")
    p.add_argument("--no-branches", action="store_true", help="hide branch rows in the table")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG files")
    return p


def _load_model(args: argparse.Namespace, device: str) -> tuple[Any, Any]:
    """The model (from the checkpoint, or fresh) and the DatasetInfo of the batch to use."""
    import googlenet  # noqa: PLC0415 - the model lives in the top-level script
    from minigrad.data import dataset_info  # noqa: PLC0415

    config: dict[str, Any] = {}
    model = None
    if args.checkpoint:
        if not Path(args.checkpoint).is_file():
            raise FileNotFoundError(f"study: checkpoint {args.checkpoint} does not exist")
        loaded = googlenet.load_for_inference(args.checkpoint, device)
        model, config = loaded if isinstance(loaded, tuple) else (loaded, {})
    name = args.dataset or config.get("dataset") or "digits"
    info = dataset_info(name, image_size=args.image_size or config.get("image_size"))
    if model is None:
        backend.manual_seed(args.seed)
        model = googlenet.GoogLeNet(
            info.num_classes, info.in_channels, stem=info.stem, batch_norm=True, width=args.width
        )
    if getattr(model, "in_channels", info.in_channels) != info.in_channels:
        raise ValueError(
            f"study: the model takes {model.in_channels}-channel images but {info.name} has "
            f"{info.in_channels}; pass the --dataset it was trained on"
        )
    if not getattr(model, "aux_logits", True):
        print("study: the model has no aux heads; only the main loss is attributed")
    return model.to(device), info


def _batch(args: argparse.Namespace, info: Any) -> tuple[np.ndarray, np.ndarray]:
    from minigrad.data import get_dataset  # noqa: PLC0415 - heavy, only when run

    size = info.image_size if info.name in ("digits", "imagenette") else None
    ds = get_dataset(info.name, root=args.data_dir, train=True, image_size=size)
    if args.batch_size < 1:
        raise ValueError(f"study: --batch-size must be >= 1, got {args.batch_size}")
    rng = np.random.default_rng(args.seed)
    idx = rng.permutation(len(ds))[: args.batch_size]
    x, y = ds.get_batch(np.sort(idx), rng)
    return info.eval_transform(x, rng), np.asarray(y, dtype=np.int64)


def main(argv: list[str] | None = None) -> int:
    """Run the study; return the exit status (0 ok, 2 bad arguments or missing files)."""
    args = build_parser().parse_args(argv)
    from minigrad.study.flow import gradient_flow  # noqa: PLC0415
    from minigrad.study.report import format_table, save_report  # noqa: PLC0415

    try:
        device = backend.normalize_device(args.device or backend.default_device())
        model, info = _load_model(args, device)
        x, y = _batch(args, info)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    x_t = tensor(x, device=device)
    y_t = tensor(y, device=device)
    report = gradient_flow(model, x_t, y_t, aux_weight=args.aux_weight)
    print(format_table(report, branches=not args.no_branches))
    out = Path(args.out)
    written = [save_report(report, out / "flow.json")]
    if not args.no_plots:
        from minigrad.study.plots import plot_attribution, plot_branch_shares  # noqa: PLC0415

        written.append(plot_attribution(report, out / "study_attribution.png"))
        if report.blocks:
            written.append(plot_branch_shares(report, out / "study_branch_shares.png"))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
