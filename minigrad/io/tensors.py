"""safetensors in and out (through the ``safetensors`` package's NumPy API), and
:func:`load_weights`, which reads a model's weights from any of the formats minigrad knows.

``safetensors`` is an optional dependency (``pip install -e ".[pretrained]"``; the ``test``
and ``dev`` extras include it). The files are plain safetensors: any reader (PyTorch's
``safetensors.torch``, the Rust crate, JAX's) opens them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from minigrad import backend
from minigrad.io.pth import load_pth

__all__ = ["WEIGHT_SUFFIXES", "load_safetensors", "load_weights", "save_safetensors"]

#: the file suffixes :func:`load_weights` reads
WEIGHT_SUFFIXES = (".pth", ".pt", ".safetensors", ".npz")


def _safetensors_numpy(fn: str) -> Any:
    try:
        import safetensors.numpy  # noqa: PLC0415 - an optional dependency, loaded on use
    except ImportError:
        raise ImportError(
            f"{fn}: needs the safetensors package: pip install safetensors "
            '(or pip install -e ".[pretrained]")'
        ) from None
    return safetensors.numpy


def save_safetensors(state_dict: Mapping[str, Any], path: str | os.PathLike[str],
                     metadata: Mapping[str, str] | None = None) -> None:  # fmt: skip
    """Write ``state_dict`` (name -> array or Tensor, e.g. ``model.state_dict()``) to a
    safetensors file; CuPy arrays are copied to the host, every array made C-contiguous
    (0-d ones stay 0-d).

    Raises:
        TypeError: a name that is not a string, or a value that is not an array.
        ImportError: the safetensors package is missing.
    """
    st = _safetensors_numpy("save_safetensors")
    arrays = {}
    for name, value in state_dict.items():
        if not isinstance(name, str):
            raise TypeError(f"save_safetensors: names must be strings, got {name!r}")
        value = getattr(value, "data", value) if not isinstance(value, np.ndarray) else value
        if not hasattr(value, "dtype"):
            raise TypeError(f"save_safetensors: {name!r} is a {type(value).__name__}, not an array")
        array = backend.as_numpy(value)  # (np.ascontiguousarray would make a 0-d array 1-d)
        arrays[name] = array if array.flags.c_contiguous else np.array(array, order="C")
    st.save_file(arrays, os.fspath(path), metadata=dict(metadata or {}) or None)


def load_safetensors(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The name -> array mapping of a safetensors file (host arrays that own their memory).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: a file the safetensors reader refuses (its reason in the message).
        ImportError: the safetensors package is missing.
    """
    st = _safetensors_numpy("load_safetensors")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_safetensors: no file at {path!r}")
    try:
        arrays = st.load_file(path)
    except Exception as e:  # SafetensorError derives from Exception only
        raise ValueError(
            f"load_safetensors: {path!r} is not a readable safetensors file: {e}"
        ) from e
    return {k: np.array(v, copy=True) for k, v in arrays.items()}


def load_weights(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """A model's weights from ``path``, by its suffix: ``.pth``/``.pt`` (``torch.save``'d
    state_dict, :func:`~minigrad.io.load_pth`), ``.safetensors``, or ``.npz`` (a minigrad
    checkpoint: its EMA weights when the run kept them, else its model; or a plain
    ``np.savez`` of a state_dict).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: an unknown suffix or an unreadable file.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WEIGHT_SUFFIXES:
        raise ValueError(
            f"load_weights: {str(path)!r} has suffix {suffix or '(none)'!r}; expected one of "
            f"{', '.join(WEIGHT_SUFFIXES)}"
        )
    if not path.is_file():
        raise FileNotFoundError(f"load_weights: no file at {str(path)!r}")
    if suffix in (".pth", ".pt"):
        return load_pth(path)
    if suffix == ".safetensors":
        return load_safetensors(path)
    from minigrad.checkpoint import META_KEY, load_checkpoint  # noqa: PLC0415 - .npz only

    with np.load(path, allow_pickle=False) as z:
        files = list(z.files)
        if META_KEY not in files:
            return {k: z[k] for k in files}
    ckpt = load_checkpoint(path)
    weights = dict(ckpt["model"])
    if ckpt.get("ema"):  # what the run evaluated (as checkpoint.load_for_inference)
        weights.update(ckpt["ema"]["shadow"])
        weights.update(ckpt["ema"].get("buffers") or {})
    return {k: np.asarray(v) for k, v in weights.items()}
