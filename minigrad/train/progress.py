"""A per-epoch progress display: a tqdm bar on a terminal, plain log lines elsewhere.

``Progress`` keeps running averages of the loss and accuracy over the epoch and the
throughput in images per second. On a terminal it drives a tqdm bar whose postfix shows
``loss acc img/s lr``; when the stream is not a terminal (a log file, CI, a pipe) it prints
one plain line every ``log_every`` steps and one at the end, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["Progress"]


class Progress:
    """Running loss / accuracy / images-per-second display for one epoch.

    Args:
        total: number of steps expected (None if unknown).
        desc: label printed in front (e.g. ``"epoch 3/10"``).
        stream: where to write (default ``sys.stdout``).
        bar: True forces the tqdm bar, False forces plain lines; None picks the bar only
            when ``stream`` is a terminal and tqdm is installed.
        log_every: in plain mode, print a line every this many steps (0: only at the end;
            None: about 10 lines per epoch).

    Use as a context manager and call :meth:`update` after every step.
    """

    def __init__(
        self,
        total: int | None,
        desc: str = "",
        stream: TextIO | None = None,
        bar: bool | None = None,
        log_every: int | None = None,
    ) -> None:
        self.total, self.desc = total, desc
        self.stream = stream if stream is not None else sys.stdout
        if log_every is None:
            log_every = max(1, (total or 100) // 10)
        self.log_every = log_every
        self.steps = self.images = 0
        self.loss_sum = 0.0
        self.correct = 0
        self.lr: float | None = None
        self.start = time.perf_counter()
        self._bar: Any = None
        if bar is None:
            bar = bool(getattr(self.stream, "isatty", lambda: False)())
        if bar:
            try:
                from tqdm.auto import tqdm  # noqa: PLC0415 - optional 'train' extra
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=total, desc=desc, file=self.stream, leave=True)

    # ------------------------------------------------------------ running figures
    @property
    def loss(self) -> float:
        """Mean loss per image so far."""
        return self.loss_sum / max(self.images, 1)

    @property
    def acc(self) -> float:
        """Fraction of images classified correctly so far."""
        return self.correct / max(self.images, 1)

    @property
    def images_per_s(self) -> float:
        return self.images / max(time.perf_counter() - self.start, 1e-9)

    def summary(self) -> str:
        """``loss 0.1234 acc 0.9567 1234 img/s lr 0.01`` for the epoch so far."""
        s = f"loss {self.loss:.4f} acc {self.acc:.4f} {self.images_per_s:.0f} img/s"
        return s if self.lr is None else f"{s} lr {self.lr:.3g}"

    # ------------------------------------------------------------ updates
    def update(self, batch_size: int, loss: float, correct: int, lr: float | None = None) -> None:
        """Record one step: its batch size, mean loss, number of correct predictions, LR."""
        self.steps += 1
        self.images += int(batch_size)
        self.loss_sum += float(loss) * int(batch_size)
        self.correct += int(correct)
        self.lr = lr if lr is not None else self.lr
        if self._bar is not None:
            self._bar.set_postfix_str(self.summary(), refresh=False)
            self._bar.update(1)
        elif self.log_every and self.steps % self.log_every == 0:
            self._line(f"step {self.steps}" + (f"/{self.total}" if self.total else ""))

    def _line(self, where: str) -> None:
        head = f"{self.desc} " if self.desc else ""
        print(f"{head}{where} {self.summary()}", file=self.stream, flush=True)

    def close(self) -> None:
        """Finish the bar, or print the closing plain line."""
        if self._bar is not None:
            self._bar.set_postfix_str(self.summary())
            self._bar.close()
            self._bar = None
        elif self.steps and (not self.log_every or self.steps % self.log_every):
            self._line(f"step {self.steps}" + (f"/{self.total}" if self.total else ""))

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
