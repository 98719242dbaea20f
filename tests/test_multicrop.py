"""eval --crops: the crops' geometry, and one crop equals plain evaluation."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from data.conftest import write_imagenette

import googlenet
import minigrad as mg
from minigrad.data import DataLoader, Subset, dataset_info, get_dataset
from minigrad.data.transforms import CenterCrop, Resize
from minigrad.train.loop import evaluate
from minigrad.train.multicrop import crops_of, evaluate_crops

pytestmark = pytest.mark.filterwarnings("ignore::minigrad.data.download.ChecksumWarning")


def test_ten_crops_are_the_corners_and_centre_and_their_mirrors() -> None:
    x = np.random.default_rng(0).random((3, 28, 35)).astype(np.float32)
    crops = crops_of(x, 14, 10)
    base = Resize(16)(x)  # round(14 * 8 / 7) = 16: (3, 16, 20)
    assert base.shape == (3, 16, 20) and [c.shape for c in crops] == [(3, 14, 14)] * 10
    np.testing.assert_array_equal(crops[0], base[:, :14, :14])
    np.testing.assert_array_equal(crops[3], base[:, 2:, 6:])
    np.testing.assert_array_equal(crops[4], CenterCrop(14)(base))
    for a, b in zip(crops[:5], crops[5:]):
        np.testing.assert_array_equal(b, a[..., ::-1])


def test_the_papers_144_crops() -> None:
    # 4 scales x 3 squares x (4 corners, centre, the square resized) x 2 mirrors
    x = np.random.default_rng(1).random((3, 40, 30)).astype(np.float32)  # portrait
    crops = crops_of(x, 14, 144)
    assert len(crops) == 144 and all(c.shape == (3, 14, 14) for c in crops)
    assert [round(14 * k / 7) for k in (8, 9, 10, 11)] == [16, 18, 20, 22]
    assert [round(224 * k / 7) for k in (8, 9, 10, 11)] == [256, 288, 320, 352]
    scaled = Resize(18)(x)  # the second scale: (3, 24, 18); its squares at top 0, 3, 6
    square = scaled[:, 6:24, :]  # the third (bottom) square
    first = 36 + 2 * 12  # scale 18 (the 2nd) starts at 36; its 3rd square 24 later
    np.testing.assert_array_equal(crops[first], square[:, :14, :14])
    np.testing.assert_array_equal(crops[first + 5], Resize((14, 14))(square))
    np.testing.assert_array_equal(crops[first + 6], square[:, :14, :14][..., ::-1])
    with pytest.raises(ValueError, match=r"n must be one of \(1, 10, 144\)"):
        crops_of(x, 14, 5)


@pytest.mark.parametrize("name", ["imagenette", "digits"])
def test_one_crop_equals_plain_evaluation(name: str, tmp_path: Path) -> None:
    if name == "imagenette":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            write_imagenette(tmp_path, per_class=2)
    info = dataset_info(name, image_size=32)
    test_set = get_dataset(name, root=tmp_path, train=False, image_size=32)
    test_set = Subset(test_set, np.arange(3, min(23, len(test_set))))  # as eval --limit makes
    mg.manual_seed(0)
    model = googlenet.GoogLeNet(info.num_classes, info.in_channels, stem="cifar",
                                batch_norm=True, width=1 / 16).eval()  # fmt: skip
    loader = DataLoader(test_set, 7, transform=info.eval_transform)
    plain = evaluate(model, loader, num_classes=info.num_classes)
    one = evaluate_crops(model, test_set, info, 1, batch_size=7)
    assert one["n"] == plain["n"] == len(test_set)
    assert (one["top1"], one["top5"]) == (plain["top1"], plain["top5"])
    np.testing.assert_array_equal(one["confusion"], plain["confusion"])
    ten = evaluate_crops(model, test_set, info, 10, batch_size=40)
    assert ten["n"] == len(test_set) and 0 <= ten["top1"] <= 1
