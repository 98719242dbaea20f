"""Hand-written CUDA kernels for the hot GPU paths.

They are compiled and launched through CuPy's ``RawModule``, which ``backend.raw_module``
makes (this module never imports CuPy itself).

The generic ``xp`` code of the ops runs on CuPy as it is, but launches one kernel per
NumPy-style call: an im2col is ``KH*KW`` slice copies, a max pool twenty-odd launches, a
batch norm a dozen. These kernels do each of those in one launch (one thread per output
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
strides (in elements) as ``long long``, small geometry as ``int``.
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np

from minigrad.backend import get_array_module, raw_module
from minigrad.functional._im2col import conv_output_size

#: threads per block of every launch
BLOCK = 256
#: at most this many blocks per launch (grid-stride loops cover the rest)
MAX_BLOCKS = 65535

_PRELUDE = r"""
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

_TEMPLATE = string.Template(r"""
// col[(c*KH + i)*KW + j][(n*OH + oh)*OW + ow] = x[n, c, oh*SH + i - PH, ow*SW + j - PW]
extern "C" __global__ void im2col_$S(const $T* x, $T* col, long long N, long long C,
        long long H, long long W, long long sn, long long sc, long long sh, long long sw,
        int KH, int KW, int SH, int SW, int PH, int PW, long long OH, long long OW,
        long long total) {
    FOR_EACH(t, total) {
        long long ow = t % OW, r = t / OW;
        long long oh = r % OH; r /= OH;
        long long n = r % N; r /= N;
        long long j = r % KW; r /= KW;
        long long i = r % KH, c = r / KH;
        long long h = oh * SH + i - PH, w = ow * SW + j - PW;
        col[t] = (h >= 0 && h < H && w >= 0 && w < W) ? x[n * sn + c * sc + h * sh + w * sw]
                                                      : ($T)0;
    }
}

// the adjoint, as a gather: gx[c, n, h, w] = sum of the col entries that read (h, w),
// added in (i, j) order (as the generic path adds them), written at out's strides
extern "C" __global__ void col2im_$S(const $T* col, $T* gx, long long N, long long C,
        long long H, long long W, long long oc, long long on, long long oh_, long long ow_,
        int KH, int KW, int SH, int SW, int PH, int PW, long long OH, long long OW,
        long long total) {
    FOR_EACH(t, total) {
        long long w = t % W, r = t / W;
        long long h = r % H; r /= H;
        long long n = r % N, c = r / N;
        long long L = N * OH * OW;
        $T acc = ($T)0;
        for (int i = 0; i < KH; i++) {
            long long oh = window_out(h, i, SH, PH, OH);
            for (int j = 0; j < KW && oh >= 0; j++) {
                long long ow = window_out(w, j, SW, PW, OW);
                if (ow >= 0) acc += col[((c * KH + i) * KW + j) * L + (n * OH + oh) * OW + ow];
            }
        }
        gx[c * oc + n * on + h * oh_ + w * ow_] = acc;
    }
}

// y = max over the window (padding never wins), arg = its first maximum in row-major
// order (a later element must be strictly greater); a NaN makes the output NaN
extern "C" __global__ void maxpool_fwd_$S(const $T* x, $T* y, int* arg, long long H,
        long long W, int KH, int KW, int SH, int SW, int PH, int PW, long long OH,
        long long OW, long long total) {
    FOR_EACH(t, total) {
        long long ow = t % OW, r = t / OW;
        long long oh = r % OH, p = r / OH;
        const $T* plane = x + p * H * W;
        $T best = ($T)0;
        int k = -1, has_nan = 0;
        for (int i = 0; i < KH; i++) {
            long long h = oh * SH + i - PH;
            if (h < 0 || h >= H) continue;
            for (int j = 0; j < KW; j++) {
                long long w = ow * SW + j - PW;
                if (w < 0 || w >= W) continue;
                $T v = plane[h * W + w];
                if (v != v) has_nan = 1;
                else if (!has_nan && (k < 0 || v > best)) { best = v; k = i * KW + j; }
            }
        }
        y[t] = has_nan ? ($T)nan("") : best;
        arg[t] = k < 0 ? 0 : k;
    }
}

// gx[p, h, w] = sum of gy over the windows whose saved maximum is (h, w), as a gather
extern "C" __global__ void maxpool_bwd_$S(const $T* gy, const int* arg, $T* gx, long long H,
        long long W, int KH, int KW, int SH, int SW, int PH, int PW, long long OH,
        long long OW, long long total) {
    FOR_EACH(t, total) {
        long long w = t % W, r = t / W;
        long long h = r % H, p = r / H;
        $T acc = ($T)0;
        for (int i = 0; i < KH; i++) {
            long long oh = window_out(h, i, SH, PH, OH);
            for (int j = 0; j < KW && oh >= 0; j++) {
                long long ow = window_out(w, j, SW, PW, OW);
                long long o = (p * OH + oh) * OW + ow;
                if (ow >= 0 && arg[o] == i * KW + j) acc += gy[o];
            }
        }
        gx[t] = acc;
    }
}

// batch norm on channel-major rows (C, M): training y = (x - a[c]) * k[c] + b[c] (the
// generic path's order), eval y = x * k[c] + b[c]; then optionally ReLU with a 1-byte mask
extern "C" __global__ void bn_fwd_$S(const $T* x, const $T* a, const $T* k, const $T* b,
        $T* y, unsigned char* mask, long long M, int training, int relu, long long total) {
    FOR_EACH(t, total) {
        long long c = t / M;
        $T v = training ? (x[t] - a[c]) * k[c] : x[t] * k[c];
        v = v + b[c];
        if (relu) {
            if (mask) mask[t] = v > ($T)0;
            v = v > ($T)0 ? v : ($T)0;
        }
        y[t] = v;
    }
}

// g = gy (masked by the ReLU): training gx = k * ((g - c1) - (x - mean) * c2) with
// c1 = mean(g), c2 = inv_std * mean(g * xhat) (the generic path's order); eval gx = g * k
extern "C" __global__ void bn_bwd_$S(const $T* gy, const unsigned char* mask, const $T* x,
        const $T* mean, const $T* k, const $T* c1, const $T* c2, $T* gx, long long M,
        int training, long long total) {
    FOR_EACH(t, total) {
        long long c = t / M;
        $T g = mask ? (mask[t] ? gy[t] : ($T)0) : gy[t];
        gx[t] = training ? ((g - c1[c]) - (x[t] - mean[c]) * c2[c]) * k[c] : g * k[c];
    }
}

// cross-entropy per row i of x (N, C): p = softmax, loss_i = keep_i * ((1 - s)(lse - z_t)
// + s (lse - mean z)), z = x - max
extern "C" __global__ void xent_fwd_$S(const $T* x, const long long* target,
        const $T* keep, $T* p, $T* loss, long long C, $T s, long long total) {
    FOR_EACH(i, total) {
        const $T* row = x + i * C;
        $T m = row[0];
        for (long long c = 1; c < C; c++) m = row[c] > m ? row[c] : m;
        $T sum = ($T)0, zsum = ($T)0;
        for (long long c = 0; c < C; c++) {
            $T e = exp(row[c] - m);
            p[i * C + c] = e;
            sum += e;
            zsum += row[c] - m;
        }
        $T lse = log(sum);
        for (long long c = 0; c < C; c++) p[i * C + c] /= sum;
        $T l = lse - (row[target[i]] - m);
        if (s != ($T)0) l = l * (($T)1 - s) + s * (lse - zsum / ($T)C);
        loss[i] = l * keep[i];
    }
}

// gx[i, c] = (p - s/C - (1 - s)[c == t_i]) * scale_i
extern "C" __global__ void xent_bwd_$S(const $T* p, const long long* target,
        const $T* scale, $T* gx, long long C, $T s, long long total) {
    FOR_EACH(t, total) {
        long long i = t / C, c = t % C;
        $T v = p[t] - s / ($T)C;
        if (c == target[i]) v -= ($T)1 - s;
        gx[t] = v * scale[i];
    }
}
""")

#: the CUDA source of every kernel, for float32 and float64
SOURCE = (
    "#include <math.h>\n"
    + _PRELUDE
    + "\n".join(_TEMPLATE.substitute(T=t, S=s) for t, s in (("float", "f32"), ("double", "f64")))
)
_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}
_module: Any = None


def _cupy_kernel(name: str) -> Any:
    """The compiled kernel ``name`` of :data:`SOURCE` (compiled once, on first use)."""
    global _module
    if _module is None:  # NVRTC has the math functions built in: no #include
        _module = raw_module(SOURCE.replace("#include <math.h>\n", ""))
    return _module.get_function(name)


#: how a kernel is looked up: CuPy's compiled module; the CPU emulator in the tests
#: replaces it to run the same source compiled as C on NumPy arrays
get_kernel = _cupy_kernel


def _launch(name: str, dtype: Any, total: int, *args: Any) -> None:
    """Run kernel ``name`` for ``dtype`` over ``total`` elements (asynchronously)."""
    if total <= 0:
        return
    blocks = min(MAX_BLOCKS, -(-total // BLOCK))
    get_kernel(f"{name}_{_SUFFIX[np.dtype(dtype)]}")((blocks,), (BLOCK,), (*args, _i(total)))


#: a null pointer argument (an optional array that is absent)
NULL = np.uint64(0)


def _i(v: int) -> Any:
    return np.int64(v)


def _n(v: int) -> Any:
    return np.int32(v)


def _strides(a: Any) -> list[Any]:
    return [_i(s // a.itemsize) for s in a.strides]


def _ptr(a: Any) -> Any:
    """An optional array argument: the array, or a null pointer."""
    return NULL if a is None else a


def _window(kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
            OH: int, OW: int) -> list[Any]:  # fmt: skip
    """The window arguments every im2col/col2im/pool kernel ends with (before ``total``)."""
    (KH, KW), (sh, sw), (ph, pw) = kernel, stride, padding
    return [_n(KH), _n(KW), _n(sh), _n(sw), _n(ph), _n(pw), _i(OH), _i(OW)]


# ---------------------------------------------------------------- wrappers
def im2col(x: Any, KH: int, KW: int, stride: tuple[int, int],
           padding: tuple[int, int]) -> Any:  # fmt: skip
    """x (N, C, H, W), any strides -> col (C*KH*KW, N*OH*OW), as ``_im2col.im2col``."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    OH = conv_output_size(H, KH, stride[0], padding[0])
    OW = conv_output_size(W, KW, stride[1], padding[1])
    col = xp.empty((C * KH * KW, N * OH * OW), dtype=x.dtype)
    sizes = [_i(N), _i(C), _i(H), _i(W), *_strides(x)]  # x's strides (n, c, h, w)
    _launch(
        "im2col", x.dtype, col.size, x, col, *sizes, *_window((KH, KW), stride, padding, OH, OW)
    )
    return col


def col2im(col: Any, x_shape: tuple[int, int, int, int], KH: int, KW: int,
           stride: tuple[int, int], padding: tuple[int, int], out: Any = None) -> Any:  # fmt: skip
    """col -> gx (N, C, H, W), channel-major, written into ``out`` (C, N, H, W) (any
    strides) when given; as ``_im2col.col2im``."""
    N, C, H, W = x_shape
    OH = conv_output_size(H, KH, stride[0], padding[0])
    OW = conv_output_size(W, KW, stride[1], padding[1])
    if out is None:
        out = get_array_module(col).empty((C, N, H, W), dtype=col.dtype)
    sizes = [_i(N), _i(C), _i(H), _i(W), *_strides(out)]  # out's strides (c, n, h, w)
    window = _window((KH, KW), stride, padding, OH, OW)
    _launch("col2im", col.dtype, N * C * H * W, col, out, *sizes, *window)
    return out.swapaxes(0, 1)


def maxpool_forward(x3: Any, kernel: tuple[int, int], stride: tuple[int, int],
                    padding: tuple[int, int], out: tuple[int, int]) -> tuple[Any, Any]:  # fmt: skip
    """Planes x3 (P, H, W), C-contiguous -> y (P, OH, OW) and the int32 window offset
    ``i*KW + j`` of each output's first maximum."""
    xp = get_array_module(x3)
    P, H, W = x3.shape
    y = xp.empty((P, *out), dtype=x3.dtype)
    arg = xp.empty((P, *out), dtype=xp.int32)
    window = _window(kernel, stride, padding, *out)
    _launch("maxpool_fwd", x3.dtype, y.size, x3, y, arg, _i(H), _i(W), *window)
    return y, arg


def maxpool_backward(gy3: Any, arg: Any, x_shape3: tuple[int, int, int],
                     kernel: tuple[int, int], stride: tuple[int, int],
                     padding: tuple[int, int]) -> Any:  # fmt: skip
    """gy3 (P, OH, OW), C-contiguous, and the saved offsets -> gx (P, H, W)."""
    xp = get_array_module(gy3)
    P, H, W = x_shape3
    gx = xp.empty((P, H, W), dtype=gy3.dtype)
    window = _window(kernel, stride, padding, *gy3.shape[1:])
    _launch("maxpool_bwd", gy3.dtype, gx.size, gy3, arg, gx, _i(H), _i(W), *window)
    return gx


def bn_forward(x2: Any, a: Any, k: Any, b: Any, training: bool, relu: bool, keep_mask: bool,
               y: Any) -> Any:  # fmt: skip
    """Rows x2 (C, M), C-contiguous -> ``y`` (C, M); returns the ReLU mask (or None)."""
    xp = get_array_module(x2)
    C, M = x2.shape
    mask = xp.empty((C, M), dtype=xp.uint8) if relu and keep_mask else None
    flags = [_n(training), _n(relu)]
    _launch("bn_fwd", x2.dtype, y.size, x2, a, k, b, y, _ptr(mask), _i(M), *flags)
    return mask


def bn_backward(gy2: Any, mask: Any, x2: Any, mean: Any, k: Any, c1: Any, c2: Any,
                training: bool, gx: Any) -> None:  # fmt: skip
    """``gx`` (C, M) of batch norm from the reductions ``c1``, ``c2`` (see the kernel)."""
    args = [gy2, _ptr(mask), x2, mean, k, c1, c2, gx, _i(gy2.shape[1]), _n(training)]
    _launch("bn_bwd", gy2.dtype, gx.size, *args)


def xent_forward(x: Any, target: Any, keep: Any, smoothing: float) -> tuple[Any, Any]:
    """Logits x (N, C), C-contiguous -> softmax p (N, C) and per-row losses (N,)."""
    xp = get_array_module(x)
    N, C = x.shape
    p = xp.empty_like(x)
    loss = xp.empty(N, dtype=x.dtype)
    _launch("xent_fwd", x.dtype, N, x, target, keep, p, loss, _i(C), x.dtype.type(smoothing))
    return p, loss


def xent_backward(p: Any, target: Any, scale: Any, smoothing: float) -> Any:
    """gx (N, C) from the saved softmax and the per-row scale (N,)."""
    xp = get_array_module(p)
    gx = xp.empty_like(p)
    args = [p, target, scale, gx, _i(p.shape[1]), p.dtype.type(smoothing)]
    _launch("xent_bwd", p.dtype, gx.size, *args)
    return gx
