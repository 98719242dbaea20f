"""Transforms: shapes, seeded determinism, value ranges, hand-checked cases, Pillow parity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from minigrad.data import transforms as T
from minigrad.data.transforms import IMAGENET_EIGVAL, IMAGENET_EIGVEC


def rng(seed=0):
    return np.random.default_rng(seed)


def batch(n=4, c=3, h=6, w=7, seed=0):
    return rng(seed).random((n, c, h, w), dtype=np.float32)


def test_to_float_arrays_and_pillow():
    a = np.array([[[0, 51, 255]]], dtype=np.uint8)
    np.testing.assert_allclose(T.ToFloat()(a), [[[0.0, 0.2, 1.0]]], rtol=1e-6)
    assert T.ToFloat()(a).dtype == np.float32
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[..., 1] = 255  # green
    out = T.ToFloat()(Image.fromarray(rgb))
    assert out.shape == (3, 2, 3) and out[1].min() == 1.0 and out[0].max() == 0.0
    gray = T.ToFloat()(Image.fromarray(np.full((4, 5), 102, np.uint8), mode="L"))
    assert gray.shape == (1, 4, 5) and np.allclose(gray, 0.4)
    with pytest.raises(TypeError, match="ToFloat: expects uint8 or float"):
        T.ToFloat()(np.zeros((1, 2, 2), np.int32))


def test_normalize_hand_checked_and_errors():
    x = np.array([[[0.5]], [[1.0]]], dtype=np.float32)  # (2, 1, 1)
    y = T.Normalize((0.25, 0.0), (0.5, 2.0))(x)
    np.testing.assert_allclose(y.ravel(), [0.5, 0.5])
    assert y.dtype == np.float32 and T.Normalize((0.1,), (0.2,))(batch()).shape == (4, 3, 6, 7)
    with pytest.raises(ValueError, match="Normalize: 2 mean/std values for 3 channels"):
        T.Normalize((0, 0), (1, 1))(batch())
    with pytest.raises(ValueError, match=r"Normalize: std must be > 0, got \(1.0, 0.0\)"):
        T.Normalize((0, 0), (1, 0))
    with pytest.raises(TypeError, match="Normalize: expects float images"):
        T.Normalize((0,), (1,))(np.zeros((1, 2, 2), np.uint8))


def test_pad_hand_checked():
    x = np.ones((1, 2, 2), np.float32)
    y = T.Pad(1)(x)
    assert y.shape == (1, 4, 4) and y.sum() == 4 and y[0, 1:3, 1:3].min() == 1
    y = T.Pad((1, 0, 2, 3), fill=-1)(x[None])  # left, top, right, bottom
    assert y.shape == (1, 1, 5, 5) and y[0, 0, 0, 1] == 1 and y[0, 0, :, 0].tolist() == [-1] * 5
    with pytest.raises(ValueError, match="Pad: padding must be 1, 2 or 4 values"):
        T.Pad((1, 2, 3))


def test_random_crop_is_a_window_of_the_padded_image():
    x = batch(n=8, c=2, h=5, w=5)
    y = T.RandomCrop(4, padding=2)(x, rng(1))
    assert y.shape == (8, 2, 4, 4)
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    offsets = []
    for n in range(8):  # naive reference: find the window by brute force
        hits = [(i, j) for i in range(6) for j in range(6)
                if np.array_equal(padded[n, :, i : i + 4, j : j + 4], y[n])]  # fmt: skip
        assert hits, f"sample {n} is not a window of its padded image"
        offsets.append(hits[0])
    assert len(set(offsets)) > 1  # images draw their own offsets
    np.testing.assert_array_equal(y, T.RandomCrop(4, padding=2)(x, rng(1)))
    np.testing.assert_array_equal(T.RandomCrop(5)(x, rng(2)), x)  # full-size crop, no pad
    assert T.RandomCrop(3)(x[0], rng(0)).shape == (2, 3, 3)
    with pytest.raises(ValueError, match=r"RandomCrop: crop 6x6 larger than padded image 5x5"):
        T.RandomCrop(6)(x)


def test_horizontal_flip():
    x = batch(n=64)
    np.testing.assert_array_equal(T.RandomHorizontalFlip(1.0)(x), x[..., ::-1])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(0.0)(x), x)
    y = T.RandomHorizontalFlip()(x, rng(3))
    flipped = [np.array_equal(y[n], x[n, :, :, ::-1]) for n in range(64)]
    kept = [np.array_equal(y[n], x[n]) for n in range(64)]
    assert all(f or k for f, k in zip(flipped, kept)) and 16 < sum(flipped) < 48
    img = Image.fromarray(np.arange(6, dtype=np.uint8).reshape(2, 3))
    assert np.asarray(T.RandomHorizontalFlip(1.0)(img)).tolist() == [[2, 1, 0], [5, 4, 3]]
    with pytest.raises(ValueError, match="RandomHorizontalFlip: p must be in"):
        T.RandomHorizontalFlip(1.5)


@pytest.mark.parametrize("method", ["nearest", "bilinear", "bicubic", "area"])
def test_resize_arrays_match_pillow(method):
    x = rng(4).random((1, 1, 13, 17), dtype=np.float32)
    pil = Image.fromarray(x[0, 0], mode="F")
    resample = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR,
                "bicubic": Image.BICUBIC, "area": Image.BOX}[method]  # fmt: skip
    for size, (w, h) in [((5, 7), (7, 5)), ((26, 30), (30, 26))]:
        ref = np.asarray(pil.resize((w, h), resample))
        out = T.Resize(size, interpolation=method)(x)
        np.testing.assert_allclose(out[0, 0], ref, atol=1e-5)


@given(h=st.integers(1, 12), w=st.integers(1, 12), oh=st.integers(1, 12), ow=st.integers(1, 12))
def test_resize_bilinear_matches_pillow_any_size(h, w, oh, ow):
    x = rng(h * 13 + w).random((h, w), dtype=np.float32)
    ref = np.asarray(Image.fromarray(x, mode="F").resize((ow, oh), Image.BILINEAR))
    np.testing.assert_allclose(T.Resize((oh, ow))(x[None])[0], ref, atol=1e-5)


def test_resize_shorter_side_rule_and_pillow_images():
    assert T.Resize(5)(batch(h=10, w=20)).shape == (4, 3, 5, 10)
    assert T.Resize(5)(batch(h=20, w=10)[0]).shape == (3, 10, 5)
    img = Image.new("RGB", (40, 30))
    assert T.Resize(15)(img).size == (20, 15)
    const = np.full((2, 1, 4, 4), 0.3, np.float32)  # weights sum to 1: constants stay
    np.testing.assert_allclose(T.Resize(9, "bicubic")(const), 0.3, rtol=1e-6)
    with pytest.raises(ValueError, match="Resize: unknown interpolation 'cubic'"):
        T.Resize(4, interpolation="cubic")


def test_center_crop_hand_checked_and_pillow():
    x = np.arange(30, dtype=np.float32).reshape(1, 5, 6)
    y = T.CenterCrop((3, 2))(x)
    np.testing.assert_array_equal(y[0], [[8, 9], [14, 15], [20, 21]])  # top 1, left 2
    img = Image.fromarray(x[0].astype(np.uint8))
    np.testing.assert_array_equal(np.asarray(T.CenterCrop((3, 2))(img)), y[0])
    with pytest.raises(ValueError, match="CenterCrop: crop 6x6 larger than image 5x6"):
        T.CenterCrop(6)(x)


def test_random_resized_crop_boxes_obey_scale_and_ratio():
    t = T.RandomResizedCrop(8)
    boxes, fid = t.boxes(2000, 60, 80, rng(5))
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 80).all() and (boxes[:, 3] <= 60).all()
    area = w * h / (60 * 80)
    assert area.min() >= 0.08 * 0.8 and area.max() <= 1.0  # rounding to whole pixels
    aspect = w / h
    assert aspect.min() >= 0.75 * 0.85 and aspect.max() <= 4 / 3 * 1.15
    assert set(fid.tolist()) == {0, 1, 2, 3}  # all four methods of the paper are drawn
    b2, f2 = t.boxes(2000, 60, 80, rng(5))
    np.testing.assert_array_equal(boxes, b2)
    np.testing.assert_array_equal(fid, f2)


def test_random_resized_crop_arrays_and_pillow_agree():
    x = rng(6).random((1, 1, 20, 24), dtype=np.float32)
    for seed in range(6):
        ref = T.RandomResizedCrop(9)(Image.fromarray(x[0, 0], mode="F"), rng(seed))
        out = T.RandomResizedCrop(9)(x, rng(seed))
        assert out.shape == (1, 1, 9, 9)
        np.testing.assert_allclose(out[0, 0], np.asarray(ref), atol=1e-5)
    with pytest.raises(ValueError, match="RandomResizedCrop: scale must be"):
        T.RandomResizedCrop(8, scale=(0.5, 0.1))


def test_photometric_distortion_range_and_determinism():
    x = batch(n=16)
    t = T.PhotometricDistortion()
    y = t(x, rng(7))
    assert y.shape == x.shape and y.dtype == np.float32
    assert y.min() >= 0 and y.max() <= 1 and not np.allclose(y, x)
    np.testing.assert_array_equal(y, t(x, rng(7)))
    np.testing.assert_array_equal(T.PhotometricDistortion(0, 0, 0, 0)(x), x)


def test_brightness_hand_checked():
    x = batch(n=3)
    y = T.PhotometricDistortion(brightness=0.5, contrast=0, saturation=0, lighting=0)(x, rng(8))
    f = rng(8).uniform(0.5, 1.5, size=3)
    for n in range(3):
        np.testing.assert_allclose(y[n], np.clip(x[n] * f[n], 0, 1), rtol=1e-6)


def test_lighting_hand_checked():
    x = np.full((2, 3, 2, 2), 0.5, np.float32)
    y = T.PhotometricDistortion(0, 0, 0, lighting=0.1)(x, rng(9))
    alpha = rng(9).normal(0, 0.1, size=(2, 3))
    for n in range(2):
        for c in range(3):
            shift = sum(IMAGENET_EIGVEC[c, k] * alpha[n, k] * IMAGENET_EIGVAL[k] for k in range(3))
            np.testing.assert_allclose(y[n, c], 0.5 + shift, rtol=1e-5)


def test_photometric_distortion_grayscale():
    x = batch(c=1)
    y = T.PhotometricDistortion(saturation=0, lighting=0)(x, rng(1))
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    with pytest.raises(ValueError, match="saturation and lighting need 3 channels, got 1"):
        T.PhotometricDistortion()(x)


def test_compose_threads_rng_and_plain_callables():
    t = T.Compose([T.RandomCrop(4, padding=1), lambda a: a * 2, T.RandomHorizontalFlip()])
    x = batch()
    np.testing.assert_array_equal(t(x, rng(3)), t(x, rng(3)))
    assert t(x, rng(3)).max() > 1  # the lambda ran
    assert "RandomCrop(size=4, padding=1)" in repr(t)


def test_array_transforms_refuse_pillow_images():
    with pytest.raises(TypeError, match="RandomCrop: expects an array"):
        T.RandomCrop(2)(Image.new("L", (4, 4)))


@pytest.mark.parametrize("name", ["RandomCrop", "CenterCrop", "RandomResizedCrop"])
def test_a_bad_size_is_one_line_naming_the_transform_and_the_value(name):
    # the same pair check as the ops' and nn.Conv2d's (functional/_checks.int_pair)
    make = getattr(T, name)
    with pytest.raises(
        TypeError, match=rf"^{name}: size must be an int or a pair of ints, got 2\.5$"
    ):
        make(2.5)
    with pytest.raises(TypeError, match=rf"^{name}: size must be an int or a pair.*\(4, 4, 4\)$"):
        make((4, 4, 4))
    with pytest.raises(ValueError, match=rf"^{name}: size must be positive, got \(0, 4\)$"):
        make((0, 4))
    assert make(np.int64(4))._hw == (4, 4) and make([3, 5])._hw == (3, 5)
