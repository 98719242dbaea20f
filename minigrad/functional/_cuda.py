"""The machinery of the hand-written CUDA kernels: registry, compile cache, launch geometry.

Each op family keeps its kernels in its own module, beside the op that launches them (as
Chainer keeps an op's GPU code in the op's file): ``conv.py`` im2col/col2im, ``pool.py``
max pooling, ``batchnorm.py`` batch norm, ``loss.py`` cross-entropy. There a kernel source is a
CUDA C++ template over ``$T`` (``float``/``double``) and ``$S`` (``f32``/``f64``),
registered here with :func:`register`; its launchers call :func:`launch` with the
argument helpers below. This module holds only what every family shares: the
:data:`PRELUDE` (``FOR_EACH``, ``window_out``), the one compiled module of all registered
kernels (:func:`source`, compiled through ``backend.raw_module``: this module never imports
CuPy itself), and the launch geometry.

The generic ``xp`` code of the ops runs on CuPy as it is, but launches one kernel per
NumPy-style call: an im2col is ``KH*KW`` slice copies, a max pool twenty-odd launches, a
batch norm a dozen. The kernels do each of those in one launch (one thread per output
element, grid-stride loops, no atomics, no shared memory), and never synchronise with the
host. An op calls them from its ``forward_cuda``/``backward_cuda``, which the ``Function``
machinery runs for CuPy float32/float64 arrays unless ``MINIGRAD_CUDA_KERNELS=0``
(:func:`minigrad.backend.use_cuda_kernels`); the op's reference ``forward``/``backward``
says what they compute.

Both are tested against each other: on a GPU by ``pytest --device cuda``, and on the CPU
by compiling this same CUDA source as C (``tests/cuda_emulator.py``), which checks every
kernel's index arithmetic without a GPU.

Kernels exist for float32 and float64 (suffix ``_f32`` / ``_f64``); other dtypes take the
generic path. Kernel arguments: arrays as pointers to their first element, sizes and
strides (in elements) as ``long long`` (:func:`i64`), small geometry as ``int``
(:func:`i32`).
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np

from minigrad.backend import raw_module

#: threads per block of every launch
BLOCK = 256
#: at most this many blocks per launch (grid-stride loops cover the rest)
MAX_BLOCKS = 65535

#: what every family's kernels may use, put once before all of them
PRELUDE = r"""
// every kernel: one logical thread per output element t in [0, total), grid-stride loop
#define FOR_EACH(t, total) \
    for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < (total); \
         t += (long long)blockDim.x * gridDim.x)

// along one axis: the output whose window reads input h at kernel offset i, or -1
__device__ inline long long window_out(long long h, int i, int S, int P, long long O) {
    long long hp = h + P - i;  // h in the padded input, minus the offset
    return (hp < 0 || hp % S != 0 || hp / S >= O) ? -1 : hp / S;
}
"""
#: the C type and kernel-name suffix of each dtype the kernels are compiled for
_TYPES = {np.dtype(np.float32): ("float", "f32"), np.dtype(np.float64): ("double", "f64")}

#: module name -> its kernel source template, in the order the families registered
FAMILIES: dict[str, str] = {}
_compiled: tuple[int, Any] = (-1, None)  # (how many families it holds, the RawModule)


def register(owner: str, template: str) -> str:
    """Register the kernel source of an op family (``owner``: its module's ``__name__``);
    returns ``template`` (a CUDA C++ template over ``$T`` and ``$S``) for the module to keep.

    Raises:
        ValueError: a kernel name that another family already defines.
    """
    names = set(kernel_names(template))
    for other, text in FAMILIES.items():
        clash = names & set(kernel_names(text))
        if other != owner and clash:
            raise ValueError(f"register: {owner} redefines kernel(s) {sorted(clash)} of {other}")
    FAMILIES[owner] = template
    return template


def kernel_names(text: str) -> list[str]:
    """The names of the ``extern "C" __global__`` kernels defined in ``text``, in order."""
    head = 'extern "C" __global__ void '
    return [part.split("(", 1)[0] for part in text.split(head)[1:]]


def source() -> str:
    """The CUDA source of every registered kernel, for float32 and float64."""
    parts = [
        string.Template(template).substitute(T=t, S=s)
        for t, s in _TYPES.values()
        for template in FAMILIES.values()
    ]
    return "#include <math.h>\n" + PRELUDE + "\n".join(parts)


def _cupy_kernel(name: str) -> Any:
    """The compiled kernel ``name`` of :func:`source` (compiled once, on first use, and again
    only if a family registered since)."""
    global _compiled
    if _compiled[0] != len(FAMILIES):  # NVRTC has the math functions built in: no #include
        _compiled = (len(FAMILIES), raw_module(source().replace("#include <math.h>\n", "")))
    return _compiled[1].get_function(name)


#: how a kernel is looked up: CuPy's compiled module; the CPU emulator in the tests
#: replaces it to run the same source compiled as C on NumPy arrays
get_kernel = _cupy_kernel


def launch(name: str, dtype: Any, total: int, *args: Any) -> None:
    """Run kernel ``name`` for ``dtype`` over ``total`` elements (asynchronously); ``total``
    is passed as the kernel's last argument."""
    if total <= 0:
        return
    blocks = min(MAX_BLOCKS, -(-total // BLOCK))
    get_kernel(f"{name}_{_TYPES[np.dtype(dtype)][1]}")((blocks,), (BLOCK,), (*args, i64(total)))


# ---------------------------------------------------------------- kernel arguments
#: a null pointer argument (an optional array that is absent)
NULL = np.uint64(0)


def i64(v: int) -> Any:
    """A ``long long`` argument (sizes, strides, offsets)."""
    return np.int64(v)


def i32(v: int) -> Any:
    """An ``int`` argument (small geometry, flags)."""
    return np.int32(v)


def strides(a: Any) -> list[Any]:
    """``a``'s strides in elements, as ``long long`` arguments."""
    return [i64(s // a.itemsize) for s in a.strides]


def optional(a: Any) -> Any:
    """An optional array argument: the array, or a null pointer."""
    return NULL if a is None else a


def window_args(
    kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int], OH: int, OW: int
) -> list[Any]:
    """The window arguments every im2col/col2im/pool kernel ends with (before ``total``)."""
    (KH, KW), (sh, sw), (ph, pw) = kernel, stride, padding
    return [i32(KH), i32(KW), i32(sh), i32(sw), i32(ph), i32(pw), i64(OH), i64(OW)]
