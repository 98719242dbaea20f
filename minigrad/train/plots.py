"""Training pictures: loss/accuracy curves and a confusion matrix, as PNG files.

matplotlib (the ``train`` extra) is imported lazily with the non-interactive Agg backend,
so importing this module costs nothing and works on machines without a display.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["plot_confusion_matrix", "plot_curves"]


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, or an ImportError saying how to install it."""
    try:
        import matplotlib  # noqa: PLC0415 - optional dependency
    except ImportError as e:
        raise ImportError(
            "plots need matplotlib: pip install 'minigrad[train]' (or pip install matplotlib)"
        ) from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


LABELS = {
    "train_loss": "train loss (main head)",
    "val_loss": "validation loss (main head)",
    "train_total_loss": "train total loss (with aux terms)",
}


def plot_curves(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> None:
    """Loss (left) and accuracy (right) per epoch from metric rows; saved as a PNG.

    Args:
        rows: one dict per epoch with ``epoch`` and any of ``train_loss``, ``val_loss``,
            ``train_acc``, ``val_acc``, ``val_top5`` (missing keys are skipped).
        path: the PNG to write.
    """
    plt = pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = [r["epoch"] for r in rows]
    for ax, keys, title in (
        (ax_loss, ("train_loss", "val_loss", "train_total_loss"), "loss (main head; total = +aux)"),
        (ax_acc, ("train_acc", "val_acc", "val_top5"), "accuracy"),
    ):
        for key in keys:
            ys = [r.get(key) for r in rows]
            if any(isinstance(y, (int, float)) for y in ys):
                vals = [y if isinstance(y, (int, float)) else np.nan for y in ys]
                style = "--" if key == "train_total_loss" else "-"
                ax.plot(epochs, vals, style, marker="o", label=LABELS.get(key, key))
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion_matrix(
    cm: np.ndarray,
    path: str | os.PathLike,
    class_names: Sequence[str] | None = None,
    title: str = "confusion matrix",
) -> None:
    """Row-normalised confusion matrix (rows = true class) with the counts written in cells.

    Raises:
        ValueError: when ``cm`` is not square or the class names do not match its size.
    """
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"plot_confusion_matrix: cm must be square, got shape {cm.shape}")
    n = cm.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    if len(names) != n:
        raise ValueError(f"plot_confusion_matrix: {len(names)} class names for {n} classes")
    plt = pyplot()
    rate = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = min(4 + 0.45 * n, 30)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(rate, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(names, rotation=90 if n > 10 else 45, ha="right")
    ax.set_yticklabels(names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= 30:  # counts stay legible up to about 30 classes
        for i in range(n):
            for j in range(n):
                color = "white" if rate[i, j] > 0.5 else "black"
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8, color=color)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
