"""The same GoogLeNet training step in PyTorch: the peer ``bench_train.py --peer`` compares with.

Runs under a *separate* interpreter that has PyTorch (never a dependency of minigrad or of its
tests), for example::

    python3 -m venv /work/wt/torchvenv && /work/wt/torchvenv/bin/pip install torch numpy
    python benchmarks/bench_train.py --configs imagenet --peer /work/wt/torchvenv/bin/python

The network mirrors ``googlenet.GoogLeNet`` layer for layer: the paper's Table 1, the real
5x5 branch, the 3x3/1 ceil-mode max pool in each Inception block, the ImageNet stem
(7x7/2 conv, 3x3/2 ceil pools, LRN(5, 1e-4, 0.75, 1) when there is no batch norm), the two
aux heads (5x5/3 avg pool, 1x1 conv 128, fc 1024, dropout 0.7, fc) and the loss
``CE + 0.3 (CE(aux1) + CE(aux2))``; with ``batch_norm`` every conv is conv (no bias) +
BatchNorm2d(eps 1e-3) + ReLU. With ``variant: torchvision`` the network is
``torchvision.models.googlenet(aux_logits=True)`` itself (torchvision must be installed
beside torch). One step: ``zero_grad``, train-mode forward, loss, backward,
``SGD(momentum=0.9).step()``, on float32 random images, as ``bench_train.make_step``.

Protocol (so the parent can interleave this process's steps with minigrad's): the config
comes as JSON in ``argv[1]``; the script builds the model, runs one warm-up step and prints
``ready``; then for each line ``step`` on stdin it runs one step and prints its wall time
in seconds; on ``done`` it prints a JSON summary (peak RSS, torch version, threads).
"""

from __future__ import annotations

import json
import resource
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

TABLE = (  # in, #1x1, #3x3red, #3x3, #5x5red, #5x5, pool proj
    (192, 64, 96, 128, 16, 32, 32),
    (256, 128, 128, 192, 32, 96, 64),
    (480, 192, 96, 208, 16, 48, 64),
    (512, 160, 112, 224, 24, 64, 64),
    (512, 128, 128, 256, 24, 64, 64),
    (512, 112, 144, 288, 32, 64, 64),
    (528, 256, 160, 320, 32, 128, 128),
    (832, 256, 160, 320, 32, 128, 128),
    (832, 384, 192, 384, 48, 128, 128),
)


def scale(c: int, width: float) -> int:
    return max(1, round(c * width))


class Conv(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, padding: int = 0,
                 bn: bool = False) -> None:  # fmt: skip
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, padding, bias=not bn)]
        if bn:
            layers.append(nn.BatchNorm2d(cout, eps=1e-3))
        super().__init__(*layers, nn.ReLU(inplace=True))


class Inception(nn.Module):
    def __init__(self, cin: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, cp: int,
                 bn: bool) -> None:  # fmt: skip
        super().__init__()
        self.b1 = Conv(cin, c1, 1, bn=bn)
        self.b2 = nn.Sequential(Conv(cin, c3r, 1, bn=bn), Conv(c3r, c3, 3, padding=1, bn=bn))
        self.b3 = nn.Sequential(Conv(cin, c5r, 1, bn=bn), Conv(c5r, c5, 5, padding=2, bn=bn))
        self.b4 = nn.Sequential(
            nn.MaxPool2d(3, 1, padding=1, ceil_mode=True), Conv(cin, cp, 1, bn=bn)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


class Aux(nn.Module):
    def __init__(self, cin: int, classes: int, width: float, bn: bool) -> None:
        super().__init__()
        c128, c1024 = scale(128, width), scale(1024, width)
        self.conv = Conv(cin, c128, 1, bn=bn)
        self.fc1 = nn.Linear(c128 * 16, c1024)
        self.fc2 = nn.Linear(c1024, classes)
        self.dropout = nn.Dropout(0.7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.shape[2] - 5) // 3 + 1 == 4:
            x = F.avg_pool2d(x, 5, 3)
        else:
            x = F.adaptive_avg_pool2d(x, 4)
        x = torch.flatten(self.conv(x), 1)
        return self.fc2(self.dropout(F.relu(self.fc1(x))))


class GoogLeNet(nn.Module):
    def __init__(self, classes: int, stem: str, width: float, bn: bool) -> None:
        super().__init__()
        rows, cin = [], scale(192, width)
        for row in TABLE:
            cols = [scale(c, width) for c in row[1:]]
            rows.append((cin, *cols))
            cin = cols[0] + cols[2] + cols[4] + cols[5]
        c64 = scale(64, width)
        if stem == "imagenet":
            layers: list[nn.Module] = [
                Conv(3, c64, 7, 2, 3, bn=bn),
                nn.MaxPool2d(3, 2, ceil_mode=True),
            ]
            if not bn:
                layers.append(nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0))
            layers += [Conv(c64, c64, 1, bn=bn), Conv(c64, rows[0][0], 3, padding=1, bn=bn)]
            if not bn:
                layers.append(nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0))
            layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
            pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)  # noqa: E731
        else:
            layers = [Conv(3, rows[0][0], 3, padding=1, bn=bn)]
            pool = lambda: nn.MaxPool2d(3, 2, padding=1)  # noqa: E731
        self.stem = nn.Sequential(*layers)
        blocks = [Inception(*r, bn=bn) for r in rows]
        self.s3 = nn.Sequential(*blocks[0:2], pool(), blocks[2])
        self.s4 = nn.Sequential(*blocks[3:6])
        self.s5 = nn.Sequential(blocks[6], pool(), *blocks[7:9])
        self.aux1 = Aux(rows[3][0], classes, width, bn)
        self.aux2 = Aux(rows[6][0], classes, width, bn)
        self.fc = nn.Linear(cin, classes)
        self.dropout = nn.Dropout(0.4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.s3(self.stem(x))
        aux1 = self.aux1(x)
        x = self.s4(x)
        aux2 = self.aux2(x)
        x = self.s5(x)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(self.dropout(x)), aux1, aux2


def _heads(out: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """(logits, aux2, aux1): torchvision's GoogLeNetOutputs order; this file's network
    returns (logits, aux1, aux2)."""
    if hasattr(out, "aux_logits2"):
        return out.logits, out.aux_logits2, out.aux_logits1
    logits, aux1, aux2 = out
    return logits, aux2, aux1


def main() -> None:
    cfg = json.loads(sys.argv[1])
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    bn = cfg.get("batch_norm", True)
    if cfg.get("variant", "paper") == "torchvision":  # torchvision's own network
        from torchvision.models import googlenet

        assert cfg["width"] == 1.0, "torchvision's GoogLeNet has no width"
        model = googlenet(weights=None, num_classes=cfg["num_classes"], aux_logits=True,
                          init_weights=True).train()  # fmt: skip
    else:
        model = GoogLeNet(cfg["num_classes"], cfg["stem"], cfg["width"], bn).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(cfg["batch"], 3, cfg["size"], cfg["size"])
    y = torch.randint(0, cfg["num_classes"], (cfg["batch"],))

    def step() -> None:
        opt.zero_grad()
        logits, a2, a1 = _heads(model(x))
        loss = F.cross_entropy(logits, y) + 0.3 * (F.cross_entropy(a1, y) + F.cross_entropy(a2, y))
        loss.backward()
        opt.step()

    step()  # warm-up
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "step":
            t0 = time.perf_counter()
            step()
            print(time.perf_counter() - t0, flush=True)
        elif line.strip() == "done":
            break
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    summary = {"peak_bytes": peak, "torch": torch.__version__, "threads": torch.get_num_threads()}
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
