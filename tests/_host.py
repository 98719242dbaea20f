"""``to_host``: the one way tests bring arrays to the host before comparing them.

CuPy (and the strict stand-in, ``../shared/tools/fakecupy``) refuses implicit conversion to
NumPy, so ``np.testing.assert_*`` on a raw CuPy ``.grad`` raises; every comparison in the
suite goes through this helper instead, whatever the device under test.
"""

from __future__ import annotations

from typing import Any

from minigrad import backend
from minigrad.tensor import Tensor

__all__ = ["is_standin", "to_host"]


def to_host(x: Any) -> Any:
    """A host NumPy array for a Tensor or a CuPy/NumPy array (anything else as
    ``np.asarray`` makes it); a list/tuple is converted element by element."""
    if isinstance(x, Tensor):
        return backend.as_numpy(x.data)
    if isinstance(x, (list, tuple)):
        return type(x)(to_host(v) for v in x)
    return backend.as_numpy(x)


def is_standin() -> bool:
    """True when ``cupy`` is the NumPy-backed stand-in (``../shared/tools/fakecupy``)."""
    cp = backend.import_cupy()
    return cp is not None and str(getattr(cp, "__version__", "")).endswith("-fake")
