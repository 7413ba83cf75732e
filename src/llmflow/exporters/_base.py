"""The exporter protocol: what an exporter is, and how it is attached to a runtime.

An exporter is passive: the runtime hands it batches in emission order, asks
it to flush and shuts it down. It never calls into the runtime from
``export``/``flush``/``shutdown``. This module does not import the runtime:
the runtime announces itself through :func:`set_default_runtime`, which keeps
the dependency one-way (``_runtime`` -> ``exporters``); ``register()`` without
a runtime loads it through the public ``llmflow.get_runtime``.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable, Sequence
from typing import ClassVar, Protocol, runtime_checkable

from llmflow._event import Event, LineParts

__all__ = [
    "BaseExporter",
    "ExportResult",
    "Exporter",
    "LineExporter",
    "PartialExportError",
    "Registrar",
    "Registration",
    "set_default_runtime",
]


class ExportResult(enum.Enum):
    """The outcome of one :meth:`Exporter.export` call (as OpenTelemetry's ``SpanExportResult``).

    ``SUCCESS``: the whole batch was exported. ``FAILURE``: none of it should be
    counted as exported (the runtime counts the batch as ``failed``). ``None``
    returned by older exporters means ``SUCCESS``; an exception means ``FAILURE``.
    """

    SUCCESS = "success"
    FAILURE = "failure"


@runtime_checkable
class Exporter(Protocol):
    """Where delivered events go.

    ``export`` receives each batch in emission order and must not keep the
    list; ``flush`` makes everything exported so far durable and returns
    whether it did (``None`` counts as ``True``); ``shutdown`` releases
    resources. Exceptions are caught and counted by the runtime. A class
    attribute ``background = True`` makes the runtime run the exporter on its
    own worker thread with its own bounded buffer.
    """

    def export(self, events: Sequence[Event]) -> ExportResult | None: ...

    def flush(self) -> bool | None: ...

    def shutdown(self) -> None: ...


@runtime_checkable
class LineExporter(Exporter, Protocol):
    """An exporter that takes events as their ATOF lines, already serialized.

    The runtime only calls :meth:`export_lines` (on the exporter's worker when
    it is a background exporter). While every exporter of a runtime is a line
    exporter and no subscriber, event sanitizer or undeclared metadata injector
    is registered, the emitting thread queues lines and builds no event object
    (only the events a declared injector selects).
    It returns how many of ``lines`` were exported (the rest count as failed;
    a short count is recorded as a failure), or ``None`` for all of them.
    """

    def export_lines(self, lines: Sequence[LineParts]) -> int | None: ...


class Registrar(Protocol):
    """The part of a runtime that exporters use to register (implemented by ``Runtime``)."""

    def add_exporter(self, name: str, exporter: Exporter) -> None: ...


class Registration(Protocol):
    """A runtime's handle on one registered exporter, given to a :class:`BaseExporter`.

    It lets a user's ``exporter.flush()``/``shutdown()`` ask the runtime to act
    (deliver what is queued first, detach); the runtime's own calls never go
    through it (``runtime_is_calling()`` is true on the runtime's threads).
    """

    name: str

    def runtime_is_calling(self) -> bool: ...

    def flush(self, timeout: float | None) -> bool: ...

    def close(self, timeout: float | None) -> None: ...


_default_runtime: Callable[[], Registrar] | None = None


def set_default_runtime(getter: Callable[[], Registrar]) -> None:
    """Called once by ``llmflow._runtime``: how :meth:`BaseExporter.register` finds the default."""
    global _default_runtime
    _default_runtime = getter


def _default() -> Registrar:
    """The default runtime; ``import llmflow`` loads the runtime on first use, and this is one."""
    if _default_runtime is None:
        # The public lazy name loads llmflow._runtime, which calls set_default_runtime.
        sys.modules["llmflow"].get_runtime  # noqa: B018
    if _default_runtime is None:  # pragma: no cover - llmflow._runtime sets it on import
        raise RuntimeError("llmflow's runtime is not initialized")
    return _default_runtime()


class BaseExporter:
    """A convenient base for exporters: registration, default ``flush``/``shutdown``/``stats``.

    Subclasses implement :meth:`export`. Set ``background = True`` for an
    exporter that may block (network, retries): the runtime then runs it on its
    own worker thread with a buffer of ``buffer_capacity`` events exported in
    batches of up to ``batch_size``; overflow is counted as dropped.
    """

    background: ClassVar[bool] = False
    buffer_capacity: ClassVar[int] = 2_048
    batch_size: ClassVar[int] = 512

    _registration: Registration | None = None

    def register(self, name: str | None = None, *, runtime: Registrar | None = None) -> str:
        """Attach to ``runtime`` (default: the process default); return the name used.

        Raises ``DuplicateRegistrationError`` when ``name`` is taken.
        """
        if runtime is None:
            runtime = _default()
        name = name or self.default_name()
        runtime.add_exporter(name, self)
        return name

    def default_name(self) -> str:
        """The name :meth:`register` uses when none is given."""
        return type(self).__name__

    def attach(self, registration: Registration | None) -> None:
        """Called by the runtime on registration (and with ``None`` on removal)."""
        self._registration = registration

    def export(self, events: Sequence[Event]) -> ExportResult | None:
        """Export one batch; subclasses implement it."""
        raise NotImplementedError

    def flush(self, timeout: float | None = None) -> bool:
        """Nothing is buffered here: ``True``."""
        return True

    def shutdown(self, timeout: float | None = None) -> None:
        """Nothing to release."""

    def stats(self) -> dict[str, int]:
        """Extra counters merged into ``diagnostics().exporters[name]`` (e.g. ``retried``)."""
        return {}


class PartialExportError(Exception):
    """Raised by ``export_lines`` when only the first ``written`` lines were written.

    The runtime counts ``written`` lines as exported and the rest as failed, with
    the cause (``raise PartialExportError(n) from oserror``) as the reason.
    """

    def __init__(self, written: int) -> None:
        super().__init__(f"only {written} lines were written")
        self.written = written
