"""Checks of a run config that comes from a file (a checkpoint's, or a run's ``config.json``).

A file may be damaged or crafted, so what it says is checked before it steers anything:

* :func:`check_program`: a run of another program (another ``ModelSpec.prog``) is refused
  in one line, instead of a model built from a config that is not its own;
* :func:`check_model_config`: the classes and channels must be those of the dataset the
  config names, and the model it describes must fit in memory, before it is built (a
  ``num_classes`` of 2**40 is one line, not a MemoryError);
* :func:`checked_builder`: ``spec.build_model`` behind those checks, for
  ``load_for_inference``;
* :func:`printable`: text from a file printed to the terminal has its control characters
  escaped (no escape sequence from a checkpoint reaches the screen).

Paths and network actions (``data_dir``, ``download``) are never taken from a file: the
commands take them from the user's own flags only (see :data:`FROM_FLAGS_ONLY`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

__all__ = [
    "FROM_FLAGS_ONLY",
    "check_model_config",
    "check_program",
    "checked_builder",
    "dataset_bytes",
    "printable",
]

#: run-config keys that name a path or a network action: taken from the user's flags only
FROM_FLAGS_ONLY: dict[str, Any] = {"data_dir": None, "download": False}


def printable(text: Any) -> str:
    """``text`` with every non-printable character (ESC, BEL, newlines, ...) escaped."""
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text)
    )


def check_program(config: dict[str, Any], spec: Any, where: str | os.PathLike) -> None:
    """Refuse a run config recorded by another program than ``spec.prog``.

    Raises:
        ValueError: naming the file, the program that wrote it and this one.
    """
    program = config.get("program")
    if program is not None and program != spec.prog:
        model = config.get("model")
        of = f" (model {printable(model)})" if model else ""
        raise ValueError(
            f"{where} is a run of {printable(program)}{of}, not of {spec.prog}; use "
            f"{printable(program)} for it"
        )


def _positive_int(config: dict[str, Any], key: str, where: Any) -> int | None:
    value = config.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{where}: its config's {key} must be a positive int, got "
                         f"{printable(repr(value))[:60]}")  # fmt: skip
    return value


def check_model_config(
    config: dict[str, Any],
    spec: Any,
    where: str | os.PathLike,
    device: str = "cpu",
    available: int | None = None,
    need_dataset: bool = True,
) -> None:
    """Check, before the model is built, that a config read from ``where`` describes a model
    of its own dataset's classes and channels that fits in memory (``need_dataset``: the
    config must name its dataset; without one only the sizes are checked).

    Raises:
        ValueError: one line naming the file, the key and the values.
    """
    from minigrad.data import dataset_info  # noqa: PLC0415
    from minigrad.train import memory  # noqa: PLC0415

    check_program(config, spec, where)
    if "dataset" not in config and need_dataset:
        raise ValueError(f"{where} does not name its dataset (its config has no 'dataset'); "
                         "pass --dataset")  # fmt: skip
    info = None
    if "dataset" in config:
        try:
            info = dataset_info(str(config["dataset"]))
        except ValueError as e:
            raise ValueError(f"{where}: {printable(e)}") from None
    for key in ("num_classes", "in_channels"):
        value = _positive_int(config, key, where)
        expected = getattr(info, key, None)
        if value is not None and expected is not None and value != expected:
            raise ValueError(
                f"{where}: its config says {key} {value}, but {info.name} has {expected}; "
                "the file is damaged or not a run on that dataset"
            )
    _positive_int(config, "image_size", where)
    params = memory.estimated_parameters(spec, config)
    available = memory.available_memory(device) if available is None else available
    if params is not None and available is not None and params * 4 > available:
        raise ValueError(
            f"{where}: its config describes a model of about {params:.3g} parameters "
            f"({memory.format_bytes(params * 4)}), more than the "
            f"{memory.format_bytes(available)} available on {device}"
        )


def checked_builder(
    spec: Any,
    where: str | os.PathLike,
    device: str = "cpu",
    need_dataset: bool = True,
    dataset: str | None = None,
) -> Callable:
    """``spec.build_model`` that first runs :func:`check_model_config` on the config
    (``dataset``: the user's ``--dataset``, for a config that names none)."""

    def build(config: dict[str, Any]) -> Any:
        checked = {"dataset": dataset, **config} if dataset is not None else config
        check_model_config(checked, spec, where, device, need_dataset=need_dataset)
        return spec.build_model(config)

    return build


def dataset_bytes(config: dict[str, Any], image_size: int, in_channels: int) -> int:
    """Host bytes a dataset takes when it is held in memory at ``image_size`` (the peak
    while it is built), without loading it; 0 for datasets read from disk per batch or
    held at a fixed small size."""
    if config.get("dataset") != "digits":
        return 0
    import numpy as np  # noqa: PLC0415

    from minigrad.data.digits import DIGITS_PATH  # noqa: PLC0415

    with np.load(DIGITS_PATH, allow_pickle=False) as f:
        n = int(f["labels"].shape[0])  # both splits, loaded whole (--limit subsets after)
    # float32 images, twice: the resized array and its clipped copy
    return 2 * n * in_channels * image_size * image_size * 4
