"""Training pictures: loss/accuracy curves and a confusion matrix, as PNG files.

matplotlib (the ``train`` extra) is imported lazily with the non-interactive Agg backend,
so importing this module costs nothing and works on machines without a display.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["loss_axis_top", "plot_confusion_matrix", "plot_curves"]


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
        series = []
        for key in keys:
            ys = [r.get(key) for r in rows]
            if any(isinstance(y, (int, float)) for y in ys):
                vals = [y if isinstance(y, (int, float)) else np.nan for y in ys]
                style = "--" if key == "train_total_loss" else "-"
                (line,) = ax.plot(epochs, vals, style, marker="o", label=LABELS.get(key, key))
                series.append((vals, line.get_color()))
        if ax is ax_loss:  # the scale, said in the plot
            title = f"{title}\n{_clip_spikes(ax, epochs, series)}"
            ax.set_ylabel("loss")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def loss_axis_top(values: Sequence[float]) -> float | None:
    """Where the loss axis stops so that a few spikes do not flatten the rest of the curve:
    ``1.25 x`` the 90th percentile of the finite values when the largest is more than twice
    that percentile, else None (the axis shows everything)."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    if v.size < 4:
        return None
    q = float(np.percentile(v, 90))
    return 1.25 * q if q > 0 and v.max() > 2 * q else None


def _clip_spikes(ax: Any, epochs: Sequence[Any], series: list[tuple[list[float], str]]) -> str:
    """Clip the loss axis at :func:`loss_axis_top`, mark the points above it with a triangle
    on the top edge, and return a line that says which scale the plot uses."""
    top = loss_axis_top([y for vals, _ in series for y in vals])
    if top is None:
        return "linear scale, full range"
    above = 0
    for vals, color in series:
        for x, y in zip(epochs, vals):
            if np.isfinite(y) and y > top:
                above += 1
                ax.plot([x], [top], marker="^", color=color, markersize=10, clip_on=False)
                ax.annotate(f"{y:.3g}", (x, top), textcoords="offset points", xytext=(6, -12),
                            color=color, fontsize=8)  # fmt: skip
    bottom = min(0.0, *(y for vals, _ in series for y in vals if np.isfinite(y)))
    ax.set_ylim(bottom, top)
    return f"linear scale, clipped at {top:.3g} ({above} point(s) above it, marked ^)"


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
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04,
                 label="fraction of the true class (row-normalised)")  # fmt: skip
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
