"""The ``train`` command: the run config, the run folder, the data, the model, ``fit``.

Under ``mpiexec -n N`` it trains data-parallel (:mod:`minigrad.train.data_parallel`): every rank
runs this code; rank 0 alone prints (:class:`~minigrad.train.console.Console`) and alone
writes the run folder (the three checks of ``world.is_main`` left here decide that work:
the folder's claim, its config, the gradient-norm recorder).
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path
from typing import Any

from minigrad import random
from minigrad.checkpoint import find_checkpoint, load_checkpoint
from minigrad.train import data_parallel, finetune
from minigrad.train.console import Console
from minigrad.train.resolve import (
    DEFAULTS,
    check_splits,
    dataset_info_for,
    load_datasets,
    resolve_config,
    resolve_device,
)
from minigrad.train.restart import record_run_folder, restart_args
from minigrad.train.run_config import (
    check_model_config,
    check_program,
    dataset_bytes,
    printable,
)
from minigrad.train.run_folder import (
    CHECKPOINTS,
    claim_run_folder,
    read_config,
    run_folder_path,
    write_config,
)
from minigrad.train.spec import ModelSpec

__all__ = ["build_optimizer", "train"]


def train(args: argparse.Namespace, spec: ModelSpec) -> int:
    """``train``: build everything from the config, run ``fit``, report the final accuracy.

    The run folder is claimed (locked, see :func:`claim_run_folder`) before anything is
    computed and released at the end; the config of a resumed run is checked before its
    model is built (:func:`check_model_config`).
    """
    world = data_parallel.join_world()  # the MPI world under mpiexec, else one process
    console = Console(world)
    args = restart_args(args)  # a launcher's restart continues the run it was training
    # rank 0 reads what a resume continues and sends it to the others: no shared disk needed
    ckpt, saved, path = data_parallel.from_rank_0(lambda: _start(args, console), world)
    if args.resume:
        args.out = args.out or str(path.parent if path is not None else Path(args.resume))
    if saved is not None:
        check_program(saved, spec, path or Path(args.resume) / "config.json")
        _note_data_dir(saved, args, console)
    if ckpt is not None:
        _check_resumable(ckpt, path, spec)
    cfg = resolve_config(args, spec, saved)
    if saved is not None:  # what the file describes is checked before it is built
        check_model_config(cfg, spec, path or Path(args.resume) / "config.json")
    threads, oversubscribed = data_parallel.rank_threads(cfg["threads"], world)
    if oversubscribed:
        console.warn(oversubscribed)
    device = resolve_device(
        data_parallel.rank_device(cfg["device"], world), cfg["precision"], threads
    )
    if ckpt is not None and int(ckpt["epoch"]) >= cfg["epochs"]:
        done = int(ckpt["epoch"])
        out = run_folder_path(args.out, cfg["dataset"])  # a resume's --out, on every rank
        console.say(f"the run in {out} is complete ({done} of {cfg['epochs']} epochs); to train "
                    f"it longer, pass --resume {out} --epochs N with N > {done}")  # fmt: skip
        return 0
    with contextlib.ExitStack() as stack:
        out = None
        if world.is_main:  # work, not output: rank 0 alone chooses and writes the run folder
            out = run_folder_path(args.out, cfg["dataset"])
            # locked for the whole run; a refused command leaves nothing
            lock = claim_run_folder(out, fresh=ckpt is None, overwrite=args.overwrite,
                                    run_id=cfg.get("run_id"), resumed_from=path)  # fmt: skip
            stack.callback(lock.release)
            record_run_folder(out)  # for the launcher's restarts (nothing without it)
        return _train(args, spec, console, cfg, ckpt, device, out, threads)


def _train(
    args: argparse.Namespace,
    spec: ModelSpec,
    console: Console,
    cfg: dict[str, Any],
    ckpt: dict[str, Any] | None,
    device: str,
    out: Path | None,
    threads: int,
) -> int:
    """:func:`train` once the run folder is claimed (``out``: None on ranks other than 0):
    data, model, ``fit``, the final score."""
    from minigrad import optim  # noqa: PLC0415
    from minigrad.data import DataLoader  # noqa: PLC0415
    from minigrad.train.fit import fit  # noqa: PLC0415
    from minigrad.train.loop import evaluate  # noqa: PLC0415
    from minigrad.train.memory import check_fits  # noqa: PLC0415

    world = console.world
    info = dataset_info_for(cfg)  # every flag that scales memory is checked before loading
    size = dataset_bytes(cfg, info.image_size, info.in_channels)
    check_fits(spec, cfg, info, device=device, dataset_bytes=size,
               batch_size=data_parallel.per_rank_batch(cfg["batch_size"], world))  # fmt: skip
    info, train_set, test_set = load_datasets(cfg)
    check_splits(cfg, train_set, test_set)
    _fit_batch(cfg, len(train_set), fresh=ckpt is None, console=console)
    local_batch = data_parallel.per_rank_batch(cfg["batch_size"], world)
    # work: rank 0 alone writes the config into its folder (a fresh run's; a resume's when
    # the folder is empty, a copy of the run)
    if world.is_main and (ckpt is None or not (out / "config.json").exists()):
        write_config(out, cfg)
    random.manual_seed(cfg["seed"])
    model = spec.build_model(cfg).to(device)
    finetune.prepare(model, cfg, fresh=ckpt is None, stream=console.stream)
    model = data_parallel.wrap_model(model, world, bool(cfg.get("sync_bn")))
    data_parallel.reseed(cfg["seed"], world)  # dropout: a stream of each rank's own
    ckpt = data_parallel.for_this_rank(ckpt, cfg["seed"], world)
    opt, sched = build_optimizer(cfg, model)
    ema = (
        optim.EMA(data_parallel.unwrap(model), decay=cfg["ema"], warmup=True)
        if cfg["ema"]
        else None
    )
    sampler = data_parallel.train_sampler(train_set, cfg["seed"], world)
    train_loader = DataLoader(train_set, local_batch, shuffle=sampler is None, sampler=sampler,
                              drop_last=True, num_workers=cfg["num_workers"],
                              transform=info.train_transform,
                              seed=data_parallel.rank_seed(cfg["seed"], world))  # fmt: skip
    test_loader = DataLoader(data_parallel.eval_shard(test_set, world), 256,
                             num_workers=cfg["num_workers"], transform=info.eval_transform,
                             seed=cfg["seed"])  # fmt: skip
    callbacks = []
    if cfg["grad_norms"] and world.is_main:  # work: rank 0 alone records (into its folder)
        from minigrad.study import GradNormRecorder  # noqa: PLC0415 - optional study tools

        callbacks.append(
            GradNormRecorder(data_parallel.unwrap(model), out, every=cfg["grad_norms"])
        )
    n_params = sum(int(p.data.size) for p in model.parameters())
    about = f" ({spec.describe(cfg)})" if spec.describe is not None else ""
    ranks = f"; {world.size} ranks x {local_batch} images per step" if world.size > 1 else ""
    cpu = f" ({data_parallel.threads_note(threads, world)})" if device == "cpu" else ""
    console.say(f"{cfg['dataset']}: {len(train_set)} train / {len(test_set)} test images "
                f"{info.in_channels}x{info.image_size}x{info.image_size}; model {n_params} "
                f"parameters{about}; device {device}{cpu}{ranks}; run folder {out}")  # fmt: skip
    start = time.perf_counter()
    try:
        fit(model, train_loader, opt, spec.loss(cfg), epochs=cfg["epochs"],
            val_loader=test_loader, schedule=sched, ema=ema, device=device, out_dir=out,
            callbacks=callbacks, config=cfg, resume=ckpt, plots=not args.no_plots,
            logits=spec.logits, stream=console.stream, bar=console.bar,
            sharded_eval=world.size > 1)  # fmt: skip
    except FloatingPointError as e:
        console.stopping(e)
        raise
    with ema.swap() if ema is not None else contextlib.nullcontext():
        final = evaluate(model, test_loader, device=device, logits=spec.logits,
                         sharded=world.size > 1)  # fmt: skip
    n = cfg["epochs"]
    console.say(f"final test accuracy: top-1 {final['top1']:.4f}, top-5 {final['top5']:.4f} "
                f"({final['n']} images) after {n} epoch{'s' * (n != 1)}; training took "
                f"{time.perf_counter() - start:.1f} s; checkpoints in {out}")  # fmt: skip
    return 0


def _start(
    args: argparse.Namespace, console: Console
) -> tuple[dict[str, Any] | None, dict | None, Path | None]:
    """What ``train --resume`` continues: (the checkpoint, the saved config, its path).

    A run folder killed before its first checkpoint holds only ``config.json``: it starts
    again from that config (no checkpoint, the saved config)."""
    if not args.resume:
        return None, None, None
    folder = Path(args.resume)
    if folder.is_dir() and not any((folder / n).exists() for n in CHECKPOINTS):
        saved = read_config(folder)
        if saved is not None:
            console.say(f"{folder} holds no checkpoint yet (its run stopped before saving "
                        "one); starting it from its config.json")  # fmt: skip
            args.out = args.out or str(folder)
            return None, saved, None
    path = find_checkpoint(args.resume, ("last.npz",))
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt.get("config"), dict) or "epoch" not in ckpt:
        raise ValueError(f"{path} holds no run config or epoch (not a checkpoint of train)")
    args.out = args.out or str(path.parent)
    return ckpt, ckpt["config"], path


def _check_resumable(ckpt: dict[str, Any], path: Any, spec: ModelSpec) -> None:
    """A checkpoint to resume holds the parts and run-config keys the trainer reads, so a
    damaged or foreign one is one line naming the file, not a KeyError from deep inside."""
    config = ckpt.get("config")
    missing = [k for k in ("config", "epoch", "model") if ckpt.get(k) is None]
    if not missing and not isinstance(config, dict):
        missing = ["config (a dict)"]
    if not missing:
        keys = {*DEFAULTS, *spec.defaults, "num_classes", "in_channels"}
        missing = [f"config[{k!r}]" for k in sorted(keys - set(config))]
    if missing:
        raise ValueError(
            f"--resume {path}: the checkpoint lacks {', '.join(missing)}; it is damaged or was "
            "not written by this program's train command, resume from another checkpoint"
        )


def _note_data_dir(saved: dict[str, Any], args: argparse.Namespace, console: Console) -> None:
    """Say so when a resumed run's recorded data folder or download is not reused."""
    for key, flag in (("data_dir", "--data-dir"), ("download", "--download")):
        if saved.get(key) and getattr(args, key) is None:
            value = "" if key == "download" else f" {printable(saved[key])}"
            console.warn(f"note: the run was started with {flag}{value}; a checkpoint never "
                         f"chooses a folder or a download, so pass {flag}{value} again to use "
                         "it")  # fmt: skip


def _fit_batch(cfg: dict[str, Any], n_train: int, fresh: bool, console: Console) -> None:
    """A batch larger than the training split would give epochs of zero steps (the loader
    drops the last incomplete batch): a fresh run shrinks it to the split, with a warning."""
    if cfg["batch_size"] <= n_train:
        return
    if not fresh:  # the saved config was already checked when the run began
        raise ValueError(f"--batch-size {cfg['batch_size']} exceeds the {n_train} training images")
    console.warn(f"warning: --batch-size {cfg['batch_size']} is larger than the {n_train} "
                 f"training images; using --batch-size {n_train}")  # fmt: skip
    cfg["batch_size"] = n_train


def build_optimizer(cfg: dict[str, Any], model: Any) -> tuple[Any, Any]:
    """The optimizer (``--optimizer``, ``--lr``, ``--momentum``, ``--weight-decay``) over the
    trainable parameters, and its schedule (``--schedule`` after ``--warmup`` epochs)."""
    from minigrad import optim  # noqa: PLC0415

    # the trainable parameters; with --backbone-lr-scale, the loaded ones in their own group
    params = finetune.param_groups(data_parallel.unwrap(model), cfg)
    lr, wd = cfg["lr"], cfg["weight_decay"]
    if cfg["optimizer"] == "sgd":
        opt = optim.SGD(params, lr=lr, momentum=cfg["momentum"], weight_decay=wd,
                        nesterov=cfg["momentum"] > 0)  # fmt: skip
    elif cfg["optimizer"] == "adam":
        opt = optim.Adam(params, lr=lr, weight_decay=wd)
    else:
        opt = optim.AdamW(params, lr=lr, weight_decay=wd)
    main_epochs = max(cfg["epochs"] - cfg["warmup"], 1)
    after = {
        "cosine": lambda: optim.CosineAnnealingLR(opt, T_max=main_epochs),
        "paper": lambda: optim.PaperSchedule(opt),
        "step": lambda: optim.StepLR(opt, step_size=max(main_epochs // 3, 1), gamma=0.1),
        "constant": lambda: optim.StepLR(opt, step_size=1, gamma=1.0),
    }[cfg["schedule"]]()
    sched = optim.LinearWarmup(opt, cfg["warmup"], after=after) if cfg["warmup"] else after
    return opt, sched
