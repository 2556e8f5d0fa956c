"""``cpool audit``, ``cpool route``, ``cpool rules`` and ``cpool scenario``; residency options
shared with ``cpool simulate``/``compare``."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from computepool.cli.common import console, fail, load_or_exit
from computepool.cli.conventions import DEFAULT_URL, ServerAliasOpt, TokenOpt, UrlOpt, alias
from computepool.cli.output import (
    JsonFlagAliasOpt,
    Output,
    OutputOpt,
    build_table,
    emit,
    output_of,
    print_json,
    print_json_lines,
    print_table,
)
from computepool.model.pool import Pool
from computepool.model.workload import Workload

RulebookOpt = Annotated[
    str,
    typer.Option(
        "--rulebook",
        help="Residency rules: auto (on when the pool spans several jurisdictions), "
        "default (shipped rules), off, or an operator rulebook YAML.",
    ),
]
ApprovalsOpt = Annotated[
    Path | None, typer.Option("--approvals", help="Approvals YAML (kind, scope, expiry).")
]
AuditOpt = Annotated[
    Path | None, typer.Option("--audit", help="Write residency audit records as JSON lines.")
]
SimStartOpt = Annotated[
    str,
    typer.Option("--sim-start", help="Calendar date of simulated time 0 (approvals, counters)."),
]


def residency_checks(
    pool: Pool, rulebook: str, approvals: Path | None, sim_start: str
) -> tuple[Any, ...]:
    """``()`` or a one-element tuple with a fresh ``ResidencyCheck`` (exits on bad input)."""
    from computepool.admission.residency_config import ResidencyOptions, make_residency_check

    opts = ResidencyOptions(rulebook=rulebook, approvals=approvals, start=sim_start)
    check = load_or_exit(lambda: make_residency_check(pool, opts))
    return () if check is None else (check,)


def print_residency(
    checks: tuple[Any, ...], workload: Workload, audit: Path | None, label: str = ""
) -> None:
    if not checks:
        if audit is not None:
            raise fail("--audit: residency is off for this pool (use --rulebook default)")
        return
    check = checks[0]
    counts = check.audit.counts_by_rule()
    t = Table(title=" · ".join(x for x in ("Residency", label, check.rulebook.source) if x))
    t.add_column("rule")
    t.add_column("starts allowed", justify="right")
    t.add_column("jobs rejected", justify="right")
    rejected = Counter()
    for src, n in counts["rejected"].items():
        for rule in src.removeprefix("residency:").split(","):
            rejected[rule] += n
    for rule in sorted(set(counts["allowed"]) | set(rejected)):
        t.add_row(rule, f"{counts['allowed'].get(rule, 0):,}", f"{rejected.get(rule, 0):,}")
    console.print(t)
    s = check.summary(workload)["residency"]
    console.print(
        f"transfers: {s['transfer_tb']:.2f} TB, egress {s['egress_usd']:,.0f} USD, "
        f"start delay {s['transfer_delay_hours']:.1f} h in all"
    )
    if audit is not None:
        n = check.audit.write_jsonl(
            audit, workload.ids, [workload.tenants[i] for i in workload.tenant]
        )
        console.print(f"wrote {n:,} audit records to {audit}")


def _route_here(body: Any, pool: str, rulebook: str, approvals: Path | None) -> dict[str, Any]:
    from computepool.catalog.pools import load_pool
    from computepool.routing.api import route_one
    from computepool.routing.latency import load_latency_model

    p = load_or_exit(lambda: load_pool(pool))
    checks = residency_checks(
        p, rulebook if rulebook != "auto" else "default", approvals, "2026-01-01"
    )
    if not checks:
        raise fail("--rulebook off: routing needs the rules to know where data may go")
    model = load_or_exit(load_latency_model)
    return load_or_exit(lambda: route_one(body, checks[0], model))


def _filter(records, job, tenant, rule, outcome):
    out = []
    for r in records:
        if job is not None and r["job"] != job:
            continue
        if tenant is not None and r.get("tenant") != tenant:
            continue
        if outcome is not None and r["outcome"] != outcome:
            continue
        if rule is not None and not any(
            d == rule or d.startswith(rule + "/") or rule in d.split(":")[-1].split(",")
            for d in r.get("decided_by", [])
        ):
            continue
        out.append(r)
    return out


def register(app: typer.Typer) -> None:
    from computepool.cli import approvals_cmd

    approvals_cmd.register(app)

    @app.command()
    def audit(
        source: Annotated[
            str | None,
            typer.Argument(
                help="Audit JSON lines (from `cpool simulate --audit`) or a server URL "
                "(default: --url)."
            ),
        ] = None,
        job: Annotated[str | None, typer.Option("--job", help="Only this job.")] = None,
        tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant.")] = None,
        rule: Annotated[
            str | None, typer.Option("--rule", help="Only decisions by this rule, e.g. CN-5.")
        ] = None,
        outcome: Annotated[
            str | None, typer.Option("--outcome", help="allowed or rejected.")
        ] = None,
        limit: Annotated[int, typer.Option("--limit", help="Show the last N records.")] = 50,
        output: Annotated[
            Output,
            typer.Option(
                "--output",
                "-o",
                help="table (fits 80 columns), wide (every column) or json (one JSON object "
                "per line, the audit file's format).",
                case_sensitive=False,
            ),
        ] = Output.table,
        json_flag: JsonFlagAliasOpt = False,
        url: UrlOpt = DEFAULT_URL,
        server: ServerAliasOpt = None,
        token: TokenOpt = None,
    ) -> None:
        """Show placement decisions: job, region, rules consulted, the rule that decided.

        From a simulation's audit file, or from a live server (a tenant's token shows its own
        jobs' records, an admin's all)."""
        from computepool.admission.audit import read_jsonl
        from computepool.cli.residency_view import audit_columns

        url = alias(url, server, "--url", "--server", DEFAULT_URL)
        output = output_of(output, json_flag)
        if outcome not in (None, "allowed", "rejected"):
            raise fail(f"--outcome {outcome!r}: expected allowed or rejected")
        if source is None or source.startswith(("http://", "https://")):
            from computepool.cli.jobs_cmd import Client

            params: dict[str, Any] = {"limit": max(limit, 1)}
            for k, v in (("job", job), ("tenant", tenant), ("rule", rule), ("outcome", outcome)):
                if v is not None:
                    params[k] = v
            base = source or url
            records = Client(base, token).call("GET", "/v1/residency/audit", params=params).json()
        else:
            path = source
            records = load_or_exit(lambda: read_jsonl(path))
        records = _filter(records, job, tenant, rule, outcome)
        shown = records[-limit:] if limit > 0 else []
        if output == Output.json:
            print_json_lines(shown)
            return
        more = f", last {limit:,}" if len(records) > limit else ""
        wide = output == Output.wide
        title = f"Audit records ({len(records):,}{more})"
        print_table(build_table(audit_columns(shown), shown, wide, console.width, title), wide)
        by = Counter(d.split("/")[0] for r in records for d in r.get("decided_by", []))
        if by:
            console.print("by rule: " + ", ".join(f"{k} {v:,}" for k, v in sorted(by.items())))

    @app.command()
    def route(
        ctx: typer.Context,
        source: Annotated[
            str,
            typer.Option("--from", help="Site name (see `cpool rules --sites`) or LAT,LON[,JUR]."),
        ],
        deadline_ms: Annotated[float, typer.Option("--deadline-ms", help="End-to-end deadline.")],
        work_h100_ms: Annotated[
            float, typer.Option("--work-h100-ms", help="Compute the request needs, in H100-ms.")
        ],
        pool: Annotated[
            str | None,
            typer.Option(
                "--pool",
                help="Answer here, on this pool (name or YAML; default automotive-demo).",
                show_default=False,
            ),
        ] = None,
        network: Annotated[str, typer.Option("--network", help="5g, 4g or wired.")] = "5g",
        data_class: Annotated[
            str, typer.Option("--data-class", help="Class of the request's data.")
        ] = "general",
        origin: Annotated[str, typer.Option("--origin", help="Jurisdiction of the data.")] = "",
        stacks: Annotated[str, typer.Option("--stacks", help="Comma-separated stacks.")] = "",
        prefer: Annotated[str, typer.Option("--prefer", help="latency or cost.")] = "latency",
        rulebook: RulebookOpt = "default",
        approvals: ApprovalsOpt = None,
        output: OutputOpt = Output.table,
        json_flag: JsonFlagAliasOpt = False,
        handler: Annotated[
            str, typer.Option("--handler", help="Data controller (approvals are per handler).")
        ] = "",
        url: Annotated[
            str | None,
            typer.Option(
                "--url",
                envvar="CPOOL_URL",
                show_envvar=True,
                help="Ask this live server (its pool, rules and approvals on record) instead "
                "of answering here; an explicit --pool answers here even with $CPOOL_URL set.",
            ),
        ] = None,
        server: ServerAliasOpt = None,
        token: TokenOpt = None,
    ) -> None:
        """Where should one latency-bound request run (region + flavor), or on the device?"""
        from computepool.cli.residency_view import ROUTE_COLUMNS, route_verdict
        from computepool.routing.api import RouteIn

        url = alias(url, server, "--url", "--server")
        output = output_of(output, json_flag)
        if prefer not in ("latency", "cost"):
            raise fail(f"--prefer {prefer!r}: expected latency or cost")
        if url is not None and pool is not None:
            if ctx.get_parameter_source("url").name == "ENVIRONMENT":
                url = None  # an explicit --pool beats $CPOOL_URL
            else:
                raise fail("give --pool (answer here) or --url (ask a server), not both")
        data = (
            [{"data_class": data_class, "origin": origin, "handler": handler}]
            if data_class != "general" or origin
            else []
        )
        body = RouteIn(
            source=source, deadline_ms=deadline_ms, work_h100_ms=work_h100_ms, network=network,
            data=data, stacks=[s for s in stacks.split(",") if s], prefer=prefer,
        )  # fmt: skip
        if url is not None:
            from computepool.cli.jobs_cmd import Client

            payload = body.model_dump()
            ans = Client(url, token).call("POST", "/v1/residency/route", json=payload).json()
        else:
            ans = _route_here(body, pool or "automotive-demo", rulebook, approvals)
        if output == Output.json:
            print_json(ans)
            return
        title = f"Options for a request from {source} ({network}), deadline {deadline_ms:.0f} ms"
        options = sorted(ans["options"], key=lambda o: o["total_ms"])
        emit(output, ROUTE_COLUMNS, options, title)
        console.print(route_verdict(ans), highlight=False)

    @app.command()
    def rules(
        rulebook: Annotated[
            str, typer.Option("--rulebook", help="default or a rulebook YAML to check.")
        ] = "default",
        sites: Annotated[
            bool, typer.Option("--sites/--no-sites", help="Also list request sites.")
        ] = False,
        output: OutputOpt = Output.table,
    ) -> None:
        """Show (and validate) a residency rulebook."""
        from computepool.admission.rulebook import load_rulebook
        from computepool.cli.residency_view import RULE_COLUMNS, rule_doc

        rb = load_or_exit(lambda: load_rulebook(None if rulebook == "default" else rulebook))
        docs = [rule_doc(r) for r in rb.rules]
        if output == Output.json:
            print_json({"source": rb.source, "automotive_strict": rb.automotive_strict,
                        "rules": docs})  # fmt: skip
            return
        emit(output, RULE_COLUMNS, docs, f"{rb.source} · automotive_strict={rb.automotive_strict}")
        if sites:
            from computepool.routing.latency import load_latency_model

            m = load_latency_model()
            console.print(
                "sites: " + ", ".join(f"{s.name} ({s.jurisdiction})" for s in m.sites.values())
            )

    @app.command()
    def scenario(
        file: Annotated[
            Path,
            typer.Argument(help="Scenario YAML, e.g. examples/residency/three-automakers.yaml"),
        ],
        report: Annotated[
            Path | None, typer.Option("--report", help="Write an HTML report.")
        ] = None,
        json_out: Annotated[
            Path | None, typer.Option("--json", help="Write the figures as JSON.")
        ] = None,
        audit: AuditOpt = None,
        output: OutputOpt = Output.table,
    ) -> None:
        """Run a multi-tenant residency scenario: jobs, approvals, an offload stream; report."""
        from computepool.cli.residency_view import SCENARIO_COLUMNS
        from computepool.scenario.residency import load_scenario, run_scenario

        spec = load_or_exit(lambda: load_scenario(file))
        out = load_or_exit(lambda: run_scenario(spec))
        if output == Output.json:
            print_json(out.figures())
        else:
            title = f"{spec.name} · pool {spec.pool} · policy {spec.policy}"
            emit(output, SCENARIO_COLUMNS, out.tenants, title)
        if json_out is not None:
            json_out.write_text(json.dumps(out.figures(), indent=2, default=str) + "\n")
            console.print(f"wrote {json_out}")
        if report is not None:
            from computepool.scenario.report import render_scenario_report

            report.write_text(render_scenario_report(out))
            console.print(f"wrote {report}")
        if audit is not None:
            n = out.write_audit(audit)
            console.print(f"wrote {n:,} audit records to {audit}")
