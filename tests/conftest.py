"""Shared fixtures of the llmflow test suite.

How to use them:

* ``runtime`` is autouse: every test runs against its own fresh, installed
  ``llmflow.Runtime``, so ``llmflow.mark()``/``scope()``/``llm_call()`` emit into
  it and nothing leaks between tests. Ask for it by name when a test needs the
  object (``runtime.diagnostics()``, ``capture(runtime=runtime)``, ...).
* ``run_async`` runs a coroutine to completion on the default asyncio loop and
  again on uvloop (the test runs once per loop). Use it from a *sync* test::

      def test_something(run_async):
          result = run_async(main())
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

import llmflow
from llmflow import _runtime, _scope

T = TypeVar("T")


@pytest.fixture(autouse=True)
def runtime() -> Iterator[llmflow.Runtime]:
    """A fresh ``llmflow.Runtime`` installed as the process default for one test.

    On teardown the runtime is shut down (its queue delivered, exporters
    closed) and the previous default is restored, even if the test installed
    yet another runtime. The scope stack of the test's context is reset too,
    so a scope a test forgot to pop cannot become the parent of the next
    test's events.
    """
    stack_token = _scope._STACK.set(None)
    rt = llmflow.Runtime()
    previous = rt.install()
    try:
        yield rt
    finally:
        rt.shutdown(timeout=10.0)
        with _runtime._default_lock:
            _runtime._default = previous if previous is not None and not previous.closed else None
        _scope._STACK.reset(stack_token)


@pytest.fixture(params=["asyncio", "uvloop"])
def run_async(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, T]], T]:
    """Return ``run(coro)`` for the event loop of this parametrization.

    ``asyncio`` uses ``asyncio.run``; ``uvloop`` uses ``uvloop.run`` and is
    skipped when uvloop is not installed (it is an optional extra).
    """
    if request.param == "asyncio":
        return asyncio.run
    uvloop = pytest.importorskip("uvloop")
    run: Callable[[Coroutine[Any, Any, T]], T] = uvloop.run
    return run
