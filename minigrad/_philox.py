"""A counter-based random generator (Philox-4x32-10) in plain ``xp`` integer array code.

Its whole state is two integers, ``(seed, offset)``: word ``i`` of a stream is a pure
function of ``(seed, stream, i)``, so the same draws come out on NumPy and CuPy, and saving
the offset in a checkpoint is enough to resume the stream exactly (PyTorch keeps its CUDA
generators the same way, as a Philox seed and offset). ``minigrad.backend`` owns the
instances; nothing here knows which array module it is given.

Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011, the
generator of cuRAND and PyTorch's CUDA dropout): a 128-bit counter ``(c0, c1, c2, c3)`` and
a 64-bit key ``(k0, k1)`` give four 32-bit words after ten rounds of
``(hi(M1*c2) ^ c1 ^ k0, lo(M1*c2), hi(M0*c0) ^ c3 ^ k1, lo(M0*c0))``, bumping the key by
the Weyl constants between rounds. The 32x32 -> 64-bit products are done in uint64 arrays.
Here the counter is ``(block, block >> 32, stream, 0)`` with ``block`` the running index of
128-bit blocks, so ``offset`` counts blocks drawn and each draw starts on a fresh block.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

_M0, _M1 = 0xD2511F53, 0xCD9E8D57  # round multipliers
_W0, _W1 = 0x9E3779B9, 0xBB67AE85  # key bumps (golden ratio, sqrt(3) - 1)
_LO = 0xFFFFFFFF
ROUNDS = 10
CHUNK = 16384  # blocks per pass: 128 KiB temporaries (larger ones cost page faults)


def philox4x32(xp: Any, counter: tuple[Any, Any, Any, Any], key: tuple[int, int]) -> Any:
    """The four output words of Philox-4x32-10 for each counter, as a uint64 ``(4, n)`` array.

    Args:
        xp: the array module (``numpy`` or ``cupy``).
        counter: four uint64 arrays (or ints) of values below 2**32, broadcast together.
        key: two ints below 2**32.
    """
    c0, c1, c2, c3 = (
        xp.array(c) for c in xp.broadcast_arrays(*(xp.asarray(c, xp.uint64) for c in counter))
    )  # (n,) each, owned: the rounds work in place
    k0, k1 = key
    m0, m1, lo, shift = xp.uint64(_M0), xp.uint64(_M1), xp.uint64(_LO), xp.uint64(32)
    for r in range(ROUNDS):
        if r:
            k0, k1 = (k0 + _W0) & _LO, (k1 + _W1) & _LO
        p0, p1 = c0 * m0, c2 * m1  # exact in 64 bits: both factors < 2**32
        c0 = xp.right_shift(p1, shift, out=c0)  # hi(M1 * c2) ^ c1 ^ k0
        c0 ^= c1
        c0 ^= xp.uint64(k0)
        c2 = xp.right_shift(p0, shift, out=c2)  # hi(M0 * c0) ^ c3 ^ k1
        c2 ^= c3
        c2 ^= xp.uint64(k1)
        c1 = xp.bitwise_and(p1, lo, out=p1)  # lo(M1 * c2)
        c3 = xp.bitwise_and(p0, lo, out=p0)  # lo(M0 * c0)
    return xp.stack([c0, c1, c2, c3])


class CounterGenerator:
    """One stream of random words, ``(seed, offset)`` as its whole state; see the module doc.

    The draws are made with the array module passed to each call, so one stream can serve
    NumPy and CuPy alike and its state is plain integers (nothing to copy off a device).

    Attributes:
        seed: the 64-bit key (an int; reduced mod 2**64).
        stream: a small int that separates independent streams of one seed.
        offset: 128-bit blocks drawn so far (the only thing that changes).
    """

    def __init__(self, seed: int, stream: int = 0, offset: int = 0) -> None:
        self.seed, self.stream, self.offset = int(seed) % 2**64, int(stream), int(offset)

    def bits(self, xp: Any, n: int) -> Any:
        """``n`` random 32-bit words as a uint32 array of shape ``(n,)``; advances the offset."""
        blocks = -(-int(n) // 4)
        out = xp.empty((blocks, 4), dtype=xp.uint32)  # block by block, as the counter runs
        key = (self.seed & _LO, self.seed >> 32)
        for start in range(0, blocks, CHUNK):  # the rounds' temporaries stay small
            stop = min(start + CHUNK, blocks)
            block = xp.arange(self.offset + start, self.offset + stop, dtype=xp.uint64)
            counter = (block & xp.uint64(_LO), block >> xp.uint64(32), self.stream, 0)
            out[start:stop] = philox4x32(xp, counter, key).T  # (stop - start, 4)
        self.offset += blocks
        return out.reshape(-1)[:n]

    def random(self, xp: Any, size: Any = None, dtype: Any = np.float64) -> Any:
        """Uniform floats in [0, 1): 24 random bits for float32, 53 for float64."""
        shape = _shape(size)
        n = math.prod(shape)
        if np.dtype(dtype) == np.float32:
            u = (self.bits(xp, n) >> xp.uint32(8)).astype(xp.float32) * xp.float32(2.0**-24)
        elif np.dtype(dtype) == np.float64:
            w = self.bits(xp, 2 * n).reshape(2, n).astype(xp.uint64)  # (2, n)
            u53 = (w[0] >> xp.uint64(5)) << xp.uint64(26) | (w[1] >> xp.uint64(6))
            u = u53.astype(xp.float64) * 2.0**-53
        else:
            raise TypeError(f"CounterGenerator.random: dtype must be float32 or float64: {dtype}")
        return u.reshape(shape)

    def standard_normal(self, xp: Any, size: Any = None, dtype: Any = np.float64) -> Any:
        """N(0, 1) samples by Box-Muller on float64 uniforms, cast to ``dtype``."""
        shape = _shape(size)
        n = math.prod(shape)
        u = self.random(xp, (2, -(-n // 2)))  # (2, ceil(n/2))
        r = xp.sqrt(-2.0 * xp.log1p(-u[0]))  # 1 - u in (0, 1]: the log never sees 0
        t = 2 * math.pi * u[1]
        z = xp.concatenate([r * xp.cos(t), r * xp.sin(t)])[:n]
        return z.astype(dtype, copy=False).reshape(shape)


def _shape(size: Any) -> tuple[int, ...]:
    if size is None:
        return ()
    return (int(size),) if isinstance(size, (int, np.integer)) else tuple(int(s) for s in size)
