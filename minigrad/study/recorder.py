"""``GradNormRecorder``: per-layer weight-gradient norms during training, cheaply.

    rec = GradNormRecorder(model, "runs/digits", every=10)
    for step, (x, y) in enumerate(loader):
        loss = loss_terms(model(x), y)["total"]
        optimizer.zero_grad()
        loss.backward()
        rec.on_step_end(step, epoch, model)   # after backward, before optimizer.step()
        optimizer.step()
    rec.on_train_end()   # grad_norms.csv, grad_norms.json, grad_norms.png in runs/digits

It only reads the ``.grad`` arrays backward already computed (no extra forward or
backward pass): one squared norm per parameter on recorded steps, nothing otherwise.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from minigrad import backend
from minigrad.study.flow import BlockSelector, no_blocks, watched_layers

__all__ = ["GradNormRecorder"]


def layer_groups(
    model: Any, branches: bool = False, blocks: BlockSelector | None = None
) -> dict[str, list[Any]]:
    """Layer name -> its parameters: top-level children with parameters (and branches)."""
    out = {}
    for name, module, kind in watched_layers(model, blocks or no_blocks):
        if kind == "branch" and not branches:
            continue
        params = list(module.parameters())
        if params:
            out[name] = params
    return out


class GradNormRecorder:
    """Record ``||dL/dW||`` of every top-level layer every ``every`` steps; plot at the end.

    Args:
        model: the Module being trained (its top-level children are the layers; with
            ``branches=True`` every branch of a block gets a row too).
        out_dir: folder for ``grad_norms.csv``, ``grad_norms.json`` and ``grad_norms.png``.
        every: record on steps where ``step % every == 0``.
        branches: also record each branch of a block separately.
        blocks: the block selector (see :func:`~minigrad.study.flow.gradient_flow`) that
            names the branches for ``branches=True``.

    Raises:
        ValueError: ``every`` < 1 or a model without parameters.
    """

    def __init__(
        self,
        model: Any,
        out_dir: str | os.PathLike,
        every: int = 10,
        branches: bool = False,
        blocks: BlockSelector | None = None,
    ) -> None:
        if int(every) != every or every < 1:
            raise ValueError(f"GradNormRecorder: every must be a positive int, got {every!r}")
        self.out_dir = Path(out_dir)
        self.every = int(every)
        self.branches, self.blocks = branches, blocks
        self.names = list(layer_groups(model, branches, blocks))
        if not self.names:
            raise ValueError("GradNormRecorder: the model has no layers with parameters")
        self.rows: list[dict[str, Any]] = []

    def on_step_end(self, step: int, epoch: int, model: Any) -> bool:
        """Record the norms when ``step % every == 0`` (call after backward, before step).

        Parameters whose ``.grad`` is None count as zero. Returns whether it recorded.
        """
        if step % self.every:
            return False
        row: dict[str, Any] = {"step": int(step), "epoch": int(epoch)}
        groups = layer_groups(model, self.branches, self.blocks)
        for name in self.names:
            sq = 0.0
            for p in groups.get(name, []):
                if p.grad is not None:
                    g = p.grad.ravel()
                    xp = backend.get_array_module(g)
                    if g.dtype.itemsize < 4:  # float16: square in float32, not to overflow
                        g = g.astype(xp.float32)
                    sq += float(xp.vdot(g, g).real)
            row[name] = float(np.sqrt(sq))
        self.rows.append(row)
        return True

    def matrix(self) -> np.ndarray:
        """(layers, recorded steps) array of the recorded norms."""
        return np.array([[r[n] for r in self.rows] for n in self.names], dtype=np.float64)

    def on_train_end(self) -> dict[str, Path]:
        """Write CSV, JSON and (when a step was recorded) the heatmap PNG; return the paths."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        paths = {
            "csv": self.out_dir / "grad_norms.csv",
            "json": self.out_dir / "grad_norms.json",
        }
        with open(paths["csv"], "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["step", "epoch", *self.names])
            w.writeheader()
            w.writerows(self.rows)
        data = {"every": self.every, "layers": self.names, "rows": self.rows}
        paths["json"].write_text(json.dumps(data, indent=1) + "\n")
        if self.rows:
            from minigrad.study.flow_plots import plot_heatmap  # noqa: PLC0415 - matplotlib

            paths["png"] = plot_heatmap(
                self.names,
                [r["step"] for r in self.rows],
                self.matrix(),
                self.out_dir / "grad_norms.png",
            )
        return paths
