"""``llmflow show`` (SPEC §13, issue 11 item 10): the tree, totals, filters, no traceback."""

from __future__ import annotations

import gzip
from pathlib import Path

from cli_logs import LogBuilder, run_cli

from llmflow.cli.show import render_tree


def test_show_prints_the_tree_with_latency_model_tokens_errors_and_scope_totals(
    demo_log: Path,
) -> None:
    result = run_cli("show", str(demo_log))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    totals = "4 llm  2 tool  tokens 276→69  $0.00013  1 error  1 rejected"
    assert lines[0].startswith(f"agent trip-planner  Σ {totals}")
    assert lines[0].endswith(" ms")

    def has(text: str) -> bool:
        return any(text in line for line in lines)

    assert has("llm openai.chat  [gpt-4o-mini]  {remote}  tokens 96→36  $0.000036")
    assert has("llm openai.chat  [gpt-4o-mini]  {remote}  tokens 158→21  $0.000031  2 attempts")
    assert has("mark llmflow.retry  attempt=1, delay=0.02, reason='http 429'")
    assert has("tool get_weather  (call_weather_1)") and has("tool get_weather  (call_weather_2)")
    assert has(
        "[claude-3-5-haiku-latest]  {remote}  3 attempts  HTTP 529  "
        "!! llmflow.http.ProviderHTTPError: HTTP 529 from the provider: Overloaded"
    )
    assert has("guardrail block-secrets  REJECTED")
    assert has("function research:Lisbon  Σ 1 llm  tokens 22→12  $0.000066")
    assert has("{remote,streaming}  tokens 22→12  $0.000066")
    assert lines[-1] == f"1 trace(s), 17 span(s): {totals}"
    assert result.stderr == ""


def test_show_reports_a_missing_file_in_one_line_with_exit_code_2(tmp_path: Path) -> None:
    result = run_cli("show", str(tmp_path / "absent.jsonl"))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip() == (
        f"llmflow show: cannot read {tmp_path / 'absent.jsonl'}: No such file or directory"
    )


def test_show_warns_about_a_cut_off_last_line_and_shows_the_rest(
    demo_log: Path, tmp_path: Path
) -> None:
    data = demo_log.read_bytes()
    path = tmp_path / "crashed.jsonl"
    path.write_bytes(data[: len(data) - 30])  # SIGKILL mid-line: the root's end is cut
    result = run_cli("show", str(path))
    assert result.returncode == 0
    assert "Traceback" not in result.stderr
    count = data.count(b"\n")
    assert result.stderr.strip() == (
        f"warning: {path}:{count}: cut-off last line (no newline at the end; "
        "the writer stopped mid-line) (line skipped)"
    )
    first = result.stdout.splitlines()[0]
    assert first.startswith("agent trip-planner") and first.endswith("(open)")


def test_show_filters_by_category_keeping_the_path_to_each_match(demo_log: Path) -> None:
    lines = run_cli("show", "--category", "llm", str(demo_log)).stdout.splitlines()
    tree = lines[: lines.index("")]
    names = [line.lstrip("│├└─ ").split("  ")[0] for line in tree]
    assert names[0] == "agent trip-planner"
    assert names.count("llm openai.chat") == 2 and names.count("llm anthropic.messages") == 2
    assert len(names) == 6  # the agent, the research function and the four calls
    assert "guardrail block-secrets" not in names and "tool get_weather" not in names
    assert names.count("function research:Lisbon") == 1


def test_show_errors_keeps_only_failures_and_rejections(demo_log: Path) -> None:
    result = run_cli("show", "--errors", str(demo_log))
    tree = result.stdout.split("\n\n")[0].splitlines()
    assert len(tree) == 4, tree
    assert tree[0].startswith("agent trip-planner")
    assert "HTTP 529" in tree[1] and "3 attempts" in tree[1]
    assert "REJECTED" in tree[2]
    assert "llmflow.guardrail_rejected" in tree[3]


def test_show_filters_by_name_glob_and_by_trace(tmp_path: Path) -> None:
    log = LogBuilder()
    a = log.span("alpha", "agent", 0, 100)
    log.span("search_web", "tool", 10, 20, parent=a)
    log.span("search_docs", "tool", 30, 40, parent=a)
    log.span("write", "tool", 50, 60, parent=a)
    b = log.span("beta", "agent", 200, 300)
    path = log.write(tmp_path / "log.jsonl")
    out = run_cli("show", "--name", "search_*", str(path)).stdout
    assert "search_web" in out and "search_docs" in out and "write" not in out
    assert "beta" not in out.split("\n\n")[0]
    out = run_cli("show", "--trace", b, str(path)).stdout
    assert out.splitlines()[0].startswith("agent beta") and "alpha" not in out
    out = run_cli("show", "--trace", "alph*", str(path)).stdout
    assert out.splitlines()[0].startswith("agent alpha") and "beta" not in out


def test_show_reads_gzip_and_stdin(demo_log: Path, tmp_path: Path) -> None:
    expected = run_cli("show", str(demo_log)).stdout
    gz = tmp_path / "demo.jsonl.gz"
    gz.write_bytes(gzip.compress(demo_log.read_bytes()))
    assert run_cli("show", str(gz)).stdout == expected
    assert run_cli("show", "-", input=demo_log.read_bytes()).stdout == expected


def test_show_on_a_truncated_gzip_file_is_a_one_line_error(demo_log: Path, tmp_path: Path) -> None:
    gz = tmp_path / "demo.jsonl.gz"
    packed = gzip.compress(demo_log.read_bytes())
    gz.write_bytes(packed[: len(packed) // 2])
    result = run_cli("show", str(gz))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "compressed data ends early" in result.stderr


def test_render_tree_of_a_path_is_what_the_demo_prints(demo_log: Path) -> None:
    text = render_tree(demo_log)
    assert text.splitlines()[0].startswith("agent trip-planner")
    assert text == "\n".join(run_cli("show", str(demo_log)).stdout.split("\n\n")[0].splitlines())


def test_show_piped_into_a_closed_pipe_ends_quietly(demo_log: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    big = tmp_path / "big.jsonl"
    big.write_bytes(demo_log.read_bytes() * 1)
    log = LogBuilder()
    for i in range(3000):
        log.span(f"agent-{i}", "agent", i * 10, i * 10 + 5)
    log.write(big)
    done = subprocess.run(
        f"{sys.executable} -m llmflow show {big} | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.startswith("agent agent-0")
    assert done.stderr == ""


def test_progress_is_drawn_on_a_terminal_and_erased_but_never_on_a_pipe() -> None:
    import io

    from llmflow.cli._input import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        progress = Progress("llmflow stats", stream)
        progress._next = 0.0  # due now
        progress.update(120_000)
        progress.done()
    assert terminal.getvalue().startswith("\r\x1b[2Kllmflow stats: 120,000 lines (")
    assert terminal.getvalue().endswith("\r\x1b[2K")
    assert pipe.getvalue() == ""
