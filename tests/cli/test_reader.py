"""The streaming reader (SPEC §13): plain, gzip and stdin, bad lines reported, constant memory."""

from __future__ import annotations

import gzip
import tracemalloc
import warnings
from pathlib import Path

import orjson
import pytest
from cli_logs import LogBuilder, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

import llmflow
from llmflow._clock import format_rfc3339, parse_timestamp
from llmflow.atof import AtofReadWarning, ReadProblem, iter_records, read
from llmflow.atof._timestamps import timestamp_us


def sample_log(spans: int = 3, *, epoch: bool = False) -> LogBuilder:
    log = LogBuilder(epoch=epoch)
    root = log.span("agent", "agent", 0, 10_000 * spans + 10)
    for i in range(spans):
        log.span(
            "openai.chat",
            "llm",
            10_000 * i + 1,
            10_000 * i + 900,
            parent=root,
            model="m",
            usage={"input_tokens": 10, "output_tokens": 5},
        )
    return log


def test_read_yields_llmflow_events_whose_to_dict_is_each_line(demo_log: Path) -> None:
    events = list(read(demo_log))
    lines = demo_log.read_bytes().splitlines()
    assert all(isinstance(event, llmflow.Event) for event in events)
    assert [event.to_dict() for event in events] == [orjson.loads(line) for line in lines]


def test_read_recognises_gzip_by_content_with_or_without_suffix(
    demo_log: Path, tmp_path: Path
) -> None:
    plain = [event.to_dict() for event in read(demo_log)]
    for name in ("log.jsonl.gz", "log-without-suffix"):
        target = tmp_path / name
        target.write_bytes(gzip.compress(demo_log.read_bytes()))
        assert [event.to_dict() for event in read(target)] == plain


def test_a_cut_off_last_line_is_reported_with_its_number_and_the_rest_is_kept(
    tmp_path: Path,
) -> None:
    lines = sample_log().lines()
    path = tmp_path / "crashed.jsonl"
    path.write_bytes(b"".join(lines[:-1]) + lines[-1][:40])  # killed mid-line
    problems: list[ReadProblem] = []
    records = list(iter_records(path, problems.append))
    assert len(records) == len(lines) - 1
    assert [(p.line, p.cut_off) for p in problems] == [(len(lines), True)]
    assert "cut-off last line" in problems[0].message
    assert str(problems[0]).startswith(f"{path}:{len(lines)}: ")


def test_malformed_lines_are_reported_each_with_its_number_and_reading_goes_on(
    tmp_path: Path,
) -> None:
    good = sample_log(1).lines()
    bad = [
        b"{not json\n",
        b"[1, 2]\n",
        b'{"kind": "scope", "name": "x"}\n',
        b'{"kind": "mark", "uuid": "u", "name": "m", "timestamp": "yesterday"}\n',
        b'{"kind": "scope", "uuid": "u", "name": "s", "scope_category": "middle",'
        b' "timestamp": 1}\n',
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(good[0] + b"".join(bad) + b"\n" + b"".join(good[1:]))
    problems: list[ReadProblem] = []
    records = list(iter_records(path, problems.append))
    assert len(records) == len(good)
    assert [p.line for p in problems] == [2, 3, 4, 5, 6]  # the blank line 7 is no problem
    assert not any(p.cut_off for p in problems)
    messages = [p.message for p in problems]
    assert messages[0].startswith("not valid JSON")
    assert messages[1] == "expected a JSON object, got list"
    assert messages[2] == "uuid: expected a string"
    assert messages[3].startswith("timestamp: ")
    assert messages[4].startswith("scope_category: ")


def test_read_without_a_handler_warns_once_per_skipped_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"".join(sample_log(1).lines()) + b"oops\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        events = list(read(path))
    assert len(events) == 4
    assert [w.category for w in caught] == [AtofReadWarning]
    assert f"{path}:5:" in str(caught[0].message)


def test_read_raises_oserror_for_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        next(read(tmp_path / "absent.jsonl"))


def test_stdin_is_read_plain_and_gzipped(demo_log: Path) -> None:
    for payload in (demo_log.read_bytes(), gzip.compress(demo_log.read_bytes())):
        result = run_cli("stats", "--json", "-", input=payload)
        assert result.returncode == 0, result.stderr
        assert orjson.loads(result.stdout)["spans"] == 17


def test_epoch_and_rfc3339_timestamps_mix_in_one_stream(tmp_path: Path) -> None:
    rfc, epoch = sample_log(2), sample_log(2, epoch=True)
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"".join(rfc.lines()[:3] + epoch.lines()[3:]))
    kinds = [type(orjson.loads(line)["timestamp"]) for line in path.read_bytes().splitlines()]
    assert str in kinds and int in kinds
    expected = [parse_timestamp(orjson.loads(line)["timestamp"]) for line in rfc.lines()]
    assert [record[1] for record in iter_records(path)] == expected


@given(st.integers(min_value=0, max_value=4_102_444_800_000_000))
def test_the_cached_timestamp_parser_agrees_with_parse_timestamp(us: int) -> None:
    text = format_rfc3339(us)
    assert timestamp_us(text) == parse_timestamp(text) == us
    assert timestamp_us(text.replace("Z", "+00:00")) == us  # the slow path


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["good", "junk", "blank", "array"]), max_size=30), st.booleans())
def test_every_good_line_is_read_and_every_bad_line_reported_by_number(
    kinds: list[str], cut_last: bool
) -> None:
    log = sample_log(1)
    good = log.lines()[0]
    lines = [{"good": good, "junk": b"{junk\n", "blank": b"\n", "array": b"[]\n"}[k] for k in kinds]
    if cut_last and lines and kinds[-1] == "good":
        lines[-1] = lines[-1][:-10]
        kinds[-1] = "cut"
    problems: list[ReadProblem] = []
    records = list(iter_records(lines, problems.append))
    assert [r[0] for r in records] == [i + 1 for i, k in enumerate(kinds) if k == "good"]
    assert [p.line for p in problems] == [
        i + 1 for i, k in enumerate(kinds) if k in ("junk", "array", "cut")
    ]
    assert [p.cut_off for p in problems] == [
        k == "cut" for k in kinds if k in ("junk", "array", "cut")
    ]


def _peak_while_reading(path: Path) -> int:
    tracemalloc.start()
    try:
        for _ in iter_records(path):
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_reading_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    small, large = tmp_path / "small.jsonl", tmp_path / "large.jsonl"
    sample_log(200).write(small)
    sample_log(4000).write(large)  # 20x the lines
    timestamp_us(format_rfc3339(0))  # warm caches outside the measurement
    peak_small, peak_large = _peak_while_reading(small), _peak_while_reading(large)
    assert peak_large < 2 * peak_small + 256 * 1024, (peak_small, peak_large)
