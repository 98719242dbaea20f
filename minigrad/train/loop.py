"""One epoch of training and one pass of evaluation, for any classifier and loss.

    stats = train_one_epoch(model, loader, opt, loss_terms, device="cpu", epoch=0)
    result = evaluate(model, test_loader, device="cpu", num_classes=10)  # top-1, top-5, CM

The step order is the usual one: forward, loss, (stop on a NaN/inf loss before anything is
changed), zero_grad, backward, callbacks' ``on_step_end(step, epoch, model)`` (the
gradients are there, the weights not yet updated), ``optimizer.step()``, ``ema.update()``.
The loss is a loss-terms callable (``{"main": ..., "total": ...}``, the ``"total"`` is
backpropagated; see :mod:`minigrad.train.spec`) or one returning a scalar Tensor. A model
may return a tuple (e.g. auxiliary heads' logits in training mode); accuracy is measured
on the logits that ``logits`` picks from it (default: the first field). Rows whose logits hold a
NaN/inf count as misses, and both functions warn once (``NonFiniteOutputWarning``, naming
the count) when there were any.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np

from minigrad import backend, devices, random
from minigrad.tensor import Tensor, no_grad, tensor
from minigrad.train.metrics import NonFiniteOutputWarning, confusion_matrix, topk_correct
from minigrad.train.progress import Progress
from minigrad.train.spec import logits_of, total_loss

__all__ = ["NonFiniteLossError", "RunState", "evaluate", "train_one_epoch"]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or inf; the step that produced it was not applied.

    ``step`` is the 0-based index of that step in the run, ``batch`` in its epoch (the
    message counts both from 1); the advice suggests batch norm only to a model without
    it (``batch_norm`` False).
    """

    def __init__(
        self,
        value: float,
        epoch: int,
        step: int,
        lr: float | None,
        batch: int | None = None,
        batch_norm: bool | None = None,
    ) -> None:
        self.value, self.epoch, self.step, self.lr = value, epoch, step, lr
        self.batch = batch
        at_lr = "" if lr is None else f" (lr {lr:g})"
        where = (f"step {step + 1}" if batch is None
                 else f"step {batch + 1} of the epoch (step {step + 1} of the run)")  # fmt: skip
        advice = (
            "Lower --lr or add warmup"
            if batch_norm
            else "Lower --lr, add warmup, or use batch norm"
        )
        super().__init__(
            f"the training loss is {value} at epoch {epoch + 1}, {where}{at_lr}; "
            f"the weights were not updated with it. {advice}."
        )


def _has_batch_norm(model: Any) -> bool:
    """Whether any module of ``model`` is a batch norm layer (by its class name)."""
    modules = getattr(model, "modules", None)
    return modules is not None and any("BatchNorm" in type(m).__name__ for m in modules())


EPOCH_SUMS = {"images": 0, "correct": 0, "loss": 0.0, "total_loss": 0.0}


@dataclass
class RunState:
    """Where a run stands: updated after every completed step (what a checkpoint records).

    Attributes:
        epoch: the epoch in progress (0-based), or the next one between epochs.
        step: optimizer steps taken since the run began (all epochs).
        batch: steps completed in the current epoch.
        best: the best validation top-1 so far (-1 before the first evaluation).
        history: one metrics row per finished epoch.
        sums: the epoch's running sums so far (``images``, ``correct``, ``loss`` and
            ``total_loss``, the losses times the batch sizes), saved in checkpoints so the
            figures of an epoch resumed mid-way cover the whole epoch.
        pending: while a step runs, the RNG state and model buffers from before it began, so
            an interrupted step can be undone (see :meth:`undo_pending`); None between steps.
    """

    epoch: int = 0
    step: int = 0
    batch: int = 0
    best: float = -1.0
    history: list[dict[str, Any]] = field(default_factory=list)
    sums: dict[str, float] = field(default_factory=lambda: dict(EPOCH_SUMS))
    pending: tuple[Any, dict[str, Any]] | None = None

    def add(self, images: int, correct: int, loss: float, total_loss: float) -> None:
        """Add one completed step to the epoch's running sums."""
        s = self.sums
        s["images"] += images
        s["correct"] += correct
        s["loss"] += loss * images
        s["total_loss"] += total_loss * images

    def begin_step(self, model: Any) -> None:
        """Remember what a step changes before its update: the RNG (dropout) and the batch
        norm statistics (a few small arrays), so an interrupt can restore them."""
        buffers = {n: b.data.copy() for n, b in model.named_buffers()}
        self.pending = (random.get_rng_state(), buffers)

    def undo_pending(self, model: Any) -> None:
        """Undo the forward of a step that was interrupted before its update."""
        if self.pending is None:
            return
        rng, buffers = self.pending
        for n, b in model.named_buffers():
            b.copy_(buffers[n])
        random.set_rng_state(rng)
        self.pending = None


def _lr(optimizer: Any) -> float | None:
    groups = getattr(optimizer, "param_groups", None)
    return float(groups[0]["lr"]) if groups else None


def _call(callbacks: Iterable[Any], name: str, *args: Any) -> None:
    for cb in callbacks:
        fn = getattr(cb, name, None)
        if fn is not None:
            fn(*args)


def _finite_loss(loss: Tensor, state: RunState, model: Any, epoch: int, optimizer: Any) -> float:
    """The loss as a float; a NaN/inf one rolls the step back and raises."""
    value = float(loss.item())
    if not math.isfinite(value):
        state.undo_pending(model)
        raise NonFiniteLossError(value, epoch, state.step, _lr(optimizer), state.batch,
                                 _has_batch_norm(model))  # fmt: skip
    return value


def _warn_nonfinite(where: str, count: int, n: int) -> None:
    if count:
        warnings.warn(
            f"{where}: {count} of {n} outputs had NaN/inf logits; they count as misses",
            NonFiniteOutputWarning,
            stacklevel=3,
        )


def _main_loss(terms: Any, total: Tensor) -> Tensor:
    """The main head's loss: ``terms["main"]`` when the loss names one, else the total."""
    return terms["main"] if isinstance(terms, dict) and "main" in terms else total


def train_one_epoch(
    model: Any,
    loader: Iterable[tuple[Any, Any]],
    optimizer: Any,
    loss_fn: Callable[[Any, Any], Any],
    *,
    device: str = "cpu",
    logits: Callable[[Any], Tensor] = logits_of,
    epoch: int = 0,
    epochs: int | None = None,
    ema: Any = None,
    callbacks: Sequence[Any] = (),
    state: RunState | None = None,
    stream: TextIO | None = None,
    bar: bool | None = None,
) -> dict[str, float]:
    """Train ``model`` for one pass over ``loader``.

    Args:
        model: a Module; put in training mode here.
        loader: yields ``(images, labels)`` host arrays (a DataLoader).
        optimizer: an ``minigrad.optim`` optimizer over the model's parameters.
        loss_fn: ``loss_fn(outputs, target)`` -> named loss terms with ``"total"`` (what is
            backpropagated) or a scalar Tensor; ``target`` is the batch's host label array
            (``F.cross_entropy`` checks it on the host and copies it to the outputs'
            device, so a GPU step never waits for the device before its backward).
        device: where the images go (the model must already be there).
        logits: picks the logits from the model's outputs (for the accuracy).
        epoch, epochs: for the progress label and the callbacks.
        ema: an ``optim.EMA`` updated after every step (or None).
        callbacks: objects with an optional ``on_step_end(step, epoch, model)``, called after
            backward and before ``optimizer.step()``.
        state: a :class:`RunState` whose ``step``/``batch`` advance after each completed step
            (so an interrupt knows exactly which steps were applied).
        stream, bar: passed to :class:`~minigrad.train.Progress`.

    Returns:
        ``{"loss", "total_loss", "acc", "images_per_s", "time", "steps"}`` over the epoch:
        per-image means of the training-mode outputs, ``loss`` of the main head
        (``terms["main"]``, the loss validation reports; the total when there is no
        ``"main"``), ``total_loss`` of what is backpropagated (with e.g. aux terms). After a
        mid-epoch resume (``state.batch > 0``) they include the steps before the interrupt
        (``state.sums``); images/s, time and steps cover this call only.

    Raises:
        NonFiniteLossError: a NaN/inf loss; that step's update is not applied.
    """
    state = state if state is not None else RunState(epoch=epoch)
    if state.batch == 0:  # a new epoch (else the sums of its steps before a resume)
        state.sums = dict(EPOCH_SUMS)
    model.train()
    total = len(loader) if hasattr(loader, "__len__") else None
    if total is not None and hasattr(loader, "state_dict"):
        total = max(total - int(loader.state_dict().get("batch", 0)), 0)  # mid-epoch resume
    desc = f"epoch {epoch + 1}" + (f"/{epochs}" if epochs else "")
    nonfinite = 0
    # cuda:N: every array of the step (activations, gradients, optimizer state) on device N
    with (
        Progress(total, desc=desc, stream=stream, bar=bar) as progress,
        devices.device_context(device),
    ):
        for x_host, y_host in loader:
            x = tensor(x_host, device=device)
            state.begin_step(model)
            outputs = model(x)
            # host labels: the losses check them on the host, so nothing waits for the GPU
            # before the backward is queued: a GPU loss is read once, after the backward (a
            # host loss before it, so a non-finite one never runs through the backward)
            terms = loss_fn(outputs, y_host)
            loss = total_loss(terms)
            on_gpu = backend.is_cupy_array(loss.data)
            if not on_gpu:
                value = _finite_loss(loss, state, model, epoch, optimizer)
            optimizer.zero_grad()
            loss.backward()
            if on_gpu:
                value = _finite_loss(loss, state, model, epoch, optimizer)
            _call(callbacks, "on_step_end", state.step, epoch, model)
            optimizer.step()
            if ema is not None:
                ema.update()
            state.step += 1
            state.batch += 1
            state.pending = None
            counts = topk_correct(logits(outputs).data, y_host, ks=(1,))
            nonfinite += counts.nonfinite
            main = _main_loss(terms, loss)
            main_value = value if main is loss else float(main.item())
            state.add(len(y_host), int(counts[0]), main_value, value)
            progress.update(len(y_host), main_value, counts[0], _lr(optimizer))
        _warn_nonfinite(f"train_one_epoch (epoch {epoch + 1})", nonfinite, progress.images)
        sums, images = state.sums, max(state.sums["images"], 1)
        return {
            "loss": sums["loss"] / images,
            "total_loss": sums["total_loss"] / images,
            "acc": sums["correct"] / images,
            "images_per_s": progress.images_per_s,
            "time": time.perf_counter() - progress.start,
            "steps": progress.steps,
        }


def evaluate(
    model: Any,
    loader: Iterable[tuple[Any, Any]],
    *,
    device: str = "cpu",
    loss_fn: Callable[[Any, Any], Any] | None = None,
    num_classes: int | None = None,
    ks: Sequence[int] = (1, 5),
    logits: Callable[[Any], Tensor] = logits_of,
    sharded: bool = False,
) -> dict[str, Any]:
    """Accuracy of ``model`` (in eval mode, without gradients) over ``loader``.

    Args:
        model: a Module; left in eval mode.
        loader: yields ``(images, labels)`` host arrays.
        device: where the batches go.
        loss_fn: also report the mean loss of the eval-mode outputs (the main head's,
            ``"main"``, when the loss names one, else its ``"total"``), as training's
            ``loss`` is.
        num_classes: also return the confusion matrix (rows = true class).
        ks: the top-k accuracies to report, as ``top1``, ``top5``, ...
        logits: picks the logits from the model's outputs.
        sharded: ``loader`` holds this rank's shard of the split (disjoint shards that
            together cover it once, e.g. samples ``rank::world_size``): the counts are summed
            over the ranks of :mod:`minigrad.distributed`, so every rank returns the figures
            of the whole split.

    Returns:
        ``{"top1", "top5", ..., "n", "nonfinite"}`` (fractions in [0, 1]; ``nonfinite``
        counts the images whose logits held a NaN/inf, scored as misses, and warns once with
        ``NonFiniteOutputWarning`` when not 0), plus ``"loss"`` and ``"confusion"`` when
        asked for.

    Raises:
        ValueError: the loader (all ranks' shards together) yielded no images.
    """
    model.eval()
    n, loss_sum, nonfinite = 0, 0.0, 0
    hits = np.zeros(len(ks), dtype=np.int64)
    preds, targets = [], []
    with no_grad(), devices.device_context(device):
        for x_host, y_host in loader:
            outputs = model(tensor(x_host, device=device))
            z = logits(outputs)
            if loss_fn is not None:  # host labels, as in train_one_epoch
                terms = loss_fn(outputs, y_host)
                main = _main_loss(terms, total_loss(terms))
                loss_sum += float(main.item()) * len(y_host)
            counts = topk_correct(z.data, y_host, ks)
            hits += counts
            nonfinite += counts.nonfinite
            if num_classes is not None:
                preds.append(backend.as_numpy(z.data.argmax(axis=1)))
                targets.append(np.asarray(y_host))
            n += len(y_host)
    if sharded:
        hits, n, loss_sum, nonfinite = _sum_over_ranks(hits, n, loss_sum, nonfinite)
    if n == 0:  # a score of 0 over no images would be a silent wrong answer
        raise ValueError("evaluate: the loader yielded no images (an empty split)")
    out: dict[str, Any] = {f"top{k}": h / max(n, 1) for k, h in zip(ks, hits)}
    out["n"] = n
    out["nonfinite"] = nonfinite
    _warn_nonfinite("evaluate", nonfinite, n)
    if loss_fn is not None:
        out["loss"] = loss_sum / max(n, 1)
    if num_classes is not None:
        cat = np.concatenate if preds else (lambda _: np.zeros(0, np.int64))
        out["confusion"] = confusion_matrix(cat(preds), cat(targets), num_classes)
        if sharded:
            from minigrad import distributed as dist  # noqa: PLC0415

            out["confusion"] = dist.all_reduce(out["confusion"])
    return out


def _sum_over_ranks(
    hits: np.ndarray, n: int, loss_sum: float, nonfinite: int
) -> tuple[np.ndarray, int, float, int]:
    """The evaluation counts summed over all ranks (one all-reduce, float64: exact for
    counts below 2**53)."""
    from minigrad import distributed as dist  # noqa: PLC0415 - only for a sharded evaluation

    total = dist.all_reduce(np.array([*hits, n, loss_sum, nonfinite], dtype=np.float64))
    k = len(hits)
    return total[:k].round().astype(np.int64), int(total[k]), float(total[k + 1]), int(total[-1])
