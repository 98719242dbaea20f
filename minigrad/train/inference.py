"""The model ``eval`` and ``predict`` run: a checkpoint of ``train`` (a file, or a run
folder's best one), or pretrained ``--weights``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from minigrad.checkpoint import find_checkpoint, load_for_inference
from minigrad.train import finetune
from minigrad.train.resolve import DEFAULTS
from minigrad.train.run_config import checked_builder
from minigrad.train.spec import ModelSpec

__all__ = ["find_for_inference", "inference_model"]


def find_for_inference(given: str) -> Path:
    """The checkpoint ``eval``/``predict`` use: a file, or a run folder's ``best.npz``, else
    its ``last.npz`` (and then a note says so: it is not the best epoch's)."""
    path = find_checkpoint(given)
    if Path(given).is_dir() and path.name != "best.npz":
        print(f"note: {given} has no best.npz; using {path.name}", file=sys.stderr)
    return path


def inference_model(args: argparse.Namespace, spec: ModelSpec, given: str | None,
                     device: str, dataset: str | None = None,
                     ) -> tuple[Any, dict[str, Any], Path]:  # fmt: skip
    """``eval``/``predict``'s model, its config and the file it came from: a checkpoint
    (``given``), or ``--weights`` (:func:`minigrad.train.finetune.model_from_weights`)."""
    if given and args.weights:
        raise ValueError("pass either a checkpoint or --weights, not both")
    if given:
        path = find_for_inference(given)  # another program's run is one line
        build = checked_builder(spec, path, device, dataset=dataset)
        model, cfg = load_for_inference(path, build, device)
        return model, cfg, path
    size = getattr(args, "image_size", None)
    model, cfg = finetune.model_from_weights(args.weights, spec, DEFAULTS, args.dataset, size,
                                             bool(getattr(args, "download", False)))  # fmt: skip
    return model.to(device), cfg, Path(cfg["weights"])
