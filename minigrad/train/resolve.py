"""What the flags resolve to: the run config, the device, the datasets.

Shared by every command that builds a model from flags: ``train``, ``eval`` and ``predict``
here, and ``study`` (:mod:`minigrad.study.command`), so that the same flags give the same
config and the same device in each.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from minigrad import devices
from minigrad.train import finetune
from minigrad.train.run_config import FROM_FLAGS_ONLY, printable
from minigrad.train.run_folder import new_run_id
from minigrad.train.spec import ModelSpec

__all__ = [
    "DEFAULTS",
    "RESUMABLE",
    "check_splits",
    "dataset_info_for",
    "fresh_config",
    "load_datasets",
    "resolve_config",
    "resolve_device",
    "weights_options",
]

# what the generic flags default to when not given (the application's ModelSpec adds its
# model's defaults and may override any of these per dataset)
DEFAULTS: dict[str, Any] = {
    "dataset": "digits", "data_dir": None, "download": False, "image_size": None,
    "epochs": 30, "batch_size": 128, "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4,
    "schedule": "cosine", "warmup": 0, "optimizer": "sgd", "device": None, "seed": 0,
    "ema": None, "precision": "float32", "num_workers": None, "grad_norms": None,
    "limit": None, "threads": None, "sync_bn": False,
}  # fmt: skip
# flags that may change when a run is resumed; the others must match the checkpoint
RESUMABLE = {"epochs", "device", "num_workers", "grad_norms", "precision", "data_dir", "download",
             "threads", "sync_bn"}  # fmt: skip


def resolve_config(
    args: argparse.Namespace, spec: ModelSpec, saved: dict[str, Any] | None = None
) -> dict:
    """The run config: given flags, else the checkpoint's (resume), else the defaults
    (the model's per-dataset ones first, then the generic and the model's own).

    Raises:
        ValueError: a flag that would change the model or data of a resumed run.
    """
    known = {**DEFAULTS, **finetune.FINETUNE_DEFAULTS, **spec.defaults}
    given = {k: v for k, v in vars(args).items() if k in known and v is not None}
    if saved:
        for k, v in given.items():
            if k not in RESUMABLE and k in saved and saved[k] != v:
                flag = "--" + k.replace("_", "-")
                raise ValueError(f"--resume: {flag} {v} differs from the checkpoint's "
                                 f"{printable(saved[k])}")  # fmt: skip
        # a path or a network action comes from the user's flags, never from the file
        mine = {k: given.get(k, v) for k, v in FROM_FLAGS_ONLY.items()}
        return {**saved, **{k: v for k, v in given.items() if k in RESUMABLE}, **mine}
    implied = {}  # the model options of --weights (its class count is the dataset's here)
    if given.get("weights"):
        path = finetune.resolve_weights_path(given["weights"], spec, bool(given.get("download")))
        given["weights"] = str(path)
        implied = weights_options(spec, finetune.read_weights(path))
    stamp = {"program": spec.prog, "model": spec.model or None, "run_id": new_run_id()}
    cfg, _ = fresh_config(spec, given, generic=known, implied=implied, stamp=stamp)
    if cfg["num_workers"] is None:
        cfg["num_workers"] = 4 if cfg["dataset"] == "imagenette" else 0
    return cfg


def fresh_config(
    spec: ModelSpec,
    given: dict[str, Any],
    *,
    generic: dict[str, Any] | None = None,
    implied: dict[str, Any] | None = None,
    study: bool = False,
    stamp: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], Any]:
    """A fresh model's config, and the ``DatasetInfo`` of its dataset.

    Later layers win: ``generic`` defaults, the model's (``spec.defaults``), the model's for
    the dataset (``spec.dataset_defaults``), for ``study`` its fresh model's
    (``spec.study_defaults``), the options a ``--weights`` file implies (``implied``), the
    ``given`` flags. Then ``stamp`` (the program, the run's id), the dataset's class count,
    channels, image size and class names, and ``spec.configure``.
    """
    from minigrad.data import dataset_info  # noqa: PLC0415 - loaded when a command runs

    name = dataset_info(given.get("dataset") or DEFAULTS["dataset"]).name
    cfg = {**(generic or spec.defaults), **spec.dataset_defaults.get(name, {})}
    if study:
        cfg.update(spec.study_defaults)
    cfg.update({**(implied or {}), **given, "dataset": name, **(stamp or {})})
    info = dataset_info_for(cfg)
    cfg.update(num_classes=info.num_classes, in_channels=info.in_channels,
               image_size=info.image_size, class_names=list(info.class_names))  # fmt: skip
    if spec.configure is not None:
        spec.configure(cfg, info)
    return cfg, info


def weights_options(spec: ModelSpec, weights: dict[str, Any]) -> dict[str, Any]:
    """The model options a ``--weights`` file implies (``spec.weights_options``), but its
    class count: that is the dataset's (a fresh head when it differs)."""
    implied = finetune.options_from_weights(spec, weights)
    implied.pop("num_classes", None)
    return implied


def dataset_info_for(cfg: dict[str, Any]) -> Any:
    """The ``DatasetInfo`` of ``cfg["dataset"]``, at ``cfg["image_size"]`` where it can be set."""
    from minigrad.data import SIZED_DATASETS, dataset_info  # noqa: PLC0415

    size = cfg.get("image_size") if cfg["dataset"] in SIZED_DATASETS else None
    return dataset_info(cfg["dataset"], image_size=size)


def resolve_device(
    requested: str | None,
    precision: str = "float32",
    threads: int | None = None,
    *,
    cpu_training: bool = True,
) -> str:
    """The device of ``--device`` (default: the best available), set up for the command:
    TF32 matmuls for ``--precision tf32``, and on the CPU (with ``cpu_training``) the
    settings of :func:`minigrad.runtime.configure_cpu_training` (``threads`` host threads).

    ``study`` passes ``cpu_training=False``: it has always run with the process's own CPU
    settings, and those settings change float32 rounding, so its tables would change.

    Raises:
        ValueError: an unknown device, tf32 on the CPU, or ``threads < 1``.
    """
    device = devices.normalize_device(requested or devices.default_device())
    if precision == "tf32":
        if device == "cpu":
            raise ValueError("--precision tf32 needs a CUDA device (NumPy on the CPU has no TF32)")
        devices.set_tf32(True)
    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be positive, got {threads}")
    if device == "cpu" and cpu_training:  # malloc keeps freed pages, BLAS on 1 thread, chunks
        from minigrad import runtime  # noqa: PLC0415

        runtime.configure_cpu_training(threads)
    return device


def load_datasets(cfg: dict[str, Any], train: bool = True) -> tuple[Any, Any, Any]:
    """(info, the training split, the test split): ``cfg["limit"]`` images of each; with
    ``train=False`` only the test split is read (returned in both places)."""
    from minigrad.data import Subset, get_dataset  # noqa: PLC0415

    info = dataset_info_for(cfg)
    kw = {"root": cfg.get("data_dir"), "download": bool(cfg.get("download"))}
    if info.size_can_be_set:
        kw["image_size"] = info.image_size
    splits = [
        get_dataset(cfg["dataset"], train=s, **kw) for s in ((True, False) if train else (False,))
    ]
    if cfg.get("limit"):
        pick = [np.random.default_rng(0).permutation(len(d))[: cfg["limit"]] for d in splits]
        splits = [Subset(d, np.sort(i)) for d, i in zip(splits, pick)]
    return info, splits[0], splits[-1]


def check_splits(cfg: dict[str, Any], train_set: Any, test_set: Any) -> None:
    """An empty split is an error: no step to train, or nothing to score (not top-1 0)."""
    for split, data in (("training", train_set), ("test", test_set)):
        if data is not None and len(data) == 0:
            where = f" in {cfg['data_dir']}" if cfg.get("data_dir") else ""
            raise ValueError(f"the {split} split of {cfg['dataset']}{where} is empty; "
                             "there is nothing to " + ("train on" if split == "training"
                                                      else "evaluate"))  # fmt: skip
