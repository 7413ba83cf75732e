"""``LLMFLOW_EXPORTERS``: exporters chosen by environment variables, no code.

Read once, when the process-default runtime is created. A comma list of
``jsonl``, ``http``, ``parquet`` and ``otlp``; each is configured by its own
variables (see :data:`VARIABLES`). An unknown name, a missing variable or a
missing extra prints one warning line on stderr and is counted in
``llmflow.diagnostics()`` under ``exporter_config:<name>``; it never raises,
so a bad environment cannot break ``import llmflow``.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping
from urllib.parse import unquote

from llmflow._errors import describe_exception
from llmflow._runtime import ATOF_PATH_ENV, Runtime, _warn_once
from llmflow.exporters._base import Exporter

__all__ = [
    "EXPORTERS_ENV",
    "SHIP_ENV",
    "TARGET_ARGUMENTS",
    "VARIABLES",
    "build_target",
    "parse_target",
    "install_from_environment",
    "parse_headers",
]

EXPORTERS_ENV = "LLMFLOW_EXPORTERS"
SHIP_ENV = "LLMFLOW_SHIP"
DEFAULT_ATOF_PATH = "llmflow.atof.jsonl"

VARIABLES: Mapping[str, tuple[str, ...]] = {
    "jsonl": (ATOF_PATH_ENV,),
    "http": ("LLMFLOW_HTTP_URL", "LLMFLOW_HTTP_HEADERS", "LLMFLOW_HTTP_SPOOL_DIR"),
    "parquet": ("LLMFLOW_PARQUET_DIR",),
    "otlp": ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "..."),
}
"""The variables each exporter name reads (the first one of ``http``/``parquet`` is required)."""


class ExporterConfigError(ValueError):
    """An ``LLMFLOW_EXPORTERS`` entry that cannot be built."""


def parse_headers(text: str) -> dict[str, str]:
    """Parse ``key=value,key2=value2`` (percent-decoded), as ``OTEL_EXPORTER_OTLP_HEADERS``."""
    headers: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ExporterConfigError(
                f"LLMFLOW_HTTP_HEADERS: expected key=value pairs separated by commas, got {item!r}"
            )
        headers[unquote(key.strip())] = unquote(value.strip())
    return headers


def _required(environ: Mapping[str, str], variable: str, name: str) -> str:
    value = environ.get(variable, "").strip()
    if not value:
        raise ExporterConfigError(f"{name} needs {variable} to be set")
    return value


def _jsonl(environ: Mapping[str, str]) -> Exporter | None:
    if environ.get(ATOF_PATH_ENV):
        return None  # already installed by the default runtime under LLMFLOW_ATOF_PATH
    from llmflow.exporters.jsonl import AtofFileExporter

    return AtofFileExporter(DEFAULT_ATOF_PATH, mode="append")


def _http(environ: Mapping[str, str]) -> Exporter:
    from llmflow.exporters.http import HttpExporter

    url = _required(environ, "LLMFLOW_HTTP_URL", "http")
    headers = parse_headers(environ.get("LLMFLOW_HTTP_HEADERS", ""))
    spool_dir = environ.get("LLMFLOW_HTTP_SPOOL_DIR") or None
    return HttpExporter(url, headers=headers, spool_dir=spool_dir)


def _parquet(environ: Mapping[str, str]) -> Exporter:
    from llmflow.exporters.parquet import ParquetExporter

    return ParquetExporter(_required(environ, "LLMFLOW_PARQUET_DIR", "parquet"))


def _otlp(environ: Mapping[str, str]) -> Exporter:
    try:
        module = importlib.import_module("llmflow.exporters.otel")
    except ImportError as exc:
        raise ExporterConfigError(
            f"otlp needs the OpenTelemetry extra: pip install 'llmflow[otel]' ({exc})"
        ) from None
    exporter: Exporter = module.OpenTelemetryExporter()  # OTEL_EXPORTER_OTLP_* configure it
    return exporter


_BUILDERS: dict[str, Callable[[Mapping[str, str]], Exporter | None]] = {
    "jsonl": _jsonl,
    "http": _http,
    "parquet": _parquet,
    "otlp": _otlp,
}


TARGET_ARGUMENTS: Mapping[str, str] = {
    "jsonl": ATOF_PATH_ENV,
    "http": "LLMFLOW_HTTP_URL",
    "parquet": "LLMFLOW_PARQUET_DIR",
}
"""The variable that the argument of a target ``name:ARGUMENT`` stands for."""


def parse_target(spec: str) -> tuple[str, str | None]:
    """Check a shipper target ``name[:ARGUMENT]`` without building it: ``(name, argument)``.

    A bare ``http(s)://`` URL is ``http:URL``. Raises ``ExporterConfigError``
    for an unknown name, an empty argument, an argument ``otlp`` does not take
    and ``jsonl`` without its path.
    """
    if not isinstance(spec, str):
        raise ExporterConfigError(f"expected a target string like 'parquet:DIR', got {spec!r}")
    if spec.startswith(("http://", "https://")):
        spec = f"http:{spec}"
    name, sep, argument = spec.partition(":")
    name = name.strip().lower()
    if name not in _BUILDERS:
        raise ExporterConfigError(
            f"unknown exporter {name!r}; expected NAME[:ARGUMENT] with NAME one of "
            f"{', '.join(_BUILDERS)}"
        )
    if not sep:
        if name == "jsonl":  # in the environment jsonl is the log itself; here it is a copy
            raise ExporterConfigError("jsonl needs a path: jsonl:PATH")
        return name, None
    if name not in TARGET_ARGUMENTS:
        raise ExporterConfigError(f"{name} takes no argument (OTEL_* configure it)")
    if not argument.strip():
        raise ExporterConfigError(f"nothing after {name}:")
    return name, argument.strip()


def build_target(spec: str, environ: Mapping[str, str] | None = None) -> Exporter:
    """One exporter from a shipper target ``name[:ARGUMENT]`` (``llmflow ship``).

    ``name`` is an ``LLMFLOW_EXPORTERS`` name, built by the same code;
    ``ARGUMENT`` stands for its required variable (:data:`TARGET_ARGUMENTS`:
    ``parquet:DIR``, ``http:URL``, ``jsonl:PATH``); the other variables are
    read from ``environ`` (default ``os.environ``) as for ``LLMFLOW_EXPORTERS``.
    Raises ``ExporterConfigError`` (see :func:`parse_target`), or the
    exporter's own error for a bad argument.
    """
    name, argument = parse_target(spec)
    if name == "jsonl":
        from llmflow.exporters.jsonl import AtofFileExporter

        return AtofFileExporter(str(argument), mode="append")
    variables = dict(os.environ if environ is None else environ)
    if argument is not None:
        variables[TARGET_ARGUMENTS[name]] = argument
    exporter = _BUILDERS[name](variables)
    assert exporter is not None  # only jsonl's builder returns None
    return exporter


def install_from_environment(
    runtime: Runtime, environ: Mapping[str, str] | None = None
) -> list[str]:
    """Register the exporters the environment asks for on ``runtime``; return their names.

    ``LLMFLOW_ATOF_PATH`` first (registered under that name; a failure warns
    once and is counted under ``config:LLMFLOW_ATOF_PATH``), then each exporter
    ``LLMFLOW_EXPORTERS`` names, registered as ``LLMFLOW_EXPORTERS:<name>`` (a
    failure warns and is counted under ``exporter_config:<name>``). With
    ``LLMFLOW_SHIP=1`` and a log, ``http``, ``parquet`` and ``otlp`` run in a
    shipper process following the log instead (:func:`_ship_from_environment`).
    Never raises.
    """
    environ = os.environ if environ is None else environ
    installed: list[str] = []
    path = environ.get(ATOF_PATH_ENV)
    if path:
        from llmflow.exporters.jsonl import AtofFileExporter

        try:
            AtofFileExporter(path, mode="append").register(ATOF_PATH_ENV, runtime=runtime)
            installed.append(ATOF_PATH_ENV)
        except Exception as exc:  # configuration must never crash the application
            runtime.count_failure(f"config:{ATOF_PATH_ENV}", exc)
            _warn_once(
                f"{ATOF_PATH_ENV}={path!r} cannot be used ({describe_exception(exc)[1]}); "
                "events are not written to a file"
            )
    names = [item.strip().lower() for item in environ.get(EXPORTERS_ENV, "").split(",")]
    names = list(dict.fromkeys(item for item in names if item))
    if environ.get(SHIP_ENV, "").strip() == "1" and ATOF_PATH_ENV in installed:
        names = _ship_from_environment(runtime, environ, str(path), names, installed)
    for name in names:
        try:
            builder = _BUILDERS.get(name)
            if builder is None:
                raise ExporterConfigError(
                    f"unknown exporter {name!r}; expected a comma list of {', '.join(_BUILDERS)}"
                )
            exporter = builder(environ)
            if exporter is None:
                continue
            registered = f"{EXPORTERS_ENV}:{name}"
            runtime.add_exporter(registered, exporter)
            installed.append(registered)
        except Exception as exc:  # a bad environment must never break the application
            runtime.count_failure(f"exporter_config:{name}", exc)
            sys.stderr.write(f"llmflow: {EXPORTERS_ENV}: {name} skipped: {exc}\n")
    return installed


def _ship_from_environment(
    runtime: Runtime,
    environ: Mapping[str, str],
    path: str,
    names: list[str],
    installed: list[str],
) -> list[str]:
    """Start one shipper for the network and slow-disk names; return the names left.

    Registered in ``installed`` as ``LLMFLOW_SHIP:<names>``. Nothing is started
    when another shipper already holds the log's state (a process started by
    the application, with the same environment); a failure to start warns and
    is counted under ``config:LLMFLOW_SHIP``, and those exporters are then
    not installed at all (never in-process behind the user's back).
    """
    shipped = [name for name in names if name in ("http", "parquet", "otlp")]
    if not shipped:
        return names
    targets = [
        f"{name}:{environ[TARGET_ARGUMENTS[name]]}"
        if environ.get(TARGET_ARGUMENTS.get(name, ""), "").strip()
        else name
        for name in shipped
    ]
    try:
        from llmflow._ship import shipper_running, start_shipper

        if not shipper_running(path):
            start_shipper(path, targets)
            installed.append(f"{SHIP_ENV}:{','.join(shipped)}")
    except Exception as exc:  # a bad environment must never break the application
        runtime.count_failure(f"config:{SHIP_ENV}", exc)
        _warn_once(f"{SHIP_ENV}=1: no shipper for {', '.join(shipped)} ({exc})")
    return [name for name in names if name not in shipped]
