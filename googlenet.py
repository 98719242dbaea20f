"""GoogLeNet (Inception v1) with its two auxiliary classifiers, the aux loss, and a training CLI.

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

import functools
import os
import sys
from typing import Any, NamedTuple

if __name__ == "__main__":
    # before NumPy loads OpenBLAS: its idle threads sleep at once instead of spinning on the
    # cores minigrad's host threads need (see minigrad.runtime; the CLI then runs products
    # on one BLAS thread and the ops' chunks on all cores)
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import minigrad.functional as F  # noqa: E402
from minigrad import nn  # noqa: E402
from minigrad.checkpoint import load_checkpoint  # noqa: E402
from minigrad.tensor import Tensor  # noqa: E402
from minigrad.train import cli, loop  # noqa: E402
from minigrad.train import fit as train_fit  # noqa: E402

# ---------------------------------------------------------------------------- the model
# Table 1 of the paper: input channels, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj
INCEPTION_CFG: dict[str, tuple[int, int, int, int, int, int, int]] = {
    "3a": (192, 64, 96, 128, 16, 32, 32),  # -> 256
    "3b": (256, 128, 128, 192, 32, 96, 64),  # -> 480
    "4a": (480, 192, 96, 208, 16, 48, 64),  # -> 512
    "4b": (512, 160, 112, 224, 24, 64, 64),  # -> 512
    "4c": (512, 128, 128, 256, 24, 64, 64),  # -> 512
    "4d": (512, 112, 144, 288, 32, 64, 64),  # -> 528
    "4e": (528, 256, 160, 320, 32, 128, 128),  # -> 832
    "5a": (832, 256, 160, 320, 32, 128, 128),  # -> 832
    "5b": (832, 384, 192, 384, 48, 128, 128),  # -> 1024
}


def scale_channels(c: int, width: float) -> int:
    """A channel count scaled by the width multiplier: ``max(1, round(c * width))``."""
    return max(1, round(c * width))


class BasicConv2d(nn.Module):
    """conv -> (BatchNorm2d, eps 1e-3, and no conv bias, when ``batch_norm``) -> ReLU.

    Built alone, the conv weights are He-normal (fan in, ReLU gain), the biases zero;
    ``GoogLeNet`` re-initialises every layer with :func:`init_weights` (its ``init=``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, batch_norm: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding, bias=not batch_norm
        )
        # He init (ReLU gain): with PyTorch's default (gain 1/sqrt(3)) the signal fades over
        # GoogLeNet's depth without batch norm (measured: --no-batch-norm stuck at chance)
        nn.init.kaiming_normal_(self.conv.weight, nonlinearity="relu")
        if not batch_norm:
            nn.init.zeros_(self.conv.bias)
        if batch_norm:
            self.bn = nn.BatchNorm2d(out_channels, eps=1e-3)
        self.batch_norm = batch_norm

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.batch_norm:
            return self.bn(x, relu=True)  # relu(bn(x)) as one op: one pass, a 1-byte mask
        return F.relu(x)


class Inception(nn.Module):
    """Four parallel branches concatenated on channels: 1x1 | 1x1->3x3 | 1x1->5x5 | pool->1x1.

    Args:
        in_channels: channels of the input.
        ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj: the paper's columns.
        batch_norm: BasicConv2d with batch norm.

    Output channels: ``ch1x1 + ch3x3 + ch5x5 + pool_proj``; height and width are kept.
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int,
                 ch5x5: int, pool_proj: int, batch_norm: bool = False) -> None:  # fmt: skip
        super().__init__()
        bn = batch_norm
        self.branch1 = BasicConv2d(in_channels, ch1x1, 1, batch_norm=bn)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, 1, batch_norm=bn),
            BasicConv2d(ch3x3red, ch3x3, 3, padding=1, batch_norm=bn),
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, 1, batch_norm=bn),
            BasicConv2d(ch5x5red, ch5x5, 5, padding=2, batch_norm=bn),  # the paper's real 5x5
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, 1, batch_norm=bn),
        )
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: Tensor) -> Tensor:  # x: (N, C_in, H, W)
        b1 = self.branch1(x)  # (N, ch1x1, H, W)
        b2 = self.branch2(x)  # (N, ch3x3, H, W)
        b3 = self.branch3(x)  # (N, ch5x5, H, W)
        b4 = self.branch4(x)  # (N, pool_proj, H, W)
        return F.cat([b1, b2, b3, b4], dim=1)  # (N, out_channels, H, W)


class InceptionAux(nn.Module):
    """Aux classifier: 5x5/3 avg pool, 1x1 conv 128 + ReLU, fc 1024 + ReLU, dropout, fc.

    The 5x5/3 pool turns the 14x14 (ImageNet stem, 224 input) or 16x16 (CIFAR stem, 32
    input) maps after 4a and 4d into 4x4; for other input sizes adaptive average pooling
    to 4x4 takes its place, so the first linear layer always sees ``4 * 4 * 128`` features.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        batch_norm: bool = False,
        dropout: float = 0.7,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        c128, c1024 = scale_channels(128, width), scale_channels(1024, width)
        self.conv = BasicConv2d(in_channels, c128, 1, batch_norm=batch_norm)
        self.fc1 = nn.Linear(c128 * 4 * 4, c1024)
        self.fc2 = nn.Linear(c1024, num_classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:  # x: (N, C, H, W)
        H, W = x.shape[2], x.shape[3]
        if (H - 5) // 3 + 1 == 4 and (W - 5) // 3 + 1 == 4:
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


def init_weights(model: nn.Module, scheme: str) -> nn.Module:
    """Re-initialise every Conv2d, Linear and BatchNorm2d of ``model`` in place, and return it.

    Schemes (``"auto"`` must be resolved first, see :func:`resolve_init`):

    - ``"pytorch"``: each layer's PyTorch default: conv/linear weight and bias
      U(+-1/sqrt(fan_in)); batch norm weight 1, bias 0, running mean 0, variance 1.
    - ``"he"``: conv weights N(0, 2/fan_in) (``kaiming_normal_``, fan in, ReLU gain), conv
      biases 0; linear and batch norm as ``"pytorch"``.
    - ``"trunc_normal"``: torchvision's GoogLeNet init: conv and linear weights N(0, 0.01^2)
      truncated to [-2, 2]; biases and batch norm as ``"pytorch"``.

    Draws follow ``model.modules()`` (the paper's order), so a seed gives the same weights.
    """
    if scheme not in INIT_SCHEMES[1:]:
        raise ValueError(f"init_weights: scheme must be one of {INIT_SCHEMES[1:]}, got {scheme!r}")
    for m in model.modules():
        if not isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)):
            continue
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


class GoogLeNet(nn.Module):
    """GoogLeNet / Inception v1 (the paper's Table 1), with optional aux heads, BN and width.

    Args:
        num_classes: size of the final (and aux) classifier outputs.
        in_channels: image channels (3 for RGB, 1 for grayscale).
        stem: ``"imagenet"`` (7x7/2 conv, pools, LRN: 224 -> 7x7 before the head) or
            ``"cifar"`` (one 3x3 conv to 192 at full resolution: 32 -> 16 -> 8).
        aux_logits: build the two auxiliary classifiers (after 4a and 4d).
        batch_norm: every conv becomes conv (no bias) + BatchNorm2d(eps=1e-3) + ReLU.
        lrn: local response normalisation in the ImageNet stem; None means "on when
            ``batch_norm`` is off" (the paper's network). The CIFAR stem has no LRN.
        width: multiplies every channel count c into ``max(1, round(c * width))``.
        dropout: dropout before the final linear layer (the paper: 0.4).
        aux_dropout: dropout inside the aux heads (the paper: 0.7).
        init: the initial weights (:func:`init_weights`): ``"auto"`` (default) is
            ``"pytorch"`` (PyTorch's default per layer) with batch norm and ``"he"`` (He-normal
            convs, fan in, ReLU gain) without; or ``"he"``, ``"pytorch"``, ``"trunc_normal"``
            (torchvision's: truncated normal std 0.01). Under batch norm, He's 2.4x larger
            weights lower the effective learning rate (slower learning at the same lr); without
            batch norm PyTorch's default fades the signal through the 22 layers.

    ``forward`` returns :class:`GoogLeNetOutputs` ``(logits, aux1, aux2)`` in training mode
    when the aux heads exist, and the logits alone otherwise (eval mode).

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
        init: str = "auto",
    ) -> None:
        super().__init__()
        scheme = resolve_init(init, batch_norm)
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
        self.num_classes, self.in_channels, self.stem = num_classes, in_channels, stem
        self.aux_logits, self.batch_norm, self.lrn, self.width = aux_logits, batch_norm, lrn, width
        bn, c = batch_norm, functools.partial(scale_channels, width=width)
        # Parameters are created in the paper's order: stem, 3a..5b, aux1, aux2, fc.
        if stem == "imagenet":
            self.conv1 = BasicConv2d(in_channels, c(64), 7, stride=2, padding=3, batch_norm=bn)
            self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            if lrn:
                self.lrn1 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
            self.conv2 = BasicConv2d(c(64), c(64), 1, batch_norm=bn)
            self.conv3 = BasicConv2d(c(64), c(192), 3, padding=1, batch_norm=bn)
            if lrn:
                self.lrn2 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
            self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        else:
            self.conv1 = BasicConv2d(in_channels, c(192), 3, padding=1, batch_norm=bn)

        def block(name: str) -> Inception:
            _, *chs = INCEPTION_CFG[name]
            return Inception(in_ch[0], *(c(ch) for ch in chs), batch_norm=bn)

        def track(m: Inception) -> Inception:
            in_ch[0] = m.out_channels
            return m

        in_ch = [c(192)]
        # 3x3/2 pools between stages (ceil at ImageNet scale; padded for CIFAR: 32 -> 16 -> 8)
        pool = (
            (lambda: nn.MaxPool2d(3, stride=2, ceil_mode=True))
            if stem == "imagenet"
            else (lambda: nn.MaxPool2d(3, stride=2, padding=1))
        )
        self.inception3a = track(block("3a"))
        self.inception3b = track(block("3b"))
        self.maxpool3 = pool()
        self.inception4a = track(block("4a"))
        aux1_in = in_ch[0]
        self.inception4b = track(block("4b"))
        self.inception4c = track(block("4c"))
        self.inception4d = track(block("4d"))
        aux2_in = in_ch[0]
        self.inception4e = track(block("4e"))
        self.maxpool4 = pool()
        self.inception5a = track(block("5a"))
        self.inception5b = track(block("5b"))
        if aux_logits:
            self.aux1 = InceptionAux(aux1_in, num_classes, bn, aux_dropout, width)
            self.aux2 = InceptionAux(aux2_in, num_classes, bn, aux_dropout, width)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_ch[0], num_classes)
        self.init = init  # as asked ("auto" too): what the run config records
        init_weights(self, scheme)

    def forward(self, x: Tensor) -> Any:  # x: (N, C_in, H, W)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"GoogLeNet: expected input (N, {self.in_channels}, H, W), got shape {x.shape}"
            )
        if self.stem == "imagenet":
            x = self.conv1(x)  # (N, 64, 112, 112) for a 224x224 input
            x = self.maxpool1(x)  # (N, 64, 56, 56)
            if self.lrn:
                x = self.lrn1(x)
            x = self.conv2(x)  # (N, 64, 56, 56)
            x = self.conv3(x)  # (N, 192, 56, 56)
            if self.lrn:
                x = self.lrn2(x)
            x = self.maxpool2(x)  # (N, 192, 28, 28)
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


def googlenet_loss(outputs: Any, target: Any, aux_weight: float = 0.3) -> Tensor:
    """The paper's training loss: ``CE(logits) + aux_weight * (CE(aux1) + CE(aux2))``.

    Args:
        outputs: :class:`GoogLeNetOutputs` (training mode) or plain logits (then plain CE).
        target: (N,) int64 class indices (Tensor or array).
        aux_weight: weight of each auxiliary loss (the paper: 0.3; 0 switches them off).

    Returns:
        A scalar Tensor (mean over the batch).
    """
    if isinstance(outputs, GoogLeNetOutputs):
        loss = F.cross_entropy(outputs.logits, target)
        if aux_weight:
            aux = F.cross_entropy(outputs.aux1, target) + F.cross_entropy(outputs.aux2, target)
            loss = loss + aux_weight * aux
        return loss
    return F.cross_entropy(outputs, target)


# ---------------------------------------------------------------------------- training
# The loop, checkpoints and CLI are generic (minigrad.train); these bind them to GoogLeNet.
def build_model(config: dict[str, Any]) -> GoogLeNet:
    """The GoogLeNet a run config describes (``num_classes``, ``in_channels``, ``stem``,
    ``batch_norm``, ``width``, ``init``; aux heads unless ``aux_weight`` is 0)."""
    c, aux = config, config.get("aux_logits", float(config.get("aux_weight", 0.3)) > 0)
    return GoogLeNet(int(c["num_classes"]), int(c.get("in_channels", 3)), c.get("stem") or "cifar",
                     aux, bool(c.get("batch_norm", True)), c.get("lrn"), float(c.get("width", 1)),
                     init=c.get("init") or "auto")  # fmt: skip


def load_for_inference(path: str | os.PathLike, device: str = "cpu") -> tuple[GoogLeNet, dict]:
    """A trained model in eval mode on ``device``, and its run config, from a checkpoint.

    When the run kept an EMA of the weights (``--ema``), the averaged weights are loaded:
    they are what the run evaluated.
    """
    ckpt = load_checkpoint(path)
    config = dict(ckpt.get("config") or {})
    if "num_classes" not in config:
        raise ValueError(f"load_for_inference: {path} has no run config (not from train?)")
    model = build_model(config)
    weights = dict(ckpt["model"])
    if ckpt.get("ema"):
        weights.update(ckpt["ema"]["shadow"])
        weights.update(ckpt["ema"].get("buffers") or {})
    model.load_state_dict(weights)
    return model.to(device).eval(), config


def train_one_epoch(model: GoogLeNet, loader: Any, optimizer: Any, aux_weight: float = 0.3,
                    **kwargs: Any) -> dict[str, float]:  # fmt: skip
    """One epoch with the aux loss; see :func:`minigrad.train.loop.train_one_epoch`."""
    loss = functools.partial(googlenet_loss, aux_weight=aux_weight)
    return loop.train_one_epoch(model, loader, optimizer, loss, **kwargs)


def evaluate(model: GoogLeNet, loader: Any, **kwargs: Any) -> dict[str, Any]:
    """Top-1 / top-5 in eval mode; see :func:`minigrad.train.loop.evaluate`."""
    return loop.evaluate(model, loader, **kwargs)


def fit(model: GoogLeNet, train_loader: Any, optimizer: Any, *, epochs: int,
        aux_weight: float = 0.3, **kwargs: Any) -> list[dict[str, Any]]:  # fmt: skip
    """Epochs, checkpoints, resume, callbacks; see :func:`minigrad.train.fit.fit`. The
    model's architecture goes into the checkpoints' config (for ``load_for_inference``)."""
    keys = ("num_classes", "in_channels", "stem", "aux_logits", "batch_norm", "lrn", "width",
            "init")  # fmt: skip
    arch = {k: getattr(model, k) for k in keys} | {"aux_weight": aux_weight}
    kwargs["config"] = arch | dict(kwargs.get("config") or {})
    loss = functools.partial(googlenet_loss, aux_weight=aux_weight)
    return train_fit.fit(model, train_loader, optimizer, loss, epochs=epochs, **kwargs)


def main(argv: list[str] | None = None) -> int:
    """``python googlenet.py [train|eval|predict|study] ...``; no arguments: train on digits."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "study":
        from minigrad.study.cli import main as study_main  # noqa: PLC0415 - optional tools

        return study_main(argv[1:])
    return cli.main(argv, build_model, googlenet_loss, load_for_inference)


if __name__ == "__main__":
    sys.exit(main())
