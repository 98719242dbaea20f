"""The ``train`` / ``eval`` / ``predict`` / ``study`` command line of an application's model.

``main(argv, spec)`` builds the command from a :class:`~minigrad.train.spec.ModelSpec`: the
model's factory, its own argument group and defaults, its loss terms and its metrics all
come from the application; the flags here are the generic ones (data, optimizer, schedule,
device, run folder). The run config (a plain dict saved in every checkpoint) holds both;
``spec.build_model`` reads it, e.g. ``num_classes``, ``in_channels`` and the model's options.

The rooms of the command line, one job each:

- :mod:`~minigrad.train.args`: the argparse types of numeric flags (one factory);
- :mod:`~minigrad.train.parser`: the flags of each command (``build_parser``);
- :mod:`~minigrad.train.resolve`: flags to run config, device and datasets (shared with
  ``study``);
- :mod:`~minigrad.train.cmd_train`, :mod:`~minigrad.train.cmd_eval`,
  :mod:`~minigrad.train.cmd_predict` (with :mod:`~minigrad.train.inference`): the commands;
- :mod:`~minigrad.train.console`: what rank 0 alone prints;
- :mod:`~minigrad.train.exit_codes`: an outcome as the exit status (``EXIT_CODES``).
"""

from __future__ import annotations

import sys

from minigrad.train import data_parallel
from minigrad.train.args import (
    finite_float,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from minigrad.train.cmd_eval import run_eval
from minigrad.train.cmd_predict import run_predict
from minigrad.train.cmd_train import train
from minigrad.train.exit_codes import EXIT_CODES, run_command
from minigrad.train.parser import build_parser
from minigrad.train.resolve import DEFAULTS, resolve_config
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


def main(argv: list[str] | None, spec: ModelSpec) -> int:
    """Parse ``argv`` (no command or only flags means ``train``) and run; return the exit
    status (:data:`EXIT_CODES`: 0 done, 1 internal error, 2 usage or input error, 3 stopped
    on a NaN/inf loss, 130 interrupted).

    Under ``mpiexec -n N``, ``train`` trains data-parallel (see :mod:`minigrad.train.data_parallel`)
    and a rank that ends with a non-zero code (other than 130, Ctrl-C) aborts all ranks.
    """
    return data_parallel.end_together(_main(argv, spec))


def _main(argv: list[str] | None, spec: ModelSpec) -> int:
    """Parse ``argv`` (no command or only flags means ``train``) and run; return the exit code.

    ``study`` is handed to :func:`minigrad.study.command.main` with the same ``spec``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "study":
            from minigrad.study.command import main as study_main  # noqa: PLC0415 - optional

            return run_command(lambda: study_main(argv[1:], spec))
        if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
            argv = ["train", *argv]
        args = build_parser(spec).parse_args(argv)
    except SystemExit as e:  # argparse: 2 after a usage error, 0 after --help
        return e.code if isinstance(e.code, int) else 2
    commands = {"train": train, "eval": run_eval, "predict": run_predict}
    return run_command(lambda: commands[args.command](args, spec))
