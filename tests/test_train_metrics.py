"""Accuracy ranks as argsort/topk would (ties to the lower index) and scores NaN/inf as misses."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigrad import nn, optim
from minigrad.train import NonFiniteOutputWarning, topk_correct
from minigrad.train.loop import evaluate, train_one_epoch


def test_topk_equal_logits_give_one_hit_like_argmax() -> None:
    logits = np.zeros((4, 10), dtype=np.float32)  # all-zero fc: every class ties
    target = np.array([0, 3, 9, 1])
    # argmax picks class 0 in every row: only the row whose target is 0 is a top-1 hit;
    # top-5 holds classes 0..4
    assert topk_correct(logits, target, ks=(1, 5)) == [1, 3]


@given(
    n=st.integers(1, 6),
    c=st.integers(1, 8),
    seed=st.integers(0, 2**16),
)
def test_topk_with_ties_matches_stable_argsort(n: int, c: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    logits = rng.integers(-2, 3, size=(n, c)).astype(np.float32)  # many ties
    target = rng.integers(0, c, size=n)
    order = np.argsort(-logits, axis=1, kind="stable")  # ties: lower index first
    want = [int((order[:, :k] == target[:, None]).any(axis=1).sum()) for k in (1, 2, 5)]
    assert topk_correct(logits, target, ks=(1, 2, 5)) == want
    assert topk_correct(logits, target, ks=(1,))[0] == int((logits.argmax(1) == target).sum())


def test_topk_nonfinite_rows_are_misses_and_counted() -> None:
    logits = np.array(
        [[np.nan, 0.0, 1.0], [0.0, np.inf, 0.0], [-np.inf, 0.0, 0.0], [0.0, 2.0, 1.0]],
        dtype=np.float32,
    )
    target = np.array([2, 1, 1, 1])
    counts = topk_correct(logits, target, ks=(1, 3, 7))
    assert counts == [1, 1, 1]  # only the last (finite) row scores
    assert counts.nonfinite == 3
    assert topk_correct(logits[3:], target[3:]).nonfinite == 0


def _nan_model() -> nn.Linear:
    model = nn.Linear(4, 3)
    model.weight.data[...] = np.nan
    return model


def _batches(n: int = 2) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [(rng.normal(size=(5, 4)).astype(np.float32), np.arange(5) % 3) for _ in range(n)]


def test_evaluate_nan_outputs_score_zero_and_warn_once_with_count() -> None:
    with pytest.warns(NonFiniteOutputWarning, match="evaluate: 10 of 10 outputs") as rec:
        result = evaluate(_nan_model(), _batches(), ks=(1, 2))
    assert len(rec) == 1
    assert result["top1"] == 0.0 and result["top2"] == 0.0
    assert result["nonfinite"] == 10 and result["n"] == 10


def test_evaluate_finite_outputs_report_zero_nonfinite() -> None:
    result = evaluate(nn.Linear(4, 3), _batches(), ks=(1,))
    assert result["nonfinite"] == 0


def test_train_one_epoch_warns_once_on_nonfinite_logits() -> None:
    model = _nan_model()
    opt = optim.SGD(model.parameters(), lr=0.0)

    def loss_fn(outputs, target):  # finite although the logits are NaN (say, a custom loss)
        return (model.bias * 0.0).sum() + 1.0

    with pytest.warns(NonFiniteOutputWarning, match=r"epoch 1\): 10 of 10 outputs") as rec:
        stats = train_one_epoch(model, _batches(), opt, loss_fn, bar=False)
    assert len(rec) == 1
    assert stats["acc"] == 0.0
