"""Peer check: ``GoogLeNet.torchvision()`` + ``mg.io.load_pth`` against torchvision itself.

Runs under a *separate* interpreter that has PyTorch and torchvision (never dependencies of
minigrad or of its tests), with the repository on ``PYTHONPATH``::

    PYTHONPATH=. /work/wt/torchvenv/bin/python benchmarks/torchvision_check.py

For ``transform_input`` False and True it builds ``torchvision.models.googlenet(weights=None,
aux_logits=True, init_weights=True)`` from a fixed seed and makes it non-trivial: conv
weights rescaled to He's std (at ``init_weights``' 0.01 the activations do not depend on the
input), batch-norm running statistics from a calibration batch then perturbed, random BN
weight and bias. It writes ``model.state_dict()`` with ``torch.save`` (the zip format, and
the legacy format for the first case), loads the file with
``mg.io.load_pth`` (which never imports torch) into ``GoogLeNet.torchvision(...)`` strictly,
and compares on a random float32 (2, 3, 224, 224) batch:

- eval-mode logits;
- train-mode outputs with dropout 0 in both networks (``dropout=0, dropout_aux=0`` in
  torchvision, ``dropout=0, aux_dropout=0`` here): logits, aux1, aux2 (batch statistics in
  every batch norm), and the running statistics that forward leaves behind.

The final fc is rescaled so the logits are of order 1-10 (torchvision's init gives ~0.01; a
row checks the two samples' logits differ by 10x the tolerance, i.e. the check sees the
input), and a value passes when ``max|a - b| <= 1e-3 * max(1, max|b|)``: float32 rounding
through 22
layers of sums of up to ~8,000 products each is ~1e-5 relative; a wrong layer (pool
rounding, a transposed weight, the wrong eps) moves logits by 1e-1 or more. Exits 1 on any
mismatch.
"""

from __future__ import annotations

import os
import sys
import tempfile

import numpy as np
import torch
import torchvision

import minigrad as mg
from googlenet import GoogLeNet

TOL = 1e-3
FC_SCALE = 3.0


def make_torch_model(transform_input: bool, seed: int) -> torch.nn.Module:
    """torchvision's GoogLeNet, with dropout 0, non-trivial BN stats and fc scaled up."""
    torch.manual_seed(seed)
    model = torchvision.models.googlenet(
        weights=None, aux_logits=True, init_weights=True, transform_input=transform_input,
        dropout=0.0, dropout_aux=0.0,
    )  # fmt: skip
    with torch.no_grad():
        for m in model.modules():  # He-scaled convs, so activations depend on the input
            if isinstance(m, torch.nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.mul_((2.0 / fan_in) ** 0.5 / m.weight.std())
        bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        for m in bns:  # running stats from one calibration batch, then perturbed
            m.momentum = 1.0
        model.train()
        model(torch.randn(4, 3, 224, 224))
        for m in bns:
            m.momentum = 0.1
            m.running_mean.add_(0.2 * m.running_var.sqrt() * torch.randn_like(m.running_mean))
            m.running_var.mul_(torch.empty_like(m.running_var).uniform_(0.5, 2.0))
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0.0, 0.1)
            m.num_batches_tracked.fill_(7)
        for fc in (model.fc, model.aux1.fc2, model.aux2.fc2):
            fc.weight.mul_(FC_SCALE)
            fc.bias.normal_(0.0, 0.1)
    return model


def compare(name: str, got: np.ndarray, want: np.ndarray, rows: list) -> bool:
    """One table row; True when the shapes agree and the difference is within tolerance."""
    if got.shape != want.shape:
        rows.append((name, f"{got.shape} vs {want.shape}", "-", "-", "-", "FAIL"))
        return False
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    scale = float(np.abs(want).max())
    mx = float(diff.max())
    ok = bool(mx <= TOL * max(1.0, scale))
    rows.append((name, str(tuple(got.shape)), f"{scale:.3g}", f"{mx:.2e}",
                 f"{mx / max(scale, 1e-30):.2e}", "ok" if ok else "FAIL"))  # fmt: skip
    return ok


def check(transform_input: bool, legacy: bool, tmp: str, rows: list) -> bool:
    tag = f"ti={transform_input!s:5} {'legacy' if legacy else 'zip':6}"
    tmodel = make_torch_model(transform_input, seed=19)
    path = os.path.join(tmp, "legacy.pth" if legacy else "zip.pth")
    torch.save(tmodel.state_dict(), path, _use_new_zipfile_serialization=not legacy)

    sd = mg.io.load_pth(path)
    model = GoogLeNet.torchvision(1000, aux_logits=True, transform_input=transform_input,
                                  dropout=0.0, aux_dropout=0.0)  # fmt: skip
    res = model.load_state_dict(sd, strict=True)
    ok = not (res.missing_keys or res.unexpected_keys or res.mismatched_keys)
    if not ok:
        rows.append((f"{tag} load", str(res), "-", "-", "-", "FAIL"))

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 224, 224)).astype(np.float32)

    tmodel.eval()
    model.eval()
    with torch.no_grad():
        want = tmodel(torch.from_numpy(x)).numpy()
    with mg.no_grad():
        got = model(mg.tensor(x)).numpy()
    ok &= compare(f"{tag} eval logits", got, want, rows)
    # sensitivity: the logits must depend on the input (tiny convs + BN stats would not)
    spread = float(np.abs(want[0] - want[1]).max())
    sens_ok = spread > 10 * TOL * max(1.0, float(np.abs(want).max()))  # 10x the tolerance
    rows.append((f"{tag} |y[0] - y[1]|", "-", "-", f"{spread:.3g}", "-",
                 "ok" if sens_ok else "FAIL (input-independent)"))  # fmt: skip
    ok &= sens_ok

    if legacy:  # the train-mode comparison does not depend on the file format
        return ok
    tmodel.train()
    model.train()
    with torch.no_grad():
        t_out = tmodel(torch.from_numpy(x))  # torchvision's order: (logits, aux2, aux1)
    with mg.no_grad():
        m_out = model(mg.tensor(x))  # minigrad's: (logits, aux1, aux2)
    ok &= compare(f"{tag} train logits", m_out.logits.numpy(), t_out.logits.numpy(), rows)
    ok &= compare(f"{tag} train aux1", m_out.aux1.numpy(), t_out.aux_logits1.numpy(), rows)
    ok &= compare(f"{tag} train aux2", m_out.aux2.numpy(), t_out.aux_logits2.numpy(), rows)
    # the running statistics one train-mode forward leaves behind (momentum, unbiased var)
    t_sd = {k: v.numpy() for k, v in tmodel.state_dict().items() if "running" in k}
    m_sd = model.state_dict()
    worst_name, worst = "", 0.0
    for k, v in t_sd.items():
        d = float(np.abs(np.asarray(m_sd[k], dtype=np.float64) - v).max())
        if d > worst:
            worst_name, worst = k, d
    stat_ok = worst <= TOL
    rows.append((f"{tag} running stats", f"{len(t_sd)} tensors", "-", f"{worst:.2e}", "-",
                 "ok" if stat_ok else f"FAIL ({worst_name})"))  # fmt: skip
    return ok and stat_ok


def main() -> int:
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, numpy "
          f"{np.__version__}; input (2, 3, 224, 224) float32; pass: max|diff| <= "
          f"{TOL:g} * max(1, max|ref|)")  # fmt: skip
    rows: list = []
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for transform_input, legacy in ((False, False), (True, False), (False, True)):
            ok &= check(transform_input, legacy, tmp, rows)
    head = ("case", "shape", "max|ref|", "max|diff|", "rel", "")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print("all match" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
