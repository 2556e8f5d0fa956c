"""Every kind of file the product reads, how to tell them apart, and how each is checked.

``check_file`` reads a file once, decides its kind (from the top-level keys of a YAML mapping,
the extension or a CSV header; ``kind=`` forces it), runs the very loader the product uses for
that kind, and turns whatever that loader raises into ``Finding``s that name the file, the line
(and column) of the offending field, the field path and the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from computepool.catalog.errors import CatalogFileError, Problem, problems_from_validation
from computepool.catalog.yaml_lines import Position, YamlDoc, YamlSyntaxError, load, split_path

YAML_SUFFIXES = (".yaml", ".yml", ".json")
#: Bounds on what ``cpool validate`` reads: a file is input, and input is bounded.
MAX_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong: ``file:line:column: field: reason`` (the parts known)."""

    file: str
    reason: str
    field: str = ""
    at: Position | None = None

    def __str__(self) -> str:
        where = self.file if self.at is None else f"{self.file}:{self.at}"
        return f"{where}: {self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What ``check_file`` found: the kind, a one-line summary when valid, else the findings."""

    file: str
    kind: str
    summary: str = ""
    findings: tuple[Finding, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.findings


# --- the checks, one per kind: (path, parsed YAML or None) -> summary; raise on a problem ----


def _pool(path: Path, doc: YamlDoc | None) -> str:
    from computepool.catalog.pools import validate_pool_file

    p = validate_pool_file(path)
    return (
        f"pool {p.name!r}, {len(p.nodes):,} nodes, {p.total_accelerators:,} accelerators "
        f"in {len(p.flavors)} flavors"
    )


def _workload(path: Path, doc: YamlDoc | None) -> str:
    from computepool.traces.detect import load_workload

    w = load_workload(str(path))
    return f"{len(w):,} jobs, {len(w.classes)} job classes"


def _service(path: Path, doc: YamlDoc | None) -> str:
    from computepool.serving.config import read_serving

    sw = read_serving(path)
    n = 0 if sw is None else len(sw.services)
    jobs = ""
    if doc is not None and isinstance(doc.data, dict) and doc.data.get("jobs"):
        jobs = f", {_workload(path, doc)}"
    return f"{n} services{jobs}"


def _pods(path: Path, doc: YamlDoc | None) -> str:
    from computepool.placement.openb import read_pods

    pods = read_pods(path)
    return f"{len(pods):,} pods"


def _nodes(path: Path, doc: YamlDoc | None) -> str:
    from computepool.placement.openb import read_nodes

    state = read_nodes(path)
    return f"{len(state):,} nodes"


def _job(path: Path, doc: YamlDoc | None) -> str:
    from computepool.admission.rulebook import load_rulebook
    from computepool.model.field_names import warn_old_names
    from computepool.server.schemas import JobSpec

    data = _mapping(doc, "a mapping of job fields (command, workers, ...)")
    try:
        spec = JobSpec.model_validate(data)
    except ValidationError as exc:
        raise CatalogFileError(str(path), problems_from_validation(exc)) from None
    warn_old_names(str(path), [data])
    classes = {c for r in load_rulebook().rules for c in r.data_classes}
    problems = [
        Problem(
            f"datasets[{i}].data_class",
            f"no rule of the shipped rulebook names data class {d.data_class!r}, so the data "
            f"would stay in its origin (rule UNMATCHED); known: {', '.join(sorted(classes))}",
        )
        for i, d in enumerate(spec.datasets)
        if d.data_class not in classes and "*" not in classes
    ]
    if problems:
        raise CatalogFileError(str(path), problems)
    return f"job {spec.name or '(unnamed)'!r}, {spec.workers} x {spec.accelerators_per_worker} accelerators"


def _plan(path: Path, doc: YamlDoc | None) -> str:
    from computepool.plan.scenario import load_scenario

    s = load_scenario(path)
    return f"plan {s.name!r}, {len(s.years)} years, {len(s.sites)} sites, {len(s.chips)} chips"


def _study(path: Path, doc: YamlDoc | None) -> str:
    from computepool.plan.silos_study import load_study, resolve_path

    study, base = load_study(path)
    try:
        resolve_path(str(study.workload), base)
    except FileNotFoundError as exc:
        raise CatalogFileError(str(path), [Problem("workload", str(exc))]) from None
    return f"pool-vs-silos study {study.name!r}"


def _scenario(path: Path, doc: YamlDoc | None) -> str:
    from computepool.admission.approvals import TimeBase, parse_approvals
    from computepool.admission.rulebook import RulebookError, load_rulebook
    from computepool.catalog.pools import load_pool
    from computepool.policies.registry import policy_names
    from computepool.scenario.residency import load_scenario

    spec = load_scenario(path)
    problems: list[Problem] = []
    try:
        load_pool(spec.pool)
    except (ValueError, OSError) as exc:
        problems.append(Problem("pool", _first_line(exc)))
    if spec.policy not in policy_names():
        problems.append(
            Problem("policy", f"unknown policy {spec.policy!r}; known: {', '.join(policy_names())}")
        )
    if spec.rulebook != "off":
        try:
            rulebook = load_rulebook(spec.rulebook)
        except RulebookError as exc:
            problems.append(Problem("rulebook", _first_line(exc)))
        else:
            try:
                parse_approvals({"approvals": spec.approvals}, rulebook, TimeBase(), str(path))
            except RulebookError as exc:
                problems.extend(Problem(f, r) for f, r in exc.problems)
    if problems:
        raise CatalogFileError(str(path), problems)
    return f"residency scenario {spec.name!r}, {len(spec.tenants)} tenants"


def _rulebook(path: Path, doc: YamlDoc | None) -> str:
    from computepool.admission.rulebook import load_rulebook

    rb = load_rulebook(path)
    return f"rulebook, {len(rb.rules)} rules"


def _approvals(path: Path, doc: YamlDoc | None) -> str:
    from computepool.admission.approvals import TimeBase, parse_approvals
    from computepool.admission.rulebook import load_rulebook

    data = doc.data if doc is not None else None
    book = parse_approvals(data, load_rulebook(), TimeBase(), str(path))
    return f"{len(book)} approvals"


def _mapping(doc: YamlDoc | None, what: str) -> dict[str, Any]:
    data = None if doc is None else doc.data
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise CatalogFileError(
            doc.file if doc else "", [Problem("", f"expected {what}, got {got}")]
        )
    return data


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


Check = Callable[[Path, YamlDoc | None], str]

#: kind -> (check, what the kind is, for --help and messages)
KINDS: Mapping[str, tuple[Check, str]] = {
    "pool": (_pool, "a pool file (cpool simulate --pool, cpool serve --config)"),
    "workload": (_workload, "a workload: YAML/JSONL jobs or a Gavel/Philly/openb/Tiresias trace"),
    "service": (_service, "a workload with services: (cpool serve --services, serving)"),
    "pods": (_pods, "an openb pod list, any column layout (cpool pack --pods)"),
    "nodes": (_nodes, "an openb node list (cpool pack --nodes)"),
    "job": (_job, "a live job spec (cpool submit)"),
    "plan": (_plan, "a capacity-plan scenario (cpool plan)"),
    "study": (_study, "a pool-vs-silos study (cpool pool-vs-silos)"),
    "scenario": (_scenario, "a residency scenario (cpool scenario)"),
    "rulebook": (_rulebook, "a residency rulebook (cpool rules --rulebook)"),
    "approvals": (_approvals, "residency approvals (cpool approvals add, --approvals)"),
}

_STUDY_KEYS = {"window", "capex_per_card_usd", "peak_quantile", "jct_tolerance", "per_node"}
_PLAN_KEYS = {"targets", "sites", "chips", "start_year", "horizon_years"}
_POOL_KEYS = {"node_groups", "nodes_csv", "nodes"}


def kind_of_mapping(keys: Iterable[str], data: Mapping[str, Any]) -> str | None:
    """The kind a YAML mapping is, from its top-level keys; None when none fits."""
    k = set(keys)
    if "command" in k:
        return "job"
    if "rules" in k or "extends" in k:
        return "rulebook"
    if k & _POOL_KEYS:
        return "pool"
    if k & _PLAN_KEYS:
        return "plan"
    if isinstance(data.get("tenants"), list):
        return "scenario"
    if k & _STUDY_KEYS or ("workload" in k and "jobs" not in k):
        return "study"
    if "services" in k:
        return "service"
    if "jobs" in k or "defaults" in k:
        return "workload"
    if "approvals" in k:
        return "approvals"
    return None


def detect_kind(path: Path, doc: YamlDoc | None) -> str:
    """The kind of ``path``; ``ValueError`` (with what was looked at) when it cannot tell."""
    if doc is None:
        head = _first_line_of(path).replace(" ", "")
        if head.startswith("sn,cpu_milli,"):
            return "nodes"
        if head.startswith("name,cpu_milli,") and not _has_times(head):
            return "pods"  # an openb pod list without times is packing input only
        return "workload"  # CSV traces, JSONL, Gavel folders: the trace readers tell them apart
    data = doc.data
    if isinstance(data, dict):
        kind = kind_of_mapping(data, data)
        if kind:
            return kind
        keys = ", ".join(map(str, list(data)[:8])) or "none"
        raise ValueError(
            f"cannot tell what kind of file this is from its top-level keys ({keys}); "
            f"give --kind, one of {', '.join(KINDS)}"
        )
    if isinstance(data, list) and data and all(isinstance(x, dict) and "kind" in x for x in data):
        return "approvals"
    got = "an empty file" if data is None else f"a {type(data).__name__}"
    raise ValueError(f"top level is {got}; every kind of file is a mapping of fields")


def _first_line_of(path: Path) -> str:
    if not path.is_file():
        return ""
    with path.open(encoding="utf-8", errors="replace") as f:
        return f.readline(4096).strip()


def _has_times(header: str) -> bool:
    return "creation_time" in header.split(",")


def _read_yaml(path: Path) -> YamlDoc:
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise ValueError(f"is {size:,} bytes; at most {MAX_BYTES:,} are read")
    return load(path.read_text(encoding="utf-8"), str(path))


def check_file(path: Path, kind: str | None = None) -> Outcome:
    """Detect (or take) the kind of ``path`` and check it with the product's own loader."""
    file = str(path)
    if not path.exists():
        return Outcome(file, kind or "unknown kind", findings=(Finding(file, "no such file"),))
    doc: YamlDoc | None = None
    try:
        if path.is_file() and (
            path.suffix.lower() in YAML_SUFFIXES or kind not in (None, "workload")
        ):
            doc = _read_yaml(path)
        kind = kind or detect_kind(path, doc)
    except YamlSyntaxError as exc:
        return Outcome(
            file,
            kind or "unknown kind",
            findings=(Finding(file, f"not valid YAML: {exc.reason}", "", exc.at),),
        )
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        return Outcome(file, kind or "unknown kind", findings=(Finding(file, str(exc)),))
    check = KINDS[kind][0]
    try:
        summary = check(path, doc)
    except (ValueError, OSError, KeyError) as exc:
        return Outcome(file, kind, findings=tuple(findings_of(exc, file, doc)))
    return Outcome(file, kind, summary)


# --- turning each loader's error into findings ----------------------------------------------


def _locate(doc: YamlDoc | None, exc_file: str, file: str, field: str) -> Position | None:
    """Where ``field`` sits in ``file`` (None when the error is about another file)."""
    if doc is None or Path(exc_file) != Path(file):
        return None
    return doc.position(field) or Position(1, 1)


def _clean_field(field: str) -> str:
    return "" if field in ("(top level)", "(file)") else field


def findings_of(exc: BaseException, file: str, doc: YamlDoc | None) -> list[Finding]:
    """The findings in an error raised by one of the product's loaders."""
    from computepool.admission.rulebook import RulebookError
    from computepool.placement.openb import TraceFileError
    from computepool.traces.errors import TraceError

    if isinstance(exc, YamlSyntaxError):
        return [Finding(exc.file, f"not valid YAML: {exc.reason}", "", exc.at)]
    if isinstance(exc, CatalogFileError):
        return [
            Finding(exc.file, p.reason, p.field, _locate(doc, exc.file, file, p.field))
            for p in exc.problems
        ]
    if isinstance(exc, RulebookError):
        out = []
        for field, reason in exc.problems:
            field = _clean_field(field)
            if field.startswith("line ") and field[5:].isdigit():
                out.append(Finding(exc.path, reason, "", Position(int(field[5:]), 1)))
            else:
                out.append(Finding(exc.path, reason, field, _locate(doc, exc.path, file, field)))
        return out
    if isinstance(exc, TraceError | TraceFileError):
        field = exc.field or ""
        at = _locate(doc, exc.file, file, field)
        if exc.line is not None and (at is None or at.line != exc.line):
            at = Position(exc.line)  # the reader's own line (a CSV row, a JSONL record)
        return [Finding(exc.file, exc.reason, field, at)]
    if isinstance(exc, ValidationError):
        return [
            Finding(file, p.reason, p.field, _locate(doc, file, file, p.field))
            for p in problems_from_validation(exc)
        ]
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return [Finding(file, str(message))]


__all__ = ["KINDS", "Finding", "Outcome", "check_file", "detect_kind", "findings_of", "split_path"]
