"""The msgspec line loop of ``llmflow stats`` (the ``fast`` extra); imported only when installed.

:func:`feed` counts exactly what :meth:`llmflow.cli.stats._Counter.feed`'s
orjson loop counts, in about two thirds of its CPU time: each line is decoded
into :class:`Line`, a struct of the fields the join and
:func:`~llmflow.atof.span_facts` read, while the ``data`` payload (the bulk of
a line), ``attributes`` and unknown fields are only scanned. A line that does
not decode into it, or is not valid UTF-8 (which msgspec does not check in a
scanned part), takes the shared reader
(:func:`~llmflow.atof._reader.decode_line`) as in the orjson loop.

Where msgspec and orjson read a valid line differently, this module reads it
as orjson: an integer outside int64/uint64 is a float to orjson
(:func:`facts`), a guardrail's ``data`` is parsed with orjson. The one case it
cannot see (``docs/decisions.md``): orjson rejects a whole line for a number
beyond the double range (``1e400``, an integer of 310 digits), which msgspec
does not range-check in a scanned part or an integer, so such a line counts here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from zlib import crc32

import msgspec
import orjson

from llmflow.atof import SpanFacts, span_facts
from llmflow.atof._facts import _start_model
from llmflow.atof._reader import decode_line
from llmflow.atof._spans import rejected_by_guardrail
from llmflow.atof._timestamps import SECONDS, second_us
from llmflow.cli.stats import Group

if TYPE_CHECKING:
    from llmflow.cli.stats import _Counter

__all__ = ["Line", "event_of", "facts", "feed", "llm_counter", "rejected"]

_NULL = msgspec.Raw(b"null")
_LOW, _HIGH = -(2**63), 2**64 - 1
"""The integers orjson reads as ``int``; any other is a float to it."""
_INT_FACTS = (  # with cost_usd, SpanFacts[7:13] and SpanFacts[15:]
    "status_code",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "attempt",
    "retry_attempts",
)


class Line(msgspec.Struct, gc=False):
    """The fields of one ATOF line that ``stats`` reads; ``data`` kept as raw JSON.

    A field of another type than declared (an epoch timestamp, a numeric
    category) fails the decode and sends the line to the shared reader.
    """

    kind: str
    uuid: str
    name: str
    timestamp: str
    parent_uuid: str | None = None
    scope_category: str | None = None
    category: str | None = None
    category_profile: Any = None
    metadata: Any = None
    data_schema: Any = None
    data: msgspec.Raw = _NULL


_DECODER = msgspec.json.Decoder(Line)


def _data(line: Line) -> Any:
    try:
        return orjson.loads(memoryview(line.data))
    except orjson.JSONDecodeError:  # a number beyond the double range: see the module docstring
        return None


def event_of(line: Line) -> dict[str, Any]:
    """The event dict of ``line`` (the fields :class:`Line` holds, ``data`` parsed)."""
    return {
        "kind": line.kind,
        "uuid": line.uuid,
        "parent_uuid": line.parent_uuid,
        "timestamp": line.timestamp,
        "name": line.name,
        "scope_category": line.scope_category,
        "category": line.category,
        "category_profile": line.category_profile,
        "data": _data(line),
        "data_schema": line.data_schema,
        "metadata": line.metadata,
    }


def _facts_event(line: Line) -> dict[str, Any]:
    return {
        "name": line.name,
        "category": line.category,
        "category_profile": line.category_profile,
        "metadata": line.metadata,
        "data_schema": line.data_schema,
        "timestamp": line.timestamp,
    }


def facts(start: Any, end: Any, duration_us: int) -> SpanFacts:
    """:func:`~llmflow.atof.span_facts` of events that are dicts or :class:`Line` structs.

    An integer fact outside int64/uint64 is what orjson makes of it: a float
    (so no token count, status or attempt; a cost).
    """
    if type(start) is Line:
        start = _facts_event(start)
    if type(end) is Line:
        end = _facts_event(end)
    result = span_facts(start, end, duration_us=duration_us)
    # The integer facts: status_code to reasoning_tokens, cost_usd, attempt, retry_attempts.
    numbers = [*filter(None, result[7:13]), *filter(None, result[15:])]
    if not numbers or (max(numbers) <= _HIGH and min(numbers) >= _LOW):
        return result
    changes: dict[str, Any] = {}
    for name in _INT_FACTS:
        value = getattr(result, name)
        if value is not None and not _LOW <= value <= _HIGH:
            changes[name] = None
    cost = result.cost_usd
    if type(cost) is int and not _LOW <= cost <= _HIGH:
        try:
            changes["cost_usd"] = float(cost)
        except OverflowError:  # orjson rejects the line: see the module docstring
            changes["cost_usd"] = None
    return result._replace(**changes)


def rejected(end: Any) -> bool:
    """:func:`~llmflow.atof._spans.rejected_by_guardrail` of a dict or a :class:`Line`."""
    if type(end) is Line:
        end = {"data": _data(end)}
    return rejected_by_guardrail(end)


def llm_counter(counter: _Counter) -> Callable[[Line, Line, int], None] | None:
    """How ``counter`` counts an ended LLM call of two :class:`Line` structs, or ``None``.

    The returned ``count(start, end, duration_us)`` adds to the model, provider
    and name groups exactly what :meth:`~llmflow.cli.stats._Counter.count_llm`
    adds for :func:`facts` of the pair, reading only the fields those groups
    sum, with no :class:`~llmflow.atof.SpanFacts` or event dict built
    (``tests/cli/test_stats_msgspec.py`` proves it equal). A provider that
    ``provider.name`` of the end does not give (the codec's schema, the start's
    metadata) takes ``count_llm``. ``None`` when the counter has no LLM group,
    or counts categories too (every span then needs its facts anyway).
    """
    groups = counter.result.groups
    by_model, by_provider, by_name = groups.get("model"), groups.get("provider"), groups.get("name")
    if "category" in groups or (by_model is None and by_provider is None and by_name is None):
        return None
    general = counter.count_llm
    low, high = _LOW, _HIGH
    empty: dict[str, Any] = {}

    def count(start: Line, end: Line, duration_us: int) -> None:
        end_metadata = end.metadata
        if type(end_metadata) is not dict:
            end_metadata = empty
        provider = None
        if by_provider is not None:
            provider = end_metadata.get("provider.name")
            if type(provider) is not str:
                general(facts(start, end, duration_us))
                return
        start_metadata = start.metadata
        if type(start_metadata) is dict and start_metadata:
            metadata = {**start_metadata, **end_metadata}
        else:
            metadata = end_metadata
        end_profile = end.category_profile
        response = end_profile.get("annotated_response") if type(end_profile) is dict else None
        if type(response) is not dict:
            response = empty
        model = response.get("model")
        if not model:
            start_profile = start.category_profile
            model = _start_model(start_profile if type(start_profile) is dict else empty)
        usage = response.get("usage")
        if type(usage) is dict:
            tokens_in = usage.get("input_tokens")
            if type(tokens_in) is not int or not low <= tokens_in <= high:
                tokens_in = None
            tokens_out = usage.get("output_tokens")
            if type(tokens_out) is not int or not low <= tokens_out <= high:
                tokens_out = None
            cached = usage.get("cached_tokens")
            if type(cached) is not int or not low <= cached <= high:
                cached = None
            reasoning = usage.get("reasoning_tokens")
            if type(reasoning) is not int or not low <= reasoning <= high:
                reasoning = None
        else:
            tokens_in = tokens_out = cached = reasoning = None
        get = metadata.get
        cost = get("cost.usd")
        if type(cost) is not float:
            if type(cost) is not int:
                cost = None
            elif not low <= cost <= high:  # a float to orjson (see facts())
                try:
                    cost = float(cost)
                except OverflowError:
                    cost = None
        retries = 0
        attempts = get("retry.attempts")
        if type(attempts) is int and 1 < attempts <= high:
            retries = attempts - 1
        attempt = get("http.attempt")
        if type(attempt) is int and 0 < attempt <= high:
            retries += 1
        failed = type(get("exception.type")) is str
        hit = get("cache.hit") is True
        # Group.add_call with its arguments spelled out: a tuple and *values cost more.
        if by_model is not None:
            key = model if type(model) is str and model else "(unknown)"
            (by_model.get(key) or _new(by_model, key)).add_call(
                duration_us, failed, tokens_in, tokens_out, cached, reasoning, cost, hit, retries
            )
        if by_provider is not None:
            key = provider or "(unknown)"
            (by_provider.get(key) or _new(by_provider, key)).add_call(
                duration_us, failed, tokens_in, tokens_out, cached, reasoning, cost, hit, retries
            )
        if by_name is not None:
            key = start.name
            (by_name.get(key) or _new(by_name, key)).add_call(
                duration_us, failed, tokens_in, tokens_out, cached, reasoning, cost, hit, retries
            )

    return count


def _new(groups: dict[str, Group], key: str) -> Group:
    group = groups[key] = Group(key)
    return group


def feed(counter: _Counter, lines: Iterable[bytes], number: int) -> int:
    """:meth:`~llmflow.cli.stats._Counter.feed` with msgspec: same counts, same problems."""
    # msgspec raises RecursionError on nesting deeper than its limit (orjson's is higher).
    decode, undecodable = _DECODER.decode, (msgspec.DecodeError, RecursionError)
    seconds, second_of = SECONDS, second_us
    opened = counter.open
    started = counter.started
    pop, ended, add = opened.pop, counter.ended, counter.add
    result, report, source = counter.result, counter.report, counter.source
    # The span of a start in no counted category only adds to the span count (as in ended()).
    counted, since = counter.counted_categories, counter.since_us
    count_llm = llm_counter(counter)
    blank_start = blank_end = -1
    last_head, last_second = "", None
    for raw in lines:
        number += 1
        try:
            line = decode(raw)
        except undecodable:
            if not raw.strip():
                if blank_end == number - 1:
                    blank_end = number
                else:
                    blank_start = blank_end = number
                continue
        else:
            stamp = line.timestamp
            if (
                len(stamp) == 27
                and stamp[19] == "."
                and stamp[26] == "Z"
                and stamp.isascii()
                and (raw.isascii() or _utf8(raw))
            ):
                head = stamp[:19]
                if head != last_head:  # a log crosses a second every few lines
                    last_head = head
                    last_second = seconds.get(head)
                    if last_second is None:
                        last_second = second_of(head)
                second = last_second
                micro = stamp[20:26]
                if second is not None and micro.isdigit():
                    kind = line.kind
                    if kind == "scope":
                        phase = line.scope_category
                        uuid = line.uuid
                        if phase == "end":
                            start = pop(uuid, None)
                            if start is not None:
                                event = start[2]
                                if counted is not None and type(event) is Line:
                                    category = event.category
                                    if category == "llm" and count_llm is not None:
                                        if since is None or start[0] >= since:
                                            result.spans += 1
                                            count_llm(event, line, second + int(micro) - start[0])
                                        continue
                                    if category not in counted:
                                        if since is None or start[0] >= since:
                                            result.spans += 1
                                        continue
                                ended(event, line, start[0], second + int(micro))
                                continue
                        elif phase == "start" and uuid not in opened:
                            opened[uuid] = (second + int(micro), number, line)
                            if started is not None:
                                started.append(crc32(uuid.encode()))
                            continue
                    elif kind == "mark":
                        result.marks += 1
                        continue
        record = decode_line(raw, number, source, report)
        if record is not None:
            add(record)
    counter.blank_tail = number - blank_start + 1 if blank_end == number else 0
    return number


def _utf8(raw: bytes) -> bool:
    """Whether a non-ASCII line is valid UTF-8 (orjson rejects it otherwise; msgspec may not)."""
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True
