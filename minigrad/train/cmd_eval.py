"""The ``eval`` command: top-1/top-5 of a checkpoint (or ``--weights``) on the test split,
with 1, 10 or 144 crops per image, and its confusion matrix as ``confusion.png``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from minigrad.train import finetune
from minigrad.train.inference import inference_model
from minigrad.train.resolve import check_splits, load_datasets, resolve_device
from minigrad.train.run_config import FROM_FLAGS_ONLY
from minigrad.train.spec import ModelSpec

__all__ = ["run_eval"]


def run_eval(args: argparse.Namespace, spec: ModelSpec) -> int:
    """``eval``: top-1/top-5 on the whole test split (or ``--limit`` images of it) and
    ``confusion.png``."""
    from minigrad.data import DataLoader  # noqa: PLC0415
    from minigrad.train.loop import evaluate  # noqa: PLC0415
    from minigrad.train.run_plots import plot_confusion_matrix  # noqa: PLC0415

    given = args.checkpoint or args.resume
    if not given and not args.weights:
        raise ValueError(f"eval: pass a checkpoint, e.g. python {spec.prog} eval runs/x/best.npz")
    device = resolve_device(args.device)
    model, cfg, path = inference_model(args, spec, given, device, dataset=args.dataset)
    # the training run's --limit is not inherited: eval scores the whole split unless asked;
    # the data folder and a download come from the user's flags only, never from the file
    overrides = {k: getattr(args, k) for k in ("dataset", "data_dir", "download")}
    cfg = {**cfg, **FROM_FLAGS_ONLY, **{k: v for k, v in overrides.items() if v is not None},
           "limit": args.limit}  # fmt: skip
    if "dataset" not in cfg:
        raise ValueError(f"eval: {path} does not name its dataset; pass --dataset")
    logits = finetune.subset_logits(spec.logits, cfg.get("class_subset"))
    info, _, test_set = load_datasets(cfg, train=False)
    check_splits(cfg, None, test_set)
    start = time.perf_counter()
    if args.crops > 1:
        from minigrad.train.multicrop import evaluate_crops  # noqa: PLC0415

        result = evaluate_crops(model, test_set, info, args.crops, device=device, logits=logits,
                                batch_size=args.batch_size or 4 * args.crops)  # fmt: skip
    else:
        loader = DataLoader(test_set, args.batch_size or 256, num_workers=args.num_workers or 0,
                            transform=info.eval_transform)  # fmt: skip
        result = evaluate(model, loader, device=device, num_classes=info.num_classes, logits=logits)
    part = "the whole test split" if args.limit is None else f"--limit {args.limit}"
    crops = f", {args.crops} crops" if args.crops > 1 else ""
    seconds = time.perf_counter() - start
    print(f"{cfg['dataset']} test: top-1 {result['top1']:.4f}  top-5 {result['top5']:.4f}  "
          f"({result['n']} images scored, {part}{crops}; {path})")  # fmt: skip
    print(f"evaluation took {seconds:.1f} s, {1e3 * seconds / max(result['n'], 1):.1f} ms per "
          f"image ({args.crops} crop{'s' * (args.crops > 1)} each)")  # fmt: skip
    out = Path(args.out) if args.out else path.parent
    out.mkdir(parents=True, exist_ok=True)
    png = out / "confusion.png"
    plot_confusion_matrix(result["confusion"], png, info.class_names,
                          title=f"{cfg['dataset']} test, top-1 {result['top1']:.3f}")  # fmt: skip
    print(f"confusion matrix: {png}")
    return 0
