"""``ModelSpec``: everything the generic trainer, CLI and study tools know about a model.

The application (a top-level script) describes its model once and hands the description to
:func:`minigrad.train.cli.main` (``train``/``eval``/``predict``) and
:func:`minigrad.study.command.main` (``study``); nothing under ``minigrad`` knows which model it
trains. A sketch (``examples/small_cnn_digits.py`` is a complete one)::

    def add_arguments(group):                       # the model's own flags
        group.add_argument("--width", type=float, help="channels (default 16)")

    SPEC = ModelSpec(
        prog="small_cnn.py", description="A small CNN.",
        build_model=lambda cfg: SmallCNN(cfg["num_classes"], cfg["in_channels"], cfg["width"]),
        add_arguments=add_arguments, defaults={"width": 16},
        loss_terms=lambda outputs, target: {"total": F.cross_entropy(outputs, target)},
    )
    sys.exit(cli.main(sys.argv[1:], SPEC))

Loss terms: ``loss_terms(outputs, target, **options) -> {name: scalar Tensor}``, the terms
as they enter the training loss plus ``"total"``, their sum, which is what is
backpropagated (e.g. ``{"main", "aux1", "aux2", "total"}``). ``options`` are the run-config
keys named in ``loss_options`` (e.g. ``aux_weight``). The study tools attribute the
gradient to each term but ``"total"``.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from minigrad.tensor import Tensor

__all__ = ["LossTerms", "ModelSpec", "logits_of", "total_loss"]

LossTerms = Callable[..., dict[str, Tensor]]


def logits_of(outputs: Any) -> Tensor:
    """The logits of a model's output: itself, or the first field of a (named) tuple."""
    return outputs[0] if isinstance(outputs, tuple) else outputs


def total_loss(loss: dict[str, Tensor] | Tensor) -> Tensor:
    """The loss to backpropagate: ``loss["total"]`` of named terms, or a plain scalar Tensor.

    Raises:
        ValueError: a dict of terms without ``"total"``.
    """
    if isinstance(loss, dict):
        if "total" not in loss:
            raise ValueError(f"loss terms need a 'total' entry, got {sorted(loss)}")
        return loss["total"]
    return loss


@dataclass(frozen=True)
class ModelSpec:
    """A model as the generic tools see it: how to build, configure, train and study it.

    Attributes:
        prog: the command's name in usage lines, e.g. ``"small_cnn.py"``.
        description: one line for ``--help``.
        build_model: the factory: run config (a dict) -> Module. Reads the model's options
            (``defaults``' keys) and ``num_classes``, ``in_channels``, ``image_size``.
        add_arguments: adds the model's own flags to an argparse group (default None, so
            that an unset flag falls back to ``defaults`` or a resumed run's config).
        defaults: the model options' defaults, by config key (``dest``).
        loss_terms: ``(outputs, target, **options) -> {term: scalar Tensor}`` with
            ``"total"`` (see the module docstring).
        loss_options: config keys passed to ``loss_terms`` as keyword arguments.
        logits: the metrics (top-1/top-5 accuracy, confusion matrix) read the logits this
            picks from the model's outputs (default: the first field of a tuple).
        dataset_defaults: per dataset, defaults of any flag (generic or the model's) that
            suit this model there, e.g. ``{"digits": {"epochs": 8, "width": 0.125}}``.
        configure: ``configure(config, dataset_info)`` fills model options that depend on
            the dataset (e.g. a stem chosen by image size) in a fresh run's config.
        describe: a short text of the model's options for the start-of-run line.
        blocks: the study's block selector: ``blocks(module)`` -> the names of the
            module's branch children when it is a block, else None
            (see :func:`minigrad.study.gradient_flow`).
        branch_labels: legend labels of branch names in the study's plots.
        study_defaults: model options of a fresh (untrained) model in ``study``.
        size_option: the config key of a channel multiplier (e.g. ``"width"``): ``train``
            then estimates a run's memory from small probe models before building the real
            one, and refuses one that cannot fit (:func:`minigrad.train.memory.check_fits`).
        model: the model's name, recorded with ``prog`` in a run's config (``program``,
            ``model``): the commands refuse another program's run in one line.
        weights_options: ``weights_options(state_dict) -> {config key: value}``: the model
            options a weights file implies (``--weights``, :mod:`minigrad.train.finetune`),
            ``num_classes`` included; flags given on the command line win.
        pretrained: known pretrained files by name -> URL (``--weights NAME --download``).
    """

    prog: str
    description: str
    build_model: Callable[[dict[str, Any]], Any]
    add_arguments: Callable[[argparse._ArgumentGroup], None]
    defaults: Mapping[str, Any]
    loss_terms: LossTerms
    loss_options: tuple[str, ...] = ()
    logits: Callable[[Any], Tensor] = logits_of
    dataset_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    configure: Callable[[dict[str, Any], Any], None] | None = None
    describe: Callable[[dict[str, Any]], str] | None = None
    blocks: Callable[[Any], Sequence[str] | None] | None = None
    branch_labels: Mapping[str, str] = field(default_factory=dict)
    study_defaults: Mapping[str, Any] = field(default_factory=dict)
    size_option: str | None = None
    model: str = ""
    weights_options: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    pretrained: Mapping[str, str] = field(default_factory=dict)

    def loss(self, config: Mapping[str, Any]) -> Callable[[Any, Any], dict[str, Tensor]]:
        """``loss_terms`` bound to the run config's loss options: ``(outputs, target)``."""
        options = {k: config[k] for k in self.loss_options if config.get(k) is not None}
        return functools.partial(self.loss_terms, **options)
