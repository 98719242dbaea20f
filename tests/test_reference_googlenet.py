"""One GoogLeNet training step on the fast paths and on the reference paths: same gradients.

The op-level property tests (``tests/functional/test_reference_paths.py``) compare each op
alone; this runs the whole network (every conv, pool, batch norm + ReLU, cat, the aux
heads and the loss) both ways and compares every parameter's gradient.
"""

from __future__ import annotations

import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F
from googlenet import GoogLeNet
from minigrad import backend
from minigrad.engine import topological_order


def _step(model, x, y, reference: bool):
    """Gradients of every parameter after one forward/backward, and the paths the ops took."""
    model.zero_grad()
    mg.manual_seed(0)  # the same dropout masks both ways
    with mg.reference_ops(reference):
        out = model(x)
        outs = out if isinstance(out, tuple) else (out,)
        terms = [F.cross_entropy(o, y) * w for w, o in zip((1.0, 0.3, 0.3), outs)]
        loss = terms[0]
        for term in terms[1:]:
            loss = loss + term
    taken = {fn.path for fn in topological_order(loss._ctx)}
    loss.backward()
    grads = {name: backend.as_numpy(p.grad) for name, p in model.named_parameters()}
    return backend.as_numpy(loss.data), grads, taken


@pytest.mark.parametrize("batch_norm", [True, False])
def test_googlenet_step_gives_the_same_gradients_on_fast_and_reference_paths(device, batch_norm):
    mg.manual_seed(0)
    model = GoogLeNet(10, 3, stem="cifar", batch_norm=batch_norm, width=1 / 8)
    model.to(device).to(dtype="float64").train()
    rng = np.random.default_rng(0)
    x = mg.tensor(rng.standard_normal((3, 3, 16, 16)), device=device)
    y = rng.integers(0, 10, 3)

    loss_fast, fast, paths_fast = _step(model, x, y, reference=False)
    loss_ref, ref, paths_ref = _step(model, x, y, reference=True)

    assert paths_ref == {"reference"}
    assert paths_fast - {"reference"}, "the default run took no fast path"
    np.testing.assert_allclose(loss_fast, loss_ref, rtol=1e-12)
    assert fast.keys() == ref.keys() and len(fast) > 50
    for name in fast:
        np.testing.assert_allclose(fast[name], ref[name], rtol=1e-9, atol=1e-12, err_msg=name)
