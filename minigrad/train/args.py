"""The argparse ``type`` of every numeric flag: one factory, :func:`number`, and its uses.

A bad value is one line naming the flag (argparse adds ``argument --lr:``), e.g.
``argument --epochs: must be >= 1, got 0`` or ``argument --lr: must be a finite number, got inf``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = [
    "finite_float",
    "non_negative_float",
    "non_negative_int",
    "number",
    "positive_float",
    "positive_int",
    "unit_interval",
]


def number(
    kind: type[int] | type[float],
    *,
    at_least: float | None = None,
    above: float | None = None,
    below: float | None = None,
    name: str | None = None,
) -> Callable[[str], int | float]:
    """An argparse ``type``: a ``kind`` (int, or a finite float) within the given bounds.

    Args:
        kind: ``int`` or ``float``; a float must also be finite (no nan/inf).
        at_least: the value must be ``>= at_least``.
        above: the value must be ``> above``.
        below: the value must be ``< below`` (with ``at_least``: the interval
            ``[at_least, below)``).
        name: the returned function's ``__name__`` (argparse's and a reader's label).
    """
    if at_least is not None and above is not None:
        raise ValueError("number: pass at_least or above, not both")

    def show(value: float) -> str:
        return f"{value:g}" if kind is float else str(value)

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if at_least is not None and below is not None:
            if not at_least <= value < below:
                raise argparse.ArgumentTypeError(
                    f"must be in [{show(at_least)}, {show(below)}), got {show(value)}"
                )
        elif at_least is not None and value < at_least:
            raise argparse.ArgumentTypeError(f"must be >= {show(at_least)}, got {show(value)}")
        elif above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"must be > {show(above)}, got {show(value)}")
        elif below is not None and at_least is None and value >= below:
            raise argparse.ArgumentTypeError(f"must be < {show(below)}, got {show(value)}")
        return value

    parse.__name__ = name or kind.__name__
    return parse


positive_int = number(int, at_least=1, name="positive_int")
"""An int >= 1."""
non_negative_int = number(int, at_least=0, name="non_negative_int")
"""An int >= 0."""
finite_float = number(float, name="finite_float")
"""A finite float (no nan/inf)."""
positive_float = number(float, above=0, name="positive_float")
"""A finite float > 0."""
non_negative_float = number(float, at_least=0, name="non_negative_float")
"""A finite float >= 0."""
unit_interval = number(float, at_least=0, below=1, name="unit_interval")
"""A finite float in [0, 1) (a momentum, an EMA decay)."""
