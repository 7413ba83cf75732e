"""The exit flush and the SIGTERM handler, installed by ``import llmflow``.

They live apart from the runtime so that `import llmflow` installs them
without loading it (asyncio and the rest): a process that never loaded
``llmflow._runtime`` has emitted nothing, so there is nothing to flush.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from typing import Any

__all__ = ["flush_at_exit", "install", "install_sigterm_handler"]

_RUNTIME = "llmflow._runtime"
_previous_sigterm: Any = None


def flush_at_exit(reason: str = "exit") -> None:
    """End abandoned spans, flush every open runtime (bounded), report what was not delivered.

    Runs at interpreter exit and on SIGTERM; never raises.
    """
    runtime = sys.modules.get(_RUNTIME)
    if runtime is not None:
        runtime._flush_at_exit(reason)


def _on_sigterm(signum: int, frame: Any) -> None:
    """Flush on SIGTERM, then do what would have happened without llmflow."""
    previous = _previous_sigterm
    if callable(previous):
        # The application handles SIGTERM: flush what was emitted, let it decide.
        runtime = sys.modules.get(_RUNTIME)
        if runtime is not None:
            runtime.flush_open_runtimes()
        previous(signum, frame)
        return
    flush_at_exit("SIGTERM")
    # The default action: die by the signal, so the exit status says SIGTERM.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def install_sigterm_handler() -> bool:
    """Chain llmflow's SIGTERM flush in front of the current handler; return whether it did.

    Only from the main thread, and never over ``SIG_IGN`` (the process ignores
    SIGTERM on purpose). Done once when llmflow is imported; an application
    that installs its own handler later replaces it (its ``sys.exit`` still
    runs the exit flush). ``LLMFLOW_SIGTERM=0`` disables it.
    """
    global _previous_sigterm
    if os.environ.get("LLMFLOW_SIGTERM", "1") == "0":
        return False
    if threading.get_ident() != threading.main_thread().ident:
        return False
    try:
        current = signal.getsignal(signal.SIGTERM)
        if current is signal.SIG_IGN or current is _on_sigterm or current is None:
            return False
        _previous_sigterm = current if callable(current) else None
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):
        return False
    return True


def install() -> None:
    """Register the exit flush and install the SIGTERM handler (``import llmflow`` does, once)."""
    atexit.register(flush_at_exit)
    install_sigterm_handler()
