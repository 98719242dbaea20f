"""minigrad: a small deep-learning framework in NumPy (CuPy on GPU), hand-written backward.

import minigrad as mg
import minigrad.functional as F
x = mg.tensor([[1.0, -2.0]], requires_grad=True)
F.relu(x).sum().backward()
"""

from minigrad import functional
from minigrad.backend import cuda_available, default_device, manual_seed
from minigrad.functional import cat, split
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

__all__ = [
    "RemovableHandle",
    "Tensor",
    "cat",
    "cuda_available",
    "default_device",
    "enable_grad",
    "functional",
    "is_grad_enabled",
    "manual_seed",
    "no_grad",
    "ones",
    "rand",
    "randn",
    "reference_ops",
    "split",
    "tensor",
    "zeros",
]
