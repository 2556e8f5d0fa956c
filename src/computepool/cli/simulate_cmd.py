"""``cpool simulate`` and ``cpool compare``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from computepool.cli.common import console, fail, load_or_exit, parse_window, progress_bar
from computepool.cli.residency_cmd import (
    ApprovalsOpt,
    AuditOpt,
    RulebookOpt,
    SimStartOpt,
    print_residency,
    residency_checks,
)
from computepool.policies.registry import policy_names
from computepool.sim.metrics import SimResult
from computepool.sim.run import SimConfig
from computepool.sim.runner import (
    FTF_BASELINES,
    isolated_jct,
    load_inputs,
    run_policy,
    use_ftf_baseline,
    with_serving_mode,
    with_serving_settings,
)

PoolOpt = Annotated[
    str, typer.Option("--pool", help="Shipped pool name (see `cpool catalog`) or a pool YAML path.")
]
WorkloadOpt = Annotated[
    str,
    typer.Option(
        "--workload",
        help="Trace path (format detected) or generator spec, e.g. gavel:rate=5.6,jobs=6000,seed=0",
    ),
]
FormatOpt = Annotated[str | None, typer.Option("--format", help="Force the trace format.")]
SeedOpt = Annotated[
    int | None, typer.Option("--seed", help="Seed for generator specs that set none.")
]
RoundOpt = Annotated[float, typer.Option("--round-seconds", help="Scheduling round length.")]
WindowOpt = Annotated[
    str | None, typer.Option("--window", help="A:B - measure JCT on jobs A..B-1 (arrival order).")
]
PenaltyOpt = Annotated[
    float, typer.Option("--restart-penalty", help="Seconds lost at each (re)start of a job.")
]
UntilOpt = Annotated[
    float | None, typer.Option("--until-hours", help="Stop after this simulated time.")
]
TputOpt = Annotated[str, typer.Option("--throughputs", help="Throughput table name or JSON path.")]
PlacementOpt = Annotated[
    str | None,
    typer.Option(
        "--placement",
        help="Bind jobs to node devices with this placement profile (e.g. fgd, bestfit); "
        "reports fragmentation over time.",
    ),
]


def _check_placement(name: str | None, policies: list[str]) -> None:
    if name is None:
        return
    from computepool.placement.profiles import profile_names
    from computepool.policies.registry import get_policy
    from computepool.scheduler.round import check_policy_placement

    if name not in profile_names():
        raise fail(f"unknown placement profile {name!r}; known: {', '.join(profile_names())}")
    for policy in policies:
        load_or_exit(lambda p=policy: check_policy_placement(get_policy(p), placed=True))


SERVING_MODES = ("pooled", "dedicated", "dedicated-best")
ServingOpt = Annotated[
    str | None,
    typer.Option(
        "--serving",
        help="How the workload's services run: pooled (autoscaled, packed; default), "
        "dedicated (whole devices of the first listed card, sized for the previous period's "
        "peak) or dedicated-best (the same on each model's cheapest card).",
    ),
]

ServingSetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--serving-set",
        help="Change one serving: setting of the workload, KEY=VALUE (repeatable; "
        "perf.KEY=VALUE for a perf assumption), e.g. --serving-set mux_merge=true.",
    ),
]

SUMMARY_ROWS = [
    ("avg_jct_hours", "avg JCT (h)", "{:.2f}"),
    ("p50_jct_hours", "p50 JCT (h)", "{:.2f}"),
    ("p99_jct_hours", "p99 JCT (h)", "{:.2f}"),
    ("makespan_hours", "makespan (h)", "{:.1f}"),
    ("mean_ftf_rho", "mean FTF rho", "{:.3f}"),
    ("mean_queueing_delay_hours", "queueing delay (h)", "{:.2f}"),
    ("jobs_completed", "jobs completed", "{}"),
    ("jobs_rejected", "jobs rejected", "{}"),
    ("utilization_overall", "utilisation", "{:.1%}"),
    ("accelerator_hours", "accelerator-hours", "{:,.0f}"),
    ("energy_mwh", "energy (MWh)", "{:,.2f}"),
    ("cost_usd", "cost (USD)", "{:,.0f}"),
    ("carbon_t", "carbon (t CO2)", "{:,.2f}"),
    ("preemptions", "preemptions", "{:,}"),
    ("rounds", "rounds", "{:,}"),
    ("wall_seconds", "wall (s)", "{:.2f}"),
    ("mean_fragmented_share", "fragmented (mean)", "{:.1%}"),
]


def _fmt(value: object, pattern: str) -> str:
    if value is None:
        return "-"
    try:
        return pattern.format(value)
    except (ValueError, TypeError):
        return str(value)


def summary_table(results: list[SimResult], title: str) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    summaries = [r.summary() for r in results]
    for r in results:
        table.add_column(r.policy, justify="right")
    for key, label, pattern in SUMMARY_ROWS:
        table.add_row(label, *(_fmt(s.get(key), pattern) for s in summaries))
    for flavor in results[0].flavors if results else []:
        table.add_row(
            f"util {flavor}", *(_fmt(s["utilization"].get(flavor), "{:.1%}") for s in summaries)
        )
    return table


def _load_with_serving(
    pool: str,
    workload: str,
    fmt: str | None,
    seed: int | None,
    tput: str,
    serving: str | None,
    settings: list[str] | None = None,
):
    """The inputs, with the services run as ``--serving`` and ``--serving-set`` say (checked
    first)."""
    if serving is not None and serving not in SERVING_MODES:
        raise fail(f"--serving {serving!r}: give one of {', '.join(SERVING_MODES)}")
    inputs = load_or_exit(lambda: load_inputs(pool, workload, fmt, seed, tput))
    if (serving is not None or settings) and inputs.services is None:
        opt = "--serving" if serving is not None else "--serving-set"
        raise fail(f"{opt}: workload {workload!r} has no services: section")
    inputs = with_serving_mode(inputs, serving)
    try:
        return with_serving_settings(inputs, settings or [])
    except ValueError as exc:
        raise fail(f"--serving-set {exc}") from None


def _audit_path(audit: Path | None, policy: str, policies: int) -> Path | None:
    """``--audit F``: F for one policy; F with the policy before the suffix for several
    (``audit.jsonl`` -> ``audit.fifo.jsonl``)."""
    if audit is None or policies == 1:
        return audit
    return audit.with_name(f"{audit.stem}.{policy}{audit.suffix}")


def _check_policies(names: list[str]) -> None:
    known = set(policy_names())
    for n in names:
        if n not in known:
            raise fail(f"unknown policy {n!r}; known: {', '.join(sorted(known))}")


def result_docs(results: list[SimResult]) -> list[dict]:
    """The results as ``--json`` writes them (plain JSON values), which the report draws."""
    from computepool.report.timeline import sim_doc
    from computepool.sim.metrics import _jsonable

    return json.loads(json.dumps([sim_doc(r) for r in results], default=_jsonable))


def _write_outputs(
    results: list[SimResult], json_out: Path | None, report: Path | None, command: str
) -> None:
    """``--json`` and ``--report``: the report is the one ``cpool report`` draws from the JSON."""
    if json_out is None and report is None:
        return
    docs = result_docs(results)
    if json_out is not None:
        doc = docs[0] if len(docs) == 1 else docs
        json_out.write_text(json.dumps(doc, indent=2) + "\n")
        console.print(f"wrote {json_out}")
    if report is not None:
        from computepool.report.saved import render_simulation

        report.write_text(render_simulation(docs, generator=command))
        console.print(f"wrote {report}")


FtfBaselineOpt = Annotated[
    str,
    typer.Option(
        "--ftf-baseline",
        help="Finish-time fairness rho denominator: 'analytic' (1/N-share run time, cheap) or "
        "'isolated' (Gavel: JCT in a second simulation under the isolated policy).",
    ),
]


StarveOpt = Annotated[
    float,
    typer.Option(
        "--starvation-rounds",
        help="Time-shared policies: a job owed more than this many rounds of its share on a "
        "flavor runs ahead of Gavel's priority order (keeps large gangs from starving); "
        "'inf' gives Gavel's order exactly.",
    ),
]


def _starvation(rounds: float) -> float:
    if not rounds > 0:
        raise fail(f"--starvation-rounds must be > 0 (or inf), got {rounds}")
    return rounds


def _ftf_baseline(name: str) -> str:
    if name not in FTF_BASELINES:
        raise fail(f"--ftf-baseline must be one of {', '.join(FTF_BASELINES)}")
    return name


def register(app: typer.Typer) -> None:
    @app.command()
    def simulate(
        pool: Annotated[
            str | None,
            typer.Option(
                "--pool", help="Shipped pool name (see `cpool catalog`) or a pool YAML path."
            ),
        ] = None,
        workload: Annotated[
            str | None,
            typer.Option(
                "--workload",
                help="Trace path (format detected) or generator spec, e.g. "
                "gavel:rate=5.6,jobs=6000,seed=0",
            ),
        ] = None,
        policy: Annotated[
            str | None,
            typer.Option("--policy", help="Policy name (default fifo; with --from the pool's)."),
        ] = None,
        from_snapshot: Annotated[
            Path | None,
            typer.Option(
                "--from",
                help="A live pool's snapshot (`cpool snapshot`): predict when each queued job "
                "starts and ends (instead of --pool and --workload).",
            ),
        ] = None,
        add: Annotated[
            list[str] | None,
            typer.Option(
                "--add",
                help="With --from: add nodes, REGION/ACCEL=NxPER, e.g. cn-ulanqab/H800=4x8 "
                "(repeatable).",
            ),
        ] = None,
        seed: SeedOpt = None,
        round_seconds: RoundOpt = 360.0,
        window: WindowOpt = None,
        json_out: Annotated[
            Path | None, typer.Option("--json", help="Write the summary JSON.")
        ] = None,
        report: Annotated[
            Path | None, typer.Option("--report", help="Write an HTML report.")
        ] = None,
        fmt: FormatOpt = None,
        restart_penalty: PenaltyOpt = 0.0,
        until_hours: UntilOpt = None,
        throughputs: TputOpt = "gavel",
        rulebook: RulebookOpt = "auto",
        approvals: ApprovalsOpt = None,
        audit: AuditOpt = None,
        sim_start: SimStartOpt = "2026-01-01",
        placement: PlacementOpt = None,
        serving: ServingOpt = None,
        serving_set: ServingSetOpt = None,
        ftf_baseline: FtfBaselineOpt = "analytic",
        starvation_rounds: StarveOpt = 2.0,
    ) -> None:
        """Simulate a workload on a pool under one policy and print the figures."""
        if from_snapshot is not None:
            if pool or workload:
                raise fail("--from replaces --pool and --workload: give one or the other")
            from computepool.cli.whatif_cmd import simulate_from

            simulate_from(from_snapshot, policy, add or [], round_seconds, throughputs, json_out)
            return
        if not pool or not workload:
            raise fail("give --pool and --workload (or --from SNAPSHOT.json)")
        if add:
            raise fail("--add goes with --from")
        policy = policy or "fifo"
        _check_policies([policy])
        _ftf_baseline(ftf_baseline)
        _check_placement(placement, [policy])
        win = parse_window(window)
        inputs = _load_with_serving(pool, workload, fmt, seed, throughputs, serving, serving_set)
        checks = residency_checks(inputs.pool, rulebook, approvals, sim_start)
        cfg = SimConfig(
            round_seconds=round_seconds,
            restart_penalty_s=restart_penalty,
            window=win,
            until=until_hours * 3600.0 if until_hours else float("inf"),
            placement=placement,
            starvation_rounds=_starvation(starvation_rounds),
        )
        with progress_bar(f"simulating {policy}") as update:
            res = run_policy(inputs, policy, cfg, on_progress=update, checks=checks)
        if ftf_baseline == "isolated":
            iso_checks = residency_checks(inputs.pool, rulebook, approvals, sim_start)
            with progress_bar("simulating isolated (rho baseline)"):
                use_ftf_baseline(res, isolated_jct(inputs, cfg, iso_checks))
        console.print(
            summary_table([res], f"{inputs.pool.name} · {inputs.workload.name or workload}")
        )
        print_residency(checks, inputs.workload, audit)
        if "services" in res.extra:
            from computepool.cli.serving_view import print_services

            print_services(res.extra["services"], res.extra["serving"])
        _write_outputs([res], json_out, report, "cpool simulate")

    @app.command()
    def compare(
        pool: PoolOpt,
        workload: WorkloadOpt,
        policies: Annotated[str, typer.Option("--policies", help="Comma-separated policy names.")],
        seed: SeedOpt = None,
        round_seconds: RoundOpt = 360.0,
        window: WindowOpt = None,
        json_out: Annotated[
            Path | None, typer.Option("--json", help="Write all summaries as JSON.")
        ] = None,
        report: Annotated[
            Path | None, typer.Option("--report", help="Write an HTML report.")
        ] = None,
        fmt: FormatOpt = None,
        restart_penalty: PenaltyOpt = 0.0,
        until_hours: UntilOpt = None,
        throughputs: TputOpt = "gavel",
        rulebook: RulebookOpt = "auto",
        approvals: ApprovalsOpt = None,
        audit: Annotated[
            Path | None,
            typer.Option(
                "--audit",
                help="Write residency audit records as JSON lines, one file per policy "
                "(audit.jsonl -> audit.POLICY.jsonl when there are several).",
            ),
        ] = None,
        sim_start: SimStartOpt = "2026-01-01",
        placement: PlacementOpt = None,
        serving: ServingOpt = None,
        serving_set: ServingSetOpt = None,
        ftf_baseline: FtfBaselineOpt = "analytic",
        starvation_rounds: StarveOpt = 2.0,
    ) -> None:
        """Run several policies on the same pool and workload; show them side by side."""
        _ftf_baseline(ftf_baseline)
        names = [p.strip() for p in policies.split(",") if p.strip()]
        if not names:
            raise fail("--policies is empty")
        _check_policies(names)
        _check_placement(placement, names)
        win = parse_window(window)
        inputs = _load_with_serving(pool, workload, fmt, seed, throughputs, serving, serving_set)
        cfg = SimConfig(
            round_seconds=round_seconds,
            restart_penalty_s=restart_penalty,
            window=win,
            until=until_hours * 3600.0 if until_hours else float("inf"),
            placement=placement,
            starvation_rounds=_starvation(starvation_rounds),
        )
        results, all_checks = [], []
        for name in names:
            checks = residency_checks(inputs.pool, rulebook, approvals, sim_start)
            with progress_bar(f"simulating {name}") as update:
                results.append(run_policy(inputs, name, cfg, on_progress=update, checks=checks))
            all_checks.append(checks)
        if ftf_baseline == "isolated":
            iso_checks = residency_checks(inputs.pool, rulebook, approvals, sim_start)
            with progress_bar("simulating isolated (rho baseline)"):
                iso = isolated_jct(inputs, cfg, iso_checks)
            for r in results:
                use_ftf_baseline(r, iso)
        console.print(
            summary_table(results, f"{inputs.pool.name} · {inputs.workload.name or workload}")
        )
        for name, checks in zip(names, all_checks, strict=True):
            print_residency(checks, inputs.workload, _audit_path(audit, name, len(names)), name)
        for r in results:
            if "services" in r.extra:
                from computepool.cli.serving_view import print_services

                console.print(f"[bold]{r.policy}[/]", highlight=False)
                print_services(r.extra["services"], r.extra["serving"])
        _write_outputs(results, json_out, report, "cpool compare")
