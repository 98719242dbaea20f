"""GoogLeNet (Inception v1) with its two auxiliary classifiers, the aux loss, and its CLI.

Szegedy et al., "Going deeper with convolutions" (CVPR 2015), Table 1, built on minigrad:

    python googlenet.py                      # train on the embedded digits, best device
    python googlenet.py train --dataset cifar10 --download --epochs 30 --out runs/c10
    python googlenet.py eval runs/c10/best.npz
    python googlenet.py predict --resume runs/c10/best.npz cat.png dog.jpg
    python googlenet.py study --checkpoint runs/c10/best.npz

Attribute names follow torchvision (``inception4a.branch2``, ``aux1.fc2``) so tools that
look up layers by name work on both. Unlike torchvision, ``branch3`` is the paper's real
5x5 convolution and the aux heads' pooling is the paper's 5x5/3 average pool.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

if __name__ == "__main__":
    # before NumPy loads OpenBLAS: its idle threads sleep at once instead of spinning on the
    # cores minigrad's host threads need (see minigrad.runtime; the CLI then runs products
    # on one BLAS thread and the ops' chunks on all cores)
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import minigrad as mg
import minigrad.functional as F
from minigrad import (
    checkpoint,
    nn,
)
from minigrad.tensor import Tensor, tensor
from minigrad.train import cli, loop
from minigrad.train import fit as train_fit
from minigrad.train.spec import ModelSpec


# ---------------------------------------------------------------------------- the model
class InceptionRow(NamedTuple):
    """One row of the paper's Table 1: an Inception block's input and its six columns."""

    name: str
    in_channels: int
    ch1x1: int
    ch3x3red: int
    ch3x3: int
    ch5x5red: int
    ch5x5: int
    pool_proj: int

    @property
    def out_channels(self) -> int:
        """The four branches concatenated: ``#1x1 + #3x3 + #5x5 + pool proj``."""
        return self.ch1x1 + self.ch3x3 + self.ch5x5 + self.pool_proj


# Table 1 of the paper, one row per Inception block (max pools after 3b and 4e)
INCEPTION_TABLE: tuple[InceptionRow, ...] = (
    #            name  in   #1x1 #3x3red #3x3 #5x5red #5x5 pool proj   # out
    InceptionRow("3a", 192, 64, 96, 128, 16, 32, 32),  # 256
    InceptionRow("3b", 256, 128, 128, 192, 32, 96, 64),  # 480
    InceptionRow("4a", 480, 192, 96, 208, 16, 48, 64),  # 512
    InceptionRow("4b", 512, 160, 112, 224, 24, 64, 64),  # 512
    InceptionRow("4c", 512, 128, 128, 256, 24, 64, 64),  # 512
    InceptionRow("4d", 512, 112, 144, 288, 32, 64, 64),  # 528
    InceptionRow("4e", 528, 256, 160, 320, 32, 128, 128),  # 832
    InceptionRow("5a", 832, 256, 160, 320, 32, 128, 128),  # 832
    InceptionRow("5b", 832, 384, 192, 384, 48, 128, 128),  # 1024
)
BRANCHES = ("branch1", "branch2", "branch3", "branch4")  # an Inception block's branches


def scale_channels(c: int, width: float) -> int:
    """A channel count scaled by the width multiplier: ``max(1, round(c * width))``."""
    return max(1, round(c * width))


def check_table(table: tuple[InceptionRow, ...]) -> None:
    """Raise ValueError unless each row's input channels equal the previous row's output."""
    for prev, row in zip(table, table[1:]):
        if row.in_channels != prev.out_channels:
            raise ValueError(
                f"GoogLeNet: inception{row.name} takes {row.in_channels} channels but "
                f"inception{prev.name} gives {prev.out_channels}"
            )


def scale_table(table: tuple[InceptionRow, ...], width: float) -> tuple[InceptionRow, ...]:
    """The table at ``width``: each column scaled by :func:`scale_channels`.

    A row's input is the previous row's scaled output (the first row's: its scaled input),
    since rounding the four columns separately can differ from rounding their sum (width
    0.3: 4a's columns give 58 + 62 + 14 + 19 = 153 channels, while round(512 * 0.3) = 154).
    The paper's table is checked first (:func:`check_table`).
    """
    check_table(table)
    rows, in_ch = [], scale_channels(table[0].in_channels, width)
    for row in table:
        cols = [scale_channels(c, width) for c in row[2:]]
        rows.append(InceptionRow(row.name, in_ch, *cols))
        in_ch = rows[-1].out_channels
    return tuple(rows)


class BasicConv2d(nn.Module):
    """conv (no bias) -> BatchNormReLU2d (eps 1e-3): torchvision's conv block.

    The block sets no weights of its own: its layers hold PyTorch's defaults from their
    construction, and ``GoogLeNet`` initialises the whole network once, by its ``init=``
    (:func:`init_weights`); a block built alone takes ``init_weights(block, scheme)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0) -> None:  # fmt: skip
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNormReLU2d(out_channels, eps=1e-3)  # one pass, a 1-byte mask

    def forward(self, x: Tensor) -> Tensor:
        return self.finish(self.conv(x))

    def finish(self, y: Tensor) -> Tensor:
        """What follows the convolution: batch norm and ReLU on its output ``y``."""
        return self.bn(y)


class PlainConv2d(nn.Module):
    """conv (with bias) -> ReLU: the paper's conv layer, without batch norm.

    Its weights are set as :class:`BasicConv2d`'s are: once, by ``GoogLeNet``'s ``init=``,
    whose ``"auto"`` makes these He-normal (fan in, ReLU gain) with zero biases, since with
    PyTorch's default (gain 1/sqrt(3)) the signal fades over GoogLeNet's depth (measured:
    --no-batch-norm stuck at chance).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0) -> None:  # fmt: skip
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)

    def forward(self, x: Tensor) -> Tensor:
        return self.finish(self.conv(x))

    def finish(self, y: Tensor) -> Tensor:
        """What follows the convolution: ReLU on its output ``y``."""
        return F.relu(y)


class Inception(nn.Module):
    """Four parallel branches concatenated on channels: 1x1 | 1x1->3x3 | 1x1->5x5 | pool->1x1.

    Args:
        in_channels: channels of the input.
        ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj: the paper's columns.
        conv_block: the conv layer type: :class:`PlainConv2d` (the paper's, the default) or
            :class:`BasicConv2d` (with batch norm).
        ch5x5_kernel: the kernel of the "5x5" column: 5 (the paper's) or 3 (torchvision's,
            a bug kept for its weights' sake, pytorch/vision#906); padding keeps the size.

    Output channels: ``ch1x1 + ch3x3 + ch5x5 + pool_proj``; height and width are kept.

    **The three 1x1 heads as one product.** Branches 1-3 each start with a 1x1 convolution
    of the block's input. With ``fuse_heads = True`` (the default) they run as one
    convolution with their weights stacked (:func:`fused_heads`): one product over the
    input instead of three, one backward product that sums the three input gradients inside
    BLAS, and no engine sums of them (224 px, batch 8: 107.7 -> 84.4 ms a step forward and
    backward, ``benchmarks/ab_heads.py``); the paper model's three ReLUs after them run as
    one op too. Each head's own weights stay its parameters and get their own gradients;
    values equal the three separate convolutions' up to float rounding. Where that would
    hide a layer (a hook on any of the three heads, their convolutions or branches 1-3; a
    conv block or conv that is not this module's own), the block runs the branches one by
    one instead (:meth:`heads_fusable`).

    With ``recompute = True`` (set by ``GoogLeNet(recompute_blocks=True)``) the branches run
    through :func:`minigrad.recompute`: the block keeps only its input, and its branches'
    activations are made again during backward. Per branch (branches 1-3 as one unit when
    their heads are fused) rather than the whole block, so the block input's gradient is
    summed over the same parts (and an aux head reading the same tensor) exactly as in the
    plain graph: bit-identical gradients.
    """

    #: recompute the branches in backward instead of keeping their activations
    recompute: bool = False
    #: run the 1x1 heads of branches 1-3 as one convolution where :meth:`heads_fusable`
    fuse_heads: bool = True

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int,
                 ch5x5: int, pool_proj: int, conv_block: Callable[..., nn.Module] = PlainConv2d,
                 ch5x5_kernel: int = 5) -> None:  # fmt: skip
        super().__init__()
        conv, k5 = conv_block, ch5x5_kernel
        self.branch1 = conv(in_channels, ch1x1, 1)
        self.branch2 = nn.Sequential(
            conv(in_channels, ch3x3red, 1), conv(ch3x3red, ch3x3, 3, padding=1)
        )
        self.branch3 = nn.Sequential(  # the paper's real 5x5 (torchvision: 3x3)
            conv(in_channels, ch5x5red, 1), conv(ch5x5red, ch5x5, k5, padding=k5 // 2)
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True), conv(in_channels, pool_proj, 1)
        )
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: Tensor) -> Tensor:  # x: (N, C_in, H, W)
        run = mg.recompute if self.recompute else _call
        if self.fuse_heads and self.heads_fusable():
            if self.recompute:
                params = [p for b in (self.branch1, self.branch2, self.branch3)
                          for p in b.parameters()]  # fmt: skip
                b1, b2, b3 = mg.recompute(self._branches123, x, params=params)
            else:
                b1, b2, b3 = self._branches123(x)
        else:
            b1 = run(self.branch1, x)  # (N, ch1x1, H, W)
            b2 = run(self.branch2, x)  # (N, ch3x3, H, W)
            b3 = run(self.branch3, x)  # (N, ch5x5, H, W)
        b4 = run(self.branch4, x)  # (N, pool_proj, H, W)
        return F.cat([b1, b2, b3, b4], dim=1)  # (N, out_channels, H, W)

    def heads(self) -> tuple[nn.Module, nn.Module, nn.Module]:
        """The conv blocks that read the block's input in branches 1-3 (the 1x1 heads)."""
        return self.branch1, self.branch2[0], self.branch3[0]

    def heads_fusable(self) -> bool:
        """Whether :func:`fused_heads` may run the three 1x1 heads: each is this module's own
        conv block (:class:`PlainConv2d` or :class:`BasicConv2d`, one kind for all three,
        ``forward`` not replaced) around a 1x1 ``nn.Conv2d`` (stride 1, no padding, all with
        a bias or none), and no hook sits on a head, its convolution, or branches 1-3 (a
        hook sees its layer run on its own)."""
        heads = self.heads()
        kind = type(heads[0])
        if kind not in (PlainConv2d, BasicConv2d):
            return False
        watched = (*heads, *(h.conv for h in heads), self.branch2, self.branch3)
        for m in watched:
            if m._forward_pre_hooks or m._forward_hooks or m._backward_hooks:
                return False
            if "forward" in vars(m):
                return False
        convs = [h.conv for h in heads]
        return (
            all(type(h) is kind and type(c) is nn.Conv2d for h, c in zip(heads, convs))
            and all(c.kernel_size == c.stride == (1, 1) and c.padding == (0, 0) for c in convs)
            and len({c.bias is None for c in convs}) == 1
        )

    def _branches123(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Branches 1-3 with their 1x1 heads as one convolution (:func:`fused_heads`)."""
        h1, h2, h3 = self.heads()
        if type(h1) is PlainConv2d:  # ReLU is elementwise: one op on the three outputs
            y1, y2, y3 = fused_heads(x, [h1.conv, h2.conv, h3.conv], relu=True)
        else:  # each head's own batch norm (its own running statistics)
            y1, y2, y3 = fused_heads(x, [h1.conv, h2.conv, h3.conv])
            y1, y2, y3 = h1.finish(y1), h2.finish(y2), h3.finish(y3)
        b2 = self.branch2[1](y2)  # (N, ch3x3, H, W)
        b3 = self.branch3[1](y3)  # (N, ch5x5, H, W)
        return y1, b2, b3  # y1: (N, ch1x1, H, W)


def _call(fn: Callable[..., Tensor], x: Tensor) -> Tensor:
    return fn(x)


def fused_heads(x: Tensor, convs: list[nn.Conv2d], relu: bool = False) -> tuple[Tensor, ...]:
    """``tuple(conv(x) for conv in convs)`` for 1x1 convolutions (stride 1, no padding, one
    bias setting), as ONE convolution with their weights stacked along the output channels;
    with ``relu``, ``tuple(relu(conv(x)) ...)`` with one ReLU over all of them.

    Forward: ``Y = conv2d(x, cat(w_i))`` and ``y_i`` = its channel blocks (views of Y).
    Backward: the ``gy_i`` are concatenated into Y's gradient (``Split``, channel-major),
    then one product gives gx = sum_i w_i^T gy_i and one gives the stacked weight gradient,
    which ``cat``'s backward hands back to each ``w_i`` as its block. The weights stay the
    convolutions' own parameters.
    """
    for c in convs:
        if c.kernel_size != (1, 1) or c.stride != (1, 1) or c.padding != (0, 0):
            raise ValueError(
                f"fused_heads: expected 1x1 convolutions with stride 1 and no padding, got "
                f"kernel {c.kernel_size}, stride {c.stride}, padding {c.padding}"
            )
    if len({c.bias is None for c in convs}) != 1:
        raise ValueError("fused_heads: the convolutions must all have a bias or none")
    w = F.cat([c.weight for c in convs], dim=0)  # (sum C_out, C_in, 1, 1)
    b = None if convs[0].bias is None else F.cat([c.bias for c in convs], dim=0)
    y = F.conv2d(x, w, b)  # (N, sum C_out, H, W), channel-major
    if relu:
        y = F.relu(y)
    return F.split(y, [c.out_channels for c in convs], dim=1)


class InceptionAux(nn.Module):
    """Aux classifier: 5x5/3 avg pool, 1x1 conv 128 + ReLU, fc 1024 + ReLU, dropout, fc.

    The 5x5/3 pool turns the 14x14 (ImageNet stem, 224 input) or 16x16 (CIFAR stem, 32
    input) maps after 4a and 4d into 4x4; for other input sizes adaptive average pooling
    to 4x4 takes its place, so the first linear layer always sees ``4 * 4 * 128`` features.
    ``pool="adaptive"`` (torchvision's head) always pools adaptively (14 -> 4: windows of 4
    at 0, 3, 7, 10, not the paper's 5x5/3).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        conv_block: Callable[..., nn.Module] = PlainConv2d,
        dropout: float = 0.7,
        width: float = 1.0,
        pool: str = "paper",
    ) -> None:
        super().__init__()
        if pool not in ("paper", "adaptive"):
            raise ValueError(f"InceptionAux: pool must be 'paper' or 'adaptive', got {pool!r}")
        self.pool = pool
        c128, c1024 = scale_channels(128, width), scale_channels(1024, width)
        self.conv = conv_block(in_channels, c128, 1)
        self.fc1 = nn.Linear(c128 * 4 * 4, c1024)
        self.fc2 = nn.Linear(c1024, num_classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:  # x: (N, C, H, W)
        H, W = x.shape[2], x.shape[3]
        if self.pool == "paper" and (H - 5) // 3 + 1 == 4 and (W - 5) // 3 + 1 == 4:
            x = F.avg_pool2d(x, 5, stride=3)  # (N, C, 4, 4)
        else:
            x = F.adaptive_avg_pool2d(x, (4, 4))  # (N, C, 4, 4)
        x = self.conv(x)  # (N, 128, 4, 4)
        x = F.flatten(x, 1)  # (N, 2048)
        x = F.relu(self.fc1(x))  # (N, 1024)
        x = self.dropout(x)
        return self.fc2(x)  # (N, num_classes)


# ---------------------------------------------------------------------------- initialisation
INIT_SCHEMES = ("auto", "he", "pytorch", "trunc_normal")


def resolve_init(init: str, batch_norm: bool) -> str:
    """The scheme ``init`` stands for: ``"auto"`` is ``"pytorch"`` with batch norm, ``"he"``
    without; the other names stand for themselves.

    Why: under batch norm a conv's output does not depend on its weights' scale, but the
    effective learning rate falls with the square of the weight norm, so He's std
    (sqrt(2/fan_in), 2.4x PyTorch's 1/sqrt(3 fan_in)) learns slower at the same ``--lr``
    (issue 13); without batch norm PyTorch's smaller default fades the signal over the
    network's depth and He keeps it alive.
    """
    if init not in INIT_SCHEMES:
        raise ValueError(f"GoogLeNet: init must be one of {INIT_SCHEMES}, got {init!r}")
    if init == "auto":
        return "pytorch" if batch_norm else "he"
    return init


def init_weights(model: nn.Module, scheme: str, reset: bool = True) -> nn.Module:
    """Re-initialise every Conv2d, Linear and BatchNorm2d of ``model`` in place, and return it.

    Schemes (``"auto"`` must be resolved first, see :func:`resolve_init`):

    - ``"pytorch"``: each layer's PyTorch default: conv/linear weight and bias
      U(+-1/sqrt(fan_in)); batch norm weight 1, bias 0, running mean 0, variance 1.
    - ``"he"``: conv weights N(0, 2/fan_in) (``kaiming_normal_``, fan in, ReLU gain), conv
      biases 0; linear and batch norm as ``"pytorch"``.
    - ``"trunc_normal"``: torchvision's GoogLeNet init: conv and linear weights N(0, 0.01^2)
      truncated to [-2, 2]; biases and batch norm as ``"pytorch"``.

    Draws follow ``model.modules()`` (the paper's order), so a seed gives the same weights.
    ``reset=False`` skips putting each layer back to PyTorch's default first: for layers just
    built, which hold it already (``GoogLeNet.__init__``: each weight is drawn once by its
    layer, and once more only where the scheme replaces it).
    """
    if scheme not in INIT_SCHEMES[1:]:
        raise ValueError(f"init_weights: scheme must be one of {INIT_SCHEMES[1:]}, got {scheme!r}")
    for m in model.modules():
        if not isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)):
            continue
        if reset:
            m.reset_parameters()
        if scheme == "he" and isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif scheme == "trunc_normal" and not isinstance(m, nn.BatchNorm2d):
            nn.init.trunc_normal_(m.weight, std=0.01, a=-2.0, b=2.0)
    return model


class GoogLeNetOutputs(NamedTuple):
    """What ``GoogLeNet`` returns in training mode with aux heads (all (N, num_classes))."""

    logits: Tensor
    aux1: Tensor  # from the head after inception4a
    aux2: Tensor  # from the head after inception4d


#: the variants of the network: the paper's (block types chosen by ``batch_norm``) and
#: torchvision's, whose blocks are these three (its "5x5" column is a 3x3 conv, its aux heads
#: pool adaptively) and whose last max pool is 2x2/2 instead of 3x3/2
VARIANTS = ("paper", "torchvision")
TORCHVISION_BLOCKS: tuple[Callable[..., nn.Module], ...] = (
    BasicConv2d,
    functools.partial(Inception, ch5x5_kernel=3),
    functools.partial(InceptionAux, pool="adaptive"),
)
# transform_input: ImageNet-normalised input -> the [-1, 1] scaling the weights were trained
# on, per channel x * std / 0.5 + (mean - 0.5) / 0.5 (torchvision's _transform_input)
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class GoogLeNet(nn.Module):
    """GoogLeNet / Inception v1 (the paper's Table 1), with optional aux heads, BN and width.

    Args:
        num_classes: size of the final (and aux) classifier outputs.
        in_channels: image channels (3 for RGB, 1 for grayscale).
        stem: ``"imagenet"`` (7x7/2 conv, pools, LRN: 224 -> 7x7 before the head) or
            ``"cifar"`` (one 3x3 conv to 192 at full resolution: 32 -> 16 -> 8).
        aux_logits: build the two auxiliary classifiers (after 4a and 4d).
        batch_norm: shorthand for ``blocks=(BasicConv2d, Inception, InceptionAux)``: every
            conv becomes conv (no bias) + BatchNorm2d(eps=1e-3) + ReLU; False (the paper)
            uses :class:`PlainConv2d`. Ignored when ``blocks`` is given.
        blocks: the types ``(conv_block, inception_block, aux_block)`` the network is built
            from, as torchvision's ``blocks=``; ``conv_block(in, out, kernel, stride=,
            padding=)``, ``inception_block(in, *row's six columns, conv_block=)``,
            ``aux_block(in, num_classes, conv_block=, dropout=, width=)``. ``init`` is applied
            over the weights the blocks' layers were built with (see below), so a block that
            sets its own keeps them where the scheme is PyTorch's default.
        lrn: local response normalisation in the ImageNet stem; None means "on when
            ``batch_norm`` is off" (the paper's network). The CIFAR stem has no LRN.
        width: multiplies every channel count c into ``max(1, round(c * width))``
            (:func:`scale_table`).
        dropout: dropout before the final linear layer (the paper: 0.4).
        aux_dropout: dropout inside the aux heads (the paper: 0.7).
        init: the initial weights (:func:`init_weights`): ``"auto"`` (default) is
            ``"pytorch"`` (PyTorch's default per layer) with batch norm and ``"he"`` (He-normal
            convs, fan in, ReLU gain) without; or ``"he"``, ``"pytorch"``, ``"trunc_normal"``
            (torchvision's: truncated normal std 0.01). Under batch norm, He's 2.4x larger
            weights lower the effective learning rate (slower learning at the same lr); without
            batch norm PyTorch's default fades the signal through the 22 layers.
        variant: ``"paper"`` (the default) or ``"torchvision"`` (:data:`TORCHVISION_BLOCKS`
            unless ``blocks`` is given, a 2x2/2 max pool before 5a; needs the ImageNet stem,
            batch norm and no LRN). :meth:`torchvision` builds it with torchvision's defaults.
        transform_input: re-normalise ImageNet-normalised input to the [-1, 1] scaling of
            torchvision's pretrained weights (per channel ``x * std / 0.5 + (mean - 0.5) /
            0.5``), as ``torchvision.models.googlenet(transform_input=True)``.
        recompute_blocks: keep only each Inception block's input and recompute its branches'
            activations in backward (:func:`minigrad.recompute`), and likewise the ImageNet
            stem's two stages (conv1..conv2, conv3..maxpool2): less activation memory for a
            second forward of them, bit-identical gradients (``--recompute``).

    ``forward`` returns :class:`GoogLeNetOutputs` ``(logits, aux1, aux2)`` in training mode
    when the aux heads exist, and the logits alone otherwise (eval mode).

    Initialisation happens once, here, after every layer exists: each layer is built with
    PyTorch's default, and :func:`init_weights` then replaces what the ``init`` scheme sets
    differently (nothing for ``"pytorch"``), in the order of ``modules()`` (so a seed gives
    the same weights). The blocks set no weights of their own.

    Raises:
        ValueError: a bad stem, lrn with the CIFAR stem, bad sizes or dropout probabilities,
            an unknown init.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        stem: str = "imagenet",
        aux_logits: bool = True,
        batch_norm: bool = False,
        lrn: bool | None = None,
        width: float = 1.0,
        dropout: float = 0.4,
        aux_dropout: float = 0.7,
        blocks: tuple[Callable[..., nn.Module], ...] | None = None,
        init: str = "auto",
        variant: str = "paper",
        transform_input: bool = False,
        recompute_blocks: bool = False,
    ) -> None:
        super().__init__()
        resolve_init(init, batch_norm)  # an unknown name fails before anything is built
        if variant not in VARIANTS:
            raise ValueError(f"GoogLeNet: variant must be one of {VARIANTS}, got {variant!r}")
        if variant == "torchvision" and (stem != "imagenet" or not batch_norm or lrn):
            raise ValueError(
                "GoogLeNet: the torchvision variant has the ImageNet stem, batch norm and no "
                f"LRN; got stem={stem!r}, batch_norm={batch_norm}, lrn={lrn}"
            )
        if transform_input and in_channels != 3:
            raise ValueError(
                f"GoogLeNet: transform_input needs 3 input channels, got {in_channels}"
            )
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"GoogLeNet: stem must be 'imagenet' or 'cifar', got {stem!r}")
        if lrn is None:
            lrn = not batch_norm and stem == "imagenet"
        elif lrn and stem == "cifar":
            raise ValueError("GoogLeNet: lrn=True needs stem='imagenet' (the CIFAR stem has none)")
        for name, v in (("num_classes", num_classes), ("in_channels", in_channels)):
            if int(v) != v or v < 1:
                raise ValueError(f"GoogLeNet: {name} must be a positive integer, got {v!r}")
        if not width > 0:
            raise ValueError(f"GoogLeNet: width must be > 0, got {width!r}")
        for name, p in (("dropout", dropout), ("aux_dropout", aux_dropout)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"GoogLeNet: {name} must lie in [0, 1), got {p!r}")
        if blocks is None and variant == "torchvision":
            blocks = TORCHVISION_BLOCKS
        elif blocks is None:
            blocks = (BasicConv2d if batch_norm else PlainConv2d, Inception, InceptionAux)
        if len(blocks) != 3:
            raise ValueError(f"GoogLeNet: blocks must be (conv, inception, aux), got {blocks!r}")
        conv, inception, aux = blocks
        self.num_classes, self.in_channels, self.stem = num_classes, in_channels, stem
        self.aux_logits, self.batch_norm, self.lrn, self.width = aux_logits, batch_norm, lrn, width
        self.variant, self.transform_input = variant, bool(transform_input)
        table = {row.name: row for row in scale_table(INCEPTION_TABLE, width)}
        c = functools.partial(scale_channels, width=width)
        # Parameters are created in the paper's order: stem, 3a..5b, aux1, aux2, fc.
        stem_out = table["3a"].in_channels  # 192, scaled
        if stem == "imagenet":
            self.conv1 = conv(in_channels, c(64), 7, stride=2, padding=3)
            self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            if lrn:
                self.lrn1 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
            self.conv2 = conv(c(64), c(64), 1)
            self.conv3 = conv(c(64), stem_out, 3, padding=1)
            if lrn:
                self.lrn2 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
            self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        else:
            self.conv1 = conv(in_channels, stem_out, 3, padding=1)

        def block(name: str) -> nn.Module:
            _, *columns = table[name]  # (in, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool)
            return inception(*columns, conv_block=conv)

        # 3x3/2 pools between stages (ceil at ImageNet scale; padded for CIFAR: 32 -> 16 -> 8)
        pool = (
            (lambda: nn.MaxPool2d(3, stride=2, ceil_mode=True))
            if stem == "imagenet"
            else (lambda: nn.MaxPool2d(3, stride=2, padding=1))
        )
        self.inception3a = block("3a")
        self.inception3b = block("3b")
        self.maxpool3 = pool()
        self.inception4a = block("4a")
        self.inception4b = block("4b")
        self.inception4c = block("4c")
        self.inception4d = block("4d")
        self.inception4e = block("4e")
        # torchvision's pool before 5a is 2x2/2 (same 14 -> 7 size, other windows)
        self.maxpool4 = (
            nn.MaxPool2d(2, stride=2, ceil_mode=True) if variant == "torchvision" else pool()
        )
        self.inception5a = block("5a")
        self.inception5b = block("5b")
        if aux_logits:  # the heads read 4a's output (4b's input) and 4d's (4e's input)
            heads = {"conv_block": conv, "dropout": aux_dropout, "width": width}
            self.aux1 = aux(table["4b"].in_channels, num_classes, **heads)
            self.aux2 = aux(table["4e"].in_channels, num_classes, **heads)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(table["5b"].out_channels, num_classes)
        self.init = init  # as asked ("auto" too): what the run config records
        self.recompute_blocks = bool(recompute_blocks)
        for m in self.modules():
            if isinstance(m, Inception):
                m.recompute = self.recompute_blocks
        has_bn = any(isinstance(m, nn.BatchNorm2d) for m in self.modules())
        init_weights(self, resolve_init(init, has_bn), reset=False)  # the layers are new

    @classmethod
    def torchvision(cls, num_classes: int = 1000, aux_logits: bool = True,
                    transform_input: bool = False, *, width: float = 1.0, dropout: float = 0.2,
                    aux_dropout: float = 0.7, init: str = "trunc_normal",
                    recompute_blocks: bool = False) -> GoogLeNet:  # fmt: skip
        """torchvision's GoogLeNet (``torchvision.models.googlenet``), whose ``state_dict``
        names and shapes are torchvision's (``conv1.bn.num_batches_tracked`` included), so
        ``model.load_state_dict(mg.io.load_pth("googlenet-1378be20.pth"))`` loads strictly.

        Its departures from the paper: batch norm (eps 0.001) after every conv, which has no
        bias; the "5x5" column is a 3x3 conv; the aux heads pool adaptively to 4x4; the pool
        before 5a is 2x2/2; dropout 0.2 before the final fc; no LRN. The aux heads are kept
        (the file holds their weights too) and, in training mode, returned as
        :class:`GoogLeNetOutputs` like the paper's, so the 0.3-weighted aux loss applies.
        torchvision builds its pretrained model with ``transform_input=True``: the weights
        expect inputs scaled to [-1, 1], and that re-normalises ImageNet-normalised ones.
        """
        return cls(num_classes=num_classes, in_channels=3, stem="imagenet",
                   aux_logits=aux_logits, batch_norm=True, lrn=False, width=width,
                   dropout=dropout, aux_dropout=aux_dropout, init=init, variant="torchvision",
                   transform_input=transform_input, recompute_blocks=recompute_blocks)  # fmt: skip

    def _transform_input(self, x: Tensor) -> Tensor:
        """torchvision's re-normalisation (see ``transform_input``), one affine per channel."""
        shape = (1, 3, 1, 1)
        scale = [s / 0.5 for s in _IMAGENET_STD]
        shift = [(m - 0.5) / 0.5 for m in _IMAGENET_MEAN]
        a = tensor(scale, dtype=x.dtype, device=x.device).reshape(shape)  # (1, 3, 1, 1)
        b = tensor(shift, dtype=x.dtype, device=x.device).reshape(shape)
        return x * a + b  # (N, 3, H, W)

    def forward(self, x: Tensor) -> Any:  # x: (N, C_in, H, W)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"GoogLeNet: expected input (N, {self.in_channels}, H, W), got shape {x.shape}"
            )
        if self.transform_input:
            x = self._transform_input(x)
        if self.stem == "imagenet" and self.recompute_blocks:  # the stem as two blocks
            x = mg.recompute(self._stem1, x, params=self._stem_params(self.conv1, self.conv2))
            x = mg.recompute(self._stem2, x, params=self._stem_params(self.conv3))
        elif self.stem == "imagenet":
            x = self._stem2(self._stem1(x))  # (N, 192, 28, 28) for a 224x224 input
        else:
            x = self.conv1(x)  # (N, 192, 32, 32) for a 32x32 input
        x = self.inception3a(x)  # (N, 256, 28, 28) | (N, 256, 32, 32)
        x = self.inception3b(x)  # (N, 480, 28, 28) | (N, 480, 32, 32)
        x = self.maxpool3(x)  # (N, 480, 14, 14) | (N, 480, 16, 16)
        x = self.inception4a(x)  # (N, 512, 14, 14) | (N, 512, 16, 16)
        with_aux = self.aux_logits and self.training
        aux1 = self.aux1(x) if with_aux else None  # (N, num_classes)
        x = self.inception4b(x)  # (N, 512, 14, 14)
        x = self.inception4c(x)  # (N, 512, 14, 14)
        x = self.inception4d(x)  # (N, 528, 14, 14)
        aux2 = self.aux2(x) if with_aux else None  # (N, num_classes)
        x = self.inception4e(x)  # (N, 832, 14, 14) | (N, 832, 16, 16)
        x = self.maxpool4(x)  # (N, 832, 7, 7) | (N, 832, 8, 8)
        x = self.inception5a(x)  # (N, 832, 7, 7)
        x = self.inception5b(x)  # (N, 1024, 7, 7) | (N, 1024, 8, 8)
        x = self.avgpool(x)  # (N, 1024, 1, 1)
        x = F.flatten(x, 1)  # (N, 1024)
        x = self.dropout(x)
        logits = self.fc(x)  # (N, num_classes)
        if with_aux:
            return GoogLeNetOutputs(logits, aux1, aux2)
        return logits

    def _stem1(self, x: Tensor) -> Tensor:  # the ImageNet stem up to conv2
        x = self.conv1(x)  # (N, 64, 112, 112) for a 224x224 input
        x = self.maxpool1(x)  # (N, 64, 56, 56)
        if self.lrn:
            x = self.lrn1(x)
        return self.conv2(x)  # (N, 64, 56, 56)

    def _stem2(self, x: Tensor) -> Tensor:  # the rest of the ImageNet stem
        x = self.conv3(x)  # (N, 192, 56, 56)
        if self.lrn:
            x = self.lrn2(x)
        return self.maxpool2(x)  # (N, 192, 28, 28)

    @staticmethod
    def _stem_params(*modules: nn.Module) -> list[Tensor]:
        return [p for m in modules for p in m.parameters()]


# ---------------------------------------------------------------------------- the loss
AUX_WEIGHT = 0.3  # the paper's weight of each aux classifier's loss in the total


def loss_terms(outputs: Any, target: Any, aux_weight: float = AUX_WEIGHT) -> dict[str, Tensor]:
    """The paper's training loss, term by term, as training and the study both use it.

    ``main = CE(logits)``, ``aux1 = aux_weight * CE(aux1)``, ``aux2 = aux_weight *
    CE(aux2)`` and ``total = main + aux1 + aux2``, the loss that is backpropagated.

    Args:
        outputs: :class:`GoogLeNetOutputs` (training mode) or plain logits (then only
            ``main`` and ``total``).
        target: (N,) int64 class indices (Tensor or array).
        aux_weight: weight of each auxiliary loss (the paper's: ``AUX_WEIGHT``); with 0
            the aux terms are left out (the heads then get no gradient).

    Returns:
        ``{"main", ["aux1", "aux2",] "total"}``, scalar Tensors (means over the batch).
    """
    if not isinstance(outputs, GoogLeNetOutputs):
        main = F.cross_entropy(outputs, target)
        return {"main": main, "total": main}
    terms = {"main": F.cross_entropy(outputs.logits, target)}
    if aux_weight:
        terms["aux1"] = F.cross_entropy(outputs.aux1, target) * aux_weight
        terms["aux2"] = F.cross_entropy(outputs.aux2, target) * aux_weight
    total = terms["main"]
    for name in ("aux1", "aux2"):
        if name in terms:
            total = total + terms[name]
    return {**terms, "total": total}


# ---------------------------------------------------------------------------- its options
#: the architecture's options that have a flag (`train` and `study`), under their config keys
#: (the keywords of GoogLeNet), with their defaults; stem None: by image size (_configure)
ARCH_OPTIONS: dict[str, Any] = {
    "width": 1.0, "stem": None, "batch_norm": True, "aux_logits": True, "init": "auto",
    "variant": "paper", "transform_input": False,
}  # fmt: skip
#: the run-config keys that describe the architecture: the options, the dataset's classes and
#: channels, and ``lrn`` (no flag; None: the paper's rule). build_model reads them, and fit
#: records them from a model built through the library API
ARCH_KEYS = ("num_classes", "in_channels", "lrn", *ARCH_OPTIONS)
#: the model's flags, under their config keys; unset flags are None
MODEL_DEFAULTS: dict[str, Any] = {**ARCH_OPTIONS, "aux_weight": AUX_WEIGHT}
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    # the README's first command: a few minutes on 2 CPU cores, >= 95% test accuracy
    "digits": {"epochs": 8, "batch_size": 64, "width": 0.125, "image_size": 16, "lr": 0.05},
}


def add_model_arguments(group: argparse._ArgumentGroup) -> None:
    """GoogLeNet's own flags (the generic ones come from :mod:`minigrad.train.cli`)."""
    group.add_argument("--width", type=cli.positive_float,
                       help="channel multiplier (default 1; digits 0.125)")  # fmt: skip
    group.add_argument("--stem", choices=("cifar", "imagenet"), help="default: by image size")
    group.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, help="default on")
    group.add_argument("--init", choices=INIT_SCHEMES,
                       help="initial weights (default auto: pytorch with batch norm, he without)",
                       )  # fmt: skip
    group.add_argument("--aux", dest="aux_logits", action=argparse.BooleanOptionalAction,
                       help="the two auxiliary classifiers (default on)")  # fmt: skip
    group.add_argument("--aux-weight", type=cli.non_negative_float,
                       help=f"weight of each aux loss, >= 0 (default {AUX_WEIGHT}; 0 = main "
                       "loss only, the heads stay; --no-aux removes them)")  # fmt: skip
    group.add_argument("--variant", choices=VARIANTS,
                       help="paper (default) or torchvision's network (3x3 '5x5' column, BN, "
                       "its names: loads googlenet-1378be20.pth); --weights picks it from the "
                       "file")  # fmt: skip
    group.add_argument("--transform-input", action=argparse.BooleanOptionalAction,
                       help="re-normalise input to [-1, 1] as torchvision's pretrained weights "
                       "expect (default: on with a torchvision .pth, else off)")  # fmt: skip
    group.add_argument("--recompute", action="store_true", default=None,
                       help="recompute each Inception block's activations in backward "
                       "(less memory, a second forward of the blocks; same gradients)")  # fmt: skip


def build_model(config: dict[str, Any]) -> GoogLeNet:
    """The GoogLeNet a run config describes (its :data:`ARCH_KEYS`, and ``recompute``).

    A key that is missing or None takes GoogLeNet's default, except ``stem`` (``"cifar"``)
    and ``batch_norm`` (on): the defaults of runs from before those keys existed; such runs
    have no ``variant`` either, and were the paper's network.
    """
    given = {k: config[k] for k in ARCH_KEYS if config.get(k) is not None}
    arch = {**ARCH_OPTIONS, "stem": "cifar", "in_channels": 3, "lrn": None, **given}
    arch["width"] = float(arch["width"])
    recompute = bool(config.get("recompute"))
    if arch["variant"] == "torchvision":  # its own stem, batch norm, no LRN and dropout
        keep = ("num_classes", "aux_logits", "transform_input", "width", "init")
        return GoogLeNet.torchvision(**{k: arch[k] for k in keep}, recompute_blocks=recompute)
    return GoogLeNet(**arch, recompute_blocks=recompute)


def _configure(config: dict[str, Any], info: Any) -> None:
    if config.get("variant") == "torchvision":
        config["stem"] = config["stem"] or "imagenet"  # its only stem
    config["stem"] = config["stem"] or info.stem  # "cifar" for small images, else "imagenet"


def _describe(config: dict[str, Any]) -> str:
    variant = "torchvision's network, " if config.get("variant") == "torchvision" else ""
    return (f"{variant}width {config['width']:g}, {config['stem']} stem, batch norm "
            f"{config['batch_norm']}")  # fmt: skip


def options_from_weights(weights: dict[str, Any]) -> dict[str, Any]:
    """The options a GoogLeNet state_dict implies (``--weights``): variant (torchvision's
    when its "5x5" column is a 3x3 conv), stem, batch norm, aux heads, width, class count;
    torchvision's weights expect ``transform_input`` (its pretrained model turns it on)."""
    if "conv1.conv.weight" not in weights or "fc.weight" not in weights:
        return {}
    conv1, fc = weights["conv1.conv.weight"], weights["fc.weight"]  # (64w, C, k, k), (n, 1024w)
    b3 = weights.get("inception3a.branch3.1.conv.weight")
    variant = "torchvision" if b3 is not None and b3.shape[-1] == 3 else "paper"
    return {
        "variant": variant,
        "transform_input": variant == "torchvision",
        "stem": "imagenet" if conv1.shape[-1] == 7 else "cifar",
        "batch_norm": "conv1.bn.weight" in weights,
        "aux_logits": "aux1.fc2.weight" in weights,
        "width": round(fc.shape[1] / 1024, 6),
        "in_channels": int(conv1.shape[1]),
        "num_classes": int(fc.shape[0]),
    }


#: torchvision's ImageNet weights (69.78 % top-1, 89.53 % top-5 at 224 px, one crop, as
#: torchvision reports them); ``--weights googlenet-1378be20.pth --download`` fetches them
PRETRAINED = {
    "googlenet-1378be20.pth": "https://download.pytorch.org/models/googlenet-1378be20.pth"
}


def inception_branches(module: nn.Module) -> tuple[str, ...] | None:
    """The study's block selector: each Inception block, with its four branches."""
    return BRANCHES if isinstance(module, Inception) else None


APP = ModelSpec(
    prog="googlenet.py",
    description="Train and use GoogLeNet (Inception v1) on minigrad.",
    build_model=build_model,
    add_arguments=add_model_arguments,
    defaults=MODEL_DEFAULTS,
    loss_terms=loss_terms,
    loss_options=("aux_weight",),
    dataset_defaults=DATASET_DEFAULTS,
    configure=_configure,
    describe=_describe,
    blocks=inception_branches,
    branch_labels={"branch1": "1x1", "branch2": "3x3", "branch3": "5x5", "branch4": "pool"},
    study_defaults={"width": 0.125},
    size_option="width",
    model="GoogLeNet",
    weights_options=options_from_weights,
    pretrained=PRETRAINED,
)


# ---------------------------------------------------------------------------- training
# The loop, checkpoints and CLI are generic (minigrad.train); these bind them to GoogLeNet.
def load_for_inference(path: str | os.PathLike, device: str = "cpu") -> tuple[GoogLeNet, dict]:
    """A trained model in eval mode on ``device``, and its run config, from a checkpoint
    (the EMA weights when the run kept them); see :func:`minigrad.checkpoint.load_for_inference`.
    """
    return checkpoint.load_for_inference(path, build_model, device)


def train_one_epoch(model: GoogLeNet, loader: Any, optimizer: Any,
                    aux_weight: float = AUX_WEIGHT, **kwargs: Any) -> dict[str, float]:  # fmt: skip
    """One epoch with the aux loss; see :func:`minigrad.train.loop.train_one_epoch`."""
    loss = functools.partial(loss_terms, aux_weight=aux_weight)
    return loop.train_one_epoch(model, loader, optimizer, loss, **kwargs)


def evaluate(model: GoogLeNet, loader: Any, **kwargs: Any) -> dict[str, Any]:
    """Top-1 / top-5 in eval mode; see :func:`minigrad.train.loop.evaluate`."""
    return loop.evaluate(model, loader, **kwargs)


def fit(model: GoogLeNet, train_loader: Any, optimizer: Any, *, epochs: int,
        aux_weight: float = AUX_WEIGHT, **kwargs: Any) -> list[dict[str, Any]]:  # fmt: skip
    """Epochs, checkpoints, resume, callbacks; see :func:`minigrad.train.fit.fit`. The
    model's architecture goes into the checkpoints' config (for ``load_for_inference``)."""
    arch = {k: getattr(model, k) for k in ARCH_KEYS} | {"aux_weight": aux_weight}
    kwargs["config"] = arch | dict(kwargs.get("config") or {})
    loss = functools.partial(loss_terms, aux_weight=aux_weight)
    return train_fit.fit(model, train_loader, optimizer, loss, epochs=epochs, **kwargs)


def main(argv: list[str] | None = None) -> int:
    """``python googlenet.py [train|eval|predict|study] ...``; no arguments: train on digits."""
    return cli.main(list(sys.argv[1:] if argv is None else argv), APP)


if __name__ == "__main__":
    sys.exit(main())
