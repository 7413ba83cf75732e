"""The msgspec line loop of ``llmflow stats`` (the ``fast`` extra); imported only when installed.

:func:`feed` counts exactly what :meth:`llmflow.cli.stats._Counter.feed`'s
orjson loop counts, in about two thirds of its CPU time: each line is decoded into
:class:`Line`, a struct of the fields the join and
:func:`~llmflow.atof.span_facts` read (of ``category_profile``, ``metadata``
and ``data_schema`` only the keys it reads, typed as it uses them), while the
``data`` payload (the bulk of a line), ``attributes`` and unknown keys are
only scanned. A line that does not decode into it (a field of another type),
or is not valid UTF-8 (which msgspec does not check in a scanned part), takes
the shared reader (:func:`~llmflow.atof._reader.decode_line`) as in the
orjson loop.

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
from msgspec import UNSET, UnsetType, field

from llmflow.atof import SpanFacts, span_facts
from llmflow.atof._reader import decode_line
from llmflow.atof._spans import rejected_by_guardrail
from llmflow.atof._timestamps import SECONDS, second_us
from llmflow.cli.stats import Group

if TYPE_CHECKING:
    from llmflow.cli.stats import _Counter

__all__ = ["Line", "event_of", "facts", "feed", "rejected", "span_counter"]

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


# The parts of category_profile, metadata and data_schema that span_facts reads, each
# typed as span_facts uses it; other keys are skipped unread. A missing key is UNSET
# (a JSON null is None: in the metadata merge an end's null hides the start's value).
# A value of another type fails the decode: the line takes the shared reader.
class _Usage(msgspec.Struct, gc=False):
    input_tokens: int | UnsetType | None = UNSET
    output_tokens: int | UnsetType | None = UNSET
    cached_tokens: int | UnsetType | None = UNSET
    reasoning_tokens: int | UnsetType | None = UNSET


class _Response(msgspec.Struct, gc=False):
    model: str | UnsetType | None = UNSET
    usage: _Usage | UnsetType | None = UNSET


class _Request(msgspec.Struct, gc=False):
    model: str | UnsetType | None = UNSET


class _Profile(msgspec.Struct, gc=False):
    model_name: str | UnsetType | None = UNSET
    annotated_request: _Request | UnsetType | None = UNSET
    annotated_response: _Response | UnsetType | None = UNSET
    tool_call_id: str | UnsetType | None = UNSET


class _Metadata(msgspec.Struct, gc=False):
    provider: str | UnsetType | None = field(default=UNSET, name="provider.name")
    cost: int | float | UnsetType | None = field(default=UNSET, name="cost.usd")
    error_type: str | UnsetType | None = field(default=UNSET, name="exception.type")
    error_message: str | UnsetType | None = field(default=UNSET, name="exception.message")
    status: int | UnsetType | None = field(default=UNSET, name="http.status_code")
    attempt: int | UnsetType | None = field(default=UNSET, name="http.attempt")
    retries: int | UnsetType | None = field(default=UNSET, name="retry.attempts")
    cache_hit: bool | UnsetType | None = field(default=UNSET, name="cache.hit")


class _Schema(msgspec.Struct, gc=False):
    name: str | UnsetType | None = UNSET


class Line(msgspec.Struct, gc=False):
    """The fields of one ATOF line that ``stats`` reads; ``data`` kept as raw JSON.

    A field of another type than declared (an epoch timestamp, a numeric
    category, a token count that is a string) fails the decode and sends the
    line to the shared reader. Of ``category_profile``, ``metadata`` and
    ``data_schema`` only what :func:`~llmflow.atof.span_facts` reads is kept.
    """

    kind: str
    uuid: str
    name: str
    timestamp: str
    parent_uuid: str | None = None
    scope_category: str | None = None
    category: str | None = None
    category_profile: _Profile | None = None
    metadata: _Metadata | None = None
    data_schema: _Schema | None = None
    data: msgspec.Raw = _NULL


_DECODER = msgspec.json.Decoder(Line)


def _data(line: Line) -> Any:
    try:
        return orjson.loads(memoryview(line.data))
    except orjson.JSONDecodeError:  # a number beyond the double range: see the module docstring
        return None


def _plain(part: msgspec.Struct | None) -> dict[str, Any] | None:
    """A decoded part as the dict of the keys the line set (JSON names, nested parts too)."""
    return None if part is None else msgspec.to_builtins(part)


def event_of(line: Line) -> dict[str, Any]:
    """The event dict of ``line`` (the fields :class:`Line` holds, ``data`` parsed).

    Its ``category_profile``, ``metadata`` and ``data_schema`` hold only the
    keys :func:`~llmflow.atof.span_facts` reads: it gives the same facts.
    """
    return {
        "kind": line.kind,
        "uuid": line.uuid,
        "parent_uuid": line.parent_uuid,
        "timestamp": line.timestamp,
        "name": line.name,
        "scope_category": line.scope_category,
        "category": line.category,
        "category_profile": _plain(line.category_profile),
        "data": _data(line),
        "data_schema": _plain(line.data_schema),
        "metadata": _plain(line.metadata),
    }


def _facts_event(line: Line) -> dict[str, Any]:
    return {
        "name": line.name,
        "category": line.category,
        "category_profile": _plain(line.category_profile),
        "metadata": _plain(line.metadata),
        "data_schema": _plain(line.data_schema),
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


def span_counter(counter: _Counter, category: str) -> Callable[[Line, Line, int], None] | None:
    """How ``counter`` counts an ended ``llm`` or ``tool`` span of two :class:`Line` structs.

    The returned ``count(start, end, duration_us)`` adds to the model, provider
    and name groups (``llm``) or the tool groups (``tool``) exactly what
    :meth:`~llmflow.cli.stats._Counter.count_llm` or ``count_tool`` adds for
    :func:`facts` of the pair, reading only the fields those groups sum, with
    no :class:`~llmflow.atof.SpanFacts` or event dict built
    (``tests/cli/test_stats_msgspec.py`` proves it equal). A provider that
    ``provider.name`` of the end does not give (the codec's schema, the start's
    metadata) takes ``count_llm``. ``None`` when the counter has no group for
    the category, or counts categories too (every span then needs its facts).
    """
    groups = counter.result.groups
    by_model = by_provider = by_name = None
    if category == "llm":
        by_model, by_provider = groups.get("model"), groups.get("provider")
        by_name = groups.get("name")
    elif category == "tool":
        by_name = groups.get("tool")  # keyed by the span's name, as the name group
    if "category" in groups or (by_model is None and by_provider is None and by_name is None):
        return None
    general = counter.count_llm
    low, high = _LOW, _HIGH
    unset, unrecorded = UNSET, _Metadata()

    def count(start: Line, end: Line, duration_us: int) -> None:
        end_metadata = end.metadata or unrecorded
        provider = None
        if by_provider is not None:
            provider = end_metadata.provider
            if type(provider) is not str:
                general(facts(start, end, duration_us))
                return
        # span_facts merges the two metadata dicts: a key of the end's wins.
        start_metadata = start.metadata or unrecorded
        cost = end_metadata.cost
        if cost is unset:
            cost = start_metadata.cost
        attempts = end_metadata.retries
        if attempts is unset:
            attempts = start_metadata.retries
        attempt = end_metadata.attempt
        if attempt is unset:
            attempt = start_metadata.attempt
        error = end_metadata.error_type
        if error is unset:
            error = start_metadata.error_type
        hit = end_metadata.cache_hit
        if hit is unset:
            hit = start_metadata.cache_hit
        end_profile = end.category_profile
        response = end_profile.annotated_response if end_profile is not None else None
        if response is None or response is unset:
            model = usage = None
        else:
            model, usage = response.model, response.usage
        if not model:  # _start_model
            start_profile = start.category_profile
            if start_profile is not None:
                model = start_profile.model_name
                if not model:
                    request = start_profile.annotated_request
                    model = None if request is None or request is unset else request.model
        tokens_in: int | None = None
        tokens_out: int | None = None
        cached: int | None = None
        reasoning: int | None = None
        if usage is not None and usage is not unset:
            value = usage.input_tokens
            tokens_in = value if isinstance(value, int) and low <= value <= high else None
            value = usage.output_tokens
            tokens_out = value if isinstance(value, int) and low <= value <= high else None
            value = usage.cached_tokens
            cached = value if isinstance(value, int) and low <= value <= high else None
            value = usage.reasoning_tokens
            reasoning = value if isinstance(value, int) and low <= value <= high else None
        if type(cost) is not float:
            if type(cost) is not int:
                cost = None
            elif not low <= cost <= high:  # a float to orjson (see facts())
                try:
                    cost = float(cost)
                except OverflowError:
                    cost = None
        retries = 0
        if type(attempts) is int and 1 < attempts <= high:
            retries = attempts - 1
        if type(attempt) is int and 0 < attempt <= high:
            retries += 1
        failed = type(error) is str
        hit = hit is True
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
    count_llm, count_tool = span_counter(counter, "llm"), span_counter(counter, "tool")
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
                                    # == rather than a dict: a decoded str has no hash yet
                                    counting = (
                                        count_llm
                                        if category == "llm"
                                        else count_tool
                                        if category == "tool"
                                        else None
                                    )
                                    if counting is not None:
                                        if since is None or start[0] >= since:
                                            result.spans += 1
                                            counting(event, line, second + int(micro) - start[0])
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
