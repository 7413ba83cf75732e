"""``HttpExporter``: gzip batches, retries, an ordered disk spool, counted drops (SPEC §12)."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmflow
from _collector import Collector
from llmflow import Event, mark, scope
from llmflow.exporters import AtofFileExporter, HttpExporter
from llmflow.exporters.http import _Outcome
from llmflow.testing import capture

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture
def collector() -> Iterator[Collector]:
    receiver = Collector().start()
    try:
        yield receiver
    finally:
        receiver.stop()


def make_events(count: int, prefix: str = "e") -> list[Event]:
    with capture() as events:
        with scope(f"{prefix}-span"):
            for index in range(count - 2):
                mark(f"{prefix}{index}", data={"index": index})
    assert len(events) == count
    return events


def keys(events: list[Event]) -> list[tuple[str, str | None]]:
    return [(event.uuid, event.scope_category) for event in events]


def quick(url: str, **options: object) -> HttpExporter:
    defaults: dict[str, object] = {"backoff": 0.02, "max_backoff": 0.1, "timeout": 5.0}
    return HttpExporter(url, **{**defaults, **options})  # type: ignore[arg-type]


def spool_files(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.endswith(".ndjson.gz"))


# -- the wire ------------------------------------------------------------------------


def test_batches_are_gzip_ndjson_posts_whose_lines_are_the_atof_lines(
    collector: Collector,
) -> None:
    events = make_events(25)
    exporter = quick(collector.url, headers={"Authorization": "Bearer t"}, batch_size=10)
    assert exporter.export(events).name == "SUCCESS"
    assert collector.received == [event.to_dict() for event in events]
    assert collector.batches == [10, 10, 5]
    request = collector.requests[0]
    assert request["content-encoding"] == "gzip"
    assert request["content-type"] == "application/x-ndjson"
    assert request["authorization"] == "Bearer t"
    assert request["x-llmflow-events"] == "10"
    assert exporter.stats() == {
        "delivered": 25,
        "resent": 0,
        "spooled": 0,
        "retried": 0,
        "lost": 0,
        "rejected": 0,
        "corrupt": 0,
        "pending": 0,
    }
    exporter.shutdown()


def test_uuid_and_scope_category_identify_every_line_for_deduplication(
    collector: Collector,
) -> None:
    events = make_events(40)
    exporter = quick(collector.url)
    exporter.export(events)
    received = collector.uuids()
    assert len(set(received)) == len(received) == 40  # start and end share a uuid, not a key
    exporter.shutdown()


# -- retries ---------------------------------------------------------------------------


def test_5xx_answers_are_retried_with_backoff_until_delivered(collector: Collector) -> None:
    collector.script.extend([(500, {}), (503, {})])
    events = make_events(5)
    exporter = quick(collector.url, max_attempts=3)
    assert exporter.export(events).name == "SUCCESS"
    assert keys(events) == collector.uuids()
    assert exporter.stats()["retried"] == 2
    assert exporter.stats()["spooled"] == 0
    exporter.shutdown()


def test_429_retry_after_is_waited_for_before_the_next_request(collector: Collector) -> None:
    collector.script.append((429, {"Retry-After": "1"}))
    events = make_events(4)
    exporter = quick(collector.url, max_attempts=2)
    started = time.monotonic()
    exporter.export(events)
    assert time.monotonic() - started >= 0.95
    assert collector.uuids() == keys(events)
    assert exporter.stats()["retried"] == 1
    exporter.shutdown()


def test_a_long_retry_after_spools_and_no_request_is_made_before_it_is_over(
    collector: Collector, tmp_path: Path
) -> None:
    collector.script.append((429, {"Retry-After": "3"}))
    exporter = quick(collector.url, spool_dir=tmp_path, max_attempts=5)
    first, second = make_events(3, "a"), make_events(3, "b")
    exporter.export(first)
    exporter.export(second)  # the receiver is still throttling: straight to the spool
    assert len(collector.requests) == 1
    assert exporter.stats()["spooled"] == 6
    assert exporter.flush(timeout=0.5) is False  # the wait outlasts the timeout: no request
    assert len(collector.requests) == 1
    assert exporter.flush(timeout=10.0) is True
    assert collector.uuids() == keys(first) + keys(second)
    exporter.shutdown()


def test_max_retry_after_caps_a_huge_retry_after(collector: Collector) -> None:
    collector.script.append((503, {"Retry-After": "86400"}))
    exporter = quick(collector.url, max_retry_after=0.3)
    exporter.export(make_events(3))
    started = time.monotonic()
    assert exporter.flush(timeout=5.0) is True
    assert time.monotonic() - started < 3.0
    exporter.shutdown()


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_a_4xx_that_never_succeeds_is_dropped_and_counted_not_retried(
    collector: Collector, tmp_path: Path, status: int
) -> None:
    collector.script.append((status, {}))
    exporter = quick(collector.url, spool_dir=tmp_path, max_attempts=5)
    rejected, later = make_events(6, "a"), make_events(3, "b")
    assert exporter.export(rejected).name == "FAILURE"
    assert exporter.export(later).name == "SUCCESS"
    assert collector.uuids() == keys(later)
    stats = exporter.stats()
    assert (stats["lost"], stats["retried"], stats["spooled"]) == (6, 0, 0)
    assert spool_files(tmp_path) == []
    exporter.shutdown()


# -- the spool -------------------------------------------------------------------------


def test_while_the_receiver_is_down_batches_are_spooled_and_resent_in_order(
    tmp_path: Path,
) -> None:
    receiver = Collector().reserve_port()
    exporter = quick(receiver.url, spool_dir=tmp_path, batch_size=7, max_attempts=2)
    batches = [make_events(10, f"b{n}") for n in range(4)]
    for batch in batches:
        assert exporter.export(batch).name == "SUCCESS"  # accepted: durably spooled
    assert exporter.flush(timeout=0.2) is False
    stats = exporter.stats()
    assert stats["spooled"] == stats["pending"] == 40
    assert len(spool_files(tmp_path)) == 8  # one file per batch of at most 7
    receiver.start()
    try:
        later = make_events(5, "later")
        exporter.export(later)  # the spool goes first
        assert exporter.flush(timeout=10.0) is True
        expected = [key for batch in batches for key in keys(batch)] + keys(later)
        assert receiver.uuids() == expected
        stats = exporter.stats()
        assert stats["delivered"] == 45 and stats["pending"] == 0
        assert stats["resent"] in (40, 45)  # "later" too, if the backoff was not over yet
        assert stats["delivered"] + stats["lost"] + stats["pending"] == 45
        assert spool_files(tmp_path) == []
    finally:
        exporter.shutdown()
        receiver.stop()


def test_a_receiver_that_goes_down_and_comes_back_gets_every_event_in_order(
    tmp_path: Path,
) -> None:
    receiver = Collector().start()
    exporter = quick(receiver.url, spool_dir=tmp_path, max_attempts=2)
    sent: list[tuple[str, str | None]] = []
    try:
        for round_ in range(3):
            up, down = make_events(4, f"up{round_}"), make_events(4, f"down{round_}")
            exporter.export(up)
            receiver.stop()
            exporter.export(down)
            receiver.start()
            receiver.script.append((500, {}))
            sent += keys(up) + keys(down)
        assert exporter.flush(timeout=10.0) is True
        assert receiver.uuids() == sent
        stats = exporter.stats()
        assert stats["delivered"] == len(sent) and stats["lost"] == 0
    finally:
        exporter.shutdown()
        receiver.stop()


def test_a_new_exporter_on_the_same_spool_dir_sends_the_old_spool_first(
    tmp_path: Path,
) -> None:
    receiver = Collector().reserve_port()
    before = quick(receiver.url, spool_dir=tmp_path, max_attempts=1)
    old = make_events(12, "old")
    before.export(old)
    before.shutdown(timeout=0.1)  # the application stops; the spool stays on disk
    assert len(spool_files(tmp_path)) == 1
    receiver.start()
    after = quick(receiver.url, spool_dir=tmp_path)
    try:
        new = make_events(3, "new")
        after.export(new)
        assert receiver.uuids() == keys(old) + keys(new)
        assert after.stats()["resent"] == 12
    finally:
        after.shutdown()
        receiver.stop()


def test_a_process_killed_with_sigkill_leaves_a_spool_the_next_start_resends(
    tmp_path: Path,
) -> None:
    receiver = Collector().reserve_port()
    spool = tmp_path / "spool"
    script = textwrap.dedent(
        f"""
        import sys, time
        import llmflow
        from llmflow.exporters import HttpExporter
        from llmflow.testing import capture
        exporter = HttpExporter({receiver.url!r}, spool_dir={str(spool)!r}, batch_size=50,
                                backoff=0.01, max_backoff=0.02)
        index = 0
        while True:
            with capture() as events:
                for _ in range(50):
                    llmflow.mark("m", data={{"index": index}})
                    index += 1
            exporter.export(events)
            if index == 500:
                print("ready", flush=True)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    complete = spool_files(spool)
    in_complete_files = sum(int(name.split("-")[1].split(".")[0]) for name in complete)
    assert in_complete_files >= 500
    receiver.start()
    exporter = quick(receiver.url, spool_dir=spool)
    try:
        assert exporter.flush(timeout=30.0) is True
        indexes = [line["data"]["index"] for line in receiver.received]
        assert indexes == list(range(len(indexes)))  # in order, nothing missing, no duplicate
        assert len(indexes) >= in_complete_files
        assert os.listdir(spool) == []
    finally:
        exporter.shutdown()
        receiver.stop()


def test_a_full_spool_drops_the_newest_batches_and_counts_them(tmp_path: Path) -> None:
    receiver = Collector().reserve_port()
    level = HttpExporter("http://127.0.0.1:9/").compresslevel
    one_batch = len(gzip.compress(b"".join(e.json_line() for e in make_events(10)), level, mtime=0))
    exporter = quick(
        receiver.url, spool_dir=tmp_path, max_attempts=1, max_spool_bytes=int(one_batch * 3.5)
    )
    batches = [make_events(10, f"b{n}") for n in range(6)]
    results = [exporter.export(batch).name for batch in batches]
    assert results[:3] == ["SUCCESS"] * 3 and "FAILURE" in results[3:]
    stats = exporter.stats()
    assert stats["spooled"] + stats["lost"] == 60 and stats["lost"] >= 20
    receiver.start()
    try:
        assert exporter.flush(timeout=10.0) is True
        kept = [key for batch in batches for key in keys(batch)][: stats["spooled"]]
        assert receiver.uuids() == kept
        stats = exporter.stats()
        assert stats["delivered"] + stats["lost"] == 60
    finally:
        exporter.shutdown()
        receiver.stop()


def test_a_corrupt_spool_file_keeps_its_whole_records_and_counts_the_broken_ones(
    tmp_path: Path,
) -> None:
    receiver = Collector().reserve_port()
    writer = quick(receiver.url, spool_dir=tmp_path, max_attempts=1)
    first, second, third = make_events(10, "a"), make_events(10, "b"), make_events(10, "c")
    for batch in (first, second, third):
        writer.export(batch)
    writer.shutdown(timeout=0.1)
    names = spool_files(tmp_path)
    # a crash cut the second file inside its gzip stream; the third is garbage
    cut = tmp_path / names[1]
    raw = gzip.decompress(cut.read_bytes())
    cut.write_bytes(gzip.compress(raw)[: len(gzip.compress(raw)) * 2 // 3])
    (tmp_path / names[2]).write_bytes(b"\x00garbage\xff" * 40)
    receiver.start()
    exporter = quick(receiver.url, spool_dir=tmp_path)
    try:
        later = make_events(3, "later")
        exporter.export(later)
        received = receiver.uuids()
        salvaged = received[10:-3]
        assert received[:10] == keys(first)
        assert salvaged == keys(second)[: len(salvaged)]
        assert received[-3:] == keys(later)
        stats = exporter.stats()
        assert stats["corrupt"] == 20 - len(salvaged) and stats["corrupt"] >= 10
        assert stats["lost"] == stats["corrupt"]
        assert stats["delivered"] + stats["corrupt"] == 33
    finally:
        exporter.shutdown()
        receiver.stop()


def test_a_torn_temporary_file_from_a_crash_is_salvaged_in_order(tmp_path: Path) -> None:
    receiver = Collector().reserve_port()
    events = make_events(6)
    body = b"".join(event.json_line() for event in events)
    (tmp_path / "000000000000-6.ndjson.gz.tmp").write_bytes(body[:-20])  # plain, torn line
    receiver.start()
    exporter = quick(receiver.url, spool_dir=tmp_path)
    try:
        assert exporter.flush(timeout=10.0) is True
        assert receiver.uuids() == keys(events)[:5]
        assert exporter.stats()["corrupt"] == 1
    finally:
        exporter.shutdown()
        receiver.stop()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if done.returncode:
        pytest.skip(f"cannot mount a small tmpfs: {done.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_a_full_disk_under_the_spool_drops_and_counts_and_never_raises(
    small_disk: Path,
) -> None:
    receiver = Collector().reserve_port()
    exporter = quick(receiver.url, spool_dir=small_disk / "spool", max_attempts=1, compresslevel=0)
    results = [exporter.export(make_events(40, f"b{n}")).name for n in range(30)]
    assert "FAILURE" in results
    stats = exporter.stats()
    assert stats["spooled"] + stats["lost"] == 1200 and stats["lost"] > 0
    assert not [name for name in os.listdir(small_disk / "spool") if name.endswith(".tmp")]
    receiver.start()
    try:
        assert exporter.flush(timeout=10.0) is True
        assert len(receiver.received) == stats["spooled"]
    finally:
        exporter.shutdown()
        receiver.stop()


def test_a_read_only_spool_directory_drops_and_counts_and_never_raises(
    small_disk: Path,
) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    receiver = Collector().reserve_port()
    exporter = quick(receiver.url, spool_dir=small_disk / "spool", max_attempts=1)
    assert exporter.export(make_events(5)).name == "FAILURE"
    assert exporter.stats()["lost"] == 5
    exporter.shutdown(timeout=0.1)


# -- flush and shutdown ----------------------------------------------------------------


def test_flush_returns_within_its_timeout_when_the_receiver_never_answers(
    tmp_path: Path,
) -> None:
    receiver = Collector().reserve_port()
    exporter = quick(receiver.url, spool_dir=tmp_path, timeout=60.0, max_attempts=1)
    exporter.export(make_events(4))
    receiver.hang.set()
    receiver.start()
    try:
        started = time.monotonic()
        assert exporter.flush(timeout=1.0) is False
        assert time.monotonic() - started < 2.0
        assert exporter.stats()["pending"] == 4
    finally:
        receiver.stop()
        exporter.shutdown(timeout=0.1)


def test_flush_without_timeout_makes_one_pass_and_does_not_wait_for_backoff(
    tmp_path: Path,
) -> None:
    receiver = Collector().reserve_port()
    exporter = quick(receiver.url, spool_dir=tmp_path, backoff=30.0, max_attempts=1)
    exporter.export(make_events(4))
    started = time.monotonic()
    assert exporter.flush() is False
    assert time.monotonic() - started < 1.0
    exporter.shutdown(timeout=0.1)


def test_shutdown_counts_an_undelivered_memory_spool_as_dropped() -> None:
    receiver = Collector().reserve_port()
    exporter = quick(receiver.url, max_attempts=1)
    exporter.export(make_events(8))
    assert exporter.stats()["spooled"] == 8
    exporter.shutdown(timeout=0.1)
    assert exporter.stats()["lost"] == 8 and exporter.stats()["pending"] == 0
    assert exporter.export(make_events(3)).name == "FAILURE"  # after shutdown: counted, no raise
    assert exporter.stats()["lost"] == 11


# -- invariants ------------------------------------------------------------------------

ANSWERS = st.lists(st.sampled_from([200, 200, 500, 503, 429, 400, 422, -1]), max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers=ANSWERS, sizes=st.lists(st.integers(1, 9), min_size=1, max_size=6))
def test_counts_add_up_and_order_is_kept_whatever_the_receiver_answers(
    answers: list[int], sizes: list[int]
) -> None:
    script = list(answers)
    received: list[bytes] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        status = script.pop(0) if script else 200
        if status == -1:
            raise httpx2.ConnectError("refused", request=request)
        if status == 200:
            received.extend(gzip.decompress(request.content).splitlines())
        return httpx2.Response(status, headers={"retry-after": "0"} if status == 429 else {})

    exporter = HttpExporter(
        "http://collector.invalid/v1",
        transport=httpx2.MockTransport(handler),
        backoff=0.0001,
        max_backoff=0.0002,
        batch_size=4,
        max_attempts=2,
    )
    lines: list[bytes] = []
    for number, size in enumerate(sizes):
        events = make_events(size + 2, f"b{number}")
        lines += [event.to_json() for event in events]
        exporter.export(events)
    exporter.flush(timeout=5.0)
    exporter.shutdown(timeout=0.0)
    stats = exporter.stats()
    assert stats["delivered"] + stats["lost"] + stats["pending"] == len(lines)
    assert stats["delivered"] == len(received) and stats["pending"] == 0
    position = iter(lines)
    assert all(line in position for line in received)  # a subsequence: order kept


def test_send_outcome_of_a_connection_error_is_down_not_dropped() -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    exporter = HttpExporter(
        "http://collector.invalid/", transport=httpx2.MockTransport(refuse), max_attempts=1
    )
    exporter.export(make_events(3))
    assert exporter.stats()["lost"] == 0 and exporter.stats()["pending"] == 3
    assert _Outcome.DOWN.value == "down"


# -- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"url": "ftp://x"}, "url"),
        ({"url": 3}, "url"),
        ({"headers": {"a": 1}}, "headers"),
        ({"batch_size": 0}, "batch_size"),
        ({"timeout": 0}, "timeout"),
        ({"max_attempts": True}, "max_attempts"),
        ({"max_spool_bytes": -1}, "max_spool_bytes"),
        ({"compresslevel": 11}, "compresslevel"),
    ],
)
def test_bad_arguments_raise_an_error_naming_the_parameter(
    kwargs: dict[str, object], param: str
) -> None:
    arguments: dict[str, object] = {"url": "http://127.0.0.1:9/", **kwargs}
    with pytest.raises((TypeError, ValueError), match=param):
        HttpExporter(**arguments)  # type: ignore[arg-type]


def test_every_line_posted_is_valid_json(collector: Collector) -> None:
    exporter = quick(collector.url)
    exporter.export(make_events(5))
    assert all(orjson.loads(orjson.dumps(line)) == line for line in collector.received)
    exporter.shutdown()


def test_a_forked_child_spools_in_memory_and_leaves_the_parents_spool_dir_alone(
    tmp_path: Path,
) -> None:
    receiver = Collector().reserve_port()
    exporter = quick(receiver.url, spool_dir=tmp_path, max_attempts=1)
    exporter.export(make_events(3, "parent"))
    before = spool_files(tmp_path)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        code = 1
        try:
            exporter.after_fork_in_child()
            exporter.export(make_events(4, "child"))
            code = 0 if exporter.stats()["pending"] == 4 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert spool_files(tmp_path) == before
    exporter.shutdown(timeout=0.1)


def test_shutdown_returns_within_its_timeout_while_an_export_hangs_on_the_network(
    collector: Collector,
) -> None:
    collector.hang.set()
    exporter = quick(collector.url, timeout=30.0, max_attempts=3)
    worker = threading.Thread(target=exporter.export, args=(make_events(4),))
    worker.start()
    while not collector.requests:
        time.sleep(0.01)
    started = time.monotonic()
    exporter.shutdown(timeout=1.0)
    assert time.monotonic() - started < 2.0
    collector.release.set()
    worker.join(10.0)
    assert not worker.is_alive()
    assert exporter.export(make_events(3)).name == "FAILURE"  # closed: counted, no raise


# -- through the runtime ---------------------------------------------------------------


def llm_pairs(count: int) -> None:
    request = llmflow.LlmRequest({"authorization": "Bearer sk-secret"}, {"model": "m"})
    for index in range(count):
        handle = llmflow.llm_call("chat", request, model_name="m")
        llmflow.llm_call_end(handle, {"index": index})


def test_through_the_runtime_an_outage_spools_and_the_jsonl_file_is_untouched(
    tmp_path: Path,
) -> None:
    receiver = Collector().reserve_port()
    jsonl = tmp_path / "run.jsonl"
    AtofFileExporter(jsonl).register("file")
    exporter = quick(receiver.url, spool_dir=tmp_path / "spool")
    exporter.register("collector")
    llm_pairs(200)
    assert llmflow.flush(timeout=10.0) is False  # the collector did not get everything
    lines = jsonl.read_bytes().splitlines()
    assert len(lines) == 400
    counters = llmflow.diagnostics().exporters["collector"]
    assert counters["received"] == counters["exported"] == counters["spooled"] == 400
    assert counters["pending"] == 400 and counters["delivered"] == 0
    receiver.start()
    try:
        assert exporter.flush(timeout=10.0) is True
        assert [orjson.dumps(line) for line in receiver.received] == lines
        counters = llmflow.diagnostics().exporters["collector"]
        assert counters["delivered"] == counters["resent"] == 400
        assert counters["lost"] == counters["pending"] == counters["dropped"] == 0
        assert b"sk-secret" not in b"".join(lines)
    finally:
        receiver.stop()


def test_through_the_runtime_a_hanging_collector_never_stalls_the_application(
    tmp_path: Path, collector: Collector
) -> None:
    collector.hang.set()
    jsonl = tmp_path / "run.jsonl"
    AtofFileExporter(jsonl).register("file")
    quick(collector.url, timeout=30.0).register("collector")
    llm_pairs(100)
    started = time.monotonic()
    assert llmflow.flush(timeout=1.0) is False
    assert time.monotonic() - started < 3.0
    assert len(jsonl.read_bytes().splitlines()) == 200  # the file got everything meanwhile
    collector.release.set()


def test_through_the_runtime_shutdown_delivers_what_the_collector_accepts(
    collector: Collector, runtime: llmflow.Runtime
) -> None:
    quick(collector.url).register("collector")
    llm_pairs(50)
    runtime.shutdown(timeout=10.0)
    assert len(collector.received) == 100


def test_the_repr_never_shows_a_token_in_the_query_string() -> None:
    exporter = HttpExporter("https://collector.example/v1?token=sk-secret")
    assert "sk-secret" not in repr(exporter)


def test_register_names_the_exporter_after_its_url_without_the_query() -> None:
    exporter = HttpExporter("http://127.0.0.1:9/v1?token=sk-secret")
    assert exporter.register() == "http:http://127.0.0.1:9/v1"
    assert "http:http://127.0.0.1:9/v1" in llmflow.diagnostics().exporters


def test_the_spool_is_resent_when_the_receiver_is_back_even_without_new_events(
    tmp_path: Path,
) -> None:
    receiver = Collector().reserve_port()
    exporter = quick(receiver.url, spool_dir=tmp_path, max_attempts=1)
    events = make_events(6)
    exporter.export(events)
    assert exporter.stats()["pending"] == 6
    receiver.start()
    try:
        deadline = time.monotonic() + 10.0
        while len(receiver.received) < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert receiver.uuids() == keys(events)  # no export, no flush: the resender did it
        assert exporter.stats()["pending"] == 0
    finally:
        exporter.shutdown()
        receiver.stop()


def test_an_exporter_started_on_an_earlier_spool_sends_it_without_waiting_for_events(
    tmp_path: Path,
) -> None:
    receiver = Collector().reserve_port()
    before = quick(receiver.url, spool_dir=tmp_path, max_attempts=1)
    events = make_events(5)
    before.export(events)
    before.shutdown(timeout=0.0)
    receiver.start()
    after = quick(receiver.url, spool_dir=tmp_path)
    try:
        deadline = time.monotonic() + 10.0
        while (len(receiver.received) < 5 or spool_files(tmp_path)) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.02)  # the file goes once the receiver's answer is read, just after
        assert receiver.uuids() == keys(events)
        assert spool_files(tmp_path) == []
    finally:
        after.shutdown()
        receiver.stop()


def test_a_lost_answer_means_a_resent_batch_and_the_key_removes_the_duplicates(
    collector: Collector,
) -> None:
    collector.lose_answers = 2
    exporter = quick(collector.url, batch_size=4, max_attempts=3)
    events = make_events(10)
    assert exporter.export(events).name == "SUCCESS"
    received = collector.uuids()
    assert len(received) > 10  # at-least-once: the receiver saw batches twice
    first_seen = list(dict.fromkeys(received))  # what a receiver keeping one line per key has
    assert first_seen == keys(events)
    assert exporter.stats()["delivered"] == 10 and exporter.stats()["retried"] == 2
    exporter.shutdown()
