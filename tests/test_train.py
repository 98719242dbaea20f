"""minigrad.train: progress display, metrics, metric logs and plots."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad import nn
from minigrad.train import (
    MetricLog,
    Progress,
    confusion_matrix,
    plot_confusion_matrix,
    plot_curves,
    topk_correct,
)


# ---------------------------------------------------------------- top-k
def _naive_topk(logits: np.ndarray, target: np.ndarray, k: int) -> int:
    hits = 0
    for i in range(logits.shape[0]):
        higher = 0
        for j in range(logits.shape[1]):
            if logits[i, j] > logits[i, target[i]]:
                higher += 1
        hits += higher < k
    return hits


@given(
    n=st.integers(1, 6),
    c=st.integers(1, 8),
    seed=st.integers(0, 2**16),
)
def test_topk_correct_matches_loops(n: int, c: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    logits = rng.permuted(np.tile(np.arange(c, dtype=np.float32), (n, 1)), axis=1)  # no ties
    target = rng.integers(0, c, size=n)
    got = topk_correct(logits, target, ks=(1, 2, 5))
    assert got == [_naive_topk(logits, target, k) for k in (1, 2, 5)]


def test_topk_correct_accepts_tensors() -> None:
    logits = mg.tensor(np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]], dtype=np.float32))
    assert topk_correct(logits, mg.tensor(np.array([1, 1])), ks=(1, 2)) == [1, 2]


def test_topk_correct_errors() -> None:
    with pytest.raises(ValueError, match=r"topk_correct: logits must be \(N, num_classes\)"):
        topk_correct(np.zeros(3), np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match=r"topk_correct: target must be \(N,\) = \(2,\)"):
        topk_correct(np.zeros((2, 3)), np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="every k must be >= 1"):
        topk_correct(np.zeros((2, 3)), np.zeros(2, dtype=np.int64), ks=(0,))


# ---------------------------------------------------------------- confusion matrix
@given(n=st.integers(0, 20), c=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_confusion_matrix_matches_loops(n: int, c: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    pred, target = rng.integers(0, c, size=n), rng.integers(0, c, size=n)
    expected = np.zeros((c, c), dtype=np.int64)
    for p, t in zip(pred, target):
        expected[t, p] += 1
    np.testing.assert_array_equal(confusion_matrix(pred, target, c), expected)


def test_confusion_matrix_errors() -> None:
    with pytest.raises(ValueError, match="pred has 2 entries but target has 3"):
        confusion_matrix([0, 1], [0, 1, 1], 2)
    with pytest.raises(ValueError, match=r"target values must lie in \[0, 2\), got range \[0, 2\]"):
        confusion_matrix([0, 1], [0, 2], 2)
    with pytest.raises(ValueError, match="pred values must lie in"):
        confusion_matrix([-1, 1], [0, 1], 2)


# ---------------------------------------------------------------- metric log
def _csv_rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_metric_log_writes_csv_and_json_and_resumes(tmp_path) -> None:
    log = MetricLog(tmp_path)
    log.append({"epoch": 1, "train_loss": np.float32(0.5), "val_acc": 0.25})
    log.append({"epoch": 2, "train_loss": float("nan"), "val_acc": 0.5})
    rows = _csv_rows(tmp_path / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert float(rows[0]["train_loss"]) == 0.5
    data = json.loads((tmp_path / "metrics.json").read_text())
    assert data[1] == {"epoch": 2, "train_loss": "nan", "val_acc": 0.5}
    again = MetricLog(tmp_path, resume=True)
    assert again.column("val_acc") == [0.25, 0.5]
    again.truncate(1)
    assert len(_csv_rows(tmp_path / "metrics.csv")) == 1
    assert MetricLog(tmp_path, resume=False).rows == []


def test_metric_log_rejects_changed_keys(tmp_path) -> None:
    log = MetricLog(tmp_path)
    log.append({"epoch": 1, "loss": 1.0})
    with pytest.raises(ValueError, match=r"MetricLog.append: keys \['epoch', 'acc'\] differ"):
        log.append({"epoch": 2, "acc": 1.0})


# ---------------------------------------------------------------- progress
def test_progress_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    with Progress(total=5, desc="epoch 1/2", stream=out, log_every=2) as p:
        for _ in range(5):
            p.update(batch_size=4, loss=1.0, correct=3, lr=0.1)
    lines = out.getvalue().splitlines()
    assert [ln.split(" loss")[0] for ln in lines] == [
        "epoch 1/2 step 2/5",
        "epoch 1/2 step 4/5",
        "epoch 1/2 step 5/5",
    ]
    assert "acc 0.7500" in lines[-1] and "lr 0.1" in lines[-1] and "img/s" in lines[-1]
    assert p.images == 20 and p.loss == pytest.approx(1.0) and p.acc == pytest.approx(0.75)


def test_progress_running_means_weight_by_batch_size() -> None:
    p = Progress(total=None, stream=io.StringIO(), bar=False, log_every=0)
    p.update(batch_size=1, loss=4.0, correct=1)
    p.update(batch_size=3, loss=0.0, correct=0)
    assert p.loss == pytest.approx(1.0) and p.acc == pytest.approx(0.25)
    assert "lr" not in p.summary()


def test_progress_tqdm_bar_shows_postfix() -> None:
    out = io.StringIO()
    with Progress(total=3, desc="train", stream=out, bar=True) as p:
        for _ in range(3):
            p.update(batch_size=2, loss=0.5, correct=2, lr=0.01)
    text = out.getvalue()
    assert "train" in text and "3/3" in text and "loss 0.5000 acc 1.0000" in text


# ---------------------------------------------------------------- plots
def _png_size(path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def test_plot_curves_writes_png(tmp_path) -> None:
    rows = [
        {"epoch": e, "train_loss": 1.0 / e, "val_loss": "nan", "train_acc": 0.1 * e, "val_acc": 0.2}
        for e in (1, 2, 3)
    ]
    plot_curves(rows, tmp_path / "curves.png")
    w, h = _png_size(tmp_path / "curves.png")
    assert w > h > 100


def test_plot_confusion_matrix_writes_png_and_checks(tmp_path) -> None:
    cm = confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], 3)
    plot_confusion_matrix(cm, tmp_path / "cm.png", ["a", "b", "c"])
    assert min(_png_size(tmp_path / "cm.png")) > 100
    with pytest.raises(ValueError, match=r"cm must be square, got shape \(2, 3\)"):
        plot_confusion_matrix(np.zeros((2, 3)), tmp_path / "x.png")
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        plot_confusion_matrix(cm, tmp_path / "x.png", ["a", "b"])


# ---------------------------------------------------------------- the generic trainer's pieces
def test_total_loss_and_the_spec_binds_its_loss_options() -> None:
    from minigrad.train.spec import ModelSpec, total_loss

    t = mg.tensor(np.float32(2.0))
    assert total_loss(t) is t and total_loss({"main": t, "total": t}) is t
    with pytest.raises(ValueError, match=r"loss terms need a 'total' entry, got \['main'\]"):
        total_loss({"main": t})
    seen = []

    def terms(outputs, target, scale=1.0):
        seen.append(scale)
        return {"total": outputs * scale}

    spec = ModelSpec("m.py", "d", lambda cfg: None, lambda g: None, {}, terms, ("scale",))
    spec.loss({"scale": 3.0, "width": 2})(t, None)
    spec.loss({"scale": None})(t, None)  # an unset option keeps the loss's own default
    assert seen == [3.0, 1.0]


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x: mg.Tensor) -> mg.Tensor:
        return self.fc(x)


def _batches() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 8, 3)).astype(np.float32)
    return [(xb, (xb[:, 0] > 0).astype(np.int64)) for xb in x]


def test_fit_without_a_folder_or_validation_writes_nothing_and_follows_train_accuracy(
    tmp_path, monkeypatch
) -> None:
    import minigrad.functional as F
    from minigrad.optim import SGD
    from minigrad.train.fit import RunFolder, fit

    monkeypatch.chdir(tmp_path)
    mg.manual_seed(0)
    model = _Tiny()
    terms = lambda o, t: {"main": F.cross_entropy(o, t), "total": F.cross_entropy(o, t)}  # noqa: E731
    out = io.StringIO()
    rows = fit(model, _batches(), SGD(model.parameters(), lr=0.5), terms, epochs=3,
               stream=out, bar=False)  # fmt: skip
    assert [r["epoch"] for r in rows] == [1, 2, 3] and "val_acc" not in rows[0]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert list(tmp_path.iterdir()) == []  # no run folder: nothing written
    folder = RunFolder(None)
    assert folder.file("last.npz") is None
    folder.append(rows[0])
    folder.plot(rows)
    folder.save("last.npz", {"model": {}})
    assert list(tmp_path.iterdir()) == []


def test_run_folder_cuts_the_log_back_to_a_resumed_history(tmp_path) -> None:
    from minigrad.train.fit import RunFolder

    rows = [{"epoch": e, "loss": 1.0 / e} for e in (1, 2, 3)]
    first = RunFolder(tmp_path, plots=False)
    for r in rows:
        first.append(r)
    again = RunFolder(tmp_path, history=rows[:2], plots=False)  # resumed after epoch 2
    assert len(_csv_rows(tmp_path / "metrics.csv")) == 2
    again.append({"epoch": 3, "loss": 0.25})
    assert [r["loss"] for r in _csv_rows(tmp_path / "metrics.csv")] == ["1.0", "0.5", "0.25"]
    assert again.file("best.npz") == tmp_path / "best.npz"
