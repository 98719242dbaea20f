"""MNIST / Fashion-MNIST: gzipped IDX files written here, read back; header checks."""

from __future__ import annotations

import gzip
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigrad.data import MNIST, FashionMNIST
from minigrad.data.download import md5sum
from minigrad.data.mnist import read_idx


@pytest.mark.parametrize("cls,folder", [(MNIST, "mnist"), (FashionMNIST, "fashion-mnist")])
def test_reads_the_four_idx_files(tmp_path, archives, cls, folder):
    arrays = archives.write_mnist(tmp_path / folder)
    train, test = cls(tmp_path, train=True), cls(tmp_path, train=False)
    assert (len(train), len(test)) == (6, 4)
    images, labels = arrays["t10k"]
    np.testing.assert_array_equal(test.data[:, 0], images)
    np.testing.assert_array_equal(test.targets, labels)
    img, lab = test[2]
    assert img.shape == (1, 28, 28) and img.dtype == np.float32
    np.testing.assert_allclose(img[0], images[2] / 255, rtol=1e-6)
    assert lab == labels[2] and len(train.classes) == 10


def test_files_directly_in_root_and_uncompressed(tmp_path, archives):
    arrays = archives.write_mnist(tmp_path)
    for p in tmp_path.glob("t10k-*.gz"):  # one split un-gzipped, as some distributions ship it
        p.with_suffix("").write_bytes(gzip.decompress(p.read_bytes()))
        p.unlink()
    np.testing.assert_array_equal(MNIST(tmp_path, train=False).targets, arrays["t10k"][1])
    assert len(MNIST(tmp_path, train=True)) == 6


def test_fashion_class_names(tmp_path, archives):
    archives.write_mnist(tmp_path / "fashion-mnist")
    assert FashionMNIST(tmp_path).classes[9] == "Ankle boot"


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"(?s)t10k-labels-idx1-ubyte.*download=True"):
        MNIST(tmp_path, train=False)


def test_bad_magic_names_the_file(tmp_path, archives):
    archives.write_mnist(tmp_path / "mnist")
    labels = np.zeros(4, np.uint8)
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(archives.idx_bytes(labels, 2051))  # the images' magic on a label file
    )
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte.gz: bad IDX magic number 2051"):
        MNIST(tmp_path, train=False)


def test_truncated_gzip_names_the_file(tmp_path, archives):
    archives.write_mnist(tmp_path / "mnist")
    p = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-40])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz is truncated or corrupt"):
        MNIST(tmp_path)


def test_data_shorter_than_header_says(tmp_path, archives):
    archives.write_mnist(tmp_path / "mnist")
    p = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(gzip.decompress(p.read_bytes())[:-28]))
    with pytest.raises(ValueError, match=r"header says shape \(6, 28, 28\) \(4704 bytes"):
        MNIST(tmp_path)


def test_count_mismatch_between_images_and_labels(tmp_path, archives):
    archives.write_mnist(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(archives.idx_bytes(np.zeros(3, np.uint8), 2049))
    )
    with pytest.raises(ValueError, match=r"has 4 images but .* has 3 labels"):
        MNIST(tmp_path, train=False)


def test_wrong_image_size(tmp_path, archives):
    archives.write_mnist(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(archives.idx_bytes(np.zeros((4, 27, 28), np.uint8), 2051))
    )
    with pytest.raises(ValueError, match=r"images are \(27, 28\), expected \(28, 28\)"):
        MNIST(tmp_path, train=False)


def test_read_idx_shape(tmp_path, archives):
    p = tmp_path / "x.idx"
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    p.write_bytes(archives.idx_bytes(a, 2051))
    np.testing.assert_array_equal(read_idx(p, 2051), a)


def test_download_fetches_missing_files_with_md5(tmp_path, archives, monkeypatch):
    mirror = tmp_path / "mirror"
    arrays = archives.write_mnist(mirror)
    md5 = {p.name: md5sum(p) for p in mirror.iterdir()}
    monkeypatch.setattr(MNIST, "base_url", mirror.as_uri() + "/")
    monkeypatch.setattr(MNIST, "md5", md5)
    root = tmp_path / "root"
    test = MNIST(root, train=False, download=True)
    assert sorted(p.name for p in (root / "mnist").iterdir()) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    np.testing.assert_array_equal(test.targets, arrays["t10k"][1])
    monkeypatch.setattr(MNIST, "md5", {k: "0" * 32 for k in md5})
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz: md5 \w+ does not match"):
        MNIST(root, train=True, download=True)
    assert len(list((root / "mnist").iterdir())) == 2  # no half-downloaded file left behind


# ---------------------------------------------------- hostile files (issue 16, §4-5)
def test_a_header_declaring_more_than_the_split_is_refused_before_reading(tmp_path, archives):
    archives.write_mnist(tmp_path / "mnist")
    header = archives.idx_bytes(np.zeros((0, 28, 28), np.uint8), 2051)
    header = header[:4] + (2**31 - 1).to_bytes(4, "big") + header[8:]  # 2**31-1 images
    (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header))
    with pytest.raises(ValueError, match=r"declares shape \(2147483647, 28, 28\), expected at "):
        MNIST(tmp_path)


def test_a_bomb_after_a_valid_header_costs_no_more_than_the_header_declares(tmp_path, archives):
    """6 images, then 64 MiB of zeros gzipped to ~64 KiB: today the whole file was inflated
    before its size was compared with the header (1.8 MB cost 3.2 GB)."""
    archives.write_mnist(tmp_path / "mnist")
    path = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(archives.idx_bytes(np.zeros((6, 28, 28), np.uint8), 2051))
        for _ in range(64):
            f.write(bytes(1 << 20))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"\(4704 bytes of data\) but the file has more"):
            read_idx(path, 2051, (60_000, 28, 28))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"{peak / 2**20:.0f} MiB"


@settings(max_examples=40)
@given(st.data())
def test_flipped_or_cut_bytes_give_the_same_array_or_one_line(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("idx")
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    header = (2051).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in images.shape)
    raw = bytearray(gzip.compress(header + images.tobytes(), mtime=0))
    if data.draw(st.booleans(), label="cut"):
        raw = raw[: data.draw(st.integers(0, len(raw) - 1), label="keep")]
    else:
        for _ in range(data.draw(st.integers(1, 3), label="flips")):
            i = data.draw(st.integers(0, len(raw) - 1), label="at")
            raw[i] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    path = folder / "x-images-idx3-ubyte.gz"
    path.write_bytes(bytes(raw))
    try:
        back = read_idx(path, 2051, (10, 28, 28))
    except ValueError as e:
        assert str(e).startswith(str(path)) and "\n" not in str(e)
    else:
        np.testing.assert_array_equal(back, images)
