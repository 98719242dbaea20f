"""get_dataset / dataset_info: one generic path for every dataset the CLI offers."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from minigrad.data import DATASET_NAMES, DataLoader, dataset_info, get_dataset

pytestmark = pytest.mark.filterwarnings("ignore::minigrad.data.download.ChecksumWarning")


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_info_is_consistent(name):
    info = dataset_info(name)
    assert info.name == name and len(info.class_names) == info.num_classes
    assert len(info.mean) == len(info.std) == info.in_channels
    x = np.random.default_rng(0).random(
        (
            2,
            info.in_channels,
            info.native_size or info.image_size,
            info.native_size or info.image_size,
        ),
        dtype=np.float32,
    )
    for t in (info.train_transform, info.eval_transform):
        assert t(x, np.random.default_rng(1)).shape == (
            2,
            info.in_channels,
            info.image_size,
            info.image_size,
        )


def test_known_facts():
    assert dataset_info("cifar100").num_classes == 100
    assert dataset_info("cifar100", label="coarse").num_classes == 20
    assert dataset_info("CIFAR_10").name == "cifar10"
    assert dataset_info("fashion-mnist").class_names[0] == "T-shirt/top"
    assert dataset_info("imagenette").image_size == 128
    assert dataset_info("imagenette", size="320").image_size == 224
    assert dataset_info("digits", image_size=16).image_size == 16
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'; choose one of digits"):
        dataset_info("imagenet")
    with pytest.raises(ValueError, match="cifar10 has a fixed image size of 32, got 64"):
        dataset_info("cifar10", image_size=64)


def test_digits_end_to_end():
    info = dataset_info("digits")
    ds = get_dataset("digits", train=False)
    x, y = next(iter(DataLoader(ds, 8, transform=info.eval_transform, prefetch=0)))
    assert x.shape == (8, 1, 32, 32) and y.dtype == np.int64
    assert abs(float(x.mean())) < 1.0


def test_cifar10_and_mnist_from_files(tmp_path, archives):
    archives.write_cifar10(tmp_path)
    archives.write_mnist(tmp_path / "mnist")
    for name, shape in [("cifar10", (3, 32, 32)), ("mnist", (1, 32, 32))]:
        info = dataset_info(name)
        ds = get_dataset(name, tmp_path, train=True)
        x, _ = next(iter(DataLoader(ds, 3, shuffle=True, transform=info.train_transform, seed=0)))
        assert x.shape == (3, *shape)


def test_imagenette_gets_its_per_image_transforms(tmp_path, archives):
    archives.write_imagenette(tmp_path)
    info = dataset_info("imagenette", image_size=24)
    for train in (True, False):
        ds = get_dataset("imagenette", tmp_path, train=train, image_size=24)
        tf = info.train_transform if train else info.eval_transform
        x, y = next(iter(DataLoader(ds, 5, transform=tf, num_workers=2)))
        assert x.shape == (5, 3, 24, 24)
        assert y.tolist() == [0, 1, 2, 3, 4]  # one image per class, in wnid order


def test_preprocess_an_image_file_for_predict(tmp_path):
    path = tmp_path / "seven.png"
    Image.fromarray(np.zeros((40, 30, 3), np.uint8)).save(path)
    x = dataset_info("digits").preprocess(path)
    assert x.shape == (1, 32, 32) and x.dtype == np.float32
    np.testing.assert_allclose(x, (0 - 0.3056) / 0.3240, rtol=1e-5)
    assert dataset_info("imagenette").preprocess(path).shape == (3, 128, 128)
    assert dataset_info("mnist").preprocess(Image.open(path)).shape == (1, 32, 32)


def test_command_line(capsys, tmp_path):
    from minigrad.data.__main__ import main

    assert main(["list"]) == 0
    assert "cifar100        100 classes  3x32x32" in capsys.readouterr().out
    assert main(["bench", "digits", "--batch-size", "512", "--eval"]) == 0
    assert "digits eval: 360 images of (1, 32, 32)" in capsys.readouterr().out
    assert main(["bench", "mnist", "--root", str(tmp_path)]) == 2
    assert "error: MNIST files" in capsys.readouterr().err


def test_the_sized_datasets_are_one_list_read_by_the_info():
    """SIZED_DATASETS is the one list of datasets whose image size can be set: dataset_info
    takes an image_size exactly for those, and their infos say so."""
    import pytest as _pytest

    from minigrad.data import DATASET_NAMES, SIZED_DATASETS, dataset_info

    for name in DATASET_NAMES:
        assert dataset_info(name).size_can_be_set == (name in SIZED_DATASETS), name
        if name in SIZED_DATASETS:
            assert dataset_info(name, image_size=40).image_size == 40
        else:
            with _pytest.raises(ValueError, match="fixed image size"):
                dataset_info(name, image_size=40)
