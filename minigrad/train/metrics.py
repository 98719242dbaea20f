"""Classification metrics and per-epoch metric logs.

* :func:`topk_correct` counts top-k hits from a batch of logits (any k at once), ranking as
  a stable ``argsort`` would (ties go to the lower class index, as ``torch.topk``); a row
  with a NaN/inf logit is a miss, and the result's ``nonfinite`` says how many there were.
* :func:`confusion_matrix` counts (true, predicted) pairs without a Python loop.
* :class:`MetricLog` appends one row per epoch to ``metrics.csv`` and rewrites
  ``metrics.json`` (a list of rows), so a run folder always holds readable metrics, and
  reloads them when a run resumes.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MetricLog", "NonFiniteOutputWarning", "TopkCounts", "confusion_matrix", "topk_correct"]


class NonFiniteOutputWarning(RuntimeWarning):
    """Some model outputs (logits) were NaN or inf; those rows were counted as misses."""


class TopkCounts(list):
    """The hit counts of :func:`topk_correct` (a list of ints, one per k), plus
    ``nonfinite``: how many rows had a NaN/inf logit (each counted as a miss for every k)."""

    nonfinite: int = 0


def _check_batch(fn: str, logits: np.ndarray, target: np.ndarray) -> None:
    if logits.ndim != 2:
        raise ValueError(f"{fn}: logits must be (N, num_classes), got shape {logits.shape}")
    if target.shape != (logits.shape[0],):
        raise ValueError(
            f"{fn}: target must be (N,) = ({logits.shape[0]},), got shape {target.shape}"
        )


def topk_correct(logits: Any, target: Any, ks: Sequence[int] = (1, 5)) -> TopkCounts:
    """How many rows have their target among the k highest logits, for each k.

    The rank of the target is its position in a stable descending sort of the row: the
    classes scoring higher, plus the equal-scoring ones with a lower index (``torch.topk``
    and ``argmax`` break ties the same way), so equal logits give exactly one hit for k=1.
    A row with any NaN or inf logit is a miss for every k.

    Args:
        logits: (N, num_classes) scores (NumPy or CuPy array, or anything with ``.numpy()``).
        target: (N,) integer class indices.
        ks: the k values; a k larger than the number of classes counts every finite row.

    Returns:
        One count per k (Python ints) as a :class:`TopkCounts`, whose ``nonfinite`` is the
        number of rows with a non-finite logit.

    Raises:
        ValueError: on mismatched shapes or a k below 1.
    """
    logits = np.asarray(logits.numpy() if hasattr(logits, "numpy") else _host(logits))
    target = np.asarray(target.numpy() if hasattr(target, "numpy") else _host(target))
    _check_batch("topk_correct", logits, target)
    if any(k < 1 for k in ks):
        raise ValueError(f"topk_correct: every k must be >= 1, got {tuple(ks)}")
    N, C = logits.shape
    t = target.astype(np.int64)[:, None]  # (N, 1)
    target_score = np.take_along_axis(logits, t, axis=1)  # (N, 1)
    # rank = classes strictly above the target + equal ones with a lower index
    tied_before = (logits == target_score) & (np.arange(C)[None, :] < t)  # (N, C)
    rank = (logits > target_score).sum(axis=1) + tied_before.sum(axis=1)  # (N,)
    finite = np.isfinite(logits).all(axis=1)  # (N,)
    counts = TopkCounts(int(((rank < k) & finite).sum()) for k in ks)
    counts.nonfinite = int(N - finite.sum())
    return counts


def confusion_matrix(pred: Any, target: Any, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts; row = true class, column = prediction.

    Raises:
        ValueError: when shapes differ or a label is outside ``[0, num_classes)``.
    """
    pred = np.asarray(_host(pred)).astype(np.int64).ravel()
    target = np.asarray(_host(target)).astype(np.int64).ravel()
    if pred.shape != target.shape:
        raise ValueError(
            f"confusion_matrix: pred has {pred.size} entries but target has {target.size}"
        )
    for name, a in (("pred", pred), ("target", target)):
        if a.size and (a.min() < 0 or a.max() >= num_classes):
            raise ValueError(
                f"confusion_matrix: {name} values must lie in [0, {num_classes}), "
                f"got range [{a.min()}, {a.max()}]"
            )
    flat = np.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def _host(a: Any) -> Any:
    return a.get() if hasattr(a, "get") and not isinstance(a, dict) else a


def _jsonable(v: Any) -> Any:
    if isinstance(v, (np.floating, float)):
        v = float(v)
        return v if math.isfinite(v) else str(v)
    if isinstance(v, np.integer):
        return int(v)
    return v


class MetricLog:
    """``metrics.csv`` + ``metrics.json`` in a run folder, one row (a dict) per epoch.

    The CSV header is taken from the first row; later rows must have the same keys.
    ``MetricLog(out_dir, resume=True)`` reloads ``metrics.json`` so a resumed run keeps
    appending to the same history.
    """

    def __init__(self, out_dir: str | os.PathLike, resume: bool = False) -> None:
        self.dir = Path(out_dir)
        self.csv_path = self.dir / "metrics.csv"
        self.json_path = self.dir / "metrics.json"
        self.rows: list[dict[str, Any]] = []
        if resume and self.json_path.exists():
            self.rows = json.loads(self.json_path.read_text())

    def truncate(self, n: int) -> None:
        """Keep only the first ``n`` rows (a resumed run drops epochs after its checkpoint)."""
        self.rows = self.rows[:n]
        self._write_all()

    def append(self, row: dict[str, Any]) -> None:
        """Add one epoch's metrics and write both files."""
        row = {k: _jsonable(v) for k, v in row.items()}
        if self.rows and list(row) != list(self.rows[0]):
            raise ValueError(
                f"MetricLog.append: keys {list(row)} differ from the header {list(self.rows[0])}"
            )
        self.rows.append(row)
        self._write_all()

    def _write_all(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.json_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.rows, indent=1))
        os.replace(tmp, self.json_path)
        tmp = self.csv_path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            if self.rows:
                w = csv.DictWriter(f, fieldnames=list(self.rows[0]))
                w.writeheader()
                w.writerows(self.rows)
        os.replace(tmp, self.csv_path)

    def column(self, key: str) -> list[Any]:
        """All values of one metric, in epoch order."""
        return [r.get(key) for r in self.rows]
