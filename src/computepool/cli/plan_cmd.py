"""``cpool plan`` (capacity MILP) and ``cpool pool-vs-silos`` (rent vs build)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from computepool.cli.common import console, err_console, fail, load_or_exit, progress_bar

JsonOpt = Annotated[Path | None, typer.Option("--json", help="Write the result as JSON.")]
ReportOpt = Annotated[Path | None, typer.Option("--report", help="Write an HTML report.")]


def _usd(v: float) -> str:
    from computepool.plan.report import usd

    return usd(v)


def purchase_cells(line: dict) -> list[str]:
    """A purchase line as table cells: its lot, its fabric's size and what its cards do."""
    fab = line["fabric"]
    return [
        str(line["year"]),
        line["site"],
        line["chip"],
        f"{line['nodes']:,}",
        f"{line['cards']:,}",
        f"{line['min_order']:,}",
        f"{fab['cards']:,}",
        ", ".join(fab["counts_toward"]) or "idle",
    ]


def _plan_tables(p) -> list[Table]:
    from computepool.plan.lines import schedule_lines

    sc = p.scenario
    sched = Table(title=f"build schedule · {sc.name}")
    for col in ("year", "site", "chip", "nodes", "cards", "min order", "fabric", "serves"):
        sched.add_column(col, justify="left" if col in ("site", "chip", "serves") else "right")
    for line in schedule_lines(p):
        if line["nodes"]:
            sched.add_row(*purchase_cells(line))
    years = Table(title="per year")
    for col in ("year", "spend", "energy", "MW", "t CO2", "vendor mix"):
        years.add_column(col, justify="right")
    total, opex, pw, co2 = (
        p.total_by_year(),
        p.opex_by_year(),
        p.power_mw().sum(0),
        p.carbon_t_by_year(),
    )
    shares = p.vendor_share()
    for t, y in enumerate(sc.years):
        mix = ", ".join(f"{v} {s[t]:.0%}" for v, s in shares.items() if s[t] > 0.005)
        years.add_row(str(y), _usd(total[t]), _usd(opex[t]), f"{pw[t]:,.1f}", f"{co2[t]:,.0f}", mix)
    targets = Table(title="targets")
    for col in ("target", "required", "delivered"):
        targets.add_column(col, justify="left" if col == "target" else "right")
    for tg, got in zip(sc.targets, p.achieved(), strict=True):
        targets.add_row(tg.name, f"{tg.value:,.1f} {tg.unit}", f"{got:,.1f}")
    return [sched, years, targets]


def register(app: typer.Typer) -> None:
    @app.command()
    def plan(
        scenario: Annotated[Path, typer.Argument(help="Scenario YAML (see docs/planner.md).")],
        json_out: JsonOpt = None,
        report: ReportOpt = None,
        sweep: Annotated[
            str | None,
            typer.Option(
                "--sweep",
                help="PARAM=START:STOP:STEPS or PARAM=V1,V2 (e.g. supply:nvidia=1:0:6); "
                "params: supply:X, price:X, target, electricity, discount_rate, vendor_cap, budget.",
            ),
        ] = None,
        time_limit: Annotated[
            float, typer.Option("--time-limit", help="HiGHS time limit per solve (s).")
        ] = 60.0,
        gap: Annotated[
            float,
            typer.Option("--gap", help="Relative MIP gap to stop at (1e-3 for tighter plans)."),
        ] = 1e-2,
    ) -> None:
        """Plan what to build: cards per chip, site and year at least net present cost.

        Exits 1 when the scenario is infeasible (the explanation and the closest plan are shown
        and written).
        """
        from computepool.plan.result import PlanError, solve_plan
        from computepool.plan.scenario import load_scenario
        from computepool.plan.sweep import SweepError, parse_sweep, run_sweep

        sc = load_or_exit(lambda: load_scenario(scenario))
        spec = None
        if sweep:
            try:
                spec = parse_sweep(sweep)
            except SweepError as exc:
                raise fail(str(exc)) from None
        try:
            p = solve_plan(sc, time_limit, gap)
            points = None
            if spec is not None:
                with progress_bar(f"sweeping {spec.param}") as update:
                    points = run_sweep(sc, spec, time_limit, gap, lambda i, n: update(i / n))
        except (PlanError, SweepError) as exc:
            raise fail(str(exc)) from None
        for t in _plan_tables(p):
            console.print(t)
        status = "feasible" if p.feasible else "[bold red]INFEASIBLE[/] (closest plan above)"
        console.print(
            f"{status} · net present cost {_usd(p.npv_usd())} · HiGHS {p.stats.status} in "
            f"{p.stats.seconds:.2f} s, gap {0.0 if p.stats.gap is None else p.stats.gap:.3%}"
        )
        if p.explanation is not None:
            for line in p.explanation.lines():
                err_console.print(f"  {line}", highlight=False)
        elif p.binding:
            console.print("limits: " + "; ".join(b.sentence() for b in p.binding))
        if points is not None and spec is not None:
            st = Table(title=f"sweep {spec.param}")
            for col in ("value", "feasible", "net present cost"):
                st.add_column(col, justify="right")
            for pt in points:
                st.add_row(
                    f"{pt.value:g}", "yes" if pt.plan.feasible else "no", _usd(pt.plan.npv_usd())
                )
            console.print(st)
        if json_out is not None:
            doc = p.to_dict()
            if points is not None and spec is not None:
                doc["sweep"] = {
                    "param": spec.param,
                    "points": [
                        {
                            "value": pt.value,
                            "feasible": pt.plan.feasible,
                            "npv_usd": pt.plan.npv_usd(),
                            "explanation": pt.plan.explanation.lines()
                            if pt.plan.explanation
                            else None,
                        }
                        for pt in points
                    ],
                }
            json_out.write_text(json.dumps(doc, indent=2) + "\n")
            console.print(f"wrote {json_out}")
        if report is not None:
            from computepool.plan.report import render_plan_report

            sweep_arg = (spec, points) if spec is not None and points is not None else None
            report.write_text(render_plan_report(p, sweep_arg))
            console.print(f"wrote {report}")
        if not p.feasible:
            raise typer.Exit(1)

    @app.command("pool-vs-silos")
    def pool_vs_silos(
        study: Annotated[
            Path | None, typer.Argument(help="Study YAML (optional; flags override it).")
        ] = None,
        workload: Annotated[
            str | None, typer.Option("--workload", help="Trace with tenants (e.g. Philly CSV).")
        ] = None,
        tenants: Annotated[
            int | None, typer.Option("--tenants", help="Keep the N tenants with the most work.")
        ] = None,
        start_day: Annotated[
            float | None, typer.Option("--start-day", help="First day of the window.")
        ] = None,
        days: Annotated[float | None, typer.Option("--days", help="Window length in days.")] = None,
        policy: Annotated[str | None, typer.Option("--policy", help="Scheduling policy.")] = None,
        peak_quantile: Annotated[
            float | None,
            typer.Option(
                "--peak-quantile",
                help="Size each silo at this quantile of its demand (1.0: its true peak).",
            ),
        ] = None,
        json_out: JsonOpt = None,
        report: ReportOpt = None,
    ) -> None:
        """Rent vs build: each tenant's own cluster vs one pool vs a smaller pool, simulated."""
        from computepool.plan.silos import run_study
        from computepool.plan.silos_report import (
            SHORT_HEADERS,
            render_silos_report,
            summary_rows,
            tenant_table,
        )
        from computepool.plan.silos_study import build_input, load_study

        overrides = {
            "workload": workload,
            "tenants": tenants,
            "start_day": start_day,
            "days": days,
            "policy": policy,
            "peak_quantile": peak_quantile,
        }
        st, base = load_or_exit(lambda: load_study(study, overrides))
        inp, facts = load_or_exit(lambda: build_input(st, base))
        with progress_bar("simulating silos and pools") as update:
            res = run_study(inp, lambda _label, frac: update(frac))
        t = Table(title=f"pool vs silos · {st.name}")
        for h in SHORT_HEADERS:
            t.add_column(h, justify="right" if h else "left")
        for row in summary_rows(res, short=True):
            t.add_row(*row)
        console.print(t)
        console.print(f"silo sizing: {res.sizing_rule}")
        console.print(tenant_table(res))
        for n in res.notes:
            console.print(n)
        if json_out is not None:
            doc = {
                "study": st.model_dump(),
                "sizing_rule": res.sizing_rule,
                "facts": facts,
                "jct_target_hours": res.jct_target_hours,
                "arrangements": {
                    a.name: {**a.__dict__, "cost_per_useful_hour": a.cost_per_useful_hour}
                    for a in (res.silos, res.pool, res.smaller)
                    if a is not None
                },
                "tenants": [r.__dict__ for r in res.tenants],
                "search": res.search,
                "wall_seconds": res.wall_seconds,
            }
            json_out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
            console.print(f"wrote {json_out}")
        if report is not None:
            report.write_text(render_silos_report(res, inp, facts, st.name))
            console.print(f"wrote {report}")
