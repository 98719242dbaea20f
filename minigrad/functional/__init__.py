"""Every differentiable op, one module per family, re-exported flat: ``F.conv2d``.

Each module defines ``__all__``; this package re-exports exactly those names.
"""

from minigrad.functional.conv import *  # noqa: F403
from minigrad.functional.dropout import *  # noqa: F403
from minigrad.functional.elementwise import *  # noqa: F403
from minigrad.functional.linalg import *  # noqa: F403
from minigrad.functional.loss import *  # noqa: F403
from minigrad.functional.norm import *  # noqa: F403
from minigrad.functional.pool import *  # noqa: F403
from minigrad.functional.reduce import *  # noqa: F403
from minigrad.functional.shape import *  # noqa: F403
