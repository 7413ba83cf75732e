"""Delivery: ordering, flush, isolation, overflow, publication hooks, lifecycle (SPEC §3, §7)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

import llmflow
from llmflow import (
    DuplicateRegistrationError,
    Event,
    Runtime,
    RuntimeShutdownError,
    events,
    mark,
    pop_scope,
    push_scope,
    scope,
    subscribers,
)
from llmflow.atof import validate_stream
from llmflow.exporters import AtofFileExporter
from llmflow.testing import capture

Install = Callable[[Runtime], Runtime]
WAIT = 10.0  # generous upper bound for anything that should take milliseconds


class Gate:
    """A subscriber that blocks the delivery thread on its first event until opened."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.seen: list[str] = []

    def __call__(self, event: Event) -> None:
        self.seen.append(event.name)
        if not self.entered.is_set():
            self.entered.set()
            assert self.opened.wait(WAIT), "test gate was never opened"

    def hold(self) -> None:
        """Emit a mark and return once the delivery thread is blocked on it."""
        mark("hold")
        assert self.entered.wait(WAIT)


@pytest.fixture
def gate(runtime: Runtime) -> Iterator[Gate]:
    """A :class:`Gate` registered on the test's runtime; always opened at teardown."""
    blocker = Gate()
    subscribers.register("gate", blocker, priority=-100)
    try:
        yield blocker
    finally:
        blocker.opened.set()


@pytest.fixture
def install() -> Iterator[Install]:
    """``install(runtime)`` makes ``runtime`` the default for one test and shuts it down after.

    Shut down at teardown, so no runtime of a test is left for the exit flush
    to report on (the autouse fixture restores the previous default).
    """
    installed: list[Runtime] = []

    def install_runtime(runtime: Runtime) -> Runtime:
        runtime.install()
        installed.append(runtime)
        return runtime

    yield install_runtime
    for runtime in installed:
        runtime.shutdown(timeout=WAIT)


# -- ordering and flush -----------------------------------------------------------------


def test_events_reach_subscribers_in_emission_order() -> None:
    with capture() as captured:
        for index in range(5_000):
            mark("m", data=index)
    assert [event.data for event in captured] == list(range(5_000))


def test_emission_order_is_kept_per_thread_when_threads_emit_concurrently() -> None:
    def emit(tag: str) -> None:
        for index in range(1_000):
            mark(tag, data=index)

    with capture() as captured:
        threads = [threading.Thread(target=emit, args=(f"t{n}",)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for tag in ("t0", "t1", "t2", "t3"):
        assert [event.data for event in captured if event.name == tag] == list(range(1_000))


def test_flush_returns_only_after_everything_emitted_before_is_delivered() -> None:
    delivered: list[int] = []

    def slow(event: Event) -> None:
        time.sleep(0.0005)
        delivered.append(event.data)

    subscribers.register("slow", slow)
    for index in range(100):
        mark("m", data=index)
    assert llmflow.flush() is True
    assert delivered == list(range(100))


async def test_aflush_returns_only_after_everything_emitted_before_is_delivered() -> None:
    delivered: list[int] = []

    def slow(event: Event) -> None:
        time.sleep(0.0005)
        delivered.append(event.data)

    subscribers.register("slow", slow)
    for index in range(100):
        mark("m", data=index)
    await llmflow.aflush()
    assert delivered == list(range(100))


async def test_aflush_does_not_block_the_event_loop(gate: Gate) -> None:
    gate.hold()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while not gate.opened.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    async def open_later() -> None:
        await asyncio.sleep(0.05)
        gate.opened.set()

    await asyncio.gather(llmflow.aflush(), ticker(), open_later())
    assert ticks > 1


def test_flush_with_timeout_returns_false_while_delivery_is_stalled(gate: Gate) -> None:
    gate.hold()
    mark("queued")
    assert llmflow.flush(timeout=0.05) is False
    gate.opened.set()
    assert llmflow.flush(timeout=WAIT) is True
    assert gate.seen == ["hold", "queued"]


def test_flush_from_a_subscriber_fails_fast_instead_of_deadlocking(runtime: Runtime) -> None:
    def flushing(event: Event) -> None:
        llmflow.flush()

    subscribers.register("flushing", flushing)
    mark("m")
    assert llmflow.flush(timeout=WAIT) is True
    diagnostics = runtime.diagnostics()
    assert diagnostics.failures == {"subscriber:flushing": 1}
    assert "would wait for itself" in diagnostics.last_errors["subscriber:flushing"]


def test_subscriber_may_emit_without_deadlocking_even_when_the_queue_is_full(
    install: Install,
) -> None:
    install(Runtime(queue_capacity=1))

    def echo(event: Event) -> None:
        if event.name == "ping":
            mark("pong", data=event.data)

    subscribers.register("echo", echo)
    with capture() as captured:
        for index in range(50):
            mark("ping", data=index)
    assert [event.data for event in captured if event.name == "pong"] == list(range(50))


# -- snapshots --------------------------------------------------------------------------


def test_caller_mutation_after_emission_does_not_change_the_event(gate: Gate) -> None:
    data: dict[str, Any] = {"items": [1, 2]}
    metadata: dict[str, Any] = {"user": "a"}
    profile: dict[str, Any] = {"model_name": "m1"}
    with capture() as captured:
        gate.hold()  # nothing below is delivered before the mutation
        handle = push_scope("s", "llm", data=data, metadata=metadata, category_profile=profile)
        mark("m", data=data, metadata=metadata)
        data["items"].append(3)
        data["new"] = True
        metadata["user"] = "b"
        profile["model_name"] = "m2"
        pop_scope(handle)
        gate.opened.set()
    start, checkpoint = captured[1], captured[2]
    assert start.data == {"items": [1, 2]} and checkpoint.data == {"items": [1, 2]}
    assert start.metadata == {"user": "a"} and checkpoint.metadata == {"user": "a"}
    assert start.category_profile == {"model_name": "m1"}


# -- isolation --------------------------------------------------------------------------


def test_raising_subscriber_does_not_affect_other_subscribers_or_the_caller(
    runtime: Runtime,
) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError(f"cannot handle {event.name}")

    subscribers.register("broken", broken, priority=-1)  # runs first
    with capture() as captured:
        for index in range(10):
            mark("m", data=index)
    assert [event.data for event in captured] == list(range(10))
    diagnostics = runtime.diagnostics()
    assert diagnostics.failures["subscriber:broken"] == 10
    assert diagnostics.last_errors["subscriber:broken"] == "RuntimeError: cannot handle m"
    assert diagnostics.failure_count("subscriber:") == 10


def test_slow_subscriber_does_not_delay_the_caller_or_starve_other_subscribers() -> None:
    slow_seen: list[int] = []
    fast_seen: list[int] = []

    def slow(event: Event) -> None:
        time.sleep(0.005)
        slow_seen.append(event.data)

    subscribers.register("slow", slow)
    subscribers.register("fast", lambda event: fast_seen.append(event.data))
    started = time.perf_counter()
    for index in range(100):
        mark("m", data=index)
    emitting = time.perf_counter() - started
    processed_during_emission = len(slow_seen)
    # The slow subscriber alone needs >= 0.5 s for 100 events; emitting does not wait for it.
    assert processed_during_emission < 100
    assert emitting < 0.4
    assert llmflow.flush(timeout=WAIT)
    assert slow_seen == fast_seen == list(range(100))


def test_stalled_subscriber_never_blocks_emission(gate: Gate) -> None:
    gate.hold()
    started = time.perf_counter()
    for index in range(1_000):
        mark("m", data=index)
    assert time.perf_counter() - started < WAIT
    assert gate.seen == ["hold"]  # nothing was delivered while we emitted
    gate.opened.set()
    assert llmflow.flush(timeout=WAIT)
    assert len(gate.seen) == 1_001


class BrokenExporter:
    def __init__(self) -> None:
        self.flushes = 0

    def export(self, batch: Sequence[Event]) -> None:
        raise OSError("disk full")

    def flush(self) -> None:
        self.flushes += 1
        raise OSError("cannot sync")

    def shutdown(self) -> None:
        raise OSError("cannot close")


def test_failing_exporter_is_isolated_and_counted(runtime: Runtime) -> None:
    runtime.add_exporter("broken", BrokenExporter())
    with capture() as captured:
        mark("m")
    assert [event.name for event in captured] == ["m"]
    assert llmflow.flush(timeout=WAIT)
    diagnostics = runtime.diagnostics()
    assert diagnostics.failures["exporter:broken"] >= 2  # export and flush
    assert diagnostics.last_errors["exporter:broken"].startswith("OSError: ")
    runtime.shutdown()  # shutdown() failure is counted, not raised
    assert runtime.diagnostics().last_errors["exporter:broken"] == "OSError: cannot close"


def test_duplicate_exporter_name_is_rejected(runtime: Runtime, tmp_path: Path) -> None:
    AtofFileExporter(tmp_path / "a.jsonl").register("audit")
    with pytest.raises(DuplicateRegistrationError, match=r"'audit'"):
        AtofFileExporter(tmp_path / "b.jsonl").register("audit")
    with pytest.raises(TypeError, match=r"^exporter: "):
        runtime.add_exporter("bogus", object())  # type: ignore[arg-type]


def test_diagnostics_count_delivered_queued_and_emitted(runtime: Runtime, gate: Gate) -> None:
    gate.hold()
    for _ in range(5):
        mark("m")
    during = llmflow.diagnostics()
    assert during.queued == 5
    gate.opened.set()
    llmflow.flush()
    after = runtime.diagnostics()
    assert after.delivered == 6 and after.queued == 0 and after.dropped == 0
    assert after.emitted == 6
    assert after.to_dict()["emitted"] == 6


# -- subscribers registry -----------------------------------------------------------------


def test_subscribers_run_in_priority_order_then_by_name() -> None:
    order: list[str] = []
    for name, priority in [("b", 0), ("a", 0), ("late", 10), ("early", -10)]:
        subscribers.register(name, lambda event, name=name: order.append(name), priority=priority)
    mark("m")
    llmflow.flush()
    assert order == ["early", "a", "b", "late"]


def test_duplicate_subscriber_raises_and_deregister_reports_existence() -> None:
    subscribers.register("audit", lambda event: None)
    with pytest.raises(DuplicateRegistrationError, match=r"'audit' is already registered"):
        subscribers.register("audit", lambda event: None)
    assert subscribers.deregister("audit") is True
    assert subscribers.deregister("audit") is False


def test_deregistered_subscriber_receives_nothing_more() -> None:
    seen: list[str] = []
    subscribers.register("tmp", lambda event: seen.append(event.name))
    mark("before")
    llmflow.flush()
    subscribers.deregister("tmp")
    mark("after")
    llmflow.flush()
    assert seen == ["before"]


# -- overflow -------------------------------------------------------------------------------


def test_drop_policy_counts_drops_and_reports_them_as_a_mark_when_delivery_resumes(
    install: Install,
) -> None:
    runtime = install(Runtime(queue_capacity=4, overflow="drop"))
    blocker = Gate()
    subscribers.register("gate", blocker)
    try:
        with capture() as captured:
            blocker.hold()
            for index in range(10):
                mark("m", data=index)
            assert runtime.diagnostics().dropped == 6
            blocker.opened.set()
    finally:
        blocker.opened.set()
    names = [event.name for event in captured]
    assert [event.data for event in captured if event.name == "m"] == [0, 1, 2, 3]
    assert names.count("llmflow.events_dropped") == 1
    report = next(event for event in captured if event.name == "llmflow.events_dropped")
    assert report.kind == "mark" and report.parent_uuid is None
    assert report.data == {"dropped": 6, "dropped_total": 6}
    diagnostics = runtime.diagnostics()
    assert diagnostics.dropped == 6
    assert diagnostics.emitted == diagnostics.delivered + diagnostics.dropped


def test_drop_report_mark_is_written_by_exporters(tmp_path: Path, install: Install) -> None:
    install(Runtime(queue_capacity=2, overflow="drop"))
    path = tmp_path / "drops.jsonl"
    AtofFileExporter(path).register()
    blocker = Gate()
    subscribers.register("gate", blocker)
    try:
        blocker.hold()
        for _ in range(5):
            mark("m")
    finally:
        blocker.opened.set()
    llmflow.flush()
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    reports = [line for line in lines if line["name"] == "llmflow.events_dropped"]
    assert [report["data"]["dropped"] for report in reports] == [3]
    assert validate_stream(path) == []


def test_block_policy_loses_nothing_when_the_queue_is_full(install: Install) -> None:
    runtime = install(Runtime(queue_capacity=2, overflow="block"))
    blocker = Gate()
    subscribers.register("gate", blocker)
    releaser = threading.Timer(0.05, blocker.opened.set)
    try:
        with capture() as captured:
            blocker.hold()
            releaser.start()  # the emitter below blocks until delivery resumes
            for index in range(300):
                mark("m", data=index)
    finally:
        blocker.opened.set()
        releaser.join()
    assert [event.data for event in captured if event.name == "m"] == list(range(300))
    assert runtime.diagnostics().dropped == 0


# -- event sanitizers -----------------------------------------------------------------------


def test_mark_sanitizer_replaces_data_profile_and_metadata() -> None:
    def redact(event: Event) -> Mapping[str, Any]:
        return {"data": "[redacted]", "category_profile": {"k": 1}, "metadata": {"clean": True}}

    events.register_sanitizer("mark", "redact", 0, redact)
    with capture() as captured:
        mark("m", data={"secret": 1}, metadata={"secret": 2}, category="tool")
        with scope("s", data={"secret": 3}):
            pass
    checkpoint = captured[0]
    assert checkpoint.data == "[redacted]"
    assert checkpoint.category_profile == {"k": 1}
    assert checkpoint.metadata == {"clean": True}
    assert checkpoint.name == "m" and checkpoint.category == "tool"
    assert orjson.loads(checkpoint.to_json())["data"] == "[redacted]"
    assert captured[1].data == {"secret": 3}  # scope events are not marks


def test_scope_start_and_end_sanitizers_apply_to_their_phase_only() -> None:
    events.register_sanitizer("scope_start", "start", 0, lambda event: {"data": "start-clean"})
    events.register_sanitizer("scope_end", "end", 0, lambda event: {"metadata": {"end": 1}})
    with capture() as captured:
        handle = push_scope("s", data="raw-start")
        mark("m", data="raw-mark")
        pop_scope(handle, data="raw-end")
    start, checkpoint, end = captured
    assert start.data == "start-clean" and start.metadata is None
    assert checkpoint.data == "raw-mark"
    assert end.data == "raw-end" and end.metadata == {"end": 1}


def test_sanitizer_returning_none_keeps_the_event() -> None:
    events.register_sanitizer("mark", "noop", 0, lambda event: None)
    with capture() as captured:
        mark("m", data={"a": 1})
    assert captured[0].data == {"a": 1}


def test_sanitizers_run_in_priority_order_and_see_earlier_replacements() -> None:
    events.register_sanitizer("mark", "second", 2, lambda event: {"data": [*event.data, "second"]})
    events.register_sanitizer("mark", "first", 1, lambda event: {"data": [*event.data, "first"]})
    with capture() as captured:
        mark("m", data=[])
    assert captured[0].data == ["first", "second"]


def failing_sanitizer(event: Event) -> Mapping[str, Any]:
    raise ValueError("sanitizer bug")


@pytest.mark.parametrize(
    ("sanitizer", "error"),
    [
        (failing_sanitizer, "^ValueError: sanitizer bug$"),
        (lambda event: {"name": "renamed"}, "^TypeError: an event sanitizer returns None or"),
        (lambda event: ["data"], "^TypeError: an event sanitizer returns None or"),
        (lambda event: {"data": {1, 2}}, r"InvalidPayloadError: data: "),
        (lambda event: {"metadata": {1: "x"}}, r"InvalidPayloadError: metadata: "),
    ],
    ids=["raises", "forbidden-key", "not-a-mapping", "non-json-data", "bad-metadata"],
)
def test_failing_or_invalid_sanitizer_clears_payload_fields_and_is_counted(
    runtime: Runtime, sanitizer: Any, error: str
) -> None:
    events.register_sanitizer("mark", "bad", 0, sanitizer)
    events.register_sanitizer("mark", "after", 1, lambda event: {"data": "must not run"})
    with capture() as captured:
        mark("m", data={"secret": 1}, metadata={"secret": 2}, category_profile={"secret": 3})
    checkpoint = captured[0]
    assert checkpoint.data is None
    assert checkpoint.metadata is None
    assert checkpoint.category_profile is None
    assert checkpoint.name == "m"
    assert b"secret" not in checkpoint.to_json()
    diagnostics = runtime.diagnostics()
    assert diagnostics.failures == {"mark_sanitizer:bad": 1}
    assert re.search(error, diagnostics.last_errors["mark_sanitizer:bad"])


def test_sanitizer_registration_validates_kind_and_rejects_duplicates() -> None:
    with pytest.raises(ValueError, match=r"^kind: expected one of"):
        events.register_sanitizer("llm_start", "x", 0, lambda event: None)  # type: ignore[arg-type]
    events.register_sanitizer("mark", "x", 0, lambda event: None)
    with pytest.raises(DuplicateRegistrationError):
        events.register_sanitizer("mark", "x", 0, lambda event: None)
    events.register_sanitizer("scope_end", "x", 0, lambda event: None)  # other registry
    assert events.deregister_sanitizer("mark", "x") is True
    assert events.deregister_sanitizer("mark", "x") is False


# -- metadata injectors ----------------------------------------------------------------------


def test_metadata_injector_adds_keys_to_every_event() -> None:
    events.register_metadata_injector("env", 0, lambda event: {"env": "test", "kind": event.kind})
    with capture() as captured:
        with scope("s", metadata={"user": "u"}):
            mark("m")
    assert captured[0].metadata == {"user": "u", "env": "test", "kind": "scope"}
    assert captured[1].metadata == {"env": "test", "kind": "mark"}
    assert captured[2].metadata == {"env": "test", "kind": "scope"}


def test_metadata_injector_never_overwrites_existing_keys() -> None:
    events.register_metadata_injector("first", 0, lambda event: {"a": "first", "b": "first"})
    events.register_metadata_injector("second", 1, lambda event: {"a": "second", "c": "second"})
    with capture() as captured:
        mark("m", metadata={"b": "caller"})
    assert captured[0].metadata == {"b": "caller", "a": "first", "c": "second"}


def test_metadata_injector_runs_before_sanitizers() -> None:
    events.register_metadata_injector("env", 0, lambda event: {"env": "prod"})
    seen: list[Any] = []
    events.register_sanitizer("mark", "look", 0, lambda event: seen.append(event.metadata))
    mark("m")
    llmflow.flush()
    assert seen == [{"env": "prod"}]


def failing_injector(event: Event) -> Mapping[str, Any]:
    raise KeyError("missing")


@pytest.mark.parametrize(
    "injector",
    [failing_injector, lambda event: ["not", "a", "mapping"], lambda event: {"bad": {1, 2}}],
    ids=["raises", "not-a-mapping", "non-json"],
)
def test_failing_metadata_injector_is_skipped_and_counted(runtime: Runtime, injector: Any) -> None:
    events.register_metadata_injector("bad", 0, injector)
    events.register_metadata_injector("good", 1, lambda event: {"good": True})
    with capture() as captured:
        mark("m", data={"kept": 1}, metadata={"user": "u"})
    assert captured[0].metadata == {"user": "u", "good": True}
    assert captured[0].data == {"kept": 1}
    assert runtime.diagnostics().failures == {"metadata_injector:bad": 1}


def test_metadata_injector_registration_rejects_duplicates() -> None:
    events.register_metadata_injector("x", 0, lambda event: None)
    with pytest.raises(DuplicateRegistrationError):
        events.register_metadata_injector("x", 0, lambda event: None)
    assert events.deregister_metadata_injector("x") is True
    assert events.deregister_metadata_injector("x") is False


# -- runtime lifecycle ------------------------------------------------------------------------


def test_shut_down_runtime_refuses_emit_and_flush(runtime: Runtime) -> None:
    handle = push_scope("open")
    runtime.shutdown()
    with pytest.raises(RuntimeShutdownError, match=r"shut down"):
        runtime.flush()
    with pytest.raises(RuntimeShutdownError):
        asyncio.run(runtime.aflush())
    with pytest.raises(RuntimeShutdownError):
        pop_scope(handle)  # the handle's events belong to the shut-down runtime
    with pytest.raises(RuntimeShutdownError):
        runtime.install()
    with pytest.raises(RuntimeShutdownError):
        subscribers.register("late", lambda event: None, runtime=runtime)
    with pytest.raises(RuntimeShutdownError):
        runtime.add_exporter("late", BrokenExporter())
    assert isinstance(llmflow.get_runtime(), Runtime)
    assert llmflow.get_runtime() is not runtime  # a fresh default replaces it


def test_shutdown_delivers_what_is_queued_and_is_idempotent(install: Install) -> None:
    runtime = install(Runtime())
    seen: list[int] = []
    subscribers.register("seen", lambda event: seen.append(event.data), runtime=runtime)
    for index in range(200):
        mark("m", data=index)
    runtime.shutdown()
    runtime.shutdown()
    assert seen == list(range(200))
    assert runtime.closed


def test_explicit_runtime_keeps_its_own_subscribers(runtime: Runtime) -> None:
    other = Runtime()
    try:
        with capture(runtime=other) as on_other, capture() as on_default:
            mark("m")
        assert [event.name for event in on_default] == ["m"]
        assert on_other == []
    finally:
        other.shutdown()


def run_python(code: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_interpreter_exit_flushes_queued_events(tmp_path: Path) -> None:
    path = tmp_path / "exit.jsonl"
    result = run_python(
        f"""
        import llmflow
        from llmflow.exporters import AtofFileExporter

        AtofFileExporter({str(path)!r}).register()
        with llmflow.scope("work"):
            for index in range(2000):
                llmflow.mark("m", data={{"index": index, "pad": "x" * 100}})
        # no flush: interpreter exit must deliver everything
        """
    )
    assert result.returncode == 0, result.stderr
    lines = path.read_bytes().splitlines()
    assert len(lines) == 2002
    assert validate_stream(path) == []
    assert [orjson.loads(line)["data"]["index"] for line in lines[1:-1]] == list(range(2000))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_forked_child_never_shares_the_parents_queue_worker_or_file(
    tmp_path: Path, gate: Gate
) -> None:
    path = tmp_path / "fork.jsonl"
    AtofFileExporter(path).register()
    with capture() as captured:
        gate.hold()  # "hold" is being delivered; the next two stay queued across the fork
        mark("parent-1")
        mark("parent-2")
        pid = os.fork()
        if pid == 0:  # child: emit, flush, and leave without running pytest's teardown
            code = 1
            try:
                for index in range(3):
                    mark(f"child-{index}")
                code = 0 if llmflow.flush(timeout=WAIT) else 2
            finally:
                os._exit(code)
        gate.opened.set()
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert [event.name for event in captured] == ["hold", "parent-1", "parent-2"]
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""  # the file ends with a complete line
    names = sorted(orjson.loads(line)["name"] for line in lines[:-1])
    assert names == ["child-0", "child-1", "child-2", "hold", "parent-1", "parent-2"]


async def test_aflush_never_misses_a_barrier_the_worker_reached_first() -> None:
    # Regression: the completion callback was attached after the barrier was
    # queued, so a fast worker could release it first and aflush() hung.
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for index in range(1500):
            llmflow.mark("tick", data=index)
            await asyncio.wait_for(llmflow.aflush(), timeout=5)
    finally:
        sys.setswitchinterval(previous)
