"""Cache-sized chunks on host threads, for the array passes NumPy runs on one core.

An op writes its passes as ``task(rows)`` on a slice of its leading axis (channels in the
channel-major layout, planes in pooling, images in a convolution: each a contiguous range
of memory or of columns) and calls :func:`for_blocks`. Two things then happen:

- **chunks**: the rows are cut into chunks of about ``chunk_elements`` elements and
  ``task`` runs once per chunk, so the op's chain of NumPy calls (a comparison, a product,
  an add...) works on temporaries that stay in the core's cache: memory sees each input
  read once and each output written once, instead of once per NumPy call;
- **threads**: NumPy releases the GIL inside its loops and BLAS calls, so the chunks are
  shared out among the host threads. The chunks are of equal size and their number is a
  multiple of the threads; each thread takes the next chunk from a shared queue when it
  is done with one, so no core waits while chunks are left.

Every chunk writes only its own elements, so the result is bit-for-bit the serial one;
what a task returns is summed (a convolution's partial weight gradients) in chunk order,
whichever thread ran the chunk, so the sum does not depend on the timing. Small arrays
stay on the calling thread (handing work to another thread costs ~0.1 ms), a GPU array is
one chunk on the calling thread, and work nested in a task (im2col inside a convolution's
chunk) is one chunk on the task's thread. How many host threads:
:func:`minigrad.runtime.host_threads` (this module only reads the setting).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from minigrad import runtime
from minigrad.backend import is_cupy_array

#: arrays of fewer elements than this are processed on the calling thread only
PARALLEL_MIN_SIZE = 1 << 18
#: items of fewer elements than this in all stay on the calling thread (:func:`for_items`):
#: below it the Python work per item, which holds the GIL, outweighs what a second thread
#: adds (an optimizer step over GoogLeNet CIFAR w0.25's 0.65M values: 1.3 ms on one
#: thread, 2.0 ms on two; over the 224-px model's 13.4M: 16.3 ms on one, 11.7 ms on two)
ITEMS_MIN_SIZE = 1 << 22
#: elements one ``task`` call works on (a few arrays of it fit in a core's L2 cache)
CHUNK_ELEMENTS = 1 << 18
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_inside = threading.local()  # .busy: this thread is running a task of for_blocks
#: seconds spent in parallel sections (wall clock) and seconds host threads sat idle in them
_stats = {"parallel_s": 0.0, "idle_s": 0.0, "sections": 0}


def gemm_threads() -> int:
    """Host threads for chunks that call BLAS: all of them when BLAS runs one thread per
    product, else 1 (BLAS threads each product itself; two layers of threads would fight)."""
    return runtime.host_threads() if runtime.blas_threads() == 1 else 1


def blocks(
    n: int,
    size: int,
    a: Any,
    chunk_elements: int = CHUNK_ELEMENTS,
    threads: int | None = None,
) -> list[list[slice]]:
    """Split ``range(n)`` (``size`` elements in all) into chunks of about
    ``chunk_elements`` elements, grouped into one contiguous run per host thread (one run
    for ``size < PARALLEL_MIN_SIZE`` or one thread; one chunk for a GPU array)."""
    if n == 0:
        return [[]]
    if is_cupy_array(a) or n == 1 or getattr(_inside, "busy", False):
        return [[slice(0, n)]]  # nested in a task: its chunk is already cache-sized
    k = runtime.host_threads() if threads is None else threads
    if size < PARALLEL_MIN_SIZE:
        k = 1
    # as many chunks as the size asks for, rounded up to a multiple of the threads (no
    # core waits for a last, lone chunk), at most one per row; equal rows per chunk
    count = -(-size // max(chunk_elements, 1))  # ceil
    count = min(n, max(1, -(-count // k) * k))
    if n % count and n < 8 * count:
        # a few rows per chunk, unequal (1, 1, 2, 1, 1, 2 images for 6 chunks of 8): one
        # thread ends a whole row later than the other. A count up to twice as large that
        # divides the rows gives every chunk, and so every thread, the same work.
        count = next(
            (c for c in range(count + 1, min(n, 2 * count) + 1) if c % k == 0 and n % c == 0),
            count,
        )
    return _share([slice(n * i // count, n * (i + 1) // count) for i in range(count)], k)


def _share(chunks: list[slice], k: int) -> list[list[slice]]:
    """The chunks in order as at most ``k`` contiguous runs of about equal length, one per
    thread."""
    k = max(1, min(k, len(chunks)))
    bounds = [len(chunks) * i // k for i in range(k + 1)]
    return [chunks[lo:hi] for lo, hi in zip(bounds, bounds[1:])]


def add_parts(total: Any, part: Any) -> Any:
    """``total + part`` where either may be None, elementwise over tuples."""
    if total is None:
        return part
    if part is None:
        return total
    if isinstance(total, tuple):
        return tuple(add_parts(t, p) for t, p in zip(total, part))
    return total + part


def _do(task: Callable[[slice], Any], chunks: list[slice]) -> Any:
    """Run ``task`` on each chunk in order; the sum of what it returned (None: nothing)."""
    busy, _inside.busy = getattr(_inside, "busy", False), True
    total = None
    try:
        for chunk in chunks:
            total = add_parts(total, task(chunk))
    finally:
        _inside.busy = busy
    return total


def idle_stats(reset: bool = False) -> dict[str, float]:
    """Since the last reset: ``parallel_s``, the wall time of the sections that ran on more
    than one host thread; ``idle_s``, the time host threads sat idle in them (each
    thread's wait for the last chunk to finish, summed over the threads); and
    ``sections``, their number. For benchmarks (``bench_train.py``)."""
    out = dict(_stats)
    if reset:
        _stats.update(parallel_s=0.0, idle_s=0.0, sections=0)
    return out


def run(task: Callable[[slice], Any], runs: list[list[slice]]) -> list[Any]:
    """``task(chunk)`` for every chunk of ``runs`` on ``len(runs)`` threads (the calling
    thread and the pool's); wait for all (exceptions propagate). Returns what ``task``
    returned, one entry per chunk in chunk order.

    The threads take the chunks from one shared queue, in order, one at a time: a thread
    that is ahead (its chunks were cheaper, or the other thread lost its core to another
    process) takes the next chunk instead of waiting at the end. Results are stored by
    chunk index, so their sum does not depend on which thread ran what.
    """
    global _pool, _pool_size
    chunks = [chunk for chunks in runs for chunk in chunks]
    if len(runs) == 1:
        return [_do(task, [chunk]) for chunk in chunks]
    if _pool is None or _pool_size < len(runs) - 1:
        _pool_size = len(runs) - 1
        _pool = ThreadPoolExecutor(max_workers=_pool_size, thread_name_prefix="minigrad-host")
    results: list[Any] = [None] * len(chunks)
    taken = iter(range(len(chunks)))
    lock = threading.Lock()
    failed = threading.Event()

    def work() -> float:  # take chunks until none is left; the seconds spent working
        t0 = time.perf_counter()
        busy, _inside.busy = getattr(_inside, "busy", False), True
        try:
            while not failed.is_set():
                with lock:
                    i = next(taken, None)
                if i is None:
                    break
                results[i] = task(chunks[i])
        except BaseException:
            failed.set()  # the other threads stop after their current chunk
            raise
        finally:
            _inside.busy = busy
        return time.perf_counter() - t0

    t0 = time.perf_counter()
    futures = [_pool.submit(work) for _ in runs[1:]]
    busy: list[float] = []
    try:
        busy.append(work())
    finally:
        busy += [future.result() for future in futures]
    wall = time.perf_counter() - t0
    _stats["parallel_s"] += wall
    _stats["idle_s"] += sum(wall - b for b in busy)
    _stats["sections"] += 1
    return results


def for_blocks(
    task: Callable[[slice], Any],
    n: int,
    size: int,
    a: Any,
    chunk_elements: int = CHUNK_ELEMENTS,
    threads: int | None = None,
) -> Any:
    """``task(rows)`` over ``range(n)`` in cache-sized chunks on the host threads; ``size``
    is the number of elements the rows hold, ``a`` any array of the op (its device).
    Returns the sum of what ``task`` returned, added up in chunk order (None when it
    returned nothing)."""
    total = None
    for part in run(task, blocks(n, size, a, chunk_elements, threads)):
        total = add_parts(total, part)
    return total


def for_items(task: Callable[[slice], Any], sizes: list[int], a: Any) -> None:
    """``task(items)`` over ``range(len(sizes))``, items of ``sizes[i]`` elements each (an
    optimizer's parameters, from 64 to 2M values): contiguous runs of items of about equal
    total size, four per host thread, so the shared queue evens out the large ones. One
    call on the calling thread for a GPU array ``a``, in a task, or under
    ``ITEMS_MIN_SIZE`` elements in all."""
    n, total = len(sizes), sum(sizes)
    k = runtime.host_threads()
    one = n <= 1 or k == 1 or total < ITEMS_MIN_SIZE or is_cupy_array(a)
    if one or getattr(_inside, "busy", False):
        task(slice(0, n))
        return
    count = 4 * k
    cuts, seen = [0], 0
    for i, size in enumerate(sizes):  # cut after the item that crosses each share
        seen += size
        if seen * count >= total * len(cuts) and i + 1 < n:
            cuts.append(i + 1)
    cuts.append(n)
    run(task, _share([slice(lo, hi) for lo, hi in zip(cuts, cuts[1:]) if hi > lo], k))
