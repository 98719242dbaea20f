"""The ``predict`` command: the top classes and probabilities of image files."""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from minigrad.train import finetune
from minigrad.train.inference import inference_model
from minigrad.train.resolve import dataset_info_for, resolve_device
from minigrad.train.run_config import printable
from minigrad.train.spec import ModelSpec

__all__ = ["run_predict"]


def run_predict(args: argparse.Namespace, spec: ModelSpec) -> int:
    """``predict``: the top classes and probabilities of each image file; a file that is
    not a readable image is reported on one line and the others are still predicted."""
    import minigrad.functional as F  # noqa: PLC0415
    from minigrad.tensor import no_grad, tensor  # noqa: PLC0415

    device = resolve_device(args.device or "cpu")
    if not args.checkpoint and not args.weights:
        raise ValueError("predict: pass --checkpoint CKPT_OR_DIR (a run's) or --weights PATH")
    model, cfg, path = inference_model(args, spec, args.checkpoint, device)
    if "dataset" not in cfg:
        raise ValueError(f"predict: {path} does not name its dataset (config)")
    info = dataset_info_for(cfg)
    # names from the file are printed escaped: no escape sequence reaches the terminal
    names = [printable(n) for n in cfg.get("class_names") or info.class_names]
    if not 1 <= args.top <= len(names):
        raise ValueError(f"predict: --top must be between 1 and the {len(names)} classes, "
                         f"got {args.top}")  # fmt: skip
    good, images, bad = [], [], 0
    for file in args.images:
        try:
            if not os.path.isfile(file):
                raise FileNotFoundError(f"{file}: no such image file")
            x, note = info.preprocess_image(file)  # (C, H, W), via data.images.open_image
            if note:
                print(f"note: {file}: {note}", file=sys.stderr)
            images.append(x)
            good.append(file)
        except (ValueError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            bad += 1
    if good:
        x = np.stack(images)  # (N, C, H, W)
        with no_grad():
            logits = finetune.subset_logits(spec.logits, cfg.get("class_subset"))
            prob = F.softmax(logits(model(tensor(x, device=device))), dim=1).numpy()
        if len(names) != prob.shape[1]:  # a run config without names of its own classes
            names = [str(i) for i in range(prob.shape[1])]
        for file, p in zip(good, prob):
            top = np.argsort(-p, kind="stable")[: args.top]
            print(f"{file}: " + ", ".join(f"{names[i]} {p[i]:.3f}" for i in top))
    if bad:
        print(f"predict: {bad} of {len(args.images)} file(s) could not be read as images",
              file=sys.stderr)  # fmt: skip
        return 2
    return 0
