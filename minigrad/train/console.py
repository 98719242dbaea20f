"""What a command prints, said once: :class:`Console` knows the rank it runs on.

Under ``mpiexec -n N`` every rank runs the same command; rank 0 alone speaks (its start
line, notes, warnings, progress and final score), so the command itself carries no
``if world.is_main:`` around its prints.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from minigrad.train import data_parallel

__all__ = ["Console"]


class Console:
    """The output of one rank: :meth:`say` and :meth:`warn` print on rank 0 only.

    Args:
        world: the process world (``data_parallel.join_world()``); one process is rank 0.
    """

    def __init__(self, world: Any) -> None:
        self.world = world
        self.speaks = bool(world.is_main)

    def say(self, message: str) -> None:
        """A line on stdout (flushed: a launcher's log shows it at once), on rank 0."""
        if self.speaks:
            print(message, flush=True)

    def warn(self, message: str) -> None:
        """A line on stderr (a note or a warning, already prefixed), on rank 0."""
        if self.speaks:
            print(message, file=sys.stderr, flush=True)

    def stopping(self, reason: BaseException) -> None:
        """Why this rank stops, on the ranks other than 0: their progress is silent, so
        without this line a rank's own failure would go unexplained (rank 0's is reported
        by the command's exit)."""
        if not self.speaks:
            print(f"[rank {self.world.rank}] stopped: {reason}", file=sys.stderr, flush=True)

    @property
    def stream(self) -> TextIO | None:
        """Where progress lines go: None (stdout) on rank 0, nowhere on the others."""
        return data_parallel.quiet_stream(self.world)

    @property
    def bar(self) -> bool | None:
        """``fit``'s ``bar``: None (its own choice) on rank 0, False (no bar) on the others."""
        return None if self.speaks else False
