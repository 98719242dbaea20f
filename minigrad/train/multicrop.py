"""Multi-crop evaluation (``eval --crops 1|10|144``): the softmax averaged over crops.

With ``s`` the model's input side (224 for ImageNet models):

- 1 crop: the dataset's own eval view (Imagenette: shorter side ``round(s * 8 / 7)``, the
  centre ``s`` square), the same pixels as plain evaluation;
- 10 crops: from the shorter side resized to ``round(s * 8 / 7)``, the four corner ``s``
  squares and the centre one, and their mirrors;
- 144 crops, the GoogLeNet paper's (section 7): the shorter side resized to 4 scales
  (``s * 8/7, 9/7, 10/7, 11/7``: 256, 288, 320, 352 at 224); at each, 3 squares of that
  side (the left, centre and right ones, or top, middle and bottom for portrait images);
  from each square 6 crops (its 4 corner ``s`` crops, its centre one and the square
  resized to ``s``) and their mirrors: 4 x 3 x 6 x 2.

The crops of a batch of images go through the model together; their softmax outputs are
averaged per image and scored by :func:`minigrad.train.loop.evaluate` (top-k reads the
order of the averaged probabilities as it reads logits').
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from minigrad.data.transforms import CenterCrop, Resize, ToFloat

__all__ = ["CROPS", "crops_of", "evaluate_crops"]

CROPS = (1, 10, 144)
_SCALES = (8, 9, 10, 11)  # sevenths of s: 256, 288, 320, 352 at s = 224
_to_float = ToFloat()


def _size(image: Any) -> tuple[int, int]:
    return (image.height, image.width) if hasattr(image, "height") else np.shape(image)[-2:]


def _crop(image: Any, top: int, left: int, h: int, w: int) -> Any:
    if hasattr(image, "crop"):  # a Pillow image
        return image.crop((left, top, left + w, top + h))
    return np.asarray(image)[..., top : top + h, left : left + w]


def _mirror(image: Any) -> Any:
    if hasattr(image, "transpose") and hasattr(image, "height"):
        from PIL import Image  # noqa: PLC0415 - only for Pillow images

        return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(image)[..., ::-1]


def _five(image: Any, s: int) -> list[Any]:
    """The 4 corner ``s`` crops and the centre one."""
    H, W = _size(image)
    corners = [(0, 0), (0, W - s), (H - s, 0), (H - s, W - s)]
    return [_crop(image, t, l, s, s) for t, l in corners] + [CenterCrop(s)(image)]


def _squares(image: Any) -> list[Any]:
    """The 3 squares of the shorter side: at the start, centre and end of the longer one."""
    H, W = _size(image)
    side = min(H, W)
    if W >= H:
        return [_crop(image, 0, left, side, side) for left in (0, (W - side) // 2, W - side)]
    return [_crop(image, top, 0, side, side) for top in (0, (H - side) // 2, H - side)]


def crops_of(image: Any, s: int, n: int, eval_view: Callable[[Any], Any] | None = None,
             ) -> list[Any]:  # fmt: skip
    """The ``n`` crops (1, 10 or 144; see the module docstring) of a Pillow image or a
    (C, H, W) array, each ``s`` x ``s``, in the same kind. ``eval_view`` is the 1-crop view
    (default: shorter side ``round(s * 8 / 7)``, centre crop).

    Raises:
        ValueError: ``n`` not in :data:`CROPS`.
    """
    if n not in CROPS:
        raise ValueError(f"crops_of: n must be one of {CROPS}, got {n}")
    if n == 1:
        view = eval_view or (lambda im: CenterCrop(s)(Resize(round(s * 8 / 7))(im)))
        return [view(image)]
    if n == 10:
        five = _five(Resize(round(s * 8 / 7))(image), s)
        return five + [_mirror(c) for c in five]
    out = []
    for k in _SCALES:
        for square in _squares(Resize(round(s * k / 7))(image)):
            six = [*_five(square, s), Resize((s, s))(square)]
            out += six + [_mirror(c) for c in six]
    return out


def _raw(dataset: Any) -> tuple[Any, Any]:
    """The dataset under a Subset, and the indices into it."""
    indices = np.arange(len(dataset))
    while hasattr(dataset, "indices") and hasattr(dataset, "dataset"):
        indices = np.asarray(dataset.indices)[indices]
        dataset = dataset.dataset
    return dataset, indices


def _batches(dataset: Any, info: Any, n: int, images_per_batch: int) -> Iterator[tuple]:
    """``(crops (B * n, C, s, s) normalised, labels (B,))`` over the dataset, in order.

    Lazily decoded datasets (Imagenette) are cropped from the decoded Pillow image; in-memory
    ones from their samples. One crop is the dataset's own eval view (plain evaluation's).
    """
    base, indices = _raw(dataset)
    rng = np.random.default_rng(0)
    view = info.sample_eval_transform if info.sample_eval_transform is not None else (
        lambda im: im
    )  # fmt: skip
    for start in range(0, len(indices), images_per_batch):
        xs, ys = [], []
        for i in indices[start : start + images_per_batch]:
            if hasattr(base, "load_image"):  # decoded lazily: crop the Pillow image
                image, label = base.load_image(int(i)), base.samples[int(i)][1]
            else:
                image, label = base.get(int(i), rng)
            xs += [_to_float(c) for c in crops_of(image, info.image_size, n, view)]
            ys.append(label)
        x = np.stack(xs).astype(np.float32, copy=False)  # (B * n, C, s, s)
        yield info.eval_transform(x, rng), np.asarray(ys, dtype=np.int64)


def evaluate_crops(model: Any, dataset: Any, info: Any, n: int, *, device: str = "cpu",
                   logits: Callable[[Any], Any] | None = None,
                   batch_size: int = 32) -> dict[str, Any]:  # fmt: skip
    """:func:`~minigrad.train.loop.evaluate` with ``n`` crops per image of ``dataset``
    (before its eval transform: ``get_dataset(..., train=False)``), the softmax averaged
    over each image's crops; ``batch_size`` crops go through the model at once (at least
    one image's). Returns evaluate's dict, with the confusion matrix."""
    import minigrad.functional as F  # noqa: PLC0415
    from minigrad.train.loop import evaluate  # noqa: PLC0415
    from minigrad.train.spec import logits_of  # noqa: PLC0415

    pick = logits or logits_of

    def averaged(outputs: Any) -> Any:  # (B * n, classes) -> (B, classes): mean softmax
        z = pick(outputs)
        p = F.softmax(z, dim=1).reshape(z.shape[0] // n, n, z.shape[1])  # (B, n, classes)
        return p.mean(dim=1)  # scored as logits are: its order is what top-k reads

    loader = _batches(dataset, info, n, max(1, batch_size // n))
    return evaluate(model, loader, device=device, num_classes=info.num_classes, logits=averaged)
