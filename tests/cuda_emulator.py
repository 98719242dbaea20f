"""Run minigrad's CUDA kernels on the CPU: the same source compiled as C++, for NumPy arrays.

Every kernel the op families register in ``minigrad.functional._cuda`` is a grid-stride loop
with no shared memory, no barriers and no atomics, so running its threads one after another
computes exactly what the GPU computes. This module compiles ``_cuda.source()`` (every
family's kernels) with the host C++ compiler, after a header that defines ``threadIdx``,
``blockIdx``, ``blockDim``, ``gridDim`` and ``__global__``/``__device__``, and generates one
launcher per kernel that loops over the grid. Its
:func:`get_kernel` has the calling convention of CuPy's ``RawModule.get_function``
(``kernel((blocks,), (threads,), args)``), so the tests can install it as
``_cuda.get_kernel`` and run the real wrappers (argument order, strides, sizes) on NumPy
arrays. What this cannot check: CuPy's own launch API and the GPU's floating point (FMA).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from typing import Any

import numpy as np

_HEADER = """
#include <math.h>
#include <cmath>
struct minigrad_dim3 { unsigned int x, y, z; };
static minigrad_dim3 threadIdx, blockIdx, blockDim, gridDim;
#define __global__
#define __device__
"""
#: C type of a scalar argument -> (ctypes type, the NumPy scalar type CuPy maps to it)
_SCALARS = {
    "long long": (ctypes.c_longlong, np.int64),
    "int": (ctypes.c_int, np.int32),
    "float": (ctypes.c_float, np.float32),
    "double": (ctypes.c_double, np.float64),
}
_SIGNATURE = re.compile(r'extern "C" __global__ void (\w+)\(([^)]*)\)')


def compiler() -> str | None:
    """The C++ compiler this emulator uses (``$CXX``, g++ or clang++), or None."""
    for name in (os.environ.get("CXX"), "g++", "clang++", "c++"):
        if name and shutil.which(name):
            return name
    return None


def _parse(source: str) -> dict[str, list[tuple[str, str]]]:
    """kernel name -> [(C type, argument name)] from the ``extern "C" __global__`` lines."""
    kernels = {}
    for name, args in _SIGNATURE.findall(source):
        parsed = []
        for arg in " ".join(args.split()).split(","):
            ctype, argname = arg.strip().rsplit(" ", 1)
            if argname.startswith("*"):
                ctype, argname = ctype + "*", argname[1:]
            parsed.append((ctype.replace("const ", "").strip(), argname))
        kernels[name] = parsed
    return kernels


class Emulator:
    """``source`` compiled for the CPU; ``get_kernel(name)`` as CuPy's ``get_function``."""

    def __init__(self, source: str) -> None:
        cxx = compiler()
        if cxx is None:
            raise RuntimeError("no C++ compiler (g++ or clang++) to emulate the CUDA kernels")
        self.kernels = _parse(source)
        launchers = []
        for name, args in self.kernels.items():
            params = ", ".join(f"{t} {a}" for t, a in args)  # (no argument is named b_/t_)
            names = ", ".join(a for _, a in args)
            launchers.append(
                f'extern "C" void launch_{name}(unsigned int grid, unsigned int block, {params})'
                " { gridDim.x = grid; blockDim.x = block;"
                " for (unsigned int b_ = 0; b_ < grid; b_++)"
                " for (unsigned int t_ = 0; t_ < block; t_++)"
                f" {{ blockIdx.x = b_; threadIdx.x = t_; {name}({names}); }} }}"
            )
        code = _HEADER + source.replace("#include <math.h>\n", "") + "\n".join(launchers)
        digest = hashlib.sha256(code.encode()).hexdigest()[:16]
        folder = os.path.join(tempfile.gettempdir(), "minigrad-cuda-emulator")
        os.makedirs(folder, exist_ok=True)
        lib = os.path.join(folder, f"kernels-{digest}.so")
        if not os.path.exists(lib):
            src = os.path.join(folder, f"kernels-{digest}.cpp")
            with open(src, "w") as f:
                f.write(code)
            tmp = f"{lib}.{os.getpid()}"
            cmd = [cxx, "-O1", "-shared", "-fPIC", "-ffp-contract=off", "-o", tmp, src]
            subprocess.run(cmd, check=True, capture_output=True, text=True)
            os.replace(tmp, lib)
        self.lib = ctypes.CDLL(lib)
        self.launches: list[tuple[str, int, int]] = []  # (kernel, blocks, threads) per call

    def get_kernel(self, name: str) -> Any:
        args = self.kernels[name]
        fn = getattr(self.lib, f"launch_{name}")
        fn.restype = None

        def launch(grid: tuple[int], block: tuple[int], values: tuple[Any, ...]) -> None:
            if len(values) != len(args):
                raise TypeError(f"{name}: {len(args)} arguments expected, got {len(values)}")
            cvalues = []
            for (ctype, argname), v in zip(args, values):
                if ctype.endswith("*"):
                    if isinstance(v, np.ndarray):
                        cvalues.append(ctypes.c_void_p(v.ctypes.data))
                    elif isinstance(v, np.uint64) and int(v) == 0:
                        cvalues.append(ctypes.c_void_p(0))  # a null pointer
                    else:
                        raise TypeError(f"{name}: {argname} must be an array, got {type(v)}")
                else:
                    want, kind = _SCALARS[ctype]
                    if not isinstance(v, kind):  # CuPy passes a scalar by its NumPy type
                        raise TypeError(f"{name}: {argname} ({ctype}) got {type(v).__name__}")
                    cvalues.append(want(v.item()))
            self.launches.append((name, grid[0], block[0]))
            fn(ctypes.c_uint(grid[0]), ctypes.c_uint(block[0]), *cvalues)

        return launch
