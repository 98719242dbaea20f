"""minigrad: a small deep-learning framework in NumPy (CuPy on GPU), hand-written backward.

import minigrad as mg
import minigrad.functional as F
x = mg.tensor([[1.0, -2.0]], requires_grad=True)
F.relu(x).sum().backward()

``mg.nn``, ``mg.optim``, ``mg.data`` and ``mg.io`` (as ``torch.nn``...) are imported on first
use, so ``import minigrad`` loads only the tensor, the engine and the ops.
"""

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from minigrad import functional
from minigrad.devices import cuda_available, default_device
from minigrad.functional import cat, split
from minigrad.higher_order import grad, hvp
from minigrad.random import manual_seed
from minigrad.remat import recompute
from minigrad.runtime import reference_ops
from minigrad.tensor import (
    RemovableHandle,
    Tensor,
    enable_grad,
    is_grad_enabled,
    no_grad,
    ones,
    rand,
    randn,
    tensor,
    zeros,
)

__version__ = "0.1.0"

if _TYPE_CHECKING:  # for type checkers and IDEs; at run time see __getattr__
    from minigrad import data, io, nn, optim  # noqa: F401

#: subpackages loaded on first attribute access (module ``__getattr__``, PEP 562)
_LAZY_SUBMODULES = ("nn", "optim", "data", "io")


def __getattr__(name: str) -> _Any:
    if name in _LAZY_SUBMODULES:
        module = _importlib.import_module(f"minigrad.{name}")
        globals()[name] = module  # later accesses skip __getattr__
        return module
    raise AttributeError(f"module 'minigrad' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_SUBMODULES})


__all__ = [
    "RemovableHandle",
    "Tensor",
    "cat",
    "cuda_available",
    "default_device",
    "enable_grad",
    "functional",
    "grad",
    "hvp",
    "is_grad_enabled",
    "manual_seed",
    "no_grad",
    "ones",
    "rand",
    "randn",
    "recompute",
    "reference_ops",
    "split",
    "tensor",
    "zeros",
]
