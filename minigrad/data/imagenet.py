"""The 1,000 ImageNet (ILSVRC-2012) classes: WordNet ids and names, shipped as a small file.

``assets/imagenet_classes.txt`` holds one line per class in the models' output order (the
WordNet ids sorted), ``n01440764 tench, Tinca tinca``: the id, then the synset's names
(the first one is the class name ``predict`` prints). Pretrained ImageNet classifiers
(torchvision's ``googlenet-1378be20.pth``) use this order.
"""

from __future__ import annotations

import functools
from pathlib import Path

__all__ = ["imagenet_class_names", "imagenet_index", "imagenet_wnids"]

_FILE = Path(__file__).parent / "assets" / "imagenet_classes.txt"


@functools.cache
def _rows() -> tuple[tuple[str, str], ...]:
    rows = []
    for line in _FILE.read_text(encoding="utf-8").splitlines():
        wnid, _, names = line.partition(" ")
        rows.append((wnid, names))
    if len(rows) != 1000:  # pragma: no cover - a damaged installation
        raise ValueError(f"{_FILE} should list 1000 classes, found {len(rows)}")
    return tuple(rows)


def imagenet_wnids() -> tuple[str, ...]:
    """The 1,000 WordNet ids, index = class (``imagenet_wnids()[0] == "n01440764"``)."""
    return tuple(w for w, _ in _rows())


def imagenet_class_names(full: bool = False) -> tuple[str, ...]:
    """The 1,000 class names, index = class: each synset's first name (``"tench"``), or
    with ``full`` all its names (``"tench, Tinca tinca"``). Two first names repeat
    (``crane`` the bird and the machine, ``maillot``), as in the synset list itself."""
    return tuple(n if full else n.split(",")[0] for _, n in _rows())


def imagenet_index(wnids: tuple[str, ...] | list[str]) -> list[int]:
    """The ImageNet class indices of WordNet ids (e.g. Imagenette's 10 classes).

    Raises:
        ValueError: an id that is not one of the 1,000 classes.
    """
    where = {w: i for i, w in enumerate(imagenet_wnids())}
    missing = [w for w in wnids if w not in where]
    if missing:
        raise ValueError(f"imagenet_index: not ImageNet-1k classes: {missing[:5]}")
    return [where[w] for w in wnids]
