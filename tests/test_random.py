"""The counter-based generator (Philox-4x32-10) behind dropout and GPU draws, and its state.

Its state is ``(seed, offset)`` per stream, so ``random.get_rng_state`` is plain integers
that a checkpoint holds and ``set_rng_state`` puts back exactly, on any device.
"""

from __future__ import annotations

import numpy as np
import pytest
from _host import to_host

import minigrad as mg
import minigrad.functional as F
from minigrad import random
from minigrad._philox import CounterGenerator, philox4x32
from minigrad.checkpoint import load_checkpoint, save_checkpoint

# Random123's known-answer vectors for philox4x32 with 10 rounds (kat_vectors)
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@pytest.mark.parametrize("counter, key, expected", KAT)
def test_philox_matches_the_random123_known_answers(xp, counter, key, expected):
    words = philox4x32(xp, tuple(xp.asarray([c], dtype=xp.uint64) for c in counter), key)
    assert [int(w) for w in to_host(words).ravel()] == list(expected)


def test_the_words_depend_on_seed_and_position_only(xp):
    a = CounterGenerator(7)
    whole = to_host(a.bits(xp, 40))
    b = CounterGenerator(7)
    parts = [to_host(b.bits(xp, n)) for n in (8, 4, 28)]  # draws start on fresh blocks of 4
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert (a.offset, b.offset) == (10, 10)
    c = CounterGenerator(7, offset=2)
    np.testing.assert_array_equal(to_host(c.bits(xp, 32)), whole[8:])
    assert not np.array_equal(to_host(CounterGenerator(8).bits(xp, 40)), whole)
    assert not np.array_equal(to_host(CounterGenerator(7, stream=1).bits(xp, 40)), whole)


def test_uniform_and_normal_draws_have_the_right_distribution(xp):
    g = CounterGenerator(3)
    n = 200_000
    u32 = to_host(g.random(xp, n, dtype=np.float32))
    u64 = to_host(g.random(xp, (n // 2, 2)))
    z = to_host(g.standard_normal(xp, n + 1, dtype=np.float32))
    assert u32.dtype == np.float32 and u64.dtype == np.float64 and u64.shape == (n // 2, 2)
    assert z.dtype == np.float32 and z.shape == (n + 1,)
    for u in (u32, u64):
        assert 0 <= u.min() and u.max() < 1
        assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / u.size)
    assert abs(z.mean()) < 5 / np.sqrt(n) and abs(z.std() - 1) < 5 / np.sqrt(2 * n)
    with pytest.raises(TypeError, match="float32 or float64"):
        g.random(xp, 3, dtype=np.float16)


def test_dropout_masks_are_the_same_on_every_device(device):
    x = np.ones((64, 32), np.float32)
    masks = []
    for dev in ("cpu", device):
        mg.manual_seed(11)
        masks.append([to_host(F.dropout(mg.tensor(x, device=dev), 0.3)) for _ in range(2)])
    np.testing.assert_array_equal(masks[0], masks[1])
    assert not np.array_equal(masks[0][0], masks[0][1])


def test_rng_state_through_a_checkpoint_restores_masks_and_draws(tmp_path, device):
    mg.manual_seed(5)
    x = mg.ones(50, 20, device=device)
    F.dropout(x, 0.5)  # move the streams away from 0
    mg.randn(7, device=device)
    save_checkpoint(tmp_path / "c.npz", rng=random.get_rng_state())
    expected = [to_host(F.dropout(x, 0.5)), to_host(mg.randn(7, device=device))]
    mg.manual_seed(99)  # anything in between
    F.dropout(x, 0.5)
    random.set_rng_state(load_checkpoint(tmp_path / "c.npz")["rng"])
    got = [to_host(F.dropout(x, 0.5)), to_host(mg.randn(7, device=device))]
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


def test_an_unseeded_run_also_resumes_exactly(device, monkeypatch):
    for name, fresh in (("_seed", None), ("_key", None), ("_generators", {}), ("_streams", {})):
        monkeypatch.setattr(random, name, fresh)  # a fresh process without manual_seed
    x = mg.ones(100, device=device)
    state = random.get_rng_state()
    assert state["seed"] is None and isinstance(state["philox"]["seed"], int)
    first = to_host(F.dropout(x, 0.5))
    random.set_rng_state(state)
    np.testing.assert_array_equal(to_host(F.dropout(x, 0.5)), first)


def test_a_state_from_before_the_counter_streams_restarts_them(device):
    mg.manual_seed(4)
    x = mg.ones(100, device=device)
    first = to_host(F.dropout(x, 0.5))
    F.dropout(x, 0.5)
    old = {k: v for k, v in random.get_rng_state().items() if k != "philox"}
    random.set_rng_state(old)
    np.testing.assert_array_equal(to_host(F.dropout(x, 0.5)), first)
