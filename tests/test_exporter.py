"""``AtofFileExporter``, zero-code export and ``testing.capture()`` (SPEC §7)."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

import llmflow
from llmflow import Event, Runtime, mark, scope, subscribers
from llmflow.atof import parse_event, read_events, validate_stream
from llmflow.exporters import AtofFileExporter, BaseExporter, ExportResult
from llmflow.testing import capture

WAIT = 10.0


def names_in(path: Path) -> list[str]:
    return [orjson.loads(line)["name"] for line in path.read_bytes().splitlines()]


def test_one_whole_json_line_per_event(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    AtofFileExporter(path).register()
    with capture() as captured:
        with scope("s", data={"text": "multi\nline", "big": "x" * 100_000}):
            for index in range(50):
                mark("m", data=index)
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    assert raw.splitlines() == [event.to_json() for event in captured]
    assert len(raw.splitlines()) == 52


def test_append_mode_keeps_existing_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    first = AtofFileExporter(path)
    first.register("first")
    mark("one")
    first.shutdown()
    AtofFileExporter(path, mode="append").register("second")
    mark("two")
    llmflow.flush()
    assert names_in(path) == ["one", "two"]


def test_overwrite_mode_truncates_when_the_exporter_is_created(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"stale": true}\n')
    exporter = AtofFileExporter(path, mode="overwrite")
    assert path.read_bytes() == b""
    exporter.register()
    mark("fresh")
    llmflow.flush()
    assert names_in(path) == ["fresh"]


def test_invalid_mode_is_rejected_naming_mode(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^mode: expected 'append' or 'overwrite'"):
        AtofFileExporter(tmp_path / "x.jsonl", mode="truncate")  # type: ignore[arg-type]


def test_missing_parent_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "events.jsonl"
    AtofFileExporter(path).register()
    mark("m")
    llmflow.flush()
    assert names_in(path) == ["m"]


def test_register_returns_the_name_used(tmp_path: Path, runtime: Runtime) -> None:
    path = tmp_path / "events.jsonl"
    assert AtofFileExporter(path).register() == f"atof-file:{path}"
    assert AtofFileExporter(tmp_path / "b.jsonl").register("b", runtime=runtime) == "b"


def test_flush_writes_everything_emitted_and_fsyncs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    path = tmp_path / "events.jsonl"
    exporter = AtofFileExporter(path)
    exporter.register()
    for index in range(100):
        mark("m", data=index)
    exporter.flush()
    assert len(names_in(path)) == 100
    assert exporter._fd in synced


def test_flush_without_fsync_still_writes_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", synced.append)
    path = tmp_path / "events.jsonl"
    exporter = AtofFileExporter(path, fsync=False)
    exporter.register()
    mark("m")
    exporter.flush()
    assert names_in(path) == ["m"]
    assert synced == []


def test_flush_of_an_unregistered_exporter_only_syncs(tmp_path: Path) -> None:
    exporter = AtofFileExporter(tmp_path / "idle.jsonl")
    exporter.flush()
    exporter.shutdown()


def test_shutdown_writes_what_is_queued_then_detaches_and_is_idempotent(
    tmp_path: Path, runtime: Runtime
) -> None:
    path = tmp_path / "events.jsonl"
    exporter = AtofFileExporter(path)
    exporter.register()
    for index in range(20):
        mark("m", data=index)
    exporter.shutdown()
    exporter.shutdown()
    mark("after-shutdown")
    llmflow.flush()
    assert names_in(path) == ["m"] * 20
    assert runtime.diagnostics().failures == {}


def test_runtime_shutdown_closes_its_exporters(tmp_path: Path) -> None:
    runtime = Runtime()
    exporter = AtofFileExporter(tmp_path / "events.jsonl")
    exporter.register(runtime=runtime)
    runtime.shutdown()
    assert exporter._fd is None
    with pytest.raises(ValueError, match=r"shut down"):
        exporter.export([])


def test_appending_after_a_torn_last_line_starts_a_new_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    first = AtofFileExporter(path)
    first.register("first")
    mark("whole")
    first.shutdown()
    whole = path.read_bytes()
    torn = b'{"kind":"mark","atof_version":"0.1","uuid":"01'
    path.write_bytes(whole + torn)  # what a writer killed mid-write(2) can leave
    AtofFileExporter(path).register("second")
    mark("next")
    llmflow.flush()
    lines = path.read_bytes().split(b"\n")
    assert lines[:-1] == [whole.rstrip(b"\n"), torn, lines[2]]
    assert lines[-1] == b""
    assert parse_event(lines[2]).name == "next"


WRITER = """
    import sys
    import llmflow
    from llmflow.exporters import AtofFileExporter

    AtofFileExporter(sys.argv[1], mode="overwrite").register()
    llmflow.mark("first")
    llmflow.flush()
    print("ready", flush=True)
    index = 0
    while True:
        with llmflow.scope("step", data={"index": index, "pad": "x" * 300}):
            llmflow.mark("tick", data={"index": index})
        index += 1
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_mid_write_never_leaves_a_line_mixing_two_events(tmp_path: Path) -> None:
    path = tmp_path / "crash.jsonl"
    writer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WRITER), str(path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline() == "ready\n"
        threading.Event().wait(0.2)  # let it write for a while
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=WAIT)
        if writer.stdout is not None:
            writer.stdout.close()
    raw = path.read_bytes()
    complete, _, tail = raw.rpartition(b"\n")
    lines = complete.split(b"\n")
    assert len(lines) > 10
    for number, line in enumerate(lines, 1):
        parse_event(line, line_number=number)  # every complete line is one whole event
    # The kernel may cut the batch being written at a page boundary: what is left
    # after the last newline can only be the beginning of one event.
    assert tail == b"" or tail.startswith(b'{"kind":')
    # Appending after the crash never glues a new event onto that fragment.
    AtofFileExporter(path).register()
    mark("after-crash")
    llmflow.flush()
    again = path.read_bytes()
    assert again.endswith(b"\n")
    last_lines = again.split(b"\n")[-3:-1]
    assert parse_event(last_lines[-1]).name == "after-crash"
    if tail:
        assert last_lines[0] == tail


def test_llmflow_atof_path_installs_an_exporter_without_code_changes(tmp_path: Path) -> None:
    path = tmp_path / "zero-code.jsonl"
    path.write_bytes(b"")  # append mode keeps what is there
    code = """
        import llmflow

        with llmflow.scope("agent", "agent"):
            llmflow.mark("step")
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, "LLMFLOW_ATOF_PATH": str(path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert names_in(path) == ["agent", "step", "agent"]
    assert validate_stream(path) == []
    assert [event.kind for event in read_events(path)] == ["scope", "mark", "scope"]


# -- llmflow.testing.capture ----------------------------------------------------------------


def test_capture_collects_exactly_the_events_of_the_block() -> None:
    opened = threading.Event()
    entered = threading.Event()

    def hold(event: Event) -> None:
        if event.name == "hold":
            entered.set()
            opened.wait(WAIT)

    subscribers.register("hold", hold)
    mark("hold")
    assert entered.wait(WAIT)
    mark("before")  # still queued when the block starts
    timer = threading.Timer(0.05, opened.set)
    timer.start()
    try:
        with capture() as captured:
            mark("inside")
    finally:
        opened.set()
        timer.join()
    mark("after")
    llmflow.flush()
    assert [event.name for event in captured] == ["inside"]


def test_capture_is_complete_when_the_block_exits_even_on_error() -> None:
    with pytest.raises(RuntimeError):
        with capture() as captured:
            for index in range(500):
                mark("m", data=index)
            raise RuntimeError("boom")
    assert [event.data for event in captured] == list(range(500))


def test_capture_blocks_can_nest() -> None:
    with capture() as outer:
        mark("a")
        with capture() as inner:
            mark("b")
    assert [event.name for event in outer] == ["a", "b"]
    assert [event.name for event in inner] == ["b"]


# -- queueing serialized lines ---------------------------------------------------------
# With nothing but line exporters attached, events are queued as their lines (no Event
# objects). The file must not be able to tell the difference.

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in epoch microseconds


def _workload() -> None:
    outer = llmflow.push_scope(
        "plan",
        "custom",
        category_profile={"subtype": "acme.planner"},
        data={"goal": "ship"},
        data_schema={"name": "acme.plan", "version": "1"},
        attributes=["relocatable", "parallel"],
        timestamp=T0,
    )
    mark("tick", data=[1, "two"], category="function", metadata={"k": "v"}, timestamp=T0 + 1)
    mark("bare", timestamp=T0 + 2)
    handle = llmflow.llm_call(
        "chat",
        llmflow.LlmRequest({"Authorization": "Bearer x", "accept": "json"}, {"q": "é\n"}),
        model_name="m-1",
        metadata={"tenant": 7},
        timestamp=T0 + 3,
    )
    llmflow.llm_call_end(handle, {"answer": "ok"}, timestamp=T0 + 1_000_004)
    llmflow.pop_scope(outer, metadata={"done": True}, timestamp=T0 + 2_000_000)


def _normalized(path: Path) -> list[dict[str, object]]:
    """The file's events with every uuid replaced by its order of first appearance."""
    ids: dict[str, str] = {}
    events = []
    for raw in path.read_bytes().splitlines():
        event = orjson.loads(raw)
        for key in ("uuid", "parent_uuid"):
            if event[key] is not None:
                event[key] = ids.setdefault(event[key], f"id{len(ids)}")
        events.append(event)
    return events


@pytest.mark.parametrize("timestamp_format", ["rfc3339", "epoch_us"])
def test_queued_lines_match_the_lines_of_delivered_events(
    tmp_path: Path, timestamp_format: str
) -> None:
    written = {}
    for mode in ("lines", "events"):
        rt = Runtime(timestamp_format=timestamp_format)  # type: ignore[arg-type]
        rt.install()
        path = tmp_path / f"{mode}.jsonl"
        AtofFileExporter(path).register(runtime=rt)
        if mode == "events":
            subscribers.register("observer", lambda event: None, runtime=rt)
        _workload()
        rt.shutdown()
        written[mode] = _normalized(path)
    assert len(written["lines"]) == 6
    assert written["lines"] == written["events"]
    assert validate_stream(tmp_path / "lines.jsonl") == []


def test_a_consumer_added_later_gets_later_events_and_the_file_gets_all(
    tmp_path: Path, runtime: Runtime
) -> None:
    path = tmp_path / "events.jsonl"
    AtofFileExporter(path).register()
    for index in range(200):
        mark("before", data=index)
    seen: list[Event] = []
    subscribers.register("late", seen.append)
    for index in range(3):
        mark("after", data=index)
    llmflow.flush()
    assert [(event.name, event.data) for event in seen] == [("after", i) for i in range(3)]
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [(e["name"], e["data"]) for e in lines] == [("before", i) for i in range(200)] + [
        ("after", i) for i in range(3)
    ]


def _spy_on_queue(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What ``runtime`` queues from now on: ``"event"`` or ``"line"`` per item."""
    queued: list[str] = []
    original = runtime.emit

    def spy(item: object) -> None:
        queued.append("event" if isinstance(item, Event) else "line")
        original(item)  # type: ignore[arg-type]

    monkeypatch.setattr(runtime, "emit", spy)
    return queued


def test_events_are_queued_as_lines_only_while_line_exporters_alone_consume_them(
    tmp_path: Path, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    queued = _spy_on_queue(runtime, monkeypatch)

    class EventsOnly:
        def __init__(self) -> None:
            self.names: list[str] = []

        def export(self, events: list[Event]) -> None:
            self.names += [event.name for event in events]

        def flush(self) -> None:
            pass

        def shutdown(self) -> None:
            pass

    mark("no-consumer")
    llmflow.flush()  # delivered (to nobody) before the file joins
    AtofFileExporter(tmp_path / "a.jsonl").register("file")
    mark("file-only")
    subscribers.register("sub", lambda event: None)
    mark("with-subscriber")
    subscribers.deregister("sub")
    mark("file-only-again")
    llmflow.events.register_sanitizer("mark", "s", 0, lambda event: None)
    mark("with-sanitizer")
    llmflow.events.deregister_sanitizer("mark", "s")
    other = EventsOnly()
    llmflow.flush()  # what was queued before is delivered before the exporter joins
    runtime.add_exporter("events-only", other)
    mark("with-event-exporter")
    runtime.remove_exporter("events-only")
    mark("file-only-last")
    llmflow.flush()
    assert queued == ["event", "line", "event", "line", "event", "event", "line"]
    assert other.names == ["with-event-exporter"]
    assert names_in(tmp_path / "a.jsonl") == [
        "file-only",
        "with-subscriber",
        "file-only-again",
        "with-sanitizer",
        "with-event-exporter",
        "file-only-last",
    ]


def _tag_llm_ends(seen: list[str]) -> Callable[[Event], dict[str, object] | None]:
    def inject(event: Event) -> dict[str, object] | None:
        seen.append(f"{event.category}:{event.scope_category or 'mark'}")
        if event.category == "llm" and event.scope_category == "end":
            return {"tag": "priced"}
        return None

    return inject


def test_an_injector_that_declares_its_events_sees_only_those_and_the_rest_stay_lines(
    tmp_path: Path, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    queued = _spy_on_queue(runtime, monkeypatch)
    AtofFileExporter(tmp_path / "a.jsonl").register()
    seen: list[str] = []
    llmflow.events.register_metadata_injector(
        "cost", 0, _tag_llm_ends(seen), categories=["llm"], phases=["end"]
    )
    _workload()
    llmflow.flush()
    assert seen == ["llm:end"]
    # scope start, two marks, llm start: lines; llm end: event; scope end: line
    assert queued == ["line", "line", "line", "line", "event", "line"]
    lines = [orjson.loads(raw) for raw in (tmp_path / "a.jsonl").read_bytes().splitlines()]
    tagged = [
        (e["category"], e["scope_category"])
        for e in lines
        if e["metadata"] and "tag" in e["metadata"]
    ]
    assert tagged == [("llm", "end")]
    assert lines[4]["metadata"] == {"tenant": 7, "tag": "priced"}

    # A subscriber brings every event back as an Event; the injector still sees its own.
    seen.clear()
    subscribers.register("sub", lambda event: None)
    _workload()
    llmflow.flush()
    assert seen == ["llm:end"]


@pytest.mark.parametrize("timestamp_format", ["rfc3339", "epoch_us"])
def test_declaring_an_injectors_events_never_changes_the_file(
    tmp_path: Path, timestamp_format: str
) -> None:
    written = {}
    for mode in ("declared", "undeclared"):
        rt = Runtime(timestamp_format=timestamp_format)  # type: ignore[arg-type]
        rt.install()
        path = tmp_path / f"{mode}.jsonl"
        AtofFileExporter(path).register(runtime=rt)
        seen: list[str] = []
        if mode == "declared":
            llmflow.events.register_metadata_injector(
                "tag", 0, _tag_llm_ends(seen), categories={"llm"}, runtime=rt
            )
        else:
            llmflow.events.register_metadata_injector("tag", 0, _tag_llm_ends(seen), runtime=rt)
        _workload()
        rt.shutdown()
        written[mode] = _normalized(path)
    assert len(written["declared"]) == 6
    assert written["declared"] == written["undeclared"]


@pytest.mark.parametrize(
    ("kwargs", "error", "names"),
    [
        ({"categories": "llm"}, llmflow.ParameterTypeError, "categories"),
        ({"categories": [1]}, llmflow.ParameterTypeError, "categories"),
        ({"categories": [""]}, llmflow.InvalidParameterError, "categories"),
        ({"phases": ["begin"]}, llmflow.InvalidParameterError, "phases"),
        ({"phases": 3}, llmflow.ParameterTypeError, "phases"),
    ],
)
def test_a_bad_injector_filter_is_refused_naming_the_parameter(
    kwargs: dict[str, Any], error: type[Exception], names: str, runtime: Runtime
) -> None:
    with pytest.raises(error, match=names):
        llmflow.events.register_metadata_injector("bad", 0, lambda event: None, **kwargs)
    assert not runtime.injectors.entries


# -- the exporter protocol: passive exporters, background workers, counters (issue 10) ----


class Stalled(BaseExporter):
    """A background exporter whose export() blocks until the test releases it."""

    background = True
    buffer_capacity = 10
    batch_size = 4

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.names: list[str] = []
        self.flushes = 0

    def export(self, events: Sequence[Event]) -> ExportResult:
        self.entered.set()
        self.release.wait(WAIT)
        self.names += [event.name for event in events]
        return ExportResult.SUCCESS

    def flush(self, timeout: float | None = None) -> bool:
        self.flushes += 1
        return True


def test_a_stalled_background_exporter_never_delays_the_file_subscribers_or_emitters(
    tmp_path: Path, runtime: Runtime
) -> None:
    path = tmp_path / "a.jsonl"
    AtofFileExporter(path).register("file")
    seen: list[str] = []
    subscribers.register("sub", lambda event: seen.append(event.name))
    stalled = Stalled()
    stalled.register("stalled")
    mark("first")
    assert stalled.entered.wait(WAIT)  # the exporter now blocks in export()

    def emit_many() -> None:  # more than the runtime's queue holds: a stall would block it
        for i in range(runtime._dispatcher.capacity + 500):
            mark(f"m{i}")

    emitter = threading.Thread(target=emit_many)
    emitter.start()
    emitter.join(WAIT)
    assert not emitter.is_alive()
    assert runtime._dispatcher.flush(WAIT)  # the delivery thread itself is not stalled
    total = 1 + runtime._dispatcher.capacity + 500
    assert len(names_in(path)) == total
    assert len(seen) == total
    stalled.release.set()


def test_flush_returns_false_while_a_background_exporter_stalls_and_true_after(
    runtime: Runtime,
) -> None:
    stalled = Stalled()
    stalled.register("stalled")
    mark("m")
    assert stalled.entered.wait(WAIT)
    assert llmflow.flush(timeout=0.05) is False
    stalled.release.set()
    assert llmflow.flush(timeout=WAIT) is True
    assert stalled.names == ["m"]
    assert stalled.flushes >= 1


def test_background_buffer_overflow_is_counted_as_dropped_for_that_exporter_only(
    tmp_path: Path, runtime: Runtime
) -> None:
    path = tmp_path / "a.jsonl"
    AtofFileExporter(path).register("file")
    stalled = Stalled()
    stalled.register("stalled")
    mark("first")
    assert stalled.entered.wait(WAIT)
    for i in range(50):
        mark(f"m{i}")
    assert runtime._dispatcher.flush(WAIT)
    stalled.release.set()
    assert llmflow.flush(timeout=WAIT)
    counts = runtime.diagnostics().exporters
    assert counts["stalled"]["received"] == 51
    assert counts["stalled"]["dropped"] == 40  # 10 fit in its buffer, one batch was in hand
    assert counts["stalled"]["exported"] == 11 == len(stalled.names)
    assert counts["stalled"]["failed"] == 0
    assert counts["file"] == {"received": 51, "exported": 51, "failed": 0, "dropped": 0}
    assert len(names_in(path)) == 51


class Refusing(BaseExporter):
    def __init__(self, *, raises: bool) -> None:
        self.raises = raises

    def export(self, events: Sequence[Event]) -> ExportResult:
        if self.raises:
            raise ConnectionError("collector down")
        return ExportResult.FAILURE


class BackgroundRefusing(Refusing):
    background = True


@pytest.mark.parametrize("kind", [Refusing, BackgroundRefusing])
@pytest.mark.parametrize("raises", [True, False])
def test_a_raising_or_failure_returning_exporter_counts_its_events_as_failed(
    runtime: Runtime, kind: type[Refusing], raises: bool
) -> None:
    kind(raises=raises).register("refusing")
    for i in range(7):
        mark(f"m{i}")
    assert llmflow.flush(timeout=WAIT)
    diagnostics = runtime.diagnostics()
    assert diagnostics.exporters["refusing"]["failed"] == 7
    assert diagnostics.exporters["refusing"]["exported"] == 0
    assert diagnostics.failures["exporter:refusing"] >= 1
    expected = "ConnectionError: collector down" if raises else "returned FAILURE"
    assert expected in diagnostics.last_errors["exporter:refusing"]


def test_an_exporter_returning_none_counts_as_success_and_stats_are_merged(
    runtime: Runtime,
) -> None:
    class Legacy(BaseExporter):
        def export(self, events: Sequence[Event]) -> None:
            pass

        def stats(self) -> dict[str, int]:
            return {"retried": 3, "exported": -1}  # cannot override the runtime's counters

    Legacy().register("legacy")
    mark("m")
    assert llmflow.flush(timeout=WAIT)
    assert runtime.diagnostics().exporters["legacy"] == {
        "received": 1,
        "exported": 1,
        "failed": 0,
        "dropped": 0,
        "retried": 3,
    }


def test_shutdown_counts_what_a_stalled_background_exporter_still_held_as_dropped() -> None:
    runtime = Runtime()
    stalled = Stalled()
    stalled.register("stalled", runtime=runtime)
    previous = runtime.install()
    try:
        for i in range(5):
            mark(f"m{i}")
        assert stalled.entered.wait(WAIT)
        runtime.shutdown(timeout=0.05)  # returns although the exporter still blocks
    finally:
        stalled.release.set()
        if previous is not None and not previous.closed:
            previous.install()
    counts = runtime.diagnostics().exporters["stalled"]
    assert counts["received"] == 5
    assert counts["dropped"] >= 1


def test_the_exporters_package_never_imports_the_runtime() -> None:
    package = Path(llmflow.exporters.__file__).parent
    for source in package.glob("*.py"):
        tree = ast.parse(source.read_text())
        imported = {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module is not None
        } | {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        }
        assert not {"llmflow._runtime", "llmflow"} & imported, source.name


def test_aflush_awaits_background_exporters(runtime: Runtime, run_async: Any) -> None:
    stalled = Stalled()
    stalled.release.set()  # exports at once, but on its own thread
    stalled.register("background")

    async def main() -> list[str]:
        mark("m")
        await llmflow.aflush()
        return list(stalled.names)

    assert run_async(main()) == ["m"]


def test_a_registered_file_exporters_own_flush_reports_whether_it_finished(
    tmp_path: Path, runtime: Runtime
) -> None:
    release = threading.Event()
    exporter = AtofFileExporter(tmp_path / "a.jsonl", fsync=False)
    exporter.register("file")
    subscribers.register("slow", lambda event: release.wait(WAIT))
    mark("m")
    try:
        assert exporter.flush(timeout=0.05) is False  # the runtime could not deliver in time
    finally:
        release.set()
    assert exporter.flush(timeout=WAIT) is True
    assert names_in(tmp_path / "a.jsonl") == ["m"]
