"""How much memory a training step will take, estimated before the real batch is allocated.

    est = estimate_memory(model, (3, 32, 32), batch_size=128, optimizer_slots=1)
    print(est)                         # params 23.6 MB + grads ... = 1.21 GB at batch 128
    est.max_batch_size(8 * 2**30)      # the largest batch that fits in 8 GiB

Parameters, their gradients and the optimizer's state (``optimizer_slots`` copies of the
parameters: 1 for SGD with momentum, 2 for Adam) are counted from the parameter shapes.
Activation memory is measured, not modelled: two tiny probe steps (forward + backward at
batch 2 and batch 4, on the CPU) are run under ``tracemalloc``, which sees every NumPy
allocation, and their peaks give ``fixed + per_image * N``; that line is extrapolated to the
real batch. The probes cost a few images' worth of memory and time, never the real batch's.
The model's training mode, gradients, buffers (batch-norm statistics) and the RNG are
restored afterwards, so a probe does not change the run that follows.

The figure is for the CPU path; the GPU path keeps the same activations (its buffers differ
somewhat). For a model too large to build at all, :func:`parameter_bytes` works from shapes.
"""

from __future__ import annotations

import math
import tracemalloc
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from minigrad import devices, random
from minigrad.tensor import Tensor, tensor

__all__ = [
    "MemoryEstimate",
    "available_memory",
    "check_fits",
    "estimate_memory",
    "estimated_parameters",
    "format_bytes",
    "parameter_bytes",
]

_PROBES = (2, 4)


def format_bytes(n: float) -> str:
    """``1234567`` -> ``"1.23 MB"`` (powers of 1000, as disk and RAM sizes are quoted)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    raise AssertionError  # pragma: no cover


def parameter_bytes(shapes: Iterable[Sequence[int]], itemsize: int = 4) -> int:
    """Bytes of parameters with these shapes (float32 by default), allocating nothing."""
    return sum(math.prod(s) for s in shapes) * itemsize


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one training step needs at ``batch_size``; ``total`` is their sum.

    Attributes:
        params: parameters and buffers.
        grads: the parameters' gradients.
        optimizer: the optimizer's state (``optimizer_slots`` x trainable parameters).
        activations: the forward + backward peak beyond those, at ``batch_size``.
        per_image: how much ``activations`` grows per image of the batch.
        batch_size: the batch the figures are for.
    """

    params: int
    grads: int
    optimizer: int
    activations: int
    per_image: int
    batch_size: int

    @property
    def total(self) -> int:
        """Everything together."""
        return self.params + self.grads + self.optimizer + self.activations

    def max_batch_size(self, budget: int) -> int:
        """The largest batch whose estimate fits in ``budget`` bytes (0 when none does)."""
        fixed = self.total - self.per_image * self.batch_size
        if self.per_image <= 0:
            return self.batch_size if fixed <= budget else 0
        return max(0, int((budget - fixed) // self.per_image))

    def __str__(self) -> str:
        return (
            f"params {format_bytes(self.params)} + grads {format_bytes(self.grads)} + "
            f"optimizer {format_bytes(self.optimizer)} + activations "
            f"{format_bytes(self.activations)} = {format_bytes(self.total)} "
            f"at batch {self.batch_size}"
        )


def _sum_outputs(outputs: Any, target: Any) -> Tensor:
    """A scalar that reaches every output (the default probe loss)."""
    parts = outputs if isinstance(outputs, tuple) else (outputs,)
    loss = parts[0].sum()
    for p in parts[1:]:
        if isinstance(p, Tensor):
            loss = loss + p.sum()
    return loss


def _probe_peak(model: Any, x: np.ndarray, target: np.ndarray, loss_fn: Callable) -> int:
    """Peak bytes NumPy allocates during one forward + backward on ``x``."""
    xt = tensor(x)
    tracemalloc.reset_peak()
    start, _ = tracemalloc.get_traced_memory()
    loss = loss_fn(model(xt), target)
    loss.backward()
    _, peak = tracemalloc.get_traced_memory()
    del loss
    for p in model.parameters():
        p.grad = None
    return peak - start


def estimate_memory(
    model: Any,
    input_shape: Sequence[int],
    batch_size: int,
    *,
    optimizer_slots: int = 1,
    loss_fn: Callable[[Any, Any], Tensor] | None = None,
    num_classes: int | None = None,
) -> MemoryEstimate:
    """Estimate the memory of one training step of ``model`` at ``batch_size``.

    Args:
        model: a Module on the CPU (probe it before moving it to a GPU).
        input_shape: one image, (C, H, W).
        batch_size: the real batch size.
        optimizer_slots: optimizer state per parameter, in parameter copies (0 plain SGD,
            1 SGD with momentum, 2 Adam/AdamW).
        loss_fn: ``loss_fn(outputs, target)`` as in training; by default the sum of the
            outputs (the activations the backward keeps are the same).
        num_classes: draws the probe's targets in ``[0, num_classes)`` for ``loss_fn``.

    Returns:
        A :class:`MemoryEstimate`.

    Raises:
        ValueError: a batch size below 1, an input shape that is not (C, H, W), a negative
            ``optimizer_slots``, or a model whose parameters are not on the CPU.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"estimate_memory: batch_size must be an int >= 1, got {batch_size!r}")
    if len(tuple(input_shape)) != 3 or min(input_shape) < 1:
        raise ValueError(f"estimate_memory: input_shape must be (C, H, W), got {input_shape}")
    if optimizer_slots < 0:
        raise ValueError(f"estimate_memory: optimizer_slots must be >= 0, got {optimizer_slots}")
    params = list(model.parameters())
    if any(p.device != "cpu" for p in params):
        raise ValueError("estimate_memory: probe the model on the CPU, before moving it")
    param_bytes = sum(p.data.nbytes for p in params) + sum(b.data.nbytes for b in model.buffers())
    trainable = sum(p.data.nbytes for p in params if p.requires_grad)
    loss_fn = loss_fn or _sum_outputs
    # what the probes change and must give back: mode, grads, BN statistics, the RNG
    was_training = model.training
    grads = [p.grad for p in params]
    buffers = [(b, b.data.copy()) for b in model.buffers()]
    rng = random.get_rng_state()
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        model.train()
        gen = np.random.default_rng(0)
        peaks = []
        for n in _PROBES:
            x = gen.standard_normal((n, *input_shape), dtype=np.float32)
            target = gen.integers(0, num_classes or 1, size=n)
            peaks.append(_probe_peak(model, x, target, loss_fn))
    finally:
        if started:
            tracemalloc.stop()
        model.train(was_training)
        for p, g in zip(params, grads):
            p.grad = g
        for b, saved in buffers:
            b.copy_(saved)
        random.set_rng_state(rng)
    (n1, n2), (p1, p2) = _PROBES, peaks
    per_image = max(0, (p2 - p1) // (n2 - n1))
    fixed = max(0, p1 - per_image * n1 - trainable)  # the grads are in the probe's peak
    return MemoryEstimate(
        params=param_bytes,
        grads=trainable,
        optimizer=optimizer_slots * trainable,
        activations=fixed + per_image * batch_size,
        per_image=per_image,
        batch_size=batch_size,
    )


# ---------------------------------------------------------------------------- the CLI's check
_SIZE_PROBES = (1 / 16, 2 / 16, 3 / 16)  # a model's size option at which it is probed
#: the probes of :func:`check_fits` see images of at most this side
PROBE_IMAGE_SIZE = 256


def available_memory(device: str = "cpu") -> int | None:
    """Bytes that may still be allocated on ``device`` (:func:`minigrad.devices.memory_available`:
    a GPU's free memory, the host's ``MemAvailable``); None when unknown."""
    return devices.memory_available(device)


def _largest(fits: Callable[[float], bool], hi: float) -> float:
    """The largest value in (0, hi] for which ``fits`` holds (``fits`` grows monotonically)."""
    lo = 0.0
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def check_fits(
    spec: Any,
    config: dict[str, Any],
    info: Any,
    available: int | None = None,
    device: str = "cpu",
    dataset_bytes: int = 0,
    batch_size: int | None = None,
) -> None:
    """Refuse, before anything large is allocated, a run whose data or training step cannot fit.

    Every flag that scales memory is checked: ``--image-size`` (the images a dataset holds
    in memory, ``dataset_bytes``, and the activations), ``--batch-size`` and the spec's
    ``size_option`` (a channel multiplier such as ``width``). The model is built only at
    three small values of the size option: the parameter count is fitted as
    ``a*s^2 + b*s + c`` through them (exact up to channel rounding: every weight is a
    product of two channel counts) and the activations of the middle probe
    (:func:`estimate_memory`) are scaled linearly with ``s`` (channels) to the run's value.
    The probes see images of at most :data:`PROBE_IMAGE_SIZE` pixels a side; larger images
    scale the activations with their area. Parameters, gradients and the optimizer's slots
    (1 for SGD, 2 for Adam) are float32. The probes run on the CPU; on a GPU the step is
    compared with the device's free memory and the dataset with the host's.
    Without a size option only the dataset and the batch of input images are checked.

    Args:
        spec, config, info: the model's spec, the run config and the dataset's info.
        available: bytes available (default: :func:`available_memory` of ``device``).
        device: where the training step runs.
        dataset_bytes: host memory the dataset takes at ``info.image_size`` (it scales
            with the image area).
        batch_size: the batch one process runs (default ``config["batch_size"]``); under
            ``mpiexec`` the per-rank batch, since each rank holds only its share.

    Raises:
        ValueError: the estimate exceeds what is available, naming the flags, the figures
            and the largest values that would fit (one line).
    """
    available = available_memory(device) if available is None else available
    if available is None:
        return
    host = available if device == "cpu" else available_memory("cpu")
    side = info.image_size
    batch = int(config["batch_size"] if batch_size is None else batch_size)
    per_rank = "" if batch == int(config["batch_size"]) else f" ({batch} per rank)"
    batch_flag = f"--batch-size {config['batch_size']}{per_rank}"
    if dataset_bytes and host is not None and dataset_bytes > host:
        fits = _largest(lambda t: dataset_bytes * t * t <= host, 1.0) * side
        raise ValueError(
            f"--image-size {side}: the {info.name} images would take about "
            f"{format_bytes(dataset_bytes)} in memory at {side}x{side} (estimated before "
            f"loading) but {format_bytes(host)} is available; the largest --image-size that "
            f"fits is about {int(fits)}"
        )
    on_device = dataset_bytes if device == "cpu" else 0  # the data shares the CPU's memory
    key = getattr(spec, "size_option", None)
    if key is None or config.get(key) is None:
        need_input = on_device + batch * info.in_channels * side * side * 4
        if need_input > available:
            raise ValueError(
                f"--image-size {side} {batch_flag}: the images alone need about "
                f"{format_bytes(need_input)} but {format_bytes(available)} of memory is "
                f"available on {device}"
            )
        return
    need = _step_need(spec, config, info, key)
    value = float(config[key])
    total = on_device + need(value, batch, side)
    if total <= available:
        return
    room = available - on_device
    flag = "--" + key.replace("_", "-")
    lo = _largest(lambda s: need(s, batch, side) <= room, value)
    fixed = need(value, 0, side)
    step = MemoryEstimate(
        params=0, grads=0, optimizer=0, activations=int(total - on_device),
        per_image=int(need(value, 1, side) - fixed), batch_size=batch,
    )  # fmt: skip
    fits = step.max_batch_size(int(room))
    at_size = (f"at {flag} {value:g} the largest batch that fits is {fits}" if fits >= 1
               else f"at {flag} {value:g} not even a batch of 1 fits")  # fmt: skip
    sides = ""
    if side > PROBE_IMAGE_SIZE:
        top = int(_largest(lambda t: need(value, batch, t) <= room, side))
        sides = f"; at {flag} {value:g} --batch-size {batch} the largest --image-size is {top}"
    image = f" --image-size {side}" if side > PROBE_IMAGE_SIZE else ""
    raise ValueError(
        f"{flag} {value:g} {batch_flag}{image}: a training step needs about "
        f"{format_bytes(total)} (estimated before allocating) but {format_bytes(available)} "
        f"of memory is available on {device}; at --batch-size {batch} the largest {flag} "
        f"that fits is about {lo:.3g}, and {at_size}{sides}"
        + _recompute_advice(spec, config, key, info, room - fixed, value, side)
    )


def _probe(
    spec: Any, config: dict[str, Any], key: str, shape: tuple[int, ...] | None = None
) -> tuple[np.ndarray, MemoryEstimate | None]:
    """Parameter-count coefficients ``(a, b, c)`` of ``a*s^2 + b*s + c`` from probe models at
    :data:`_SIZE_PROBES`, and (given an image ``shape``) the middle probe's estimate."""
    slots = 2 if config.get("optimizer") in ("adam", "adamw") else 1
    rng = random.get_rng_state()  # building the probes draws initial weights
    try:
        counts, act = [], None
        for s in _SIZE_PROBES:
            model = spec.build_model({**config, key: s})
            counts.append(sum(int(p.data.size) for p in model.parameters()))
            if shape is not None and s == _SIZE_PROBES[1]:
                act = estimate_memory(model, shape, 1, optimizer_slots=slots)
    finally:
        random.set_rng_state(rng)
    return np.polyfit(np.array(_SIZE_PROBES), np.array(counts, dtype=np.float64), 2), act


def _step_need(
    spec: Any, config: dict[str, Any], info: Any, key: str
) -> Callable[[float, int, float], float]:
    """Bytes of a training step as a function of (size option, batch, image side), fitted
    from probe models at three small sizes and images of at most PROBE_IMAGE_SIZE."""
    slots = 2 if config.get("optimizer") in ("adam", "adamw") else 1
    probe_side = min(info.image_size, PROBE_IMAGE_SIZE)
    (a, b, c), act = _probe(spec, config, key, (info.in_channels, probe_side, probe_side))
    fixed, per_image = act.activations - act.per_image, act.per_image

    def need(s: float, n: int, side: float) -> float:
        params = max(a * s * s + b * s + c, 0.0) * 4 * (2 + slots)
        area = (side / probe_side) ** 2
        return params + (fixed + per_image * n) * area * s / _SIZE_PROBES[1]

    return need


def estimated_parameters(spec: Any, config: dict[str, Any]) -> float | None:
    """The parameter count of the model ``config`` describes, from three small probe models
    (None when the spec has no size option); nothing of the real size is allocated."""
    key = getattr(spec, "size_option", None)
    if key is None or config.get(key) is None:
        return None
    (a, b, c), _ = _probe(spec, config, key)
    s = float(config[key])
    return max(a * s * s + b * s + c, 0.0)


def _recompute_advice(
    spec: Any, config: dict[str, Any], key: str, info: Any, room: float, value: float,
    side: int,
) -> str:  # fmt: skip
    """For a model with a ``recompute`` option that is off: the largest batch that would
    fit with it on (its probe measures the recomputed step, as the run would take it)."""
    if "recompute" not in config or config["recompute"]:
        return ""  # no such option, or the estimate above already recomputes
    slots = 2 if config.get("optimizer") in ("adam", "adamw") else 1
    probe_side = min(side, PROBE_IMAGE_SIZE)
    rng = random.get_rng_state()
    try:
        model = spec.build_model({**config, key: _SIZE_PROBES[1], "recompute": True})
        shape = (info.in_channels, probe_side, probe_side)
        act = estimate_memory(model, shape, 1, optimizer_slots=slots)
    finally:
        random.set_rng_state(rng)
    per_image = act.per_image * value / _SIZE_PROBES[1] * (side / probe_side) ** 2
    fits = int(room // per_image) if per_image > 0 and room > 0 else 0
    return f"; with --recompute (activations recomputed in backward) {fits} would fit"
