"""Digit polarity (issue 17): the digits, MNIST and Fashion-MNIST are light on dark; a drawing
that is dark on a light background is inverted by ``preprocess_image``, and ``predict`` says so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

import googlenet
from minigrad.data import dataset_info

TINY = ["--limit", "48", "--batch-size", "16", "--width", "0.0625", "--image-size", "16",
        "--no-plots", "--epochs", "1"]  # fmt: skip


def drawn_seven(tmp_path: Path, ink: int, paper: int, name: str) -> Path:
    img = Image.new("L", (64, 64), paper)
    draw = ImageDraw.Draw(img)
    draw.line([(14, 12), (50, 12)], fill=ink, width=7)
    draw.line([(50, 12), (26, 56)], fill=ink, width=7)
    img.save(tmp_path / name)
    return tmp_path / name


@pytest.mark.parametrize("name", ["digits", "mnist", "fashion-mnist"])
def test_a_dark_on_light_image_is_inverted_with_a_note(tmp_path, name):
    info = dataset_info(name)
    assert info.light_on_dark
    dark = drawn_seven(tmp_path, ink=0, paper=255, name="dark.png")
    light = drawn_seven(tmp_path, ink=255, paper=0, name="light.png")
    x_dark, note = info.preprocess_image(dark)
    x_light, no_note = info.preprocess_image(light)
    # equal up to the 8-bit rounding of the resize (1/255 of a pixel, over the std)
    np.testing.assert_allclose(x_dark, x_light, atol=1.01 / 255 / info.std[0])
    assert no_note is None
    assert note == f"dark on a light background: inverted, as the {name} images are light on dark"
    np.testing.assert_array_equal(info.preprocess(dark), x_dark)


def test_photos_are_never_inverted(tmp_path):
    info = dataset_info("cifar10")
    assert not info.light_on_dark
    white = tmp_path / "white.png"
    Image.new("RGB", (32, 32), (250, 250, 250)).save(white)
    x, note = info.preprocess_image(white)
    assert note is None and x.mean() > 0


def test_predict_inverts_a_black_on_white_drawing_and_says_so(tmp_path, capsys):
    out = tmp_path / "run"
    assert googlenet.main(["train", *TINY, "--out", str(out)]) == 0
    capsys.readouterr()
    dark = drawn_seven(tmp_path, ink=0, paper=255, name="dark.png")
    light = drawn_seven(tmp_path, ink=255, paper=0, name="light.png")
    assert googlenet.main(["predict", "--checkpoint", str(out), str(dark), str(light)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().split("\n")
    assert lines[0].split(": ", 1)[1] == lines[1].split(": ", 1)[1]  # the same prediction
    assert captured.err.strip() == (
        f"note: {dark}: dark on a light background: inverted, as the digits images are "
        "light on dark"
    )
