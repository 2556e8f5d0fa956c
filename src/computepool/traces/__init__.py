"""Workload sources: Gavel's synthetic generator, trace readers and a pool-scale generator.

Everything returns a columnar ``computepool.model.workload.Workload``; ``load_workload`` picks the
right reader or generator from a spec string or path. Errors are ``TraceError`` (a
``ValueError``) naming the file, line, field and reason.
"""

from computepool.traces.detect import FORMATS, detect_format, load_workload
from computepool.traces.errors import TraceError
from computepool.traces.gavel_generator import (
    GavelSpec,
    GavelTrace,
    generate_gavel,
    generate_gavel_workload,
    parse_gavel_spec,
)
from computepool.traces.gavel_trace import read_gavel_trace, read_gavel_trace_dir
from computepool.traces.jobfile import (
    read_jsonl_jobs,
    read_jsonl_workload,
    read_yaml_jobs,
    read_yaml_workload,
)
from computepool.traces.openb import PodTable, pods_to_workload, read_openb, read_openb_pods
from computepool.traces.philly import read_philly
from computepool.traces.scale_generator import ScaleSpec, generate_scale, parse_scale_spec
from computepool.traces.tiresias import read_tiresias

__all__ = [
    "FORMATS",
    "GavelSpec",
    "GavelTrace",
    "PodTable",
    "ScaleSpec",
    "TraceError",
    "detect_format",
    "generate_gavel",
    "generate_gavel_workload",
    "generate_scale",
    "load_workload",
    "parse_gavel_spec",
    "parse_scale_spec",
    "pods_to_workload",
    "read_gavel_trace",
    "read_gavel_trace_dir",
    "read_jsonl_jobs",
    "read_jsonl_workload",
    "read_openb",
    "read_openb_pods",
    "read_philly",
    "read_tiresias",
    "read_yaml_jobs",
    "read_yaml_workload",
]
