"""LR schedules: the lr sequences, composition, state round trips, errors."""

from __future__ import annotations

import math

import pytest

import minigrad as mg
from minigrad import nn, optim


def _opt(lr=1.0, groups=1):
    ps = [nn.Parameter(mg.ones(1)) for _ in range(groups)]
    return optim.SGD([{"params": [p], "lr": lr * (i + 1)} for i, p in enumerate(ps)], lr=lr)


def _sequence(sched, n):
    lrs = [sched.get_last_lr()[0]]
    for _ in range(n - 1):
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    assert sched.optimizer.param_groups[0]["lr"] == lrs[-1]
    return lrs


def test_step_lr():
    lrs = _sequence(optim.StepLR(_opt(0.1), step_size=2, gamma=0.5), 7)
    assert lrs == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125])


def test_paper_schedule_drops_four_percent_every_eight_epochs():
    lrs = _sequence(optim.PaperSchedule(_opt(0.01)), 25)
    assert lrs[:8] == [0.01] * 8
    assert lrs[8:16] == pytest.approx([0.0096] * 8)
    assert lrs[16] == pytest.approx(0.01 * 0.96**2) and lrs[24] == pytest.approx(0.01 * 0.96**3)


def test_cosine_annealing():
    lrs = _sequence(optim.CosineAnnealingLR(_opt(1.0), T_max=4, eta_min=0.2), 5)
    expected = [0.2 + 0.8 * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(5)]
    assert lrs == pytest.approx(expected)
    assert lrs[0] == 1.0 and lrs[4] == pytest.approx(0.2)


def test_linear_warmup_then_cosine_on_every_group():
    opt = _opt(1.0, groups=2)
    sched = optim.LinearWarmup(opt, warmup_steps=4, after=optim.CosineAnnealingLR(opt, T_max=2))
    lrs = _sequence(sched, 7)
    assert lrs == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 0.5, 0.0])
    assert sched.get_last_lr() == pytest.approx([0.0, 0.0])
    sched2 = optim.LinearWarmup(_opt(2.0, groups=2), warmup_steps=2)
    assert sched2.get_last_lr() == pytest.approx([1.0, 2.0])
    sched2.step()
    sched2.step()
    assert sched2.get_last_lr() == pytest.approx([2.0, 4.0])


def test_state_dict_round_trip_continues_identically():
    opt = _opt(1.0)
    sched = optim.LinearWarmup(opt, 3, after=optim.StepLR(opt, step_size=2, gamma=0.5))
    for _ in range(4):
        sched.step()
    sd = sched.state_dict()
    assert sd["last_epoch"] == 4 and sd["after"]["gamma"] == 0.5 and "optimizer" not in sd
    rest = _sequence(sched, 5)
    opt2 = _opt(1.0)
    sched2 = optim.LinearWarmup(opt2, 3, after=optim.StepLR(opt2, step_size=2, gamma=0.5))
    sched2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == rest[0]
    assert _sequence(sched2, 5) == rest


def test_schedule_errors():
    opt = _opt()
    with pytest.raises(ValueError, match="StepLR: step_size must be a positive int, got 0"):
        optim.StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match="StepLR: gamma must be > 0"):
        optim.StepLR(opt, step_size=1, gamma=0)
    with pytest.raises(ValueError, match="CosineAnnealingLR: T_max must be a positive int"):
        optim.CosineAnnealingLR(opt, T_max=0)
    with pytest.raises(ValueError, match="LinearWarmup: warmup_steps must be a positive int"):
        optim.LinearWarmup(opt, warmup_steps=0)
    with pytest.raises(ValueError, match="LinearWarmup: `after` must be built on the same"):
        optim.LinearWarmup(opt, 2, after=optim.StepLR(_opt(), 1))
    with pytest.raises(TypeError, match="StepLR: expected an Optimizer, got list"):
        optim.StepLR([], 1)
