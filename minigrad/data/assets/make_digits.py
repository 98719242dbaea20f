"""Rebuild ``digits.npz`` from scikit-learn's copy of the UCI optical digits (run once, offline).

    pip download --no-deps scikit-learn -d /tmp/skl
    unzip -o /tmp/skl/scikit_learn-*.whl 'sklearn/datasets/data/digits.csv.gz' -d /tmp/skl
    python minigrad/data/assets/make_digits.py /tmp/skl/sklearn/datasets/data/digits.csv.gz

The CSV has 1,797 rows of 64 pixel values (0..16) and a label. The split is stratified: 36
test images per class (360 in all), drawn by a fixed seed, and stored in the file so it never
changes between NumPy versions.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

TEST_PER_CLASS = 36
SEED = 20240601


def main(csv_gz: str) -> None:
    rows = np.loadtxt(csv_gz, delimiter=",", dtype=np.int64)  # (1797, 65)
    images = rows[:, :64].reshape(-1, 8, 8).astype(np.uint8)  # (N, 8, 8), 0..16
    labels = rows[:, 64].astype(np.int64)
    rng = np.random.default_rng(SEED)
    test = np.sort(
        np.concatenate(
            [rng.permutation(np.flatnonzero(labels == k))[:TEST_PER_CLASS] for k in range(10)]
        )
    )
    train = np.setdiff1d(np.arange(len(labels)), test)
    out = Path(__file__).with_name("digits.npz")
    np.savez_compressed(
        out,
        images=images,
        labels=labels,
        train_index=train.astype(np.int64),
        test_index=test.astype(np.int64),
    )
    print(f"wrote {out} ({out.stat().st_size} bytes): {len(train)} train, {len(test)} test")


if __name__ == "__main__":
    main(sys.argv[1])
