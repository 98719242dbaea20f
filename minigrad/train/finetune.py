"""Pretrained weights on the command line: ``--weights PATH`` for ``train`` (fine-tuning),
``eval``, ``predict`` and ``study``; ``--freeze BLOCK`` and ``--backbone-lr-scale``.

``--weights`` takes a ``.pth`` (``torch.save``'d state_dict, read without torch), a
``.safetensors`` or a minigrad ``.npz`` (:func:`minigrad.io.load_weights`). The model's
options follow the file (``ModelSpec.weights_options``: e.g. GoogLeNet's variant and width)
unless a flag says otherwise. Fine-tuning loads every tensor but the classifier's when the
class count differs: those (the "new head") keep their fresh initialisation, and are the
only parameters that ``--backbone-lr-scale`` leaves at the full learning rate.

A name the application lists in ``ModelSpec.pretrained`` (``googlenet-1378be20.pth``) that
is not a file is looked up in ``$MINIGRAD_DATA/weights`` (``~/.cache/minigrad/weights``) and,
with ``--download``, fetched there through :func:`minigrad.data.download.download_url`,
the first hex digits of its SHA-256 checked against those in its name, as torchvision does.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from minigrad.nn.state import mismatch_report
from minigrad.train.spec import ModelSpec

__all__ = [
    "FINETUNE_DEFAULTS",
    "add_weights_arguments",
    "freeze",
    "load_pretrained",
    "model_from_weights",
    "options_from_weights",
    "param_groups",
    "prepare",
    "read_weights",
    "resolve_weights_path",
    "subset_logits",
]

#: the run-config keys of fine-tuning and their defaults
FINETUNE_DEFAULTS: dict[str, Any] = {"weights": None, "freeze": None, "backbone_lr_scale": 1.0}
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z]+$")


def add_weights_arguments(parser: argparse.ArgumentParser, train: bool = False,
                          download: bool = False) -> None:  # fmt: skip
    """The ``pretrained weights`` argument group (``train`` adds the fine-tuning flags;
    ``download`` adds ``--download`` where the command has none)."""
    g = parser.add_argument_group("pretrained weights")
    g.add_argument("--weights", metavar="PATH",
                   help="start from these weights: a .pth (torch.save'd state_dict), "
                   ".safetensors or minigrad .npz; the model's options follow the file"
                   + ("; a new head when the class count differs (fine-tuning)" if train
                      else ""))  # fmt: skip
    if download:
        g.add_argument("--download", action="store_true", default=None,
                       help="fetch a known --weights file (e.g. googlenet-1378be20.pth) when "
                       "it is missing")  # fmt: skip
    if not train:
        return
    g.add_argument("--freeze", metavar="BLOCK",
                   help="freeze the model's blocks up to and including BLOCK (a child's name, "
                   "e.g. inception4e); the later ones and the new head train")  # fmt: skip
    g.add_argument("--backbone-lr-scale", type=_scale, metavar="F",
                   help="learning rate of the loaded weights = F x --lr; the new head keeps "
                   "--lr (default 1)")  # fmt: skip


def _scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


# ---------------------------------------------------------------------------- the file
_CACHE: dict[tuple[str, int, int], dict[str, np.ndarray]] = {}


def weights_root() -> Path:
    """Where named pretrained files go: ``$MINIGRAD_DATA/weights`` (``~/.cache/minigrad``)."""
    from minigrad.data.download import default_root  # noqa: PLC0415

    return default_root() / "weights"


def resolve_weights_path(given: str | os.PathLike, spec: ModelSpec,
                         download: bool = False) -> Path:  # fmt: skip
    """The file ``--weights`` names: the path itself, else a known name (``spec.pretrained``)
    in :func:`weights_root`, downloaded there when asked.

    Raises:
        FileNotFoundError: no such file; for a known name, with the offline recipe.
    """
    path = Path(given).expanduser()
    if path.is_file():
        return path
    url = (spec.pretrained or {}).get(path.name)
    if url is None:
        raise FileNotFoundError(f"--weights: no file {str(path)!r}")
    cached = weights_root() / path.name
    if cached.is_file():
        return cached
    m = _HASH_IN_NAME.search(path.name)
    if download:
        from minigrad.data.download import download_url  # noqa: PLC0415

        try:
            return download_url(url, cached, sha256_prefix=m.group(1) if m else None)
        except OSError as e:
            raise FileNotFoundError(f"--weights: downloading {url} failed ({e}); "
                                    + _offline(url, cached, m)) from e  # fmt: skip
    raise FileNotFoundError(
        f"--weights: {path.name} is not in {cached.parent}; pass --download to fetch it, or "
        + _offline(url, cached, m)
    )


def _offline(url: str, cached: Path, m: re.Match | None) -> str:
    check = f" (its SHA-256 starts with {m.group(1)}: sha256sum {cached.name})" if m else ""
    return (f"without a network: fetch {url} on a machine that has one, copy it to {cached}"
            f"{check}, or pass its path to --weights")  # fmt: skip


def read_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """:func:`minigrad.io.load_weights`, remembered while the file is unchanged (``train``
    reads it for the model's options, then for the weights)."""
    from minigrad.io import load_weights  # noqa: PLC0415

    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = load_weights(path)
    return _CACHE[key]


def options_from_weights(spec: ModelSpec, weights: dict[str, np.ndarray]) -> dict[str, Any]:
    """The model options a weights file implies (``spec.weights_options``), e.g. GoogLeNet's
    ``{"variant": "torchvision", "width": 1.0, "num_classes": 1000, ...}``."""
    return dict(spec.weights_options(weights)) if spec.weights_options is not None else {}


# ---------------------------------------------------------------------------- loading
def load_pretrained(model: Any, weights: dict[str, np.ndarray], num_classes: int,
                    where: str = "--weights") -> list[str]:  # fmt: skip
    """Load ``weights`` into ``model``; return the new head: the keys left at their fresh
    values because their class count differs (a weight ``(classes, ...)`` or bias
    ``(classes,)`` whose other sizes match).

    Raises:
        ValueError: any other missing, unexpected or wrongly-shaped key (one block, grouped
            by prefix: :func:`minigrad.nn.state.mismatch_report`).
    """
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    head, wrong = [], []
    for k, v in own.items():
        if k in weights and tuple(weights[k].shape) != v.shape:
            w = tuple(weights[k].shape)
            if v.ndim >= 1 and v.shape[0] == num_classes and w[1:] == v.shape[1:]:
                head.append(k)
            else:
                wrong.append(f"{k}: weights {w} vs model {v.shape}")
    if missing or unexpected or wrong:
        report = mismatch_report(type(model).__name__, missing, unexpected, wrong)
        raise ValueError(f"{where}: {report}")
    model.load_state_dict({k: v for k, v in weights.items() if k not in head}, strict=False)
    return head


def freeze(model: Any, block: str) -> list[str]:
    """Turn off ``requires_grad`` in ``model``'s children up to and including ``block``
    (the order of ``named_children``: GoogLeNet's is the paper's, stem first, aux heads and
    fc last); return their names. Batch norm layers there still update their running
    statistics in training mode, as with ``requires_grad_(False)`` in PyTorch.

    Raises:
        ValueError: ``block`` is not a child's name, or nothing would be left to train.
    """
    names = [n for n, _ in model.named_children()]
    if block not in names:
        raise ValueError(f"--freeze: {block!r} is not one of the model's blocks: "
                         f"{', '.join(names)}")  # fmt: skip
    frozen = names[: names.index(block) + 1]
    for name in frozen:
        getattr(model, name).requires_grad_(False)
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(f"--freeze {block}: every parameter would be frozen; pick an earlier "
                         "block")  # fmt: skip
    return frozen


def param_groups(model: Any, cfg: dict[str, Any]) -> list[Any]:
    """The optimizer's parameters: the trainable ones (frozen blocks left out); with
    ``backbone_lr_scale`` != 1 and a new head, two groups: the loaded weights at
    ``lr * backbone_lr_scale``, then the new head at ``lr``."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    scale = float(cfg.get("backbone_lr_scale") or 1.0)
    head = set(cfg.get("new_head") or ())
    if scale == 1.0 or not head:
        return [p for _, p in named]
    backbone = [p for n, p in named if n not in head]
    new = [p for n, p in named if n in head]
    return [{"params": backbone, "lr": cfg["lr"] * scale}, {"params": new}]


def prepare(model: Any, cfg: dict[str, Any], fresh: bool, stream: TextIO | None = None) -> None:
    """``train``'s fine-tuning step, after the model is built: a fresh run loads
    ``cfg["weights"]`` (recording the new head in ``cfg["new_head"]``); every run (a resumed
    one too: ``requires_grad`` is not in checkpoints) freezes up to ``cfg["freeze"]``."""
    out = stream if stream is not None else sys.stdout
    if fresh and cfg.get("weights"):
        weights = read_weights(cfg["weights"])
        head = load_pretrained(model, weights, int(cfg["num_classes"]))
        cfg["new_head"] = head
        about = f"; new head at its initial values: {', '.join(head)}" if head else ""
        print(f"--weights {cfg['weights']}: {len(weights) - len(head)} tensors loaded{about}",
              file=out, flush=True)  # fmt: skip
    scale = float(cfg.get("backbone_lr_scale") or 1.0)
    if fresh and scale != 1.0 and not cfg.get("new_head"):
        print(f"warning: --backbone-lr-scale {scale:g} has no effect: there is no new head "
              "(no --weights, or the same class count), so every weight trains at --lr",
              file=sys.stderr)  # fmt: skip
    if cfg.get("freeze"):
        frozen = freeze(model, cfg["freeze"])
        print(f"--freeze {cfg['freeze']}: {len(frozen)} blocks frozen ({frozen[0]} ... "
              f"{frozen[-1]})", file=out, flush=True)  # fmt: skip


def subset_logits(logits: Any, subset: list[int] | None) -> Any:
    """``logits`` restricted to the classes ``subset`` (e.g. Imagenette's 10 among
    ImageNet's 1,000), or ``logits`` itself."""
    if not subset:
        return logits
    index = np.asarray(subset)

    def pick(outputs: Any) -> Any:
        return logits(outputs)[:, index]  # (N, len(subset))

    return pick


def model_from_weights(given: str, spec: ModelSpec, base: dict[str, Any],
                       dataset: str | None = None, image_size: int | None = None,
                       download: bool = False) -> tuple[Any, dict[str, Any]]:  # fmt: skip
    """The model a weights file holds, loaded strictly, in eval mode on the host, and a run
    config for ``eval``/``predict``: ``base`` (the generic defaults), the model's defaults,
    its options from the file, its dataset
    ``dataset`` (its class count must be the file's, or the file's 1,000 ImageNet classes
    hold the dataset's, as Imagenette's: then ``cfg["class_subset"]`` lists their
    indices), or, for 1,000 classes and no dataset, ImageNet's names and 224 px input.

    Raises:
        ValueError: class counts that do not fit, or weights that do not load strictly.
    """
    from minigrad.data import dataset_info  # noqa: PLC0415
    from minigrad.data.imagenet import imagenet_class_names, imagenet_index  # noqa: PLC0415

    path = resolve_weights_path(given, spec, download)
    weights = read_weights(path)
    opts = options_from_weights(spec, weights)
    n = opts.get("num_classes")
    if n is None:
        raise ValueError(f"--weights {path}: the model cannot tell its class count from the file")
    cfg: dict[str, Any] = {**base, **spec.defaults, **opts, "weights": str(path)}
    if dataset is None and n != 1000:
        raise ValueError(f"--weights {path}: {n} classes; pass --dataset to name them")
    name = dataset or "imagenette"  # ImageNet's preprocessing is Imagenette's at 224 px
    size = image_size or (None if dataset else 224)
    info = dataset_info(name, image_size=size if name in ("digits", "imagenette") else None)
    if opts.get("in_channels", info.in_channels) != info.in_channels:
        raise ValueError(f"--weights {path}: the model takes {opts['in_channels']}-channel "
                         f"images but {info.name} has {info.in_channels}")  # fmt: skip
    cfg.update(dataset=info.name, image_size=info.image_size, in_channels=info.in_channels)
    if dataset is None:
        cfg["class_names"] = list(imagenet_class_names())
    elif n != info.num_classes:
        wnids = getattr(info, "wnids", None)
        if n == 1000 and info.name == "imagenette":
            from minigrad.data.imagenette import IMAGENETTE_WNIDS  # noqa: PLC0415

            wnids = IMAGENETTE_WNIDS
        if n != 1000 or wnids is None:
            raise ValueError(
                f"--weights {path}: {n} classes, but {info.name} has {info.num_classes}; "
                "fine-tune it first (train --weights)"
            )
        cfg["class_subset"] = imagenet_index(wnids)
    if spec.configure is not None:
        spec.configure(cfg, info)
    model = spec.build_model(cfg)
    model.load_state_dict(weights)
    return model.eval(), cfg
