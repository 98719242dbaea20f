"""Imagenette: a tiny imagenette2-160.tgz of JPEGs (grayscale and CMYK among them)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from minigrad.data import ChecksumWarning, DataLoader, Imagenette
from minigrad.data.imagenette import IMAGENETTE_WNIDS
from minigrad.data.transforms import CenterCrop, Compose, RandomResizedCrop, Resize


def test_extracts_archive_and_decodes_to_rgb(tmp_path, archives):
    archives.write_imagenette(tmp_path, per_class=2)
    train = Imagenette(tmp_path, "train")
    val = Imagenette(tmp_path, "val", transform=Compose([Resize(20), CenterCrop(16)]))
    assert (tmp_path / "imagenette2-160" / "val" / IMAGENETTE_WNIDS[9]).is_dir()
    assert len(train) == 20 and len(val) == 20
    labels = [lab for _, lab in train.samples]
    assert labels == sorted(labels) and set(labels) == set(range(10))
    gray, lab0 = train[0]  # the grayscale JPEG comes back as 3 equal channels
    cmyk, lab1 = train[2]
    assert (lab0, lab1) == (0, 1)
    assert gray.shape[0] == 3 and gray.dtype == np.float32
    np.testing.assert_array_equal(gray[0], gray[1])
    assert cmyk.shape[0] == 3 and 0 <= cmyk.min() and cmyk.max() <= 1
    img, _ = val[5]
    assert img.shape == (3, 16, 16)
    assert train.classes[0] == "tench" and train.classes[9] == "parachute"


def test_loader_with_workers_and_random_resized_crop(tmp_path, archives):
    archives.write_imagenette(tmp_path)
    ds = Imagenette(tmp_path, "train", transform=RandomResizedCrop(12))
    loader = DataLoader(ds, batch_size=4, shuffle=True, num_workers=2, seed=5)
    batches = list(loader)
    assert [x.shape for x, _ in batches] == [(4, 3, 12, 12)] * 2 + [(2, 3, 12, 12)]
    assert sorted(np.concatenate([y for _, y in batches]).tolist()) == list(range(10))
    loader.set_epoch(0)
    again = list(loader)  # same seed and epoch: the same crops, whatever the thread timing
    for (x1, y1), (x2, y2) in zip(batches, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)


def test_images_of_different_sizes_need_a_transform(tmp_path, archives):
    archives.write_imagenette(tmp_path)
    loader = DataLoader(Imagenette(tmp_path, "val"), batch_size=3, prefetch=0)
    with pytest.raises(ValueError, match="Imagenette: cannot batch images of different shapes"):
        next(iter(loader))


def test_missing_class_folder(tmp_path, archives):
    archives.write_imagenette(tmp_path)
    Imagenette(tmp_path, "val")
    shutil.rmtree(tmp_path / "imagenette2-160" / "val" / IMAGENETTE_WNIDS[3])
    with pytest.raises(
        ValueError, match=rf"val should hold one folder per class.*{IMAGENETTE_WNIDS[3]}"
    ):
        Imagenette(tmp_path, "val")


def test_missing_files_and_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"(?s)imagenette2-160.*download=True"):
        Imagenette(tmp_path, "train")
    with pytest.raises(ValueError, match=r"split must be 'train' or 'val', got 'test'"):
        Imagenette(tmp_path, "test")
    with pytest.raises(ValueError, match=r"size must be one of .*got '224'"):
        Imagenette(tmp_path, size="224")


def test_corrupt_jpeg_names_the_file(tmp_path, archives):
    archives.write_imagenette(tmp_path)
    ds = Imagenette(tmp_path, "val")
    path = ds.samples[4][0]
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(ValueError, match=rf"cannot decode .*{path.name}"):
        ds[4]


def test_truncated_archive(tmp_path, archives):
    path = archives.write_imagenette(tmp_path)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ValueError, match="imagenette2-160.tgz is truncated or corrupt"):
        Imagenette(tmp_path)
    assert not (tmp_path / "imagenette2-160").exists()  # nothing half-extracted


def test_download_with_unknown_md5_warns_and_extracts(tmp_path, archives, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    path = archives.write_imagenette(mirror)
    import minigrad.data.imagenette as mod

    monkeypatch.setattr(mod, "_BASE", mirror.as_uri() + "/")
    root = tmp_path / "root"
    with pytest.warns(ChecksumWarning, match=r"md5 \w+ does not match the published e793b78c"):
        ds = Imagenette(root, "train", download=True)
    assert len(ds) == 10 and (root / path.name).is_file()


@pytest.mark.parametrize("limit", [1000, 3000])  # 4096 pixels: over 2x (an error), 1x (a warning)
def test_a_png_decompression_bomb_in_the_folder_is_one_line(tmp_path, archives, monkeypatch, limit):
    """Today: Pillow's DecompressionBombError escapes (it is no OSError), and its warning
    (over 1x the limit) decodes the bomb anyway."""
    from PIL import Image

    archives.write_imagenette(tmp_path)
    ds = Imagenette(tmp_path, "val")
    path = ds.samples[4][0]
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(path, format="PNG")  # named .JPEG
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(
        ValueError, match=rf"Imagenette: cannot decode .*{path.name}: refused as a "
    ):
        ds[4]
    ds[3]  # the others still load
