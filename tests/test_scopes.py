"""Scopes and marks: the contextvars scope stack and its events (SPEC §3, §9)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmflow
from llmflow import (
    Event,
    InvalidPayloadError,
    ScopeError,
    ScopeHandle,
    current_scope,
    mark,
    pop_scope,
    push_scope,
    scope,
)
from llmflow.atof import validate_stream
from llmflow.testing import capture

RunAsync = Callable[[Coroutine[Any, Any, Any]], Any]


class PlannerError(Exception):
    """A user exception defined outside builtins."""


def shape(events: list[Event]) -> list[tuple[str, str, str | None]]:
    """``(name, phase, parent name)`` per event: the structure without ids or times."""
    names = {event.uuid: event.name for event in events if event.kind == "scope"}
    return [
        (
            event.name,
            event.scope_category or "mark",
            None if event.parent_uuid is None else names.get(event.parent_uuid, "?"),
        )
        for event in events
    ]


# -- nesting and parents ---------------------------------------------------------------


def test_top_level_scope_has_null_parent() -> None:
    with capture() as events:
        with scope("root"):
            pass
    assert [event.parent_uuid for event in events] == [None, None]


def test_nested_scopes_link_to_the_innermost_open_scope() -> None:
    with capture() as events:
        with scope("a") as a:
            with scope("b") as b:
                with scope("c"):
                    pass
            with scope("d"):
                pass
    assert shape(events) == [
        ("a", "start", None),
        ("b", "start", "a"),
        ("c", "start", "b"),
        ("c", "end", "b"),
        ("b", "end", "a"),
        ("d", "start", "a"),
        ("d", "end", "a"),
        ("a", "end", None),
    ]
    assert events[1].parent_uuid == a.uuid
    assert events[2].parent_uuid == b.uuid


def test_mark_parent_is_the_innermost_open_scope() -> None:
    with capture() as events:
        mark("outside")
        with scope("s") as handle:
            uuid = mark("inside")
    outside, _, inside, _ = events
    assert outside.parent_uuid is None
    assert inside.parent_uuid == handle.uuid
    assert inside.uuid == uuid


def test_current_scope_is_the_innermost_open_scope_or_none() -> None:
    assert current_scope() is None
    with scope("a") as a:
        assert current_scope() is a
        with scope("b") as b:
            assert current_scope() is b
        assert current_scope() is a
    assert current_scope() is None


def test_scope_handle_exposes_its_identity() -> None:
    with capture() as events:
        with scope("s", "tool", attributes=["remote"]) as handle:
            assert isinstance(handle, ScopeHandle)
            assert handle.name == "s" and handle.category == "tool"
            assert handle.attributes == ("remote",)
            assert handle.started_at.tzinfo is UTC
    assert handle.uuid == events[0].uuid
    assert handle.started_us == events[0].timestamp_us
    assert handle.ended


# -- context manager and decorator ------------------------------------------------------


def test_sync_context_manager_emits_start_on_entry_and_end_on_exit() -> None:
    with capture() as events:
        with scope("s", data={"in": 1}, metadata={"k": "v"}):
            llmflow.flush()
            assert [event.scope_category for event in events] == ["start"]
    assert [event.scope_category for event in events] == ["start", "end"]
    assert events[0].data == {"in": 1} and events[0].metadata == {"k": "v"}
    assert events[1].data is None and events[1].metadata is None


async def test_async_context_manager_emits_start_and_end() -> None:
    with capture() as events:
        async with scope("s") as handle:
            await asyncio.sleep(0)
            mark("m")
    assert shape(events) == [("s", "start", None), ("m", "mark", "s"), ("s", "end", None)]
    assert events[0].uuid == handle.uuid


def test_decorator_on_sync_function_opens_a_fresh_scope_per_call() -> None:
    @scope("work", "tool")
    def work(x: int) -> int:
        """Doubles."""
        mark("inside")
        return x * 2

    with capture() as events:
        assert work(2) == 4
        assert work(3) == 6
    assert work.__name__ == "work" and work.__doc__ == "Doubles."
    assert (
        shape(events)
        == [("work", "start", None), ("inside", "mark", "work"), ("work", "end", None)] * 2
    )
    assert events[0].uuid != events[3].uuid
    assert {event.category for event in events if event.kind == "scope"} == {"tool"}


async def test_decorator_on_async_function_keeps_the_scope_open_across_awaits() -> None:
    @scope("fetch", "retriever")
    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        mark("awaited")
        return x + 1

    assert asyncio.iscoroutinefunction(fetch)
    with capture() as events:
        assert await fetch(1) == 2
    assert shape(events) == [
        ("fetch", "start", None),
        ("awaited", "mark", "fetch"),
        ("fetch", "end", None),
    ]


def test_same_scope_object_can_be_nested() -> None:
    again = scope("again")
    with capture() as events:
        with again as outer:
            with again as inner:
                assert current_scope() is inner
            assert current_scope() is outer
    assert shape(events) == [
        ("again", "start", None),
        ("again", "start", "again"),
        ("again", "end", "again"),
        ("again", "end", None),
    ]


async def test_same_scope_object_entered_by_concurrent_tasks_closes_each_tasks_own_scope() -> None:
    step = scope("step")
    second_entered = asyncio.Event()
    first_left = asyncio.Event()

    async def first() -> str:
        async with step as handle:
            await second_entered.wait()
        first_left.set()  # leaves while the second task's scope is still open
        return handle.uuid

    async def second() -> str:
        async with step as handle:
            second_entered.set()
            await first_left.wait()
            assert current_scope() is handle
        return handle.uuid

    with capture() as events:
        first_uuid, second_uuid = await asyncio.gather(first(), second())
    assert [(event.scope_category, event.uuid) for event in events] == [
        ("start", first_uuid),
        ("start", second_uuid),
        ("end", first_uuid),
        ("end", second_uuid),
    ]
    assert validate_stream(event.to_json() for event in events) == []


def test_scope_arguments_are_validated_when_the_scope_is_built() -> None:
    with pytest.raises(TypeError, match=r"^name: "):
        scope("")
    with pytest.raises(ValueError, match=r"^category: "):
        scope("s", "planner")
    with pytest.raises(TypeError, match=r"^category_profile: "):
        scope("s", category_profile=["subtype"])  # type: ignore[arg-type]


# -- exceptions -------------------------------------------------------------------------


def test_exception_is_recorded_on_the_end_event_and_reraised_unchanged() -> None:
    error = ValueError("bad plan")
    with capture() as events:
        with pytest.raises(ValueError) as raised:
            with scope("s"):
                raise error
    assert raised.value is error
    end = events[-1]
    assert end.scope_category == "end"
    assert end.metadata == {"exception.type": "ValueError", "exception.message": "bad plan"}
    assert current_scope() is None


def test_exception_type_of_a_user_class_is_module_qualified() -> None:
    with capture() as events:
        with pytest.raises(PlannerError):
            with scope("s"):
                raise PlannerError("no route")
    assert events[-1].metadata == {
        "exception.type": f"{__name__}.PlannerError",
        "exception.message": "no route",
    }


async def test_exception_in_async_block_is_recorded_and_reraised() -> None:
    error = PlannerError("async")
    with capture() as events:
        with pytest.raises(PlannerError) as raised:
            async with scope("s"):
                await asyncio.sleep(0)
                raise error
    assert raised.value is error
    assert events[-1].metadata is not None
    assert events[-1].metadata["exception.message"] == "async"


def test_exception_in_decorated_function_is_recorded_and_reraised() -> None:
    error = KeyError("k")

    @scope("lookup")
    def lookup() -> None:
        raise error

    with capture() as events:
        with pytest.raises(KeyError) as raised:
            lookup()
    assert raised.value is error
    assert events[-1].metadata == {"exception.type": "KeyError", "exception.message": "'k'"}


async def test_cancellation_is_recorded_and_propagates() -> None:
    entered = asyncio.Event()

    @scope("slow")
    async def slow() -> None:
        entered.set()
        await asyncio.sleep(10)

    with capture() as events:
        task = asyncio.create_task(slow())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert events[-1].scope_category == "end"
    assert events[-1].metadata is not None
    assert events[-1].metadata["exception.type"] == "asyncio.exceptions.CancelledError"


def test_a_scope_error_never_masks_the_users_exception() -> None:
    error = RuntimeError("user")
    with capture() as events:
        with pytest.raises(RuntimeError) as raised:
            with scope("s") as handle:
                pop_scope(handle)  # closed by hand inside the block
                raise error
    assert raised.value is error
    assert [event.scope_category for event in events] == ["start", "end"]


# -- push / pop -------------------------------------------------------------------------


def test_push_and_pop_scope_emit_start_and_end() -> None:
    with capture() as events:
        handle = push_scope("manual", "agent", data={"goal": 1})
        assert current_scope() is handle
        pop_scope(handle, data={"result": 2}, metadata={"turns": 3})
    assert current_scope() is None
    start, end = events
    assert (start.scope_category, end.scope_category) == ("start", "end")
    assert start.data == {"goal": 1}
    assert end.data == {"result": 2} and end.metadata == {"turns": 3}
    assert handle.ended


def test_popping_a_non_innermost_scope_raises_scope_error_naming_it_and_emits_nothing() -> None:
    outer = push_scope("outer")
    inner = push_scope("inner")
    with capture() as events:
        with pytest.raises(ScopeError, match=r"cannot pop 'outer'.*innermost is 'inner'"):
            pop_scope(outer)
    assert events == []
    assert current_scope() is inner and not outer.ended
    pop_scope(inner)
    pop_scope(outer)


def test_popping_a_scope_twice_raises_scope_error_and_emits_nothing() -> None:
    handle = push_scope("once")
    pop_scope(handle)
    with capture() as events:
        with pytest.raises(ScopeError, match=r"'once'.*already ended"):
            pop_scope(handle)
    assert events == []


def test_pop_scope_rejects_a_non_handle() -> None:
    with pytest.raises(TypeError, match=r"^handle: expected a ScopeHandle"):
        pop_scope("not-a-handle")  # type: ignore[arg-type]


def test_popping_a_scope_from_another_thread_raises_scope_error() -> None:
    handle = push_scope("owned")
    errors: list[BaseException] = []

    def pop_elsewhere() -> None:
        try:
            pop_scope(handle)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=pop_elsewhere)
    thread.start()
    thread.join()
    assert len(errors) == 1 and isinstance(errors[0], ScopeError)
    assert "no open scope" in str(errors[0])
    pop_scope(handle)


# -- context propagation ----------------------------------------------------------------


async def test_child_tasks_inherit_the_scope_but_cannot_change_the_parents_stack() -> None:
    async def child() -> ScopeHandle | None:
        seen = current_scope()
        push_scope("left-open-by-child")  # never popped: must not leak into the parent
        mark("child-mark")
        return seen

    with capture() as events:
        async with scope("parent") as parent:
            seen = await asyncio.create_task(child())
            assert seen is parent
            assert current_scope() is parent
            mark("after-child")
    by_name = {event.name: event for event in events}
    assert by_name["left-open-by-child"].parent_uuid == parent.uuid
    assert by_name["child-mark"].parent_uuid == by_name["left-open-by-child"].uuid
    assert by_name["after-child"].parent_uuid == parent.uuid


async def test_gathered_tasks_each_nest_under_the_scope_that_spawned_them() -> None:
    async def worker(name: str) -> None:
        async with scope(name):
            await asyncio.sleep(0)
            mark(f"{name}-mark")

    with capture() as events:
        async with scope("fan-out"):
            await asyncio.gather(worker("w1"), worker("w2"), worker("w3"))
    parents = {name: parent for name, _, parent in shape(events)}
    assert parents["w1"] == parents["w2"] == parents["w3"] == "fan-out"
    for name in ("w1", "w2", "w3"):
        assert parents[f"{name}-mark"] == name


def test_copy_context_inherits_the_scope_and_isolates_changes() -> None:
    with capture() as events:
        with scope("outer") as outer:
            context = contextvars.copy_context()
        context.run(mark, "in-copy")
        inner = context.run(push_scope, "in-copy-scope")
        assert current_scope() is None
        context.run(pop_scope, inner)
    by_name = {event.name: event for event in events}
    assert by_name["in-copy"].parent_uuid == outer.uuid
    assert by_name["in-copy-scope"].parent_uuid == outer.uuid


def test_threads_start_outside_any_scope_unless_given_a_copied_context() -> None:
    results: dict[str, str] = {}
    with capture() as events:
        with scope("main") as main:
            plain = threading.Thread(target=lambda: results.update(plain=mark("plain")))
            context = contextvars.copy_context()
            copied = threading.Thread(
                target=lambda: results.update(copied=context.run(mark, "copied"))
            )
            plain.start()
            copied.start()
            plain.join()
            copied.join()
    by_uuid = {event.uuid: event for event in events}
    assert by_uuid[results["plain"]].parent_uuid is None
    assert by_uuid[results["copied"]].parent_uuid == main.uuid


async def concurrent_program() -> None:
    async def tool(name: str, depth: int) -> None:
        async with scope(name, "tool"):
            await asyncio.sleep(0)
            mark(f"{name}.progress")
            if depth:
                await asyncio.gather(tool(f"{name}.a", depth - 1), tool(f"{name}.b", depth - 1))
            await asyncio.sleep(0)

    @scope("agent", "agent")
    async def agent() -> None:
        mark("plan")
        await asyncio.gather(tool("t1", 1), tool("t2", 0))
        async with scope("summarize", "llm"):
            await asyncio.sleep(0)

    await agent()


EXPECTED_PARENTS = {
    ("agent", "start"): None,
    ("plan", "mark"): "agent",
    ("t1", "start"): "agent",
    ("t1.progress", "mark"): "t1",
    ("t1.a", "start"): "t1",
    ("t1.a.progress", "mark"): "t1.a",
    ("t1.a", "end"): "t1",
    ("t1.b", "start"): "t1",
    ("t1.b.progress", "mark"): "t1.b",
    ("t1.b", "end"): "t1",
    ("t1", "end"): "agent",
    ("t2", "start"): "agent",
    ("t2.progress", "mark"): "t2",
    ("t2", "end"): "agent",
    ("summarize", "start"): "agent",
    ("summarize", "end"): "agent",
    ("agent", "end"): None,
}


def test_concurrent_program_has_identical_structure_under_asyncio_and_uvloop(
    run_async: RunAsync,
) -> None:
    with capture() as events:
        run_async(concurrent_program())
    structure = {(name, phase): parent for name, phase, parent in shape(events)}
    assert structure == EXPECTED_PARENTS
    assert len(events) == len(EXPECTED_PARENTS)
    assert validate_stream(event.to_json() for event in events) == []


def test_scope_inheritance_is_identical_under_asyncio_and_uvloop(run_async: RunAsync) -> None:
    async def main() -> tuple[bool, bool]:
        with scope("outer") as outer:

            async def child() -> ScopeHandle | None:
                push_scope("child-only")
                return current_scope()

            child_top = await asyncio.create_task(child())
            return current_scope() is outer, child_top is not outer

    assert run_async(main()) == (True, True)


# -- explicit timestamps and parents ----------------------------------------------------


def test_explicit_timestamps_accept_aware_datetimes() -> None:
    start = datetime(2024, 1, 2, 3, 4, 5, 678_901, tzinfo=timezone(timedelta(hours=2)))
    with capture() as events:
        handle = push_scope("s", timestamp=start)
        mark("m", timestamp=start + timedelta(microseconds=1))
        pop_scope(handle, timestamp=start + timedelta(seconds=1))
    assert [event.timestamp for event in events] == [
        "2024-01-02T01:04:05.678901Z",
        "2024-01-02T01:04:05.678902Z",
        "2024-01-02T01:04:06.678901Z",
    ]


def test_explicit_timestamps_accept_int_epoch_microseconds() -> None:
    with capture() as events:
        handle = push_scope("s", timestamp=1_700_000_000_000_000)
        mark("m", timestamp=1_700_000_000_000_500)
        pop_scope(handle, timestamp=1_700_000_000_000_999)
    assert [event.timestamp_us for event in events] == [
        1_700_000_000_000_000,
        1_700_000_000_000_500,
        1_700_000_000_000_999,
    ]
    assert events[0].timestamp == "2023-11-14T22:13:20.000000Z"


def test_end_defaults_to_one_microsecond_after_a_future_explicit_start() -> None:
    future = 4_000_000_000_000_000  # 2096
    with capture() as events:
        handle = push_scope("s", timestamp=future)
        pop_scope(handle)
    assert events[1].timestamp_us == future + 1


@pytest.mark.parametrize("emit", ["push_scope", "mark"])
def test_naive_datetime_timestamp_is_rejected_with_a_clear_error(emit: str) -> None:
    naive = datetime(2024, 1, 1, 12, 0)
    with capture() as events:
        with pytest.raises(ValueError, match=r"^timestamp: expected a timezone-aware datetime"):
            if emit == "push_scope":
                push_scope("s", timestamp=naive)
            else:
                mark("m", timestamp=naive)
    assert events == []
    assert current_scope() is None


@pytest.mark.parametrize("value", ["2024-01-01T00:00:00Z", 1.7e15, True])
def test_string_float_and_bool_timestamps_are_rejected_with_a_clear_error(value: object) -> None:
    with capture() as events:
        with pytest.raises(
            TypeError, match=r"^timestamp: expected a timezone-aware datetime or int"
        ):
            push_scope("s", timestamp=value)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"^timestamp: "):
            mark("m", timestamp=value)  # type: ignore[arg-type]
    assert events == []


def test_naive_end_timestamp_is_rejected_and_the_scope_stays_open() -> None:
    handle = push_scope("s")
    with pytest.raises(ValueError, match=r"^timestamp: "):
        pop_scope(handle, timestamp=datetime(2024, 1, 1))
    assert current_scope() is handle
    pop_scope(handle)


def test_mark_with_explicit_parent_handle_or_uuid() -> None:
    with capture() as events:
        with scope("a") as a:
            pass
        with scope("b"):
            mark("to-handle", parent=a)
            mark("to-uuid", parent=a.uuid)
    by_name = {event.name: event for event in events}
    assert by_name["to-handle"].parent_uuid == a.uuid
    assert by_name["to-uuid"].parent_uuid == a.uuid


def test_scope_with_explicit_parent_ignores_the_current_stack() -> None:
    with capture() as events:
        root = push_scope("root")
        pop_scope(root)
        with scope("elsewhere"):
            with scope("adopted", parent=root) as adopted:
                mark("in-adopted")
    by_name = {event.name: event for event in events}
    assert by_name["adopted"].parent_uuid == root.uuid
    assert by_name["in-adopted"].parent_uuid == adopted.uuid


@pytest.mark.parametrize("parent", [42, "not-a-uuid", object()])
def test_invalid_parent_is_rejected_naming_parent(parent: object) -> None:
    with pytest.raises(TypeError, match=r"^parent: "):
        mark("m", parent=parent)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^parent: "):
        push_scope("s", parent=parent)  # type: ignore[arg-type]
    assert current_scope() is None


# -- bad payloads -----------------------------------------------------------------------


class Opaque:
    pass


NON_JSON = [{1, 2}, Opaque(), {"nested": {3: "int key"}}, [b"bytes"], 2**70]


@pytest.mark.parametrize("data", NON_JSON, ids=["set", "object", "int-key", "bytes", "bigint"])
def test_non_json_data_raises_invalid_payload_error_naming_data_and_emits_nothing(
    data: object,
) -> None:
    with capture() as events:
        with pytest.raises(InvalidPayloadError, match=r"^data: expected a JSON-serializable value"):
            mark("m", data=data)
        with pytest.raises(InvalidPayloadError, match=r"^data: "):
            push_scope("s", data=data)
        assert current_scope() is None
        handle = push_scope("s")
        with pytest.raises(InvalidPayloadError, match=r"^data: "):
            pop_scope(handle, data=data)
        assert current_scope() is handle
    assert [event.scope_category for event in events] == ["start"]
    pop_scope(handle)


def test_invalid_payload_error_is_a_flow_error_and_a_type_error() -> None:
    with pytest.raises(llmflow.FlowError):
        mark("m", data={1, 2})
    with pytest.raises(TypeError):
        mark("m", data={1, 2})


@pytest.mark.parametrize(
    "metadata",
    [{1: "int key"}, {"": "empty key"}, ["not", "a", "dict"], "text", {"k": {1, 2}}],
)
def test_invalid_metadata_raises_invalid_payload_error_naming_metadata_and_emits_nothing(
    metadata: object,
) -> None:
    with capture() as events:
        with pytest.raises(InvalidPayloadError, match=r"^metadata: "):
            mark("m", metadata=metadata)  # type: ignore[arg-type]
        with pytest.raises(InvalidPayloadError, match=r"^metadata: "):
            push_scope("s", metadata=metadata)  # type: ignore[arg-type]
    assert events == []
    assert current_scope() is None


@pytest.mark.parametrize("name", ["", None, 3])
def test_invalid_name_is_rejected_naming_name(name: object) -> None:
    with pytest.raises(TypeError, match=r"^name: expected a non-empty str"):
        mark(name)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^name: expected a non-empty str"):
        push_scope(name)  # type: ignore[arg-type]


def test_earlier_events_survive_a_later_bad_call() -> None:
    with capture() as events:
        mark("good")
        with pytest.raises(InvalidPayloadError):
            mark("bad", data=Opaque())
        mark("good-again")
    assert [event.name for event in events] == ["good", "good-again"]


def test_mark_data_is_snapshotted_at_the_call() -> None:
    data = {"items": [1]}
    with capture() as events:
        mark("m", data=data)
        data["items"].append(2)
    assert events[0].data == {"items": [1]}


# -- property: random programs always yield a valid, paired stream -----------------------


@dataclass
class Node:
    """One operation of a generated program: a mark, or a scope with children."""

    name: str
    form: str  # "mark" | "with" | "async-with" | "push-pop" | "decorator"
    concurrent: bool = False
    fails: bool = False
    children: list[Node] = field(default_factory=list)


class Planned(Exception):
    """Raised by generated scopes that fail on purpose."""


names = st.text(alphabet="abcdefgh", min_size=1, max_size=4)
marks = st.builds(Node, name=names, form=st.just("mark"))
programs = st.recursive(
    marks,
    lambda children: st.builds(
        Node,
        name=names,
        form=st.sampled_from(["with", "async-with", "push-pop", "decorator"]),
        concurrent=st.booleans(),
        fails=st.booleans(),
        children=st.lists(children, max_size=4),
    ),
    max_leaves=20,
)


async def run_node(node: Node) -> None:
    if node.form == "mark":
        mark(node.name, data={"form": node.form})
        await asyncio.sleep(0)
        return

    async def body() -> None:
        if node.concurrent:
            await asyncio.gather(
                *(run_node(child) for child in node.children), return_exceptions=True
            )
        else:
            for child in node.children:
                with contextlib.suppress(Planned):
                    await run_node(child)
        if node.fails:
            raise Planned(node.name)

    if node.form == "with":
        with scope(node.name):
            await body()
    elif node.form == "async-with":
        async with scope(node.name, "agent", attributes=["parallel"] if node.concurrent else ()):
            await body()
    elif node.form == "decorator":
        await scope(node.name, "tool")(body)()
    else:
        handle = push_scope(node.name, "custom", category_profile={"subtype": "test.push"})
        try:
            await body()
        finally:
            pop_scope(handle)


def count_scopes(node: Node) -> int:
    return (node.form != "mark") + sum(count_scopes(child) for child in node.children)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs)
def test_random_programs_yield_a_valid_stream_where_every_start_has_exactly_one_end(
    program: Node,
) -> None:
    async def main() -> None:
        with contextlib.suppress(Planned):
            await run_node(program)

    with capture() as events:
        asyncio.run(main())
    lines = [event.to_json() for event in events]
    assert validate_stream(lines) == []
    starts = [event.uuid for event in events if event.scope_category == "start"]
    ends = [event.uuid for event in events if event.scope_category == "end"]
    assert sorted(starts) == sorted(ends)
    assert len(set(starts)) == len(starts) == count_scopes(program)
    assert current_scope() is None
