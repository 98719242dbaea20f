"""Numerical gradient checking, shipped for users' own tests.

``gradcheck(fn, inputs)`` compares the analytic backward of ``fn`` with central
differences in float64. The outputs are reduced to one scalar with a fixed random
weighting ``L = sum_k <r_k, y_k>``, so one backward pass gives every input's gradient.

* ``mode="full"``: perturb every element of every input that requires grad; the error
  names the input, the worst index and both values. For small inputs.
* ``mode="random"``: compare directional derivatives along ``n_directions`` random
  directions over all inputs at once (one pair of forward passes each). For inputs too
  large for the full check (a whole Inception block, say).

``gradgradcheck(fn, inputs)`` checks second derivatives the same way (PyTorch's
``gradgradcheck``): it runs ``gradcheck`` on the function ``(inputs, v) -> the gradients
of <v, fn(inputs)>``, computed by ``minigrad.grad(..., create_graph=True)``, with random
``v`` that also require grad, so every op's ``backward_graph`` is checked against
central differences of its first-order backward.

``fn`` must be deterministic (put dropout in eval mode, keep batch norm's statistics
fixed or recompute them identically) and must not change its inputs in place. Every
floating-point input and output must be float64: in float32 a step of 1e-6 is below the
rounding error and the check would compare noise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from minigrad import backend
from minigrad.higher_order import grad
from minigrad.tensor import Tensor, enable_grad, no_grad

__all__ = ["gradcheck", "gradgradcheck"]

_F64_HINT = (
    "central differences need float64: pass x.double() (or mg.tensor(..., dtype='float64')) "
    "and build the function's parameters in float64"
)


def _describe(i: int, t: Tensor) -> str:
    return f"input {i}" + (f" ({t.name!r})" if t.name else "")


def _outputs(fn: Callable[..., Any], inputs: Sequence[Tensor]) -> list[Tensor]:
    out = fn(*inputs)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    for i, o in enumerate(outs):
        if not isinstance(o, Tensor):
            raise TypeError(f"gradcheck: output {i} of fn is {type(o).__name__}, not a Tensor")
    return outs


def _loss(outs: list[Tensor], weights: list[Any]) -> float:
    return float(sum(float((o.data * w).sum()) for o, w in zip(outs, weights) if w is not None))


def _check_inputs(inputs: Sequence[Tensor]) -> list[int]:
    """Indices of the inputs to check; rejects non-float64 and non-finite inputs."""
    checked = []
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise TypeError(f"gradcheck: input {i} is {type(t).__name__}, not a Tensor")
        if t.dtype.kind == "f" and t.dtype != np.float64:
            raise TypeError(f"gradcheck: {_describe(i, t)} has dtype {t.dtype}; {_F64_HINT}")
        if t.dtype.kind == "f":
            bad = ~backend.get_array_module(t.data).isfinite(t.data)
            if bool(bad.any()):
                where = tuple(int(k) for k in np.argwhere(backend.as_numpy(bad))[0])
                raise ValueError(
                    f"gradcheck: {_describe(i, t)} contains NaN or inf "
                    f"({int(bad.sum())} element(s), first at index {where}); "
                    "gradients are only defined at finite points"
                )
        if t.requires_grad:
            checked.append(i)
    if not checked:
        raise ValueError("gradcheck: no input requires grad; nothing to check")
    return checked


def _check_outputs(outs: list[Tensor], xp: Any) -> None:
    for k, o in enumerate(outs):
        if o.dtype.kind != "f":
            continue  # integer outputs (argmax indices) carry no gradient
        if o.dtype != np.float64:
            raise TypeError(f"gradcheck: output {k} of fn has dtype {o.dtype}; {_F64_HINT}")
        if not bool(xp.isfinite(o.data).all()):
            raise ValueError(f"gradcheck: output {k} of fn is NaN or inf at the given inputs")


def _full(
    inputs: Sequence[Tensor],
    checked: list[int],
    analytic: dict[int, np.ndarray],
    loss_at: Callable[[], float],
    eps: float,
    atol: float,
    rtol: float,
) -> None:
    for i in checked:
        data = inputs[i].data
        numeric = np.zeros(data.shape)
        for idx in np.ndindex(*data.shape):  # element by element: works for any strides
            orig = data[idx].item()
            data[idx] = orig + eps
            up = loss_at()
            data[idx] = orig - eps
            down = loss_at()
            data[idx] = orig
            numeric[idx] = (up - down) / (2 * eps)
        err = np.abs(analytic[i] - numeric) - (atol + rtol * np.abs(numeric))
        if (err > 0).any():
            worst = tuple(int(k) for k in np.unravel_index(int(err.argmax()), data.shape))
            raise AssertionError(
                f"gradcheck: {_describe(i, inputs[i])} (shape {tuple(data.shape)}) at index "
                f"{worst}: analytic {analytic[i][worst]:.8g} vs numeric {numeric[worst]:.8g} "
                f"(atol={atol}, rtol={rtol}); {int((err > 0).sum())} of {data.size} element(s) off"
            )


def _random(
    inputs: Sequence[Tensor],
    checked: list[int],
    analytic: dict[int, np.ndarray],
    loss_at: Callable[[], float],
    eps: float,
    atol: float,
    rtol: float,
    n_directions: int,
    rng: np.random.Generator,
    xp: Any,
) -> None:
    for d in range(n_directions):
        dirs = {i: rng.standard_normal(inputs[i].shape) for i in checked}
        originals = {i: inputs[i].data.copy() for i in checked}
        values = []
        for sign in (1, -1):
            for i in checked:
                inputs[i].data[...] = originals[i] + sign * eps * xp.asarray(dirs[i])
            values.append(loss_at())
        for i in checked:
            inputs[i].data[...] = originals[i]
        numeric_dd = (values[0] - values[1]) / (2 * eps)
        analytic_dd = float(sum((analytic[i] * dirs[i]).sum() for i in checked))
        if abs(analytic_dd - numeric_dd) > atol + rtol * abs(numeric_dd):
            raise AssertionError(
                f"gradcheck: directional derivative {d} (seeded random direction) over inputs "
                f"{checked}: analytic {analytic_dd:.8g} vs numeric {numeric_dd:.8g} "
                f"(atol={atol}, rtol={rtol}); run mode='full' on a smaller input to locate it"
            )


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
        inputs: tensors; those with ``requires_grad`` are checked. Every floating-point
            input (checked or not) and output must be float64.
        eps: finite-difference step.
        atol, rtol: pass when ``|analytic - numeric| <= atol + rtol * |numeric|``.
        mode: ``"full"`` (every element) or ``"random"`` (random directions).
        n_directions: number of directions in random mode.
        seed: seed of the output weighting and of the random directions.

    Returns:
        True. The inputs' data and ``.grad`` are as they were before the call.

    Raises:
        AssertionError: naming the input, the worst index (a tuple of ints) and both values
            (full mode), or the direction and both directional derivatives (random mode).
        TypeError: a float input or output that is not float64, a non-Tensor input/output.
        ValueError: NaN/inf in an input or output, nothing to check, bad mode/eps/n_directions.
    """
    if mode not in ("full", "random"):
        raise ValueError(f"gradcheck: mode must be 'full' or 'random', got {mode!r}")
    if not eps > 0:
        raise ValueError(f"gradcheck: eps must be positive, got {eps}")
    if mode == "random" and n_directions < 1:
        raise ValueError(f"gradcheck: n_directions must be >= 1, got {n_directions}")
    checked = _check_inputs(inputs)
    rng = np.random.default_rng(seed)
    xp = backend.get_array_module(inputs[checked[0]].data)

    saved_grads = [t.grad for t in inputs]
    try:
        for t in inputs:
            t.grad = None
        outs = _outputs(fn, inputs)
        _check_outputs(outs, xp)
        # integer outputs (argmax indices) carry no gradient and get no weight
        weights = [
            xp.asarray(rng.standard_normal(o.shape)) if o.dtype.kind == "f" else None for o in outs
        ]
        total = None
        for o, w in zip(outs, weights):
            if o.requires_grad and w is not None:
                term = (o * Tensor(w)).sum()
                total = term if total is None else total + term
        if total is None:
            raise ValueError("gradcheck: no output depends on an input that requires grad")
        total.backward()
        analytic = {}
        for i in checked:
            g = inputs[i].grad
            analytic[i] = np.zeros(inputs[i].shape) if g is None else backend.as_numpy(g)
    finally:
        for t, g in zip(inputs, saved_grads):
            t.grad = g

    def loss_at() -> float:
        with no_grad():
            return _loss(_outputs(fn, inputs), weights)

    if mode == "full":
        _full(inputs, checked, analytic, loss_at, eps, atol, rtol)
    else:
        _random(inputs, checked, analytic, loss_at, eps, atol, rtol, n_directions, rng, xp)
    return True


def gradgradcheck(
    fn: Callable[..., Any],
    inputs: Sequence[Tensor],
    grad_outputs: Sequence[Tensor] | None = None,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    mode: str = "full",
    n_directions: int = 3,
    seed: int = 0,
) -> bool:
    """Check ``fn``'s second derivatives against central differences; return True or raise.

    The gradients ``g_i = d <v, fn(inputs)> / d inputs_i`` are computed with
    ``minigrad.grad(create_graph=True)`` (each op's differentiable ``backward_graph``) and
    checked with :func:`gradcheck` as a function of the inputs and of ``v``: so both the
    second derivatives (through the inputs) and the first-order gradient's linearity in
    ``v`` are compared with central differences of the first-order backward.

    Args:
        fn, inputs, eps, atol, rtol, mode, n_directions, seed: as :func:`gradcheck`.
        grad_outputs: ``v``, one float64 Tensor per floating-point output of ``fn``
            (default: seeded standard normals); they are made to require grad.

    Returns:
        True. The inputs' data and ``.grad`` are as they were before the call.

    Raises:
        AssertionError: as :func:`gradcheck`, where an "input" index past the inputs
            names a grad_output.
        RuntimeError: an op in ``fn`` without a differentiable backward (named).
        TypeError / ValueError: as :func:`gradcheck`.
    """
    inputs = list(inputs)
    checked = _check_inputs(inputs)
    with no_grad():
        outs = _outputs(fn, inputs)
    _check_outputs(outs, backend.get_array_module(inputs[checked[0]].data))
    floats = [k for k, o in enumerate(outs) if o.dtype.kind == "f"]
    if grad_outputs is None:
        rng = np.random.default_rng(seed + 1)
        xp = backend.get_array_module(outs[floats[0]].data)
        vs = [Tensor(xp.asarray(rng.standard_normal(outs[k].shape))) for k in floats]
    else:
        vs = [Tensor(v.data.copy()) for v in grad_outputs]
        if len(vs) != len(floats):
            raise ValueError(
                f"gradgradcheck: fn has {len(floats)} floating-point output(s) but "
                f"{len(vs)} grad_outputs were given"
            )
    for v in vs:
        v.requires_grad_(True)
    n = len(inputs)

    def first_grads(*args: Tensor) -> tuple[Tensor, ...]:
        with enable_grad():  # gradcheck evaluates under no_grad; the gradients need a graph
            xs, gos = list(args[:n]), args[n:]
            ys = _outputs(fn, xs)
            pairs = [(ys[k], g) for k, g in zip(floats, gos) if ys[k].requires_grad]
            wrt = [xs[i] for i in checked]
            if not pairs:
                return tuple(Tensor(x.data * 0) for x in wrt)
            gs = grad(
                [y for y, _ in pairs], wrt, [g for _, g in pairs], create_graph=True,
                allow_unused=True,
            )  # fmt: skip
        return tuple(Tensor(x.data * 0) if g is None else g for g, x in zip(gs, wrt))

    _same_as_first_order(fn, inputs, checked, floats, vs, first_grads, atol, rtol)
    return gradcheck(first_grads, [*inputs, *vs], eps, atol, rtol, mode, n_directions, seed)


def _same_as_first_order(
    fn: Callable[..., Any],
    inputs: list[Tensor],
    checked: list[int],
    floats: list[int],
    vs: list[Tensor],
    first_grads: Callable[..., tuple[Tensor, ...]],
    atol: float,
    rtol: float,
) -> None:
    """The differentiable gradients (``backward_graph``) must equal the first-order ones
    (``backward``, checked by gradcheck): otherwise a self-consistent but wrong
    ``backward_graph`` would pass the finite differences of its own output."""
    graph = first_grads(*inputs, *vs)
    with enable_grad():
        ys = _outputs(fn, inputs)
    pairs = [(ys[k], v.data) for k, v in zip(floats, vs) if ys[k].requires_grad]
    wrt = [inputs[i] for i in checked]
    plain = grad([y for y, _ in pairs], wrt, [g for _, g in pairs], allow_unused=True)
    for i, g, p in zip(checked, graph, plain):
        a, b = backend.as_numpy(g.data), (0.0 if p is None else backend.as_numpy(p.data))
        err = np.abs(a - b) - (atol + rtol * np.abs(b))
        if (err > 0).any():
            worst = tuple(int(k) for k in np.unravel_index(int(err.argmax()), err.shape))
            raise AssertionError(
                f"gradgradcheck: the create_graph gradient of {_describe(i, inputs[i])} differs "
                f"from the first-order backward's at index {worst}: "
                f"{a[worst]:.8g} vs {np.broadcast_to(b, a.shape)[worst]:.8g}"
            )
