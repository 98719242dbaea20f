"""The ``train`` / ``eval`` / ``predict`` command line of an application's model.

``main(argv, spec)`` builds the command from a :class:`~minigrad.train.spec.ModelSpec`: the
model's factory, its own argument group and defaults, its loss terms and its metrics all
come from the application; the flags here are the generic ones (data, optimizer, schedule,
device, run folder). The run config (a plain dict saved in every checkpoint) holds both;
``spec.build_model`` reads it, e.g. ``num_classes``, ``in_channels`` and the model's options.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from minigrad import devices, random
from minigrad.checkpoint import find_checkpoint, load_checkpoint, load_for_inference
from minigrad.train import finetune, parallel
from minigrad.train.restart import record_run_folder, restart_args
from minigrad.train.run_config import (
    FROM_FLAGS_ONLY,
    check_model_config,
    check_program,
    checked_builder,
    dataset_bytes,
    printable,
)
from minigrad.train.run_folder import (
    CHECKPOINTS,
    claim_run_folder,
    new_run_id,
    read_config,
    run_folder_path,
    write_config,
)
from minigrad.train.spec import ModelSpec

__all__ = [
    "DEFAULTS",
    "EXIT_CODES",
    "build_parser",
    "finite_float",
    "main",
    "non_negative_float",
    "non_negative_int",
    "positive_float",
    "positive_int",
    "resolve_config",
]

# what the generic flags default to when not given (the application's ModelSpec adds its
# model's defaults and may override any of these per dataset)
DEFAULTS: dict[str, Any] = {
    "dataset": "digits", "data_dir": None, "download": False, "image_size": None,
    "epochs": 30, "batch_size": 128, "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4,
    "schedule": "cosine", "warmup": 0, "optimizer": "sgd", "device": None, "seed": 0,
    "ema": None, "precision": "float32", "num_workers": None, "grad_norms": None,
    "limit": None, "threads": None, "sync_bn": False,
}  # fmt: skip
# the process's exit status, so scripts can tell the outcomes apart (also in --help)
EXIT_CODES: dict[int, str] = {
    0: "done",
    1: "internal error (a bug: the traceback is printed)",
    2: "usage or input error (a bad flag value, a missing or unreadable file, an --out "
    "that cannot be written or already holds a run, a bad image in predict)",
    3: "stopped: the training loss became NaN/inf (last.npz is the last good checkpoint)",
    130: "interrupted by Ctrl-C or SIGTERM (the last line says whether a resumable last.npz "
    "was saved)",
}
# flags that may change when a run is resumed; the others must match the checkpoint
RESUMABLE = {"epochs", "device", "num_workers", "grad_norms", "precision", "data_dir", "download",
             "threads", "sync_bn"}  # fmt: skip


def _number(text: str, kind: type) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def positive_int(text: str) -> int:
    """An argparse ``type``: an int >= 1 (the error names the flag)."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An argparse ``type``: an int >= 0."""
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def finite_float(text: str) -> float:
    """An argparse ``type``: a finite float (no nan/inf)."""
    return _number(text, float)


def positive_float(text: str) -> float:
    """An argparse ``type``: a finite float > 0."""
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value:g}")
    return value


def non_negative_float(text: str) -> float:
    """An argparse ``type``: a finite float >= 0."""
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value:g}")
    return value


def _unit_interval(text: str) -> float:
    value = _number(text, float)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value:g}")
    return value


def _epilog() -> str:
    import textwrap  # noqa: PLC0415

    codes = "\n".join(
        textwrap.fill(what, 79, initial_indent=f"  {code:>3}  ", subsequent_indent=" " * 7)
        for code, what in EXIT_CODES.items()
    )
    return f"exit status:\n{codes}"


def _add_data_flags(p: argparse.ArgumentParser, evaluating: bool = False) -> None:
    from minigrad.data import DATASET_NAMES  # noqa: PLC0415

    about = "default: the checkpoint's" if evaluating else "default: digits (embedded)"
    p.add_argument("--dataset", choices=DATASET_NAMES, help=about)
    p.add_argument("--data-dir", help="dataset folder (default: $MINIGRAD_DATA, "
                   "else ~/.cache/minigrad)")  # fmt: skip
    p.add_argument("--download", action="store_true", default=None, help="fetch missing files")
    p.add_argument("--image-size", type=positive_int,
                   help="input side (digits 16, imagenette 128)")  # fmt: skip
    batch = (
        "images per batch (default 256)"
        if evaluating
        else "images per step (default 128; digits 64); under mpiexec -n N the global batch, "
        "N must divide it"
    )
    p.add_argument("--batch-size", type=positive_int, help=batch)
    p.add_argument("--num-workers", type=non_negative_int,
                   help="loader threads (default 0; imagenette 4)")  # fmt: skip
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: best available)")
    p.add_argument("--threads", type=positive_int,
                   help="CPU threads for the ops (default: the available cores; under "
                   "mpiexec divided among the ranks on each machine)")  # fmt: skip
    limit = ("score only N test images (default: the whole split)" if evaluating
             else "use only N images of each split (quick trials)")  # fmt: skip
    p.add_argument("--limit", type=positive_int, help=limit)


def build_parser(spec: ModelSpec) -> argparse.ArgumentParser:
    """``train`` (the default), ``eval``, ``predict`` (and a ``study`` entry for ``--help``).

    ``train`` gets the generic flags and, in a group of its own, the model's
    (``spec.add_arguments``).
    """
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog=spec.prog,
        description=f"{spec.description}\nThe command defaults to train: `{spec.prog} "
        f"--epochs 2` is `{spec.prog} train --epochs 2`.",
        epilog=_epilog(),
        formatter_class=fmt,
    )
    sub = parser.add_subparsers(dest="command", metavar="{train,eval,predict,study}",
                                title="commands (default: train)")  # fmt: skip
    t = sub.add_parser("train", help="train a model (the default command)", epilog=_epilog(),
                       formatter_class=fmt)  # fmt: skip
    _add_data_flags(t)
    t.add_argument("--epochs", type=positive_int, help="epochs in total (default 30; digits 8)")
    t.add_argument("--lr", type=positive_float, help="peak learning rate (default 0.05)")
    t.add_argument("--momentum", type=_unit_interval, help="SGD momentum (default 0.9)")
    t.add_argument("--weight-decay", type=non_negative_float,
                   help="L2 / decoupled decay (default 5e-4)")  # fmt: skip
    t.add_argument(
        "--schedule",
        choices=("cosine", "paper", "step", "constant"),
        help="per-epoch LR schedule; paper = -4%% every 8 epochs (default cosine)",
    )
    t.add_argument("--warmup", type=non_negative_int, help="epochs of linear LR warmup (default 0)")
    t.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), help="default sgd")
    t.add_argument("--seed", type=non_negative_int,
                   help="seed of weights, shuffling, dropout (default 0)")  # fmt: skip
    t.add_argument(
        "--ema",
        type=_unit_interval,
        metavar="DECAY",
        help="evaluate with an EMA of the weights, e.g. 0.999 (default off)",
    )
    t.add_argument("--precision", choices=("float32", "tf32"), help="tf32: CUDA matmuls only")
    t.add_argument(
        "--grad-norms",
        type=positive_int,
        metavar="N",
        help="record per-layer gradient norms every N steps (minigrad.study)",
    )
    t.add_argument("--resume", metavar="CKPT_OR_DIR",
                   help="continue from a checkpoint (or a run folder's last.npz)")  # fmt: skip
    t.add_argument("--out", help="run folder (default runs/DATASET, -2, -3 ... if taken); "
                   "an existing run there is never overwritten unless --overwrite")  # fmt: skip
    t.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in --out (its checkpoints and metrics)",
    )
    t.add_argument("--no-plots", action="store_true", help="do not write curves.png")
    t.add_argument(
        "--sync-bn",
        action="store_true",
        default=None,
        help="batch norm statistics over all ranks (SyncBatchNorm; for mpiexec runs)",
    )
    spec.add_arguments(t.add_argument_group("model", "the model's own options"))
    finetune.add_weights_arguments(t, train=True)
    e = sub.add_parser("eval", help="top-1/top-5 on the test split + confusion matrix PNG",
                       epilog=_epilog(), formatter_class=fmt)  # fmt: skip
    e.add_argument(
        "checkpoint",
        nargs="?",
        help="a .npz from train, or a run folder (its best.npz, else last.npz)",
    )
    e.add_argument("--resume", metavar="CKPT_OR_DIR", help="same as the positional checkpoint")
    _add_data_flags(e, evaluating=True)
    e.add_argument("--out", help="folder for confusion.png (default: the checkpoint's)")
    e.add_argument("--crops", type=int, choices=(1, 10, 144), default=1,
                   help="test-time crops per image, softmax averaged: 1 (centre), 10 (corners "
                   "and centre, mirrored), 144 (the paper's: 4 scales x 3 squares x 6 crops x "
                   "2 mirrors); default 1")  # fmt: skip
    finetune.add_weights_arguments(e)
    sub.add_parser("study", add_help=False,
                   help="gradient flow per layer, branch and loss (study --help)")  # fmt: skip
    pr = sub.add_parser("predict", help="top-5 classes of image files", epilog=_epilog(),
                        formatter_class=fmt)  # fmt: skip
    pr.add_argument("images", nargs="+", help="image files (anything Pillow opens)")
    pr.add_argument("--resume", "--checkpoint", dest="checkpoint",
                    metavar="CKPT_OR_DIR",
                    help="the trained model: a .npz from train, or a run folder (its "
                    "best.npz, else last.npz); or --weights")  # fmt: skip
    pr.add_argument("--device", help="cpu or cuda (default cpu)")
    pr.add_argument(
        "--top",
        type=positive_int,
        default=5,
        help="classes to print per image, 1 to the class count (default 5)",
    )
    pr.add_argument("--dataset", help="the classes of --weights (default: ImageNet's 1,000)")
    finetune.add_weights_arguments(pr, download=True)
    return parser


def resolve_config(
    args: argparse.Namespace, spec: ModelSpec, saved: dict[str, Any] | None = None
) -> dict:
    """The run config: given flags, else the checkpoint's (resume), else the defaults
    (the model's per-dataset ones first, then the generic and the model's own).

    Raises:
        ValueError: a flag that would change the model or data of a resumed run.
    """
    known = {**DEFAULTS, **finetune.FINETUNE_DEFAULTS, **spec.defaults}
    given = {k: v for k, v in vars(args).items() if k in known and v is not None}
    if saved:
        for k, v in given.items():
            if k not in RESUMABLE and k in saved and saved[k] != v:
                flag = "--" + k.replace("_", "-")
                raise ValueError(f"--resume: {flag} {v} differs from the checkpoint's "
                                 f"{printable(saved[k])}")  # fmt: skip
        # a path or a network action comes from the user's flags, never from the file
        mine = {k: given.get(k, v) for k, v in FROM_FLAGS_ONLY.items()}
        return {**saved, **{k: v for k, v in given.items() if k in RESUMABLE}, **mine}
    from minigrad.data import dataset_info  # noqa: PLC0415

    name = dataset_info(given.get("dataset", DEFAULTS["dataset"])).name
    implied = {}  # the model options of --weights (its class count is the dataset's here)
    if given.get("weights"):
        path = finetune.resolve_weights_path(given["weights"], spec, bool(given.get("download")))
        given["weights"] = str(path)
        implied = finetune.options_from_weights(spec, finetune.read_weights(path))
        implied.pop("num_classes", None)
    cfg = {**known, **spec.dataset_defaults.get(name, {}), **implied, **given, "dataset": name}
    cfg.update(program=spec.prog, model=spec.model or None, run_id=new_run_id())
    info = _info(cfg)
    cfg.update(num_classes=info.num_classes, in_channels=info.in_channels,
               image_size=info.image_size, class_names=list(info.class_names))  # fmt: skip
    if spec.configure is not None:
        spec.configure(cfg, info)
    if cfg["num_workers"] is None:
        cfg["num_workers"] = 4 if name == "imagenette" else 0
    return cfg


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


def _info(cfg: dict[str, Any]) -> Any:
    from minigrad.data import SIZED_DATASETS, dataset_info  # noqa: PLC0415

    size = cfg.get("image_size") if cfg["dataset"] in SIZED_DATASETS else None
    return dataset_info(cfg["dataset"], image_size=size)


def _device(requested: str | None, precision: str = "float32", threads: int | None = None) -> str:
    device = devices.normalize_device(requested or devices.default_device())
    if precision == "tf32":
        if device == "cpu":
            raise ValueError("--precision tf32 needs a CUDA device (NumPy on the CPU has no TF32)")
        devices.set_tf32(True)
    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be positive, got {threads}")
    if device == "cpu":  # malloc keeps freed pages, BLAS on 1 thread, chunks on all cores
        from minigrad import runtime  # noqa: PLC0415

        runtime.configure_cpu_training(threads)
    return device


def _datasets(cfg: dict[str, Any], train: bool = True) -> tuple[Any, Any, Any]:
    from minigrad.data import Subset, get_dataset  # noqa: PLC0415

    info = _info(cfg)
    kw = {"root": cfg.get("data_dir"), "download": bool(cfg.get("download"))}
    if info.size_can_be_set:
        kw["image_size"] = info.image_size
    splits = [
        get_dataset(cfg["dataset"], train=s, **kw) for s in ((True, False) if train else (False,))
    ]
    if cfg.get("limit"):
        pick = [np.random.default_rng(0).permutation(len(d))[: cfg["limit"]] for d in splits]
        splits = [Subset(d, np.sort(i)) for d, i in zip(splits, pick)]
    return info, splits[0], splits[-1]


def _optimizer(cfg: dict[str, Any], model: Any) -> tuple[Any, Any]:
    from minigrad import optim  # noqa: PLC0415

    # the trainable parameters; with --backbone-lr-scale, the loaded ones in their own group
    params = finetune.param_groups(parallel.unwrap(model), cfg)
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


def _fit_batch(cfg: dict[str, Any], n_train: int, fresh: bool) -> None:
    """A batch larger than the training split would give epochs of zero steps (the loader
    drops the last incomplete batch): a fresh run shrinks it to the split, with a warning."""
    if cfg["batch_size"] <= n_train:
        return
    if not fresh:  # the saved config was already checked when the run began
        raise ValueError(f"--batch-size {cfg['batch_size']} exceeds the {n_train} training images")
    print(f"warning: --batch-size {cfg['batch_size']} is larger than the {n_train} training "
          f"images; using --batch-size {n_train}", file=sys.stderr)  # fmt: skip
    cfg["batch_size"] = n_train


def _check_splits(cfg: dict[str, Any], train_set: Any, test_set: Any) -> None:
    """An empty split is an error: no step to train, or nothing to score (not top-1 0)."""
    for split, data in (("training", train_set), ("test", test_set)):
        if data is not None and len(data) == 0:
            where = f" in {cfg['data_dir']}" if cfg.get("data_dir") else ""
            raise ValueError(f"the {split} split of {cfg['dataset']}{where} is empty; "
                             "there is nothing to " + ("train on" if split == "training"
                                                      else "evaluate"))  # fmt: skip


def _start(
    args: argparse.Namespace, say: bool = True
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
            if say:
                print(f"{folder} holds no checkpoint yet (its run stopped before saving one); "
                      "starting it from its config.json", flush=True)  # fmt: skip
            args.out = args.out or str(folder)
            return None, saved, None
    path = find_checkpoint(args.resume, ("last.npz",))
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt.get("config"), dict) or "epoch" not in ckpt:
        raise ValueError(f"{path} holds no run config or epoch (not a checkpoint of train)")
    args.out = args.out or str(path.parent)
    return ckpt, ckpt["config"], path


def train(args: argparse.Namespace, spec: ModelSpec) -> int:
    """``train``: build everything from the config, run ``fit``, report the final accuracy.

    The run folder is claimed (locked, see :func:`claim_run_folder`) before anything is
    computed and released at the end; the config of a resumed run is checked before its
    model is built (:func:`check_model_config`).
    """
    world = parallel.world()  # the MPI world under mpiexec, else one process
    args = restart_args(args)  # a launcher's restart continues the run it was training
    # rank 0 reads what a resume continues and sends it to the others: no shared disk needed
    ckpt, saved, path = parallel.from_rank_0(lambda: _start(args, say=True), world)
    if args.resume:
        args.out = args.out or str(path.parent if path is not None else Path(args.resume))
    if saved is not None:
        check_program(saved, spec, path or Path(args.resume) / "config.json")
        if world.is_main:
            _note_data_dir(saved, args)
    if ckpt is not None:
        _check_resumable(ckpt, path, spec)
    cfg = resolve_config(args, spec, saved)
    if saved is not None:  # what the file describes is checked before it is built
        check_model_config(cfg, spec, path or Path(args.resume) / "config.json")
    threads, oversubscribed = parallel.rank_threads(cfg["threads"], world)
    if oversubscribed and world.is_main:
        print(oversubscribed, file=sys.stderr)
    device = _device(parallel.rank_device(cfg["device"], world), cfg["precision"], threads)
    out = run_folder_path(args.out, cfg["dataset"]) if world.is_main else None  # rank 0 writes
    if ckpt is not None and int(ckpt["epoch"]) >= cfg["epochs"]:
        done = int(ckpt["epoch"])
        if world.is_main:
            print(f"the run in {out} is complete ({done} of {cfg['epochs']} epochs); to train "
                  f"it longer, pass --resume {out} --epochs N with N > {done}")  # fmt: skip
        return 0
    with contextlib.ExitStack() as stack:
        if world.is_main:  # locked for the whole run; a refused command leaves nothing
            lock = claim_run_folder(out, fresh=ckpt is None, overwrite=args.overwrite,
                                    run_id=cfg.get("run_id"), resumed_from=path)  # fmt: skip
            stack.callback(lock.release)
            record_run_folder(out)  # for the launcher's restarts (nothing without it)
        return _train(args, spec, world, cfg, ckpt, device, out, threads)


def _note_data_dir(saved: dict[str, Any], args: argparse.Namespace) -> None:
    """Say so when a resumed run's recorded data folder or download is not reused."""
    for key, flag in (("data_dir", "--data-dir"), ("download", "--download")):
        if saved.get(key) and getattr(args, key) is None:
            value = "" if key == "download" else f" {printable(saved[key])}"
            print(f"note: the run was started with {flag}{value}; a checkpoint never chooses "
                  f"a folder or a download, so pass {flag}{value} again to use it",
                  file=sys.stderr)  # fmt: skip


def _train(
    args: argparse.Namespace,
    spec: ModelSpec,
    world: Any,
    cfg: dict[str, Any],
    ckpt: dict[str, Any] | None,
    device: str,
    out: Path | None,
    threads: int,
) -> int:
    """:func:`train` once the run folder is claimed: data, model, ``fit``, the final score."""
    from minigrad import optim  # noqa: PLC0415
    from minigrad.data import DataLoader  # noqa: PLC0415
    from minigrad.train.fit import fit  # noqa: PLC0415
    from minigrad.train.loop import evaluate  # noqa: PLC0415
    from minigrad.train.memory import check_fits  # noqa: PLC0415

    info = _info(cfg)  # every flag that scales memory is checked before anything is loaded
    size = dataset_bytes(cfg, info.image_size, info.in_channels)
    check_fits(spec, cfg, info, device=device, dataset_bytes=size,
               batch_size=parallel.per_rank_batch(cfg["batch_size"], world))  # fmt: skip
    info, train_set, test_set = _datasets(cfg)
    _check_splits(cfg, train_set, test_set)
    _fit_batch(cfg, len(train_set), fresh=ckpt is None)
    local_batch = parallel.per_rank_batch(cfg["batch_size"], world)
    if ckpt is None and world.is_main:
        write_config(out, cfg)
    elif world.is_main and not (out / "config.json").exists():
        write_config(out, cfg)  # a resume into an empty folder: the copy gets its config
    random.manual_seed(cfg["seed"])
    model = spec.build_model(cfg).to(device)
    finetune.prepare(model, cfg, fresh=ckpt is None, stream=parallel.quiet_stream(world))
    model = parallel.wrap_model(model, world, bool(cfg.get("sync_bn")))
    parallel.reseed(cfg["seed"], world)  # dropout: a stream of each rank's own
    ckpt = parallel.for_this_rank(ckpt, cfg["seed"], world)
    opt, sched = _optimizer(cfg, model)
    ema = optim.EMA(parallel.unwrap(model), decay=cfg["ema"], warmup=True) if cfg["ema"] else None
    sampler = parallel.train_sampler(train_set, cfg["seed"], world)
    train_loader = DataLoader(train_set, local_batch, shuffle=sampler is None, sampler=sampler,
                              drop_last=True, num_workers=cfg["num_workers"],
                              transform=info.train_transform,
                              seed=parallel.rank_seed(cfg["seed"], world))  # fmt: skip
    test_loader = DataLoader(parallel.eval_shard(test_set, world), 256,
                             num_workers=cfg["num_workers"], transform=info.eval_transform,
                             seed=cfg["seed"])  # fmt: skip
    callbacks = []
    if cfg["grad_norms"] and world.is_main:
        from minigrad.study import GradNormRecorder  # noqa: PLC0415 - optional study tools

        callbacks.append(GradNormRecorder(parallel.unwrap(model), out, every=cfg["grad_norms"]))
    n_params = sum(int(p.data.size) for p in model.parameters())
    about = f" ({spec.describe(cfg)})" if spec.describe is not None else ""
    ranks = f"; {world.size} ranks x {local_batch} images per step" if world.size > 1 else ""
    cpu = f" ({parallel.threads_note(threads, world)})" if device == "cpu" else ""
    if world.is_main:
        print(f"{cfg['dataset']}: {len(train_set)} train / {len(test_set)} test images "
              f"{info.in_channels}x{info.image_size}x{info.image_size}; model {n_params} "
              f"parameters{about}; device {device}{cpu}{ranks}; run folder {out}",
              flush=True)  # fmt: skip
    start = time.perf_counter()
    try:
        fit(model, train_loader, opt, spec.loss(cfg), epochs=cfg["epochs"],
            val_loader=test_loader, schedule=sched, ema=ema, device=device, out_dir=out,
            callbacks=callbacks, config=cfg, resume=ckpt, plots=not args.no_plots,
            logits=spec.logits, stream=parallel.quiet_stream(world),
            bar=None if world.is_main else False, sharded_eval=world.size > 1)  # fmt: skip
    except FloatingPointError as e:
        if not world.is_main:  # its progress stream is silent: say why this rank stops
            print(f"[rank {world.rank}] stopped: {e}", file=sys.stderr, flush=True)
        raise
    with ema.swap() if ema is not None else contextlib.nullcontext():
        final = evaluate(model, test_loader, device=device, logits=spec.logits,
                         sharded=world.size > 1)  # fmt: skip
    n = cfg["epochs"]
    if not world.is_main:
        return 0
    print(f"final test accuracy: top-1 {final['top1']:.4f}, top-5 {final['top5']:.4f} "
          f"({final['n']} images) after {n} epoch{'s' * (n != 1)}; training took "
          f"{time.perf_counter() - start:.1f} s; checkpoints in {out}")  # fmt: skip
    return 0


def run_eval(args: argparse.Namespace, spec: ModelSpec) -> int:
    """``eval``: top-1/top-5 on the whole test split (or ``--limit`` images of it) and
    ``confusion.png``."""
    from minigrad.data import DataLoader  # noqa: PLC0415
    from minigrad.train.loop import evaluate  # noqa: PLC0415
    from minigrad.train.plots import plot_confusion_matrix  # noqa: PLC0415

    given = args.checkpoint or args.resume
    if not given and not args.weights:
        raise ValueError(f"eval: pass a checkpoint, e.g. python {spec.prog} eval runs/x/best.npz")
    device = _device(args.device)
    model, cfg, path = _inference_model(args, spec, given, device, dataset=args.dataset)
    # the training run's --limit is not inherited: eval scores the whole split unless asked;
    # the data folder and a download come from the user's flags only, never from the file
    overrides = {k: getattr(args, k) for k in ("dataset", "data_dir", "download")}
    cfg = {**cfg, **FROM_FLAGS_ONLY, **{k: v for k, v in overrides.items() if v is not None},
           "limit": args.limit}  # fmt: skip
    if "dataset" not in cfg:
        raise ValueError(f"eval: {path} does not name its dataset; pass --dataset")
    logits = finetune.subset_logits(spec.logits, cfg.get("class_subset"))
    info, _, test_set = _datasets(cfg, train=False)
    _check_splits(cfg, None, test_set)
    start = time.perf_counter()
    if args.crops > 1:
        from minigrad.train.multicrop import evaluate_crops  # noqa: PLC0415

        result = evaluate_crops(model, test_set, info, args.crops, device=device, logits=logits,
                                batch_size=args.batch_size or 4 * args.crops)  # fmt: skip
    else:
        loader = DataLoader(test_set, args.batch_size or 256, num_workers=args.num_workers or 0,
                            transform=info.eval_transform)  # fmt: skip
        result = evaluate(model, loader, device=device, num_classes=info.num_classes, logits=logits)
    part = "the whole test split" if args.limit is None else f"--limit {args.limit}"
    crops = f", {args.crops} crops" if args.crops > 1 else ""
    seconds = time.perf_counter() - start
    print(f"{cfg['dataset']} test: top-1 {result['top1']:.4f}  top-5 {result['top5']:.4f}  "
          f"({result['n']} images scored, {part}{crops}; {path})")  # fmt: skip
    print(f"evaluation took {seconds:.1f} s, {1e3 * seconds / max(result['n'], 1):.1f} ms per "
          f"image ({args.crops} crop{'s' * (args.crops > 1)} each)")  # fmt: skip
    out = Path(args.out) if args.out else path.parent
    out.mkdir(parents=True, exist_ok=True)
    png = out / "confusion.png"
    plot_confusion_matrix(result["confusion"], png, info.class_names,
                          title=f"{cfg['dataset']} test, top-1 {result['top1']:.3f}")  # fmt: skip
    print(f"confusion matrix: {png}")
    return 0


def run_predict(args: argparse.Namespace, spec: ModelSpec) -> int:
    """``predict``: the top classes and probabilities of each image file; a file that is
    not a readable image is reported on one line and the others are still predicted."""
    import minigrad.functional as F  # noqa: PLC0415
    from minigrad.tensor import no_grad, tensor  # noqa: PLC0415

    device = _device(args.device or "cpu")
    if not args.checkpoint and not args.weights:
        raise ValueError("predict: pass --checkpoint CKPT_OR_DIR (a run's) or --weights PATH")
    model, cfg, path = _inference_model(args, spec, args.checkpoint, device)
    if "dataset" not in cfg:
        raise ValueError(f"predict: {path} does not name its dataset (config)")
    info = _info(cfg)
    # names from the file are printed escaped: no escape sequence reaches the terminal
    names = [printable(n) for n in cfg.get("class_names") or info.class_names]
    if not 1 <= args.top <= len(names):
        raise ValueError(f"predict: --top must be between 1 and the {len(names)} classes, "
                         f"got {args.top}")  # fmt: skip
    good, images, bad = [], [], 0
    for file in args.images:
        try:
            if not os.path.isfile(file):
                raise FileNotFoundError(f"{file}: no such image file")
            x, note = info.preprocess_image(file)  # (C, H, W), via data.images.open_image
            if note:
                print(f"note: {file}: {note}", file=sys.stderr)
            images.append(x)
            good.append(file)
        except (ValueError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            bad += 1
    if good:
        x = np.stack(images)  # (N, C, H, W)
        with no_grad():
            logits = finetune.subset_logits(spec.logits, cfg.get("class_subset"))
            prob = F.softmax(logits(model(tensor(x, device=device))), dim=1).numpy()
        if len(names) != prob.shape[1]:  # a run config without names of its own classes
            names = [str(i) for i in range(prob.shape[1])]
        for file, p in zip(good, prob):
            top = np.argsort(-p, kind="stable")[: args.top]
            print(f"{file}: " + ", ".join(f"{names[i]} {p[i]:.3f}" for i in top))
    if bad:
        print(f"predict: {bad} of {len(args.images)} file(s) could not be read as images",
              file=sys.stderr)  # fmt: skip
        return 2
    return 0


def _find_for_inference(given: str) -> Path:
    """The checkpoint ``eval``/``predict`` use: a file, or a run folder's ``best.npz``, else
    its ``last.npz`` (and then a note says so: it is not the best epoch's)."""
    path = find_checkpoint(given)
    if Path(given).is_dir() and path.name != "best.npz":
        print(f"note: {given} has no best.npz; using {path.name}", file=sys.stderr)
    return path


def _inference_model(args: argparse.Namespace, spec: ModelSpec, given: str | None,
                     device: str, dataset: str | None = None,
                     ) -> tuple[Any, dict[str, Any], Path]:  # fmt: skip
    """``eval``/``predict``'s model, its config and the file it came from: a checkpoint
    (``given``), or ``--weights`` (:func:`minigrad.train.finetune.model_from_weights`)."""
    if given and args.weights:
        raise ValueError("pass either a checkpoint or --weights, not both")
    if given:
        path = _find_for_inference(given)  # another program's run is one line
        build = checked_builder(spec, path, device, dataset=dataset)
        model, cfg = load_for_inference(path, build, device)
        return model, cfg, path
    size = getattr(args, "image_size", None)
    model, cfg = finetune.model_from_weights(args.weights, spec, DEFAULTS, args.dataset, size,
                                             bool(getattr(args, "download", False)))  # fmt: skip
    return model.to(device), cfg, Path(cfg["weights"])


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a job scheduler's stop) raises ``KeyboardInterrupt`` as Ctrl-C does, so the
    run saves a resumable checkpoint; only in the main thread (where handlers can be set)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _message(e: BaseException) -> str:
    """An error's one line: an OSError as "file: reason", without "[Errno 28]"."""
    if isinstance(e, OSError) and e.strerror:
        names = [n for n in (e.filename, e.filename2) if n is not None]
        return ": ".join([*map(str, names), e.strerror]) if names else e.strerror
    return str(e)


# NumPy's floating-point RuntimeWarnings ("overflow encountered in exp"): the commands
# report what matters of them themselves (a NaN/inf loss stops the run, NaN/inf outputs
# are counted and named), so the raw warnings are not shown
_FLOATING_POINT = r"(overflow|invalid value|divide by zero|underflow) encountered"


@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Warnings as one line each (``warning: ...``); NumPy's floating-point ones hidden."""
    import warnings  # noqa: PLC0415

    def show(message: Any, category: type, filename: str, lineno: int, *rest: Any) -> None:
        print(f"warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _FLOATING_POINT, RuntimeWarning)
        warnings.showwarning = show
        yield


def _run(command: Callable[[], int]) -> int:
    """Run a command and map its outcome to :data:`EXIT_CODES`."""
    from minigrad.train.loop import NonFiniteLossError  # noqa: PLC0415

    try:
        with _sigterm_as_interrupt(), _one_line_warnings():
            return command()
    except NonFiniteLossError:
        return 3  # fit said what happened and which checkpoint is the last good one
    except KeyboardInterrupt as e:  # Ctrl-C, SIGTERM, or another rank's (PeerInterrupt)
        saved = getattr(e, "saved", None)  # fit's InterruptedRun says what was saved
        peer = e.__cause__ if hasattr(e, "saved") else e  # whose stop it was, if another's
        why = f": {peer}" if peer is not None and str(peer) else ""
        print("interrupted" + why + (f"; resume with --resume {saved}" if saved else ""),
              file=sys.stderr)  # fmt: skip
        return 130
    except (ValueError, TypeError, OSError) as e:
        print(f"error: {_message(e)}", file=sys.stderr)
        return 2
    except Exception:
        traceback.print_exc()
        print("internal error: this is a bug, please report the traceback above",
              file=sys.stderr)  # fmt: skip
        return 1


def main(argv: list[str] | None, spec: ModelSpec) -> int:
    """Parse ``argv`` (no command or only flags means ``train``) and run; return the exit
    status (:data:`EXIT_CODES`: 0 done, 1 internal error, 2 usage or input error, 3 stopped
    on a NaN/inf loss, 130 interrupted).

    Under ``mpiexec -n N``, ``train`` trains data-parallel (see :mod:`minigrad.train.parallel`)
    and a rank that ends with a non-zero code (other than 130, Ctrl-C) aborts all ranks.
    """
    return parallel.end_together(_main(argv, spec))


def _main(argv: list[str] | None, spec: ModelSpec) -> int:
    """Parse ``argv`` (no command or only flags means ``train``) and run; return the exit code.

    ``study`` is handed to :func:`minigrad.study.cli.main` with the same ``spec``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "study":
            from minigrad.study.cli import main as study_main  # noqa: PLC0415 - optional tools

            return _run(lambda: study_main(argv[1:], spec))
        if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
            argv = ["train", *argv]
        args = build_parser(spec).parse_args(argv)
    except SystemExit as e:  # argparse: 2 after a usage error, 0 after --help
        return e.code if isinstance(e.code, int) else 2
    commands = {"train": train, "eval": run_eval, "predict": run_predict}
    return _run(lambda: commands[args.command](args, spec))
