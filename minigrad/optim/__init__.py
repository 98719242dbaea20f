"""Optimizers (SGD, Adam, AdamW), learning-rate schedules and weight averaging.

from minigrad import optim
opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
"""

from minigrad.optim import lr_scheduler
from minigrad.optim.adam import Adam, AdamW
from minigrad.optim.ema import EMA
from minigrad.optim.lr_scheduler import (
    CosineAnnealingLR,
    LinearWarmup,
    LRScheduler,
    PaperSchedule,
    StepLR,
)
from minigrad.optim.optimizer import Optimizer
from minigrad.optim.sgd import SGD

__all__ = [
    "EMA",
    "SGD",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "LRScheduler",
    "LinearWarmup",
    "Optimizer",
    "PaperSchedule",
    "StepLR",
    "lr_scheduler",
]
