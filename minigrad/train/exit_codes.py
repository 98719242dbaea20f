"""How a command's outcome becomes the process's exit status (:data:`EXIT_CODES`).

:func:`run_command` runs ``train``/``eval``/``predict``/``study`` with SIGTERM turned into
Ctrl-C and warnings shown as one line each, and maps what ends it to a status: a usage or
input error is one line (``error: ...``), never a traceback.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["EXIT_CODES", "run_command"]

# the process's exit status, so scripts can tell the outcomes apart (also in --help)
EXIT_CODES: dict[int, str] = {
    0: "done",
    1: "internal error (a bug: the traceback is printed)",
    2: "usage or input error (a bad flag value, a missing or unreadable file, an --out "
    "that cannot be written or already holds a run, a bad image in predict)",
    3: "stopped: the training loss became NaN/inf (last.npz is the last good checkpoint)",
    130: "interrupted by Ctrl-C or SIGTERM (the last line says whether a resumable last.npz "
    "was saved)",
}


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a job scheduler's stop) raises ``KeyboardInterrupt`` as Ctrl-C does, so the
    run saves a resumable checkpoint; only in the main thread (where handlers can be set)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _message(e: BaseException) -> str:
    """An error's one line: an OSError as "file: reason", without "[Errno 28]"."""
    if isinstance(e, OSError) and e.strerror:
        names = [n for n in (e.filename, e.filename2) if n is not None]
        return ": ".join([*map(str, names), e.strerror]) if names else e.strerror
    return str(e)


# NumPy's floating-point RuntimeWarnings ("overflow encountered in exp"): the commands
# report what matters of them themselves (a NaN/inf loss stops the run, NaN/inf outputs
# are counted and named), so the raw warnings are not shown
_FLOATING_POINT = r"(overflow|invalid value|divide by zero|underflow) encountered"


@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Warnings as one line each (``warning: ...``); NumPy's floating-point ones hidden."""
    import warnings  # noqa: PLC0415

    def show(message: Any, category: type, filename: str, lineno: int, *rest: Any) -> None:
        print(f"warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _FLOATING_POINT, RuntimeWarning)
        warnings.showwarning = show
        yield


def run_command(command: Callable[[], int]) -> int:
    """Run a command and map its outcome to :data:`EXIT_CODES`."""
    from minigrad.train.loop import NonFiniteLossError  # noqa: PLC0415

    try:
        with _sigterm_as_interrupt(), _one_line_warnings():
            return command()
    except NonFiniteLossError:
        return 3  # fit said what happened and which checkpoint is the last good one
    except KeyboardInterrupt as e:  # Ctrl-C, SIGTERM, or another rank's (PeerInterrupt)
        saved = getattr(e, "saved", None)  # fit's InterruptedRun says what was saved
        peer = e.__cause__ if hasattr(e, "saved") else e  # whose stop it was, if another's
        why = f": {peer}" if peer is not None and str(peer) else ""
        print("interrupted" + why + (f"; resume with --resume {saved}" if saved else ""),
              file=sys.stderr)  # fmt: skip
        return 130
    except (ValueError, TypeError, OSError) as e:
        print(f"error: {_message(e)}", file=sys.stderr)
        return 2
    except Exception:
        traceback.print_exc()
        print("internal error: this is a bug, please report the traceback above",
              file=sys.stderr)  # fmt: skip
        return 1
