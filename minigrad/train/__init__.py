"""Reusable pieces of a training tool: progress display, metrics and logs, plots.

The application builds its training tool from these (see ``minigrad.train.spec``); they
know nothing about its model.
"""

from minigrad.train.metrics import MetricLog, confusion_matrix, topk_correct
from minigrad.train.plots import plot_confusion_matrix, plot_curves
from minigrad.train.progress import Progress

__all__ = [
    "MetricLog",
    "Progress",
    "confusion_matrix",
    "plot_confusion_matrix",
    "plot_curves",
    "topk_correct",
]
