"""Reusable pieces of a training tool: progress display, metrics and logs, plots.

The application builds its training tool from these (see ``minigrad.train.spec``); they
know nothing about its model.
"""

from minigrad.train.memory import MemoryEstimate, estimate_memory
from minigrad.train.metrics import (
    MetricLog,
    NonFiniteOutputWarning,
    TopkCounts,
    confusion_matrix,
    topk_correct,
)
from minigrad.train.progress import Progress
from minigrad.train.run_plots import plot_confusion_matrix, plot_curves

__all__ = [
    "MemoryEstimate",
    "MetricLog",
    "NonFiniteOutputWarning",
    "Progress",
    "TopkCounts",
    "confusion_matrix",
    "estimate_memory",
    "plot_confusion_matrix",
    "plot_curves",
    "topk_correct",
]
