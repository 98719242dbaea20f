"""A small CNN on the embedded digits, trained and studied with minigrad's generic tools.

The same trainer, checkpoints, CLI and study tools as ``googlenet.py``, for a different
network: this file only describes its model (a :class:`~minigrad.train.spec.ModelSpec`)
and copies nothing of them.

    python examples/small_cnn_digits.py                                # train, ~20 s on a CPU
    python examples/small_cnn_digits.py train --channels 32 --out runs/small-cnn
    python examples/small_cnn_digits.py eval runs/small-cnn/best.npz
    python examples/small_cnn_digits.py study --checkpoint runs/small-cnn/best.npz

The network: a 3x3 conv stem, one block of two parallel branches (a 3x3 conv and a
1x1 -> 5x5 pair) whose outputs are added, a max pool, a second conv, global average
pooling and a linear classifier. The study reports each branch's share of the gradient at
the block's input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # minigrad from the checkout

import minigrad.functional as F
from minigrad import nn
from minigrad.tensor import Tensor
from minigrad.train import cli
from minigrad.train.spec import ModelSpec


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    """conv (no bias, 'same' padding) -> BatchNormReLU2d."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
    return nn.Sequential(conv, nn.BatchNormReLU2d(out_channels))


class TwoPath(nn.Module):
    """y = near(x) + far(x): a 3x3 branch and a 1x1 -> 5x5 branch, added."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.near = conv_bn_relu(channels, channels, 3)
        self.far = nn.Sequential(
            conv_bn_relu(channels, channels // 2, 1), conv_bn_relu(channels // 2, channels, 5)
        )

    def forward(self, x: Tensor) -> Tensor:  # (N, C, H, W) -> same
        return self.near(x) + self.far(x)


class SmallCNN(nn.Module):
    """stem -> TwoPath -> 2x2 max pool -> conv -> global average pool -> linear."""

    def __init__(self, num_classes: int, in_channels: int = 1, channels: int = 16) -> None:
        super().__init__()
        if channels < 2:
            raise ValueError(f"SmallCNN: channels must be >= 2, got {channels}")
        self.stem = conv_bn_relu(in_channels, channels, 3)
        self.block = TwoPath(channels)
        self.pool = nn.MaxPool2d(2)
        self.conv = conv_bn_relu(channels, 2 * channels, 3)
        self.head = nn.Linear(2 * channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:  # x: (N, C_in, H, W)
        x = self.pool(self.block(self.stem(x)))  # (N, C, H/2, W/2)
        x = F.adaptive_avg_pool2d(self.conv(x), (1, 1))  # (N, 2C, 1, 1)
        return self.head(F.flatten(x, 1))  # (N, num_classes)


def loss_terms(outputs: Tensor, target: Any, smoothing: float = 0.0) -> dict[str, Tensor]:
    """One term: ``main`` = CE with label smoothing, which is also the ``total``."""
    main = F.cross_entropy(outputs, target, label_smoothing=smoothing)
    return {"main": main, "total": main}


def add_arguments(group: argparse._ArgumentGroup) -> None:
    """The model's own flags (the generic ones come from minigrad.train.cli)."""
    group.add_argument("--channels", type=int, help="channels of the stem and block (16)")
    group.add_argument("--smoothing", type=float, help="label smoothing of the loss (0)")


def build_model(config: dict[str, Any]) -> SmallCNN:
    """The SmallCNN a run config describes."""
    return SmallCNN(int(config["num_classes"]), int(config["in_channels"]), config["channels"])


def two_path_branches(module: nn.Module) -> tuple[str, ...] | None:
    """The study's block selector: the TwoPath block and its two branches."""
    return ("near", "far") if isinstance(module, TwoPath) else None


SPEC = ModelSpec(
    prog="small_cnn_digits.py",
    description="Train and study a small two-branch CNN on the embedded digits.",
    build_model=build_model,
    add_arguments=add_arguments,
    defaults={"channels": 16, "smoothing": 0.0},
    loss_terms=loss_terms,
    loss_options=("smoothing",),
    dataset_defaults={"digits": {"epochs": 4, "batch_size": 64, "image_size": 16}},
    describe=lambda cfg: f"{cfg['channels']} channels",
    blocks=two_path_branches,
    branch_labels={"near": "3x3", "far": "1x1 -> 5x5"},
    study_defaults={"channels": 8},
    model="SmallCNN",
)


def main(argv: list[str] | None = None) -> int:
    """``train`` (the default), ``eval``, ``predict`` and ``study``, as for googlenet.py."""
    return cli.main(list(sys.argv[1:] if argv is None else argv), SPEC)


if __name__ == "__main__":
    sys.exit(main())
