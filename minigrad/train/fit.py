"""``fit``: epochs of training and evaluation with checkpoints, logs, curves and exact resume.

    history = fit(model, train_loader, opt, loss_fn, epochs=10, val_loader=test_loader,
                  schedule=sched, ema=ema, out_dir="runs/digits", config=vars(args))

A run folder gets, after every epoch: ``last.npz`` (everything needed to continue),
``best.npz`` (same content, at the best validation top-1), ``metrics.csv``/``metrics.json``
and ``curves.png``. A checkpoint holds the model, optimizer, schedule and EMA states, the
epoch/step position, the RNG state (``minigrad.backend.get_rng_state``), the DataLoader's
``state_dict``, the metrics so far and the run config, so ``fit(..., resume="last.npz")``
continues with exactly the batches, dropout masks and updates of an uninterrupted run.

* A NaN/inf loss stops the run with :class:`NonFiniteLossError`; nothing is saved, so
  ``last.npz`` stays the last good checkpoint.
* Ctrl-C (``KeyboardInterrupt``) first saves ``last.npz`` at the last completed step (the
  RNG and batch norm statistics of a step cut short are rolled back), then re-raises.
  Resuming continues with the next batch, exactly as if nothing had happened (on the CPU
  and on a GPU: the dropout masks come from a Philox stream whose offset is in the RNG state).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from minigrad import backend
from minigrad.checkpoint import load_checkpoint, save_checkpoint
from minigrad.tensor import Tensor
from minigrad.train.loop import NonFiniteLossError, RunState, evaluate, train_one_epoch
from minigrad.train.metrics import MetricLog

__all__ = ["fit", "make_checkpoint", "restore_checkpoint"]


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
) -> dict[str, Any]:
    """Everything a checkpoint holds, as the nesting ``save_checkpoint`` writes."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict() if schedule is not None else None,
        "ema": ema.state_dict() if ema is not None else None,
        "epoch": state.epoch,
        "step": state.step,
        "best": state.best,
        "rng": backend.get_rng_state(),
        "loader": loader.state_dict() if hasattr(loader, "state_dict") else None,
        "metrics": list(state.history),
        "config": dict(config or {}),
        "interrupted": interrupted,
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
        backend.set_rng_state(ckpt["rng"])
    return RunState(
        epoch=int(ckpt["epoch"]),
        step=int(ckpt.get("step", 0)),
        best=float(ckpt.get("best", -1.0)),
        history=list(ckpt.get("metrics") or []),
    )


def _say(stream: TextIO | None, msg: str) -> None:
    print(msg, file=stream if stream is not None else sys.stdout, flush=True)


def fit(
    model: Any,
    train_loader: Any,
    optimizer: Any,
    loss_fn: Callable[[Any, Tensor], Tensor],
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
) -> list[dict[str, Any]]:
    """Train for ``epochs`` epochs (in total, counting resumed ones), evaluating after each.

    Args:
        model, train_loader, optimizer, loss_fn: as in :func:`train_one_epoch`; the model
            must already be on ``device``.
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

    Returns:
        The metrics rows of every epoch of the run (resumed ones included).

    Raises:
        NonFiniteLossError: the loss became NaN/inf (``last.npz`` is left as it was).
        KeyboardInterrupt: after ``last.npz`` was saved.
    """
    out = Path(out_dir) if out_dir is not None else None
    if resume is not None:
        state = restore_checkpoint(
            resume, model, optimizer, schedule=schedule, ema=ema, loader=train_loader
        )
        _say(stream, f"resumed at epoch {state.epoch + 1} (step {state.step})")
    else:
        state = RunState()
        if hasattr(train_loader, "set_epoch"):
            train_loader.set_epoch(0)
    log = MetricLog(out, resume=False) if out is not None else None
    if log is not None and state.history:
        log.rows = list(state.history)
        log.truncate(len(state.history))

    def save(name: str, interrupted: bool = False) -> None:
        if out is None:
            return
        ckpt = make_checkpoint(
            model, optimizer, state, schedule=schedule, ema=ema, loader=train_loader,
            config=config, interrupted=interrupted,
        )  # fmt: skip
        if ckpt["loader"] is not None:  # the batches actually applied, not those handed out
            ckpt["loader"] = {**ckpt["loader"], "epoch": state.epoch, "batch": state.batch}
        save_checkpoint(out / name, **ckpt)

    try:
        while state.epoch < epochs:
            epoch = state.epoch
            position = train_loader.state_dict() if hasattr(train_loader, "state_dict") else {}
            state.batch = int(position.get("batch", 0))
            lr = optimizer.param_groups[0]["lr"]
            stats = train_one_epoch(
                model, train_loader, optimizer, loss_fn, device=device, epoch=epoch,
                epochs=epochs, ema=ema, callbacks=callbacks, state=state, stream=stream, bar=bar,
            )  # fmt: skip
            row: dict[str, Any] = {
                "epoch": epoch + 1,
                "lr": lr,
                "train_loss": stats["loss"],
                "train_acc": stats["acc"],
                "images_per_s": stats["images_per_s"],
                "epoch_time": stats["time"],
            }
            if val_loader is not None:
                kw = {"device": device, "loss_fn": loss_fn, "num_classes": num_classes}
                if ema is not None:
                    with ema.swap(model):
                        result = evaluate(model, val_loader, **kw)
                else:
                    result = evaluate(model, val_loader, **kw)
                row.update(val_loss=result["loss"], val_acc=result["top1"], val_top5=result["top5"])
                score = result["top1"]
                _say(
                    stream,
                    f"epoch {epoch + 1}/{epochs}: train loss {stats['loss']:.4f} acc "
                    f"{stats['acc']:.4f} | test loss {result['loss']:.4f} top-1 "
                    f"{result['top1']:.4f} top-5 {result['top5']:.4f} | {stats['time']:.1f} s",
                )
            else:
                score = stats["acc"]
            if schedule is not None:  # after evaluation: an interrupt there must not step it twice
                schedule.step()
            state.history.append(row)
            state.epoch, state.batch = epoch + 1, 0
            is_best = score > state.best
            state.best = max(state.best, score)
            if log is not None:
                log.append(row)
            save("last.npz")
            if is_best:
                save("best.npz")
            if plots and out is not None:
                from minigrad.train.plots import plot_curves  # noqa: PLC0415 - matplotlib

                plot_curves(state.history, out / "curves.png")
    except NonFiniteLossError as e:
        where = f" The last good checkpoint is {out / 'last.npz'}." if out is not None else ""
        if out is not None and not (out / "last.npz").exists():
            where = " No checkpoint was written yet."
        _say(stream, f"stopped: {e}{where}")
        raise
    except KeyboardInterrupt:
        state.undo_pending(model)  # a step cut short leaves no trace
        save("last.npz", interrupted=True)
        if out is not None:
            _say(
                stream,
                f"interrupted: saved {out / 'last.npz'} at epoch {state.epoch + 1}, step "
                f"{state.step}; continue with --resume {out / 'last.npz'}",
            )
        raise
    finally:
        for cb in callbacks:
            end = getattr(cb, "on_train_end", None)
            if end is not None:
                end()
    return state.history
