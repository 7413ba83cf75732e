"""``llmflow report`` (SPEC §13): one self-contained page, checked in a real headless Chromium.

Chromium runs with ``--dump-dom`` (the DOM after the page's scripts ran) and
``--screenshot`` (saved in the test's tmp dir). Without Chromium the browser
tests fail when ``CI`` is set and are skipped otherwise.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cli_logs import LogBuilder, run_cli

from llmflow.atof import Span, iter_records, iter_spans

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(tmp_path: Path, url: str, *mode: str) -> str:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (apt-get install chromium)")
        pytest.skip("chromium is not installed")
    profile = tmp_path / "chromium-profile"
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            *mode,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def demo_report(demo_log: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    result = run_cli("report", str(demo_log), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(f"llmflow report: wrote {out}")
    return out


def visible_text(dom: str) -> str:
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)))


def test_the_report_is_one_file_that_loads_nothing_from_the_network(demo_report: Path) -> None:
    page = demo_report.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "<link" not in page
    assert not re.search(r"<script[^>]+src=", page)
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    assert "@import" not in page and "url(" not in page
    urls = set(re.findall(r"https?://[^\s\"'<]+", page))
    assert urls <= {"http://www.w3.org/2000/svg"}


def test_the_report_in_chromium_shows_waterfall_charts_and_the_first_llm_call(
    demo_report: Path, demo_log: Path, tmp_path: Path
) -> None:
    dom = chromium(tmp_path, demo_report.as_uri(), "--dump-dom")
    assert 'data-ready="1"' in dom  # the page's script ran to its end
    text = visible_text(dom)
    for expected in (
        "llmflow report",
        "trip-planner",
        "gpt-4o-mini",
        "claude-3-5-haiku-latest",
        "LLM latency per model",
        "tokens per model",
        "All 1 trace(s) are shown in full",
    ):
        assert expected in text, expected
    spans = [n for n in iter_spans(iter_records(demo_log)) if isinstance(n, Span)]
    assert dom.count('class="row span') == len(spans) == 17
    assert len(re.findall(r'class="row span cat-llm[^"]*"', dom)) == 4
    assert len(re.findall(r'class="row span cat-tool[^"]*"', dom)) == 2
    assert len(re.findall(r'class="row span[^"]* error', dom)) == 1
    assert len(re.findall(r'class="row span[^"]* rejected', dom)) == 1
    assert dom.count("<svg") >= 2
    # The detail panel was filled by the script with the first LLM call.
    detail = dom[dom.index('<aside id="detail"') :]
    detail_text = visible_text(detail[: detail.index("</aside>")])
    assert "llm openai.chat" in detail_text
    assert "96 in / 36 out" in detail_text
    assert "Request" in detail_text and "Weather in Lisbon and Porto?" in detail_text
    assert "Response" in detail_text and "get_weather" in detail_text
    assert "call_weather_2" in detail_text  # both tool calls the model asked for
    screenshot = tmp_path / "report.png"
    chromium(
        tmp_path, demo_report.as_uri(), f"--screenshot={screenshot}", "--window-size=1400,1000"
    )
    assert screenshot.stat().st_size > 10_000


def test_a_span_named_in_the_url_opens_with_its_error(
    demo_report: Path, demo_log: Path, tmp_path: Path
) -> None:
    failed = next(
        n for n in iter_spans(iter_records(demo_log)) if isinstance(n, Span) and n.error is not None
    )
    dom = chromium(tmp_path, f"{demo_report.as_uri()}#span={failed.uuid}", "--dump-dom")
    detail = dom[dom.index('<aside id="detail"') :]
    detail_text = visible_text(detail[: detail.index("</aside>")])
    assert "HTTP 529 from the provider: Overloaded" in detail_text
    assert "attempts 3" in detail_text  # llmflow's retry gave up after three
    assert 'class="row span cat-llm error selected"' in dom


def big_log(path: Path, traces: int) -> Path:
    log = LogBuilder()
    for i in range(traces):
        root = log.span(f"run-{i}", "agent", i * 10_000, i * 10_000 + 100 + i * 10)
        metadata = (
            {"exception.type": "ValueError", "exception.message": "bad"} if i % 10 == 3 else None
        )
        log.span(
            "chat",
            "llm",
            i * 10_000 + 1,
            i * 10_000 + 50,
            parent=root,
            model="m",
            usage={"input_tokens": 5, "output_tokens": 1},
            metadata=metadata,
            data={"prompt": "x" * 500},
        )
    return log.write(path)


def test_the_report_embeds_the_slowest_and_failed_traces_and_says_so(tmp_path: Path) -> None:
    log = big_log(tmp_path / "big.jsonl", 60)
    out = tmp_path / "report.html"
    result = run_cli(
        "report",
        str(log),
        "-o",
        str(out),
        "--slowest",
        "3",
        "--failed",
        "2",
        "--max-payload",
        "100",
    )
    assert result.returncode == 0, result.stderr
    page = out.read_text()
    sections = re.findall(
        r'<section class="trace[^"]*" data-trace="[^"]+">\s*<h3>agent (run-\d+)', page
    )
    assert sections == ["run-3", "run-13", "run-59", "run-58", "run-57"]
    assert (
        "5 of 60 traces are shown in full: the 3 slowest and up to 2 failed ones (6 failed in all)"
        in page
    )
    assert "truncated: " in page  # the 500-character prompt was cut at 100
    text = visible_text(chromium(tmp_path, out.as_uri(), "--dump-dom"))
    assert "5 of 60 traces are shown in full" in text


def test_report_of_a_missing_file_is_a_one_line_error(tmp_path: Path) -> None:
    result = run_cli("report", str(tmp_path / "absent.jsonl"), "-o", str(tmp_path / "r.html"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "absent.jsonl" in result.stderr
    assert not (tmp_path / "r.html").exists()


def test_report_reads_stdin(demo_log: Path, tmp_path: Path) -> None:
    out = tmp_path / "stdin.html"
    result = run_cli("report", "-", "-o", str(out), input=demo_log.read_bytes())
    assert result.returncode == 0, result.stderr
    assert "trip-planner" in out.read_text() and "&lt;stdin&gt;" in out.read_text()


def test_payloads_that_look_like_html_stay_text(tmp_path: Path) -> None:
    log = LogBuilder()
    evil = "</script><script>document.title='owned'</script><!-- <b>bold</b>"
    root = log.span("agent <i>x</i>", "agent", 0, 1_000)
    call = log.span(
        "chat",
        "llm",
        10,
        500,
        parent=root,
        model="m<b>",
        data={"prompt": evil},
        output={"text": evil},
        usage={"input_tokens": 1, "output_tokens": 1},
    )
    out = tmp_path / "report.html"
    assert run_cli("report", str(log.write(tmp_path / "l.jsonl")), "-o", str(out)).returncode == 0
    dom = chromium(tmp_path, f"{out.as_uri()}#span={call}", "--dump-dom")
    assert "<title>llmflow report" in dom and "owned" not in dom.split("</title>")[0]
    assert dom.count("<script") == 2
    assert "<i>x</i>" not in dom and "agent &lt;i&gt;x&lt;/i&gt;" in dom
    detail = dom[dom.index('<aside id="detail"') :]
    assert "document.title='owned'" in visible_text(detail[: detail.index("</aside>")])
