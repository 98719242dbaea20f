"""The shipped ImageNet class list: 1,000 sorted WordNet ids, names, Imagenette's indices."""

from __future__ import annotations

import pytest

from minigrad.data.imagenet import imagenet_class_names, imagenet_index, imagenet_wnids
from minigrad.data.imagenette import IMAGENETTE_CLASSES, IMAGENETTE_WNIDS


def test_the_list_has_1000_sorted_unique_wordnet_ids() -> None:
    wnids = imagenet_wnids()
    assert len(wnids) == 1000 == len(set(wnids))
    assert list(wnids) == sorted(wnids)
    assert all(w.startswith("n") and len(w) == 9 and w[1:].isdigit() for w in wnids)


def test_names_and_imagenettes_classes_at_their_imagenet_indices() -> None:
    names = imagenet_class_names()
    assert len(names) == 1000 and names[0] == "tench" and names[999] == "toilet tissue"
    assert imagenet_class_names(full=True)[1] == "goldfish, Carassius auratus"
    idx = imagenet_index(IMAGENETTE_WNIDS)
    assert idx == [0, 217, 482, 491, 497, 566, 569, 571, 574, 701]
    assert [names[i] for i in idx] == list(IMAGENETTE_CLASSES)
    with pytest.raises(ValueError, match="not ImageNet-1k classes"):
        imagenet_index(["n99999999"])
