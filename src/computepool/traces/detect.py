"""``load_workload``: one entry point for generator specs and every trace format."""

from __future__ import annotations

from pathlib import Path

from computepool.model.throughput import Throughputs
from computepool.model.workload import Workload
from computepool.traces.errors import TraceError

FORMATS = ("gavel", "philly", "openb", "yaml", "jsonl", "tiresias")
GENERATORS = ("gavel:", "scale:")

#: Header prefixes that identify the CSV formats.
_CSV_HEADERS = {
    "philly": "timestamp,duration,num_gpus",
    "openb": "name,cpu_milli,",
    "tiresias": "job_id,num_gpu,submit_time",
}
_EXTENSIONS = {
    ".trace": "gavel",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


def detect_format(path: Path) -> str:
    """The format of ``path`` from its extension, or for CSV from its header line."""
    if path.is_dir():
        if any(path.glob("*.trace")):
            return "gavel"
        raise TraceError(str(path), "is a folder without *.trace files; cannot tell its format")
    ext = path.suffix.lower()
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    try:
        with path.open(encoding="utf-8") as f:
            first = f.readline().strip().replace(" ", "")
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(str(path), f"cannot read: {exc}") from None
    for fmt, header in _CSV_HEADERS.items():
        if first.startswith(header):
            return fmt
    if first.count("\t") in (6, 8, 9):
        return "gavel"
    if first.startswith("{"):
        return "jsonl"
    if first.startswith(("jobs:", "defaults:", "name:")):
        return "yaml"
    raise TraceError(
        str(path), f"unknown workload format; give one of {', '.join(FORMATS)}", 1, "format"
    )


def load_workload(
    spec: str, fmt: str | None = None, throughputs: Throughputs | None = None
) -> Workload:
    """A ``Workload`` from a generator spec (``gavel:...``, ``scale:...``) or a trace file/folder.

    ``fmt`` forces the format (one of ``FORMATS``); otherwise it is detected from the extension
    or the first line. Every failure raises ``TraceError`` naming the file (or spec), line and field.
    """
    if spec.startswith("gavel:"):
        from computepool.traces.gavel_generator import generate_gavel, parse_gavel_spec

        return generate_gavel(parse_gavel_spec(spec), throughputs).workload
    if spec.startswith("scale:"):
        from computepool.traces.scale_generator import generate_scale, parse_scale_spec

        try:
            return generate_scale(parse_scale_spec(spec), throughputs)
        except ValueError as exc:
            if isinstance(exc, TraceError):
                raise
            raise TraceError(spec, str(exc)) from None
    path = Path(spec)
    if not path.exists():
        raise TraceError(
            spec,
            f"no such file or folder (nor a generator spec starting with {' or '.join(GENERATORS)})",
        )
    if fmt is not None and fmt not in FORMATS:
        raise TraceError(
            spec, f"unknown format {fmt!r}; give one of {', '.join(FORMATS)}", field="format"
        )
    fmt = fmt or detect_format(path)
    return _READERS[fmt](path, throughputs)


def _gavel(path: Path, t: Throughputs | None) -> Workload:
    from computepool.traces.gavel_trace import read_gavel_trace, read_gavel_trace_dir

    return read_gavel_trace_dir(path, t) if path.is_dir() else read_gavel_trace(path, t)


def _philly(path: Path, t: Throughputs | None) -> Workload:
    from computepool.traces.philly import read_philly

    return read_philly(path, t)


def _openb(path: Path, t: Throughputs | None) -> Workload:
    from computepool.traces.openb import read_openb

    return read_openb(path, t)


def _yaml(path: Path, t: Throughputs | None) -> Workload:
    from computepool.traces.jobfile import read_yaml_workload

    return read_yaml_workload(path, t)


def _jsonl(path: Path, t: Throughputs | None) -> Workload:
    from computepool.traces.jobfile import read_jsonl_workload

    return read_jsonl_workload(path, t)


def _tiresias(path: Path, t: Throughputs | None) -> Workload:
    from computepool.traces.tiresias import read_tiresias

    return read_tiresias(path, t)


_READERS = {
    "gavel": _gavel,
    "philly": _philly,
    "openb": _openb,
    "yaml": _yaml,
    "jsonl": _jsonl,
    "tiresias": _tiresias,
}
