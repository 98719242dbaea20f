"""The training pictures say what they show (issue 17): the confusion matrix's colorbar is
labelled, and one loss spike does not flatten the rest of the curve (the axis says how)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("matplotlib")
import matplotlib.figure

from minigrad.train.run_plots import loss_axis_top, plot_confusion_matrix, plot_curves


@pytest.fixture
def figures(monkeypatch) -> list[Any]:
    """Every figure saved, kept for inspection."""
    saved: list[Any] = []
    original = matplotlib.figure.Figure.savefig

    def keep(self: Any, *args: Any, **kwargs: Any) -> Any:
        saved.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep)
    return saved


# the first run's figures (python googlenet.py, 2026-12-03): one validation spike at epoch 2
TRAIN = [1.708, 0.3886, 0.1728, 0.0974, 0.0569, 0.0338, 0.0375, 0.0261]
VAL = [1.9057, 5.9898, 0.1201, 0.1069, 0.1633, 0.0416, 0.0328, 0.0179]


def test_one_spike_is_clipped_and_the_axis_says_so(tmp_path, figures):
    rows = [
        {"epoch": e + 1, "train_loss": t, "val_loss": v} for e, (t, v) in enumerate(zip(TRAIN, VAL))
    ]
    plot_curves(rows, tmp_path / "curves.png")
    ax = figures[0].axes[0]
    top = loss_axis_top(TRAIN + VAL)
    assert top is not None and 1.0 < top < 5.9898
    assert ax.get_ylim() == pytest.approx((0.0, top))
    note = f"linear scale, clipped at {top:.3g} (1 point(s) above it, marked ^)"
    assert ax.get_title() == f"loss (main head; total = +aux)\n{note}"
    assert any(t.get_text() == "5.99" for t in ax.texts)  # the clipped value is written


def test_a_smooth_curve_keeps_its_full_range(tmp_path, figures):
    rows = [{"epoch": e, "train_loss": 2.0 / e, "val_loss": 2.2 / e} for e in range(1, 9)]
    plot_curves(rows, tmp_path / "curves.png")
    ax = figures[0].axes[0]
    assert ax.get_title().endswith("\nlinear scale, full range")
    assert ax.get_ylim()[1] >= 2.2


def test_loss_axis_top_ignores_nan_and_needs_a_few_points():
    assert loss_axis_top([1.0, 100.0]) is None
    assert loss_axis_top([1.0, 1.1, float("nan"), 0.9, 1.0]) is None
    assert loss_axis_top([1.0, 1.1, 0.9, 1.0, 0.8, 0.7, 0.6, 0.5, 0.4, 50.0]) is not None


def test_the_confusion_matrix_colorbar_is_labelled(tmp_path, figures):
    plot_confusion_matrix(np.array([[3, 1], [0, 4]]), tmp_path / "cm.png", ["a", "b"])
    colorbar_axes = figures[0].axes[1]
    assert colorbar_axes.get_ylabel() == "fraction of the true class (row-normalised)"
