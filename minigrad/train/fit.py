"""``fit``: epochs of training and evaluation with checkpoints, logs, curves and exact resume.

    history = fit(model, train_loader, opt, loss_terms, epochs=10, val_loader=test_loader,
                  schedule=sched, ema=ema, out_dir="runs/digits", config=vars(args))

A run folder gets, after every epoch: ``last.npz`` (everything needed to continue),
``best.npz`` (same content, at the best validation top-1), ``metrics.csv``/``metrics.json``
and ``curves.png``. A checkpoint holds the model, optimizer, schedule and EMA states, the
epoch/step position, the RNG state (``minigrad.random.get_rng_state``), the DataLoader's
``state_dict``, the metrics so far and the run config, so ``fit(..., resume="last.npz")``
continues with exactly the batches, dropout masks and updates of an uninterrupted run.

The pieces, one concern each: :func:`resume_run` (continue from a checkpoint or start),
:class:`~minigrad.train.run_folder.RunFolder` (the files: checkpoints, metrics log,
curves), :func:`evaluate_epoch`
and :func:`epoch_row` (evaluation and the metrics row), :func:`on_interrupt` (Ctrl-C),
:func:`on_non_finite` (a NaN/inf loss); :func:`fit` is the loop that ties them together.

* A NaN/inf loss stops the run with :class:`NonFiniteLossError`; nothing is saved, so
  ``last.npz`` stays the last good checkpoint.
* Ctrl-C (``KeyboardInterrupt``) first saves ``last.npz`` at the last completed step (the
  RNG and batch norm statistics of a step cut short are rolled back), then re-raises.
  Resuming continues with the next batch, exactly as if nothing had happened (on the CPU
  and on a GPU: the dropout masks come from a Philox stream whose offset is in the RNG state).
  A second Ctrl-C (or SIGTERM) while that checkpoint is written is held back until it is
  written; a third abandons it, and the message then says that nothing was saved.
* At the end of an epoch ``best.npz`` (when the score is a new best) is written before
  ``last.npz``, and the best score is raised only once ``best.npz`` exists, so the best a
  checkpoint records always names a file that exists. A resumed run whose folder has no
  ``best.npz`` starts its best score afresh, so it writes one.
* The folder is locked for the whole run (:class:`~minigrad.train.run_folder.RunLock`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO

from minigrad import random
from minigrad.checkpoint import load_checkpoint
from minigrad.tensor import Tensor
from minigrad.train.loop import (
    EPOCH_SUMS,
    NonFiniteLossError,
    RunState,
    evaluate,
    train_one_epoch,
)
from minigrad.train.run_folder import RunFolder, RunLock
from minigrad.train.spec import logits_of

__all__ = [
    "InterruptedRun",
    "RunFolder",
    "epoch_row",
    "evaluate_epoch",
    "fit",
    "make_checkpoint",
    "on_interrupt",
    "on_non_finite",
    "restore_checkpoint",
    "resume_run",
]


def make_checkpoint(
    model: Any,
    optimizer: Any,
    state: RunState,
    *,
    schedule: Any = None,
    ema: Any = None,
    loader: Any = None,
    config: dict[str, Any] | None = None,
    interrupted: bool = False,
    epochs: int | None = None,
) -> dict[str, Any]:
    """Everything a checkpoint holds, as the nesting ``save_checkpoint`` writes (``epochs``:
    the length of the run, which a resume with another length re-plans its schedule for)."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict() if schedule is not None else None,
        "ema": ema.state_dict() if ema is not None else None,
        "epoch": state.epoch,
        "step": state.step,
        "best": state.best,
        "rng": random.get_rng_state(),
        "loader": loader.state_dict() if hasattr(loader, "state_dict") else None,
        "metrics": list(state.history),
        "epoch_sums": dict(state.sums),
        "config": dict(config or {}),
        "interrupted": interrupted,
        "epochs": epochs,
    }


def restore_checkpoint(
    ckpt: dict[str, Any] | str | os.PathLike,
    model: Any,
    optimizer: Any = None,
    *,
    schedule: Any = None,
    ema: Any = None,
    loader: Any = None,
) -> RunState:
    """Load a checkpoint (a path or what ``load_checkpoint`` returned) into the run's objects.

    Restores the RNG state last, so nothing that runs afterwards in the caller's setup can
    shift the random stream. Returns the :class:`RunState` to continue from.

    Raises:
        ValueError: the checkpoint lacks a part the caller asks to restore (e.g. an EMA).
    """
    if not isinstance(ckpt, dict):
        ckpt = load_checkpoint(ckpt)
    model.load_state_dict(ckpt["model"])
    for name, obj in (("optimizer", optimizer), ("schedule", schedule), ("ema", ema)):
        if obj is None:
            continue
        if ckpt.get(name) is None:
            raise ValueError(f"restore_checkpoint: the checkpoint has no {name} state to resume")
        obj.load_state_dict(ckpt[name])
    if loader is not None and ckpt.get("loader") is not None:
        loader.load_state_dict(ckpt["loader"])
    if ckpt.get("rng") is not None:
        random.set_rng_state(ckpt["rng"])
    return RunState(
        epoch=int(ckpt["epoch"]),
        step=int(ckpt.get("step", 0)),
        best=float(ckpt.get("best", -1.0)),
        history=[_upgrade_row(r) for r in ckpt.get("metrics") or []],
        sums={**EPOCH_SUMS, **(ckpt.get("epoch_sums") or {})},
    )


def _upgrade_row(row: dict[str, Any]) -> dict[str, Any]:
    """A metrics row of a run from before ``train_total_loss`` existed: its ``train_loss``
    was the total (aux terms included); the main head's was not recorded (None)."""
    if "train_loss" not in row or "train_total_loss" in row:
        return row
    out: dict[str, Any] = {}
    for k, v in row.items():
        out[k] = None if k == "train_loss" else v
        if k == "train_loss":
            out["train_total_loss"] = v
    return out


def _say(stream: TextIO | None, msg: str) -> None:
    print(msg, file=stream if stream is not None else sys.stdout, flush=True)


# ---------------------------------------------------------------------------- resume
def resume_run(
    resume: str | os.PathLike | dict[str, Any] | None,
    model: Any,
    optimizer: Any,
    *,
    schedule: Any = None,
    ema: Any = None,
    loader: Any = None,
    stream: TextIO | None = None,
    epochs: int | None = None,
) -> RunState:
    """The :class:`RunState` to start from: the checkpoint's (restored into the objects and
    announced), or a fresh one at epoch 0 (the loader's shuffling set to epoch 0).

    A run resumed with another length than it was saved with (``epochs``, say 2 after 1)
    keeps the caller's ``schedule`` as built for the new length (a cosine over 2 epochs)
    and takes only its position from the checkpoint, so 1 epoch and a resume to 2 equal 2
    epochs straight."""
    if resume is None:
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(0)
        return RunState()
    if not isinstance(resume, dict):
        resume = load_checkpoint(resume)
    saved_epochs = resume.get("epochs") or (resume.get("config") or {}).get("epochs")
    if schedule is not None and resume.get("schedule") and epochs is not None:
        if saved_epochs is not None and int(saved_epochs) != int(epochs):
            schedule.last_epoch = int(resume["schedule"]["last_epoch"]) - 1
            schedule.step()  # the new length's schedule, at the saved epoch
            resume = {**resume, "schedule": schedule.state_dict()}
    state = restore_checkpoint(resume, model, optimizer, schedule=schedule, ema=ema, loader=loader)
    _say(stream, f"resumed at epoch {state.epoch + 1} (step {state.step})")
    return state


# ---------------------------------------------------------------------------- files
def _run_checkpoint(
    model: Any,
    optimizer: Any,
    state: RunState,
    *,
    loader: Any,
    interrupted: bool = False,
    **parts: Any,
) -> dict[str, Any]:
    """:func:`make_checkpoint`, with the loader at the batches actually applied."""
    ckpt = make_checkpoint(model, optimizer, state, loader=loader, interrupted=interrupted, **parts)
    if ckpt["loader"] is not None:  # the batches actually applied, not those handed out
        ckpt["loader"] = {**ckpt["loader"], "epoch": state.epoch, "batch": state.batch}
    return ckpt


# ---------------------------------------------------------------------------- evaluation
def evaluate_epoch(model: Any, val_loader: Any, ema: Any = None, **kwargs: Any) -> dict:
    """:func:`evaluate` after an epoch, with the EMA's averaged weights when there is one."""
    if ema is None:
        return evaluate(model, val_loader, **kwargs)
    with ema.swap():  # the EMA's own model (inside a DistributedDataParallel ``model``)
        return evaluate(model, val_loader, **kwargs)


def epoch_row(
    epoch: int, lr: float, stats: dict[str, float], result: dict[str, Any] | None
) -> dict[str, Any]:
    """The metrics row of an epoch: training statistics, and validation ones if any.

    ``train_loss`` and ``val_loss`` are both the main head's loss (comparable);
    ``train_total_loss`` is what training backpropagates (with e.g. weighted aux terms).
    """
    row: dict[str, Any] = {
        "epoch": epoch + 1,
        "lr": lr,
        "train_loss": stats["loss"],
        "train_total_loss": stats.get("total_loss", stats["loss"]),
        "train_acc": stats["acc"],
        "images_per_s": stats["images_per_s"],
        "epoch_time": stats["time"],
    }
    if result is not None:
        row.update(val_loss=result["loss"], val_acc=result["top1"], val_top5=result["top5"])
    return row


def _epoch_line(epoch: int, epochs: int, stats: dict[str, float], result: dict) -> str:
    return (
        f"epoch {epoch + 1}/{epochs}: train loss {stats['loss']:.4f} acc {stats['acc']:.4f} "
        f"| test loss {result['loss']:.4f} top-1 {result['top1']:.4f} top-5 "
        f"{result['top5']:.4f} | {stats['time']:.1f} s"
    )


# ---------------------------------------------------------------------------- stops
def _position(state: RunState) -> str:
    """Where the run stands, e.g. "epoch 2, step 6 of the epoch (step 29 of the run)"."""
    return (
        f"epoch {state.epoch + 1}, step {state.batch} of the epoch (step {state.step} of the run)"
    )


def on_non_finite(error: NonFiniteLossError, folder: RunFolder, stream: TextIO | None) -> None:
    """Say that a NaN/inf loss stopped the run, and which checkpoint is the last good one."""
    last = folder.file("last.npz")
    where = f" The last good checkpoint is {last}." if last is not None else ""
    if last is not None and not last.exists():
        where = " No checkpoint was written yet."
    _say(stream, f"stopped: {error}{where}")


@contextlib.contextmanager
def _signals_held(what: str, stream: TextIO | None) -> Iterator[None]:
    """While ``what`` is written, a Ctrl-C or SIGTERM is held back (with a message); a
    second one abandons the write (``KeyboardInterrupt``). Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {"n": 0}

    def hold(signum: int, frame: Any) -> None:
        held["n"] += 1
        if held["n"] > 1:
            raise KeyboardInterrupt(f"signal {signum} while writing {what}")
        _say(stream, f"still writing {what}; press Ctrl-C again to abandon it")

    previous = {s: signal.signal(s, hold) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class InterruptedRun(KeyboardInterrupt):
    """A Ctrl-C or SIGTERM stopped the run; ``saved`` is the checkpoint written at the
    last completed step (None when none could be written); the message says which."""

    def __init__(self, message: str, saved: Any = None) -> None:
        super().__init__(message)
        self.saved = saved


def on_interrupt(
    state: RunState,
    model: Any,
    folder: RunFolder,
    checkpoint: Callable[..., dict[str, Any]],
    stream: TextIO | None,
) -> InterruptedRun:
    """Ctrl-C: undo the step cut short, save ``last.npz`` at the last completed step.

    Returns the :class:`InterruptedRun` to raise: its message says whether ``last.npz`` was
    saved (a second interrupt during the save is held back; a third, or a failed write,
    leaves the previous ``last.npz``, if any, as it was, and the message says so).
    """
    state.undo_pending(model)  # a step cut short leaves no trace
    last = folder.file("last.npz")
    if last is None:
        return InterruptedRun("interrupted")
    try:
        with _signals_held(str(last), stream):
            folder.save("last.npz", checkpoint(interrupted=True))
    except (KeyboardInterrupt, OSError) as e:
        why = "a second interrupt" if isinstance(e, KeyboardInterrupt) else str(e)
        before = (f"{last} is the last checkpoint, from before the interrupt"
                  if last.exists() else "no checkpoint was written")  # fmt: skip
        msg = (f"interrupted at {_position(state)}: last.npz was NOT saved ({why}); "
               f"{before}")  # fmt: skip
        _say(stream, msg)
        return InterruptedRun(msg)
    msg = f"interrupted: saved {last} at {_position(state)}; continue with --resume {last}"
    _say(stream, msg)
    return InterruptedRun(msg, saved=last)


def _end_callbacks(callbacks: Sequence[Any]) -> None:
    for cb in callbacks:
        end = getattr(cb, "on_train_end", None)
        if end is not None:
            end()


# ---------------------------------------------------------------------------- the loop
def fit(
    model: Any,
    train_loader: Any,
    optimizer: Any,
    loss_fn: Callable[[Any, Any], Any],
    *,
    epochs: int,
    val_loader: Any = None,
    schedule: Any = None,
    ema: Any = None,
    device: str = "cpu",
    out_dir: str | os.PathLike | None = None,
    callbacks: Sequence[Any] = (),
    config: dict[str, Any] | None = None,
    resume: str | os.PathLike | dict[str, Any] | None = None,
    num_classes: int | None = None,
    plots: bool = True,
    stream: TextIO | None = None,
    bar: bool | None = None,
    logits: Callable[[Any], Tensor] = logits_of,
    sharded_eval: bool = False,
) -> list[dict[str, Any]]:
    """Train for ``epochs`` epochs (in total, counting resumed ones), evaluating after each.

    Args:
        model, train_loader, optimizer, loss_fn: as in :func:`train_one_epoch` (``loss_fn``
            returns named loss terms with ``"total"``, or a scalar Tensor); the model must
            already be on ``device``.
        epochs: the epoch count the run ends at.
        val_loader: evaluated after every epoch (top-1/top-5, loss); None skips evaluation
            (then ``best.npz`` follows the training accuracy).
        schedule: an LR schedule stepped once per epoch.
        ema: an ``optim.EMA``; when given, evaluation uses the averaged weights (as the
            paper does) and ``best.npz``'s EMA state holds them.
        out_dir: the run folder (None: nothing is written).
        callbacks: objects with optional ``on_step_end(step, epoch, model)`` (after backward,
            before the optimizer step) and ``on_train_end()`` (always called once at the end,
            also after an error or Ctrl-C).
        config: the run's settings, saved in every checkpoint.
        resume: a checkpoint (path or loaded dict) to continue from.
        num_classes: for the validation loss's confusion matrix (unused otherwise).
        plots: write ``curves.png`` after every epoch (needs matplotlib).
        stream, bar: progress output (see :class:`~minigrad.train.Progress`).
        logits: picks the logits from the model's outputs (the accuracy metrics).
        sharded_eval: ``val_loader`` is this rank's shard; the counts are summed over the
            ranks (see :func:`evaluate`).

    Returns:
        The metrics rows of every epoch of the run (resumed ones included).

    Raises:
        NonFiniteLossError: the loss became NaN/inf (``last.npz`` is left as it was).
        InterruptedRun: a ``KeyboardInterrupt`` (Ctrl-C) after ``last.npz`` was saved at the
            last completed step; its message says so, or that it could not be.
        ValueError: ``out_dir`` is in use by another process (:class:`RunLock`).
    """
    state = resume_run(
        resume, model, optimizer, schedule=schedule, ema=ema, loader=train_loader, stream=stream,
        epochs=epochs,
    )  # fmt: skip
    lock = RunLock.acquire(out_dir, flag="fit: out_dir") if out_dir is not None else None
    try:
        return _fit(state, model, train_loader, optimizer, loss_fn, epochs=epochs,
                    val_loader=val_loader, schedule=schedule, ema=ema, device=device,
                    out_dir=out_dir, callbacks=callbacks, config=config,
                    num_classes=num_classes, plots=plots, stream=stream, bar=bar,
                    logits=logits, sharded_eval=sharded_eval)  # fmt: skip
    finally:
        if lock is not None:
            lock.release()


def _fit(
    state: RunState,
    model: Any,
    train_loader: Any,
    optimizer: Any,
    loss_fn: Callable[[Any, Any], Any],
    *,
    epochs: int,
    val_loader: Any,
    schedule: Any,
    ema: Any,
    device: str,
    out_dir: str | os.PathLike | None,
    callbacks: Sequence[Any],
    config: dict[str, Any] | None,
    num_classes: int | None,
    plots: bool,
    stream: TextIO | None,
    bar: bool | None,
    logits: Callable[[Any], Tensor],
    sharded_eval: bool,
) -> list[dict[str, Any]]:
    """:func:`fit`'s loop, with the run folder locked."""
    folder = RunFolder(out_dir, state.history, plots=plots)
    best_file = folder.file("best.npz")
    if best_file is not None and not best_file.exists():
        state.best = -1.0  # the recorded best must name a file: the next epoch writes one
    checkpoint = functools.partial(
        _run_checkpoint, model, optimizer, state, loader=train_loader, schedule=schedule,
        ema=ema, config=config, epochs=epochs,
    )  # fmt: skip
    evaluation = {"device": device, "loss_fn": loss_fn, "num_classes": num_classes,
                  "sharded": sharded_eval}  # fmt: skip
    try:
        while state.epoch < epochs:
            epoch, lr = state.epoch, optimizer.param_groups[0]["lr"]
            position = train_loader.state_dict() if hasattr(train_loader, "state_dict") else {}
            state.batch = int(position.get("batch", 0))
            stats = train_one_epoch(
                model, train_loader, optimizer, loss_fn, device=device, epoch=epoch,
                epochs=epochs, ema=ema, callbacks=callbacks, state=state, stream=stream, bar=bar,
                logits=logits,
            )  # fmt: skip
            result = None
            if val_loader is not None:
                result = evaluate_epoch(model, val_loader, ema, logits=logits, **evaluation)
                _say(stream, _epoch_line(epoch, epochs, stats, result))
            if schedule is not None:  # after evaluation: an interrupt there must not step it twice
                schedule.step()
            row = epoch_row(epoch, lr, stats, result)
            score = result["top1"] if result is not None else stats["acc"]
            state.history.append(row)
            state.epoch, state.batch = epoch + 1, 0
            if score > state.best:  # best.npz first: the best last.npz records names a file
                before, state.best = state.best, score
                try:
                    folder.save("best.npz", checkpoint())
                except BaseException:
                    state.best = before
                    raise
            folder.save("last.npz", checkpoint())
            folder.append(row)  # after the checkpoints: a resume rewrites the log from them
            folder.plot(state.history)
    except NonFiniteLossError as e:
        on_non_finite(e, folder, stream)
        raise
    except KeyboardInterrupt as e:
        if isinstance(e, InterruptedRun):  # already saved (an interrupt inside a callback)
            raise
        raise on_interrupt(state, model, folder, checkpoint, stream) from e  # e: whose stop
    finally:
        _end_callbacks(callbacks)
    return state.history
