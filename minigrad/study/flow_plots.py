"""Pictures of the gradient flow: per-layer bars by loss term, branch shares, a heatmap.

matplotlib is imported lazily with the Agg backend (no display needed), through the same
helper as :mod:`minigrad.train.run_plots`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from minigrad.study.flow import FlowReport, branch_names
from minigrad.train.run_plots import pyplot

__all__ = ["plot_attribution", "plot_branch_shares", "plot_heatmap"]

TERM_COLORS = {"main": "#1f77b4", "aux1": "#ff7f0e", "aux2": "#2ca02c", "total": "#7f7f7f"}
BRANCH_COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#bbbbbb")


def _save(fig: object, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)  # type: ignore[attr-defined]
    pyplot().close(fig)
    return path


def plot_attribution(report: FlowReport, path: str | os.PathLike) -> Path:
    """Per top-level layer with weights: ``|dL_k/dW|`` for every loss term, as grouped bars.

    Top panel: the weight-gradient norm of each term (log scale), so a reader sees layer
    by layer how strong the signal from aux1 and aux2 is next to the main loss. Bottom
    panel: ``|dL/dy|`` (gradient w.r.t. the layer's output) per term.
    """
    plt = pyplot()
    layers = [lay for lay in report.layers if lay.kind != "branch" and lay.num_params]
    names = [lay.name for lay in layers]
    idx = np.arange(len(layers))
    width = 0.8 / len(report.terms)
    fig, axes = plt.subplots(2, 1, figsize=(max(7.0, 0.55 * len(layers)), 6.5), sharex=True)
    for ax, attr, what in (
        (axes[0], "grad_weight", "|dL_k/dW| (weights)"),
        (axes[1], "grad_out", "|dL_k/dy| (layer output)"),
    ):
        for j, term in enumerate(report.terms):
            vals = [getattr(lay, attr).get(term, 0.0) for lay in layers]
            ax.bar(
                idx + (j - (len(report.terms) - 1) / 2) * width,
                [v if v > 0 else np.nan for v in vals],
                width,
                label=term,
                color=TERM_COLORS.get(term),
            )
        ax.set_yscale("log")
        ax.set_ylabel(what)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(ncol=len(report.terms), fontsize=8)
    axes[0].set_title("Gradient norm per layer, separately for each loss term")
    axes[1].set_xticks(idx, names, rotation=45, ha="right")
    fig.tight_layout()
    return _save(fig, path)


def _short_names(names: list[str]) -> list[str]:
    """Names without their common alphabetic prefix ("inception3a" -> "3a")."""
    prefix = os.path.commonprefix(names) if len(names) > 1 else ""
    prefix = prefix.rstrip("0123456789")
    return [n[len(prefix) :] or n for n in names]


def plot_branch_shares(
    report: FlowReport, path: str | os.PathLike, labels: dict[str, str] | None = None
) -> Path:
    """Stacked bars: each branch's share of the gradient at every block's input.

    Shares are projections ``<c_b, g>/|g|^2`` (they add up to 1; a part pointing against
    the total would go below 0). ``other`` is any further reader of the block's input.
    ``labels`` maps branch names to legend labels (e.g. ``{"branch1": "1x1"}``).
    """
    plt = pyplot()
    blocks = report.blocks
    names = _short_names([b.name for b in blocks])
    idx = np.arange(len(blocks))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(blocks)) + 1.6, 4.2))
    pos, neg = np.zeros(len(blocks)), np.zeros(len(blocks))
    parts = [*branch_names(blocks), "other"]
    branch_colors = BRANCH_COLORS[:-1]
    colors = [branch_colors[i % len(branch_colors)] for i in range(len(parts) - 1)]
    label = {**(labels or {}), "other": "other reader\n(e.g. aux head)"}
    for part, color in zip(parts, [*colors, BRANCH_COLORS[-1]]):
        vals = np.array([b.share.get(part, 0.0) for b in blocks])
        base = np.where(vals >= 0, pos, neg)
        ax.bar(idx, vals, 0.7, bottom=base, color=color, label=label.get(part, part))
        pos, neg = pos + np.clip(vals, 0, None), neg + np.clip(vals, None, 0)
    ax.axhline(1.0, color="k", lw=0.6, ls=":")
    ax.set_xticks(idx, names)
    ax.set_ylabel("share of dL/d(block input)")
    ax.set_title("Each branch's share of the gradient at the block input")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="branch")
    fig.tight_layout()
    return _save(fig, path)


def plot_heatmap(
    names: Sequence[str],
    steps: Sequence[int],
    values: np.ndarray,
    path: str | os.PathLike,
    title: str = "weight-gradient norm per layer (log10)",
    xlabel: str = "training step",
) -> Path:
    """A layers x steps heatmap of ``log10(values)``; zeros/NaN are left blank.

    Args:
        names: one label per row (layer).
        steps: one label per column (step or epoch).
        values: (len(names), len(steps)) array of norms.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (len(names), len(steps)):
        raise ValueError(
            f"plot_heatmap: values have shape {values.shape}, expected "
            f"({len(names)}, {len(steps)}) for the names and steps given"
        )
    plt = pyplot()
    with np.errstate(divide="ignore", invalid="ignore"):
        logv = np.where(values > 0, np.log10(np.where(values > 0, values, 1.0)), np.nan)
    w = min(12.0, max(6.0, 0.12 * len(steps) + 3))
    fig, ax = plt.subplots(figsize=(w, max(3.0, 0.28 * len(names) + 1)))
    im = ax.imshow(logv, aspect="auto", interpolation="nearest", cmap="viridis")
    ax.set_yticks(np.arange(len(names)), names, fontsize=7)
    ticks = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), 10)).round().astype(int))
    ax.set_xticks(ticks, [str(steps[i]) for i in ticks])
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="log10 norm")
    fig.tight_layout()
    return _save(fig, path)
