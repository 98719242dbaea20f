"""The memory estimate against what a real training step allocates (tracemalloc)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import minigrad.functional as F
from minigrad import nn, optim, random
from minigrad.tensor import tensor
from minigrad.train.memory import estimate_memory, format_bytes, parameter_bytes


def _model() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Dropout(0.2),
        nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )  # fmt: skip


def _loss(outputs, target):
    return F.cross_entropy(outputs, target)


def _actual_step_bytes(model, n: int) -> int:
    """Parameters + the peak NumPy allocation of one SGD-momentum training step."""
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = np.random.default_rng(1).standard_normal((n, 3, 32, 32), dtype=np.float32)
    tracemalloc.start()
    try:
        loss = _loss(model(tensor(x)), np.arange(n) % 10)
        opt.zero_grad()
        loss.backward()
        opt.step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    params = sum(p.data.nbytes for p in model.parameters())
    return params + sum(b.data.nbytes for b in model.buffers()) + peak


@pytest.mark.parametrize("n", [16, 64])
def test_estimate_is_at_most_1_5x_below_and_2x_above_a_real_step(n) -> None:
    """Above by up to 2x: the probes (batch 2 and 4) hold their whole batch's im2col, which
    the estimate extrapolates linearly, while a real step's conv chunks (equal parts, their
    number a multiple of the host threads) hold a few images' at a time; at batch 64 the
    estimate is 1.6-1.7x the real peak (1.46x with the unequal chunks before issue 22).
    Too high is the safe side for the memory check; too low is held to 1.5x."""
    model = _model()
    est = estimate_memory(model, (3, 32, 32), n, optimizer_slots=1, loss_fn=_loss, num_classes=10)
    actual = _actual_step_bytes(model, n)
    assert actual / 1.5 <= est.total <= actual * 2.0, (str(est), actual)
    assert est.params == est.grads + sum(b.data.nbytes for b in model.buffers())
    assert est.optimizer == est.grads and est.per_image > 0


def test_probe_leaves_the_model_and_rng_as_they_were() -> None:
    model = _model()
    model.eval()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    rng = random.get_rng_state()
    estimate_memory(model, (3, 32, 32), 8)
    assert not model.training
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])  # BN running statistics included
    assert random.get_rng_state() == rng  # the dropout draws of the run are unchanged


def test_max_batch_size_and_the_summary_line() -> None:
    est = estimate_memory(_model(), (3, 32, 32), 32)
    fits = est.max_batch_size(est.total)
    assert fits == 32 or abs(fits - 32) <= 1
    assert est.max_batch_size(est.total + 10 * est.per_image) >= 41
    assert est.max_batch_size(est.params) == 0
    assert str(est).startswith("params ") and str(est).endswith("at batch 32")
    assert format_bytes(1234567) == "1.23 MB" and format_bytes(512) == "512 B"


def test_parameter_bytes_from_shapes_allocates_nothing() -> None:
    # GoogLeNet-sized layers at 100x width would be tens of GB: only shapes are used
    assert parameter_bytes([(6400, 19200, 3, 3), (6400,)]) == (6400 * 19200 * 9 + 6400) * 4
    assert parameter_bytes([(10, 10)], itemsize=8) == 800


def test_estimate_argument_errors() -> None:
    model = _model()
    with pytest.raises(ValueError, match="estimate_memory: batch_size must be an int >= 1"):
        estimate_memory(model, (3, 32, 32), 0)
    with pytest.raises(ValueError, match=r"estimate_memory: input_shape must be \(C, H, W\)"):
        estimate_memory(model, (32, 32), 4)
    with pytest.raises(ValueError, match="optimizer_slots must be >= 0"):
        estimate_memory(model, (3, 32, 32), 4, optimizer_slots=-1)


def test_check_fits_checks_the_per_rank_batch_under_mpiexec() -> None:
    """Each rank holds its share of the global batch: 1000 images of 3x32x32 float32 (12.3
    MB) do not fit in 8 MB, 500 per rank (6.1 MB) do; the error names both batches."""
    from types import SimpleNamespace

    from minigrad.train.memory import check_fits

    spec = SimpleNamespace(size_option=None)
    info = SimpleNamespace(image_size=32, in_channels=3, name="toy")
    cfg = {"batch_size": 1000}
    with pytest.raises(ValueError, match=r"--batch-size 1000: the images alone"):
        check_fits(spec, cfg, info, available=8_000_000)
    check_fits(spec, cfg, info, available=8_000_000, batch_size=500)
    with pytest.raises(ValueError, match=r"--batch-size 1000 \(800 per rank\)"):
        check_fits(spec, cfg, info, available=8_000_000, batch_size=800)
