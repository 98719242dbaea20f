"""Non-finite hyper-parameters are refused up front, naming the optimizer/schedule and value."""

from __future__ import annotations

import math

import pytest

from minigrad import nn, optim

BAD = [math.inf, -math.inf, math.nan]


def _params() -> list:
    return list(nn.Linear(2, 2).parameters())


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize(
    ("make", "key"),
    [
        (lambda b: optim.SGD(_params(), lr=b), "lr"),
        (lambda b: optim.SGD(_params(), lr=0.1, momentum=b), "momentum"),
        (lambda b: optim.SGD(_params(), lr=0.1, weight_decay=b), "weight_decay"),
        (lambda b: optim.SGD(_params(), lr=0.1, dampening=b), "dampening"),
        (lambda b: optim.Adam(_params(), lr=b), "lr"),
        (lambda b: optim.Adam(_params(), eps=b), "eps"),
        (lambda b: optim.Adam(_params(), betas=(0.9, b)), "betas"),
        (lambda b: optim.AdamW(_params(), weight_decay=b), "weight_decay"),
        (lambda b: optim.SGD([{"params": _params(), "lr": b}], lr=0.1), "lr"),
    ],
)
def test_optimizers_reject_non_finite_hyperparameters(make, key, bad) -> None:
    with pytest.raises(ValueError, match=rf"^(SGD|Adam|AdamW): {key} must be .*{bad}"):
        make(bad)


def test_optimizer_rejects_non_number_hyperparameter() -> None:
    with pytest.raises(TypeError, match="SGD: lr must be a number, got str '0.1'"):
        optim.SGD(_params(), lr="0.1")


@pytest.mark.parametrize("bad", BAD)
def test_schedules_reject_non_finite_numbers(bad) -> None:
    opt = optim.SGD(_params(), lr=0.1)
    if bad > 0 or math.isnan(bad):
        with pytest.raises(ValueError, match=f"StepLR: gamma must be > 0 and finite, got {bad}"):
            optim.lr_scheduler.StepLR(opt, step_size=2, gamma=bad)
    with pytest.raises(ValueError, match=f"CosineAnnealingLR: eta_min must be a finite .* {bad}"):
        optim.lr_scheduler.CosineAnnealingLR(opt, T_max=3, eta_min=bad)


@pytest.mark.parametrize("bad", BAD)
def test_ema_rejects_non_finite_decay(bad) -> None:
    with pytest.raises(ValueError, match=f"EMA: decay must be in \\[0, 1\\), got {bad}"):
        optim.EMA(nn.Linear(2, 2), decay=bad)
