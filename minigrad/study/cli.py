"""The ``study`` command of an application: the gradient-flow report of its model on one batch.

    python APP.py study                                  # a fresh model, digits
    python APP.py study --checkpoint runs/digits/best.npz --out runs/digits/study

``main(argv, spec)`` takes the application's :class:`~minigrad.train.spec.ModelSpec`: its
model factory and argument group (for a fresh model), its loss terms (bound to the run
config's loss options, e.g. ``--aux-weight``) and its block selector. It prints the
per-layer table (norms per loss term, shares) and the per-branch shares at every block's
input, and writes ``flow.json``, ``study_attribution.png`` and ``study_branch_shares.png``
into ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from minigrad import devices, random
from minigrad.checkpoint import find_checkpoint, load_for_inference
from minigrad.tensor import tensor
from minigrad.train.run_config import checked_builder

if TYPE_CHECKING:
    from minigrad.train.spec import ModelSpec

__all__ = ["build_parser", "main"]


def build_parser(spec: ModelSpec) -> argparse.ArgumentParser:
    """The ``study`` command's arguments: generic ones, then the model's own group."""
    p = argparse.ArgumentParser(
        prog=f"{spec.prog} study",
        description="Gradient flow through the model on one batch: per-layer norms for each "
        "loss term, and each block branch's share of the gradient.",
    )
    p.add_argument("--checkpoint", metavar="CKPT_OR_DIR",
                   help="a checkpoint from `train`, or a run folder (its best.npz, else "
                   "last.npz); default: a fresh model")  # fmt: skip
    p.add_argument(
        "--dataset",
        default=None,
        help="dataset of the batch (default: the checkpoint's, else digits)",
    )
    p.add_argument(
        "--image-size", type=int, default=None, help="digits/imagenette side (default: as trained)"
    )
    p.add_argument("--data-dir", default=None, help="dataset folder (not needed for digits)")
    p.add_argument("--batch-size", type=int, default=32, help="images in the batch (default 32)")
    p.add_argument(
        "--out", default="runs/study", help="folder for flow.json and the PNGs (default runs/study)"
    )
    p.add_argument("--device", default=None, help="cpu or cuda[:N] (default: best available)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fresh model and the batch")
    p.add_argument("--weights", metavar="PATH",
                   help="pretrained weights (.pth, .safetensors, .npz) to study on --dataset: "
                   "the model's options follow the file; a fresh head when the class count "
                   "differs")  # fmt: skip
    p.add_argument("--no-branches", action="store_true", help="hide branch rows in the table")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG files")
    p.add_argument("--curvature", action="store_true",
                   help="also the top Hessian eigenvalue per block and branch, with and "
                   "without the aux losses (curvature.json, study_curvature.png)")  # fmt: skip
    p.add_argument("--curvature-iters", type=int, default=6,
                   help="power iterations at most (default 6)")  # fmt: skip
    fresh = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in spec.study_defaults.items())
    about = f" (a fresh model here defaults to {fresh})" if fresh else ""
    spec.add_arguments(
        p.add_argument_group("model", f"a fresh model's options{about}, and the loss's")
    )
    return p


def _config(
    args: argparse.Namespace,
    spec: ModelSpec,
    saved: dict[str, Any],
    implied: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], Any]:
    """The run config: a checkpoint's, else a fresh model's defaults; given model flags win."""
    from minigrad.data import SIZED_DATASETS, dataset_info  # noqa: PLC0415 - loaded on use

    given = {k: v for k, v in vars(args).items() if k in spec.defaults and v is not None}
    name = args.dataset or saved.get("dataset") or "digits"
    if saved:
        cfg = {**saved, **given}
    else:
        cfg = {**spec.defaults, **spec.dataset_defaults.get(name, {}), **spec.study_defaults}
        cfg.update(implied or {})  # a --weights file's options (its width, variant...)
        cfg.update(given)
    size = args.image_size or cfg.get("image_size")
    info = dataset_info(name, image_size=size if name in SIZED_DATASETS else None)
    if not saved:
        cfg.update(dataset=info.name, num_classes=info.num_classes, in_channels=info.in_channels,
                   image_size=info.image_size)  # fmt: skip
        if spec.configure is not None:
            spec.configure(cfg, info)
    return cfg, info


def _load_model(args: argparse.Namespace, spec: ModelSpec, device: str) -> tuple[Any, Any, dict]:
    """The model (from the checkpoint, or fresh), the batch's DatasetInfo and the config."""
    model, saved, weights, implied = None, {}, None, {}
    if args.checkpoint and args.weights:
        raise ValueError("study: pass either --checkpoint or --weights, not both")
    if args.checkpoint:
        path = find_checkpoint(args.checkpoint)  # a run folder: its best.npz, else last.npz
        build = checked_builder(spec, path, device, need_dataset=False)  # another program's
        model, saved = load_for_inference(str(path), build, device)  # run is one line
    elif args.weights:
        from minigrad.train import finetune  # noqa: PLC0415 - only with --weights

        weights = finetune.read_weights(finetune.resolve_weights_path(args.weights, spec))
        implied = finetune.options_from_weights(spec, weights)
        implied.pop("num_classes", None)  # the dataset's: a fresh head if it differs
    cfg, info = _config(args, spec, saved, implied)
    if model is None:
        random.manual_seed(args.seed)
        model = spec.build_model(cfg)
    if weights is not None:
        head = finetune.load_pretrained(model, weights, int(cfg["num_classes"]))
        if head:
            print(f"--weights {args.weights}: new head at its initial values: {', '.join(head)}")
    in_channels = cfg.get("in_channels", info.in_channels)
    if in_channels != info.in_channels:
        raise ValueError(
            f"study: the model takes {in_channels}-channel images but {info.name} has "
            f"{info.in_channels}; pass the --dataset it was trained on"
        )
    return model.to(device), info, cfg


def _batch(args: argparse.Namespace, info: Any) -> tuple[np.ndarray, np.ndarray]:
    from minigrad.data import get_dataset  # noqa: PLC0415 - loaded when the command runs

    size = info.image_size if info.size_can_be_set else None
    ds = get_dataset(info.name, root=args.data_dir, train=True, image_size=size)
    if args.batch_size < 1:
        raise ValueError(f"study: --batch-size must be >= 1, got {args.batch_size}")
    rng = np.random.default_rng(args.seed)
    idx = rng.permutation(len(ds))[: args.batch_size]
    x, y = ds.get_batch(np.sort(idx), rng)
    return info.eval_transform(x, rng), np.asarray(y, dtype=np.int64)


def main(argv: list[str] | None, spec: ModelSpec) -> int:
    """Run the study; return the exit status (0 ok, 2 bad arguments or missing files)."""
    args = build_parser(spec).parse_args(argv)
    from minigrad.study.flow import gradient_flow  # noqa: PLC0415 - as above
    from minigrad.study.report import format_table, save_report  # noqa: PLC0415

    try:
        device = devices.normalize_device(args.device or devices.default_device())
        model, info, cfg = _load_model(args, spec, device)
        x, y = _batch(args, info)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    x_t = tensor(x, device=device)
    y_t = tensor(y, device=device)
    report = gradient_flow(model, x_t, y_t, spec.loss(cfg), blocks=spec.blocks)
    print(format_table(report, branches=not args.no_branches))
    out = Path(args.out)
    written = [save_report(report, out / "flow.json")]
    if not args.no_plots:
        from minigrad.study.plots import (  # noqa: PLC0415 - matplotlib, optional
            plot_attribution,
            plot_branch_shares,
        )

        written.append(plot_attribution(report, out / "study_attribution.png"))
        if report.blocks:
            path = out / "study_branch_shares.png"
            written.append(plot_branch_shares(report, path, dict(spec.branch_labels)))
    if args.curvature:
        written += _curvature(args, spec, cfg, model, x_t, y_t, out)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _curvature(
    args: argparse.Namespace, spec: ModelSpec, cfg: dict, model: Any, x: Any, y: Any, out: Path
) -> list[Path]:
    """The curvature study (:mod:`minigrad.study.curvature`): table, JSON and plot."""
    import json  # noqa: PLC0415
    from dataclasses import asdict  # noqa: PLC0415

    from minigrad.study.curvature import (  # noqa: PLC0415 - loaded when asked for
        block_curvature,
        format_curvature,
        plot_curvature,
    )

    report = block_curvature(model, x, y, spec.loss(cfg), blocks=spec.blocks,
                             iters=args.curvature_iters, seed=args.seed)  # fmt: skip
    print(format_curvature(report))
    out.mkdir(parents=True, exist_ok=True)
    path = out / "curvature.json"
    path.write_text(json.dumps([asdict(g) for g in report], indent=1))
    written = [path]
    if not args.no_plots and report:
        written.append(
            plot_curvature(report, out / "study_curvature.png", dict(spec.branch_labels))
        )
    return written
