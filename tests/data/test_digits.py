"""The embedded UCI digits: counts, split, balance, values, upsampling."""

from __future__ import annotations

import numpy as np
import pytest

from minigrad.data import DataLoader, Digits
from minigrad.data.digits import DIGITS_PATH


def test_split_counts_and_balance():
    train, test = Digits(train=True), Digits(train=False)
    assert (len(train), len(test)) == (1437, 360)
    assert np.bincount(test.targets).tolist() == [36] * 10
    counts = np.bincount(train.targets)
    assert len(counts) == 10 and counts.min() >= 138 and counts.max() <= 147
    with np.load(DIGITS_PATH) as f:  # the split is stored, disjoint and complete
        tr, te = f["train_index"], f["test_index"]
        assert len(np.intersect1d(tr, te)) == 0 and len(np.union1d(tr, te)) == 1797
        assert f["images"].dtype == np.uint8 and f["images"].max() == 16
    assert DIGITS_PATH.stat().st_size < 200_000
    assert (DIGITS_PATH.parent / "DIGITS_LICENSE.txt").read_text().count("CC BY 4.0") >= 1


def test_images_are_unit_range_float32():
    ds = Digits(train=False)
    img, lab = ds[0]
    assert img.shape == (1, 8, 8) and img.dtype == np.float32 and 0 <= lab <= 9
    x, y = next(iter(DataLoader(ds, 360, prefetch=0)))
    assert x.min() == 0.0 and x.max() == 1.0 and len(np.unique(x * 16)) == 17  # 0..16 / 16


def test_upsampling_keeps_the_mean_and_range():
    small, big = Digits(train=False), Digits(train=False, size=32)
    assert big[0][0].shape == (1, 32, 32)
    np.testing.assert_array_equal(small.targets, big.targets)
    xs, xb = small.data / 16.0, big.data
    assert 0 <= xb.min() and xb.max() <= 1
    # bilinear upsampling by 4 preserves each image's mean up to the edge effects
    np.testing.assert_allclose(xb.mean(axis=(1, 2, 3)), xs.mean(axis=(1, 2, 3)), atol=0.02)
    nearest = Digits(train=False, size=16, interpolation="nearest")
    np.testing.assert_array_equal(nearest.data[:, :, ::2, ::2], xs.astype(np.float32))


def test_bad_size():
    with pytest.raises(ValueError, match="Digits: size must be a positive int, got 0"):
        Digits(size=0)
