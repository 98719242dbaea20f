"""Numerical gradient checking, shipped for users' own tests.

``gradcheck(fn, inputs)`` compares the analytic backward of ``fn`` with central
differences in float64. The outputs are reduced to one scalar with a fixed random
weighting ``L = sum_k <r_k, y_k>``, so one backward pass gives every input's gradient.

* ``mode="full"``: perturb every element of every input that requires grad; the error
  names the input, the worst index and both values. For small inputs.
* ``mode="random"``: compare directional derivatives along ``n_directions`` random
  directions over all inputs at once (one pair of forward passes each). For inputs too
  large for the full check (a whole Inception block, say).

``fn`` must be deterministic (put dropout in eval mode, keep batch norm's statistics
fixed or recompute them identically) and must not change its inputs in place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from minigrad import backend
from minigrad.tensor import Tensor, no_grad

__all__ = ["gradcheck"]


def _outputs(fn: Callable[..., Any], inputs: Sequence[Tensor]) -> list[Tensor]:
    out = fn(*inputs)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    for i, o in enumerate(outs):
        if not isinstance(o, Tensor):
            raise TypeError(f"gradcheck: output {i} of fn is {type(o).__name__}, not a Tensor")
    return outs


def _loss(outs: list[Tensor], weights: list[Any]) -> float:
    return float(sum(float((o.data * w).sum()) for o, w in zip(outs, weights)))


def _check_inputs(inputs: Sequence[Tensor]) -> list[int]:
    checked = []
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise TypeError(f"gradcheck: input {i} is {type(t).__name__}, not a Tensor")
        if not t.requires_grad:
            continue
        if t.dtype != np.float64:
            raise TypeError(
                f"gradcheck: input {i} has dtype {t.dtype}; central differences need float64 "
                "(pass x.double() and build the function's parameters in float64)"
            )
        xp = backend.get_array_module(t.data)
        if not bool(xp.isfinite(t.data).all()):
            raise ValueError(f"gradcheck: input {i} contains NaN or inf")
        checked.append(i)
    if not checked:
        raise ValueError("gradcheck: no input requires grad; nothing to check")
    return checked


def gradcheck(
    fn: Callable[..., Any],
    inputs: Sequence[Tensor],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    mode: str = "full",
    n_directions: int = 3,
    seed: int = 0,
) -> bool:
    """Check ``fn``'s analytic gradients against central differences; return True or raise.

    Args:
        fn: maps the input tensors to a Tensor or a tuple of Tensors.
        inputs: tensors; those with ``requires_grad`` are checked (they must be float64).
        eps: finite-difference step.
        atol, rtol: pass when ``|analytic - numeric| <= atol + rtol * |numeric|``.
        mode: ``"full"`` (every element) or ``"random"`` (random directions).
        n_directions: number of directions in random mode.
        seed: seed of the output weighting and of the random directions.

    Raises:
        AssertionError: naming the input, index and both values (full mode) or the direction
            and both directional derivatives (random mode).
        TypeError / ValueError: non-float64 inputs, NaN/inf inputs, nothing to check.
    """
    if mode not in ("full", "random"):
        raise ValueError(f"gradcheck: mode must be 'full' or 'random', got {mode!r}")
    checked = _check_inputs(inputs)
    rng = np.random.default_rng(seed)
    xp = backend.get_array_module(inputs[checked[0]].data)

    for t in inputs:
        t.grad = None
    outs = _outputs(fn, inputs)
    weights = [xp.asarray(rng.standard_normal(o.shape)).astype(o.dtype) for o in outs]
    for o in outs:
        if o.dtype.kind != "f":
            raise TypeError(f"gradcheck: outputs must be floating point, got {o.dtype}")
        if not bool(xp.isfinite(o.data).all()):
            raise ValueError("gradcheck: fn produced NaN or inf at the given inputs")
    total = None
    for o, w in zip(outs, weights):
        if o.requires_grad:
            term = (o * Tensor(w)).sum()
            total = term if total is None else total + term
    if total is None:
        raise ValueError("gradcheck: no output depends on an input that requires grad")
    total.backward()
    analytic = {}
    for i in checked:
        g = inputs[i].grad
        analytic[i] = np.zeros(inputs[i].shape) if g is None else backend.as_numpy(g)
        inputs[i].grad = None

    def loss_at() -> float:
        with no_grad():
            return _loss(_outputs(fn, inputs), weights)

    if mode == "full":
        for i in checked:
            data = inputs[i].data
            numeric = np.zeros(data.shape)
            flat = data.reshape(-1)  # a view: perturbing it perturbs the input
            for k in range(flat.size):
                orig = flat[k].item()
                flat[k] = orig + eps
                up = loss_at()
                flat[k] = orig - eps
                down = loss_at()
                flat[k] = orig
                numeric.reshape(-1)[k] = (up - down) / (2 * eps)
            err = np.abs(analytic[i] - numeric) - (atol + rtol * np.abs(numeric))
            if (err > 0).any():
                idx = np.unravel_index(int(err.argmax()), data.shape)
                raise AssertionError(
                    f"gradcheck: input {i} (shape {tuple(data.shape)}) at index {idx}: "
                    f"analytic {analytic[i][idx]:.8g} vs numeric {numeric[idx]:.8g} "
                    f"(atol={atol}, rtol={rtol}); {int((err > 0).sum())} element(s) off"
                )
        return True

    for d in range(n_directions):
        dirs = {i: rng.standard_normal(inputs[i].shape) for i in checked}
        originals = {i: inputs[i].data.copy() for i in checked}
        for sign in (1, -1):
            for i in checked:
                inputs[i].data[...] = originals[i] + sign * eps * xp.asarray(dirs[i])
            if sign == 1:
                up = loss_at()
            else:
                down = loss_at()
        for i in checked:
            inputs[i].data[...] = originals[i]
        numeric_dd = (up - down) / (2 * eps)
        analytic_dd = float(sum((analytic[i] * dirs[i]).sum() for i in checked))
        if abs(analytic_dd - numeric_dd) > atol + rtol * abs(numeric_dd):
            raise AssertionError(
                f"gradcheck: directional derivative {d} over inputs {checked}: "
                f"analytic {analytic_dd:.8g} vs numeric {numeric_dd:.8g} (atol={atol}, rtol={rtol})"
            )
    return True
