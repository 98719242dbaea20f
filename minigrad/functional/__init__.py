"""Every differentiable op, one module per family, re-exported flat: ``F.conv2d``.

Each module defines ``__all__``; this package re-exports exactly those names.
"""

import sys as _sys

from minigrad.functional.adaptive_pool import *  # noqa: F403
from minigrad.functional.avg_pool import *  # noqa: F403
from minigrad.functional.batchnorm import *  # noqa: F403
from minigrad.functional.conv import *  # noqa: F403
from minigrad.functional.dropout import *  # noqa: F403
from minigrad.functional.elementwise import *  # noqa: F403
from minigrad.functional.linalg import *  # noqa: F403
from minigrad.functional.loss import *  # noqa: F403
from minigrad.functional.lrn import *  # noqa: F403
from minigrad.functional.pool import *  # noqa: F403
from minigrad.functional.reduce import *  # noqa: F403
from minigrad.functional.shape import *  # noqa: F403

# the public ops, in module order (F.dropout is the function, so look the modules up by name)
_OP_MODULES = (
    "conv dropout elementwise linalg loss batchnorm lrn pool avg_pool adaptive_pool reduce shape"
).split()
__all__ = [name for m in _OP_MODULES for name in _sys.modules[f"{__name__}.{m}"].__all__]
