"""``cpool snapshot`` (the live pool as it stands) and ``cpool simulate --from`` (what happens
to its queue, under its policy or another, with nodes added)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from computepool.cli.common import console, fail, load_or_exit, progress_bar
from computepool.cli.conventions import DEFAULT_URL, TokenOpt, UrlOpt
from computepool.cli.output import Col, build_table, print_table

#: Rounds of a what-if: the live pool's own 1 s rounds would make hours of queue slow to
#: simulate; a prediction is good to about a round.
WHATIF_ROUND_S = 60.0


def _when(s: float | None) -> str:
    if s is None:
        return "-"
    h, rem = divmod(int(round(s)), 3600)
    m, sec = divmod(rem, 60)
    return f"+{h}h{m:02d}m" if h else f"+{m}m{sec:02d}s"


COLUMNS = [
    Col("JOB", lambda r: escape(r["id"]), key=True),
    Col("TENANT", lambda r: escape(r["tenant"]), key=True),
    Col("ACC", lambda r: str(r["accelerators"]), key=True, right=True),
    Col("NOW", lambda r: "running" if r["running"] else "waiting", key=True),
    Col("STARTS", lambda r: _when(r["start_s"]), key=True, right=True),
    Col("ENDS", lambda r: _when(r["end_s"]), key=True, right=True),
]


def simulate_from(
    path: Path,
    policy: str | None,
    add: list[str],
    round_seconds: float,
    throughputs: str,
    json_out: Path | None,
) -> None:
    from computepool.policies.registry import policy_names
    from computepool.sim.run import SimConfig
    from computepool.sim.runner import run_policy
    from computepool.sim.whatif import predictions, read_snapshot, whatif_inputs

    snap = load_or_exit(lambda: read_snapshot(path))
    what = load_or_exit(lambda: whatif_inputs(snap, str(path), add, throughputs))
    name = policy or str(snap.settings.get("policy", "fifo-sticky"))
    if name not in policy_names():
        raise fail(f"unknown policy {name!r}; known: {', '.join(policy_names())}")
    # the simulator's default round (360 s, Gavel's) is coarse for a live queue
    rnd = WHATIF_ROUND_S if round_seconds == 360.0 else round_seconds
    cfg = SimConfig(round_seconds=rnd)
    with progress_bar(f"what-if under {name}") as update:
        res = run_policy(what.inputs, name, cfg, on_progress=update)
    rows = predictions(what, res)
    title = f"{snap.pool.name}: {sum(not r['running'] for r in rows)} waiting, policy {name}"
    if add:
        title += f", + {', '.join(add)}"
    print_table(build_table(COLUMNS, rows, False, console.width, title), False)
    if json_out is not None:
        doc = {"snapshot_taken_at": snap.taken_at, "policy": name, "round_seconds": rnd,
               "add": add, "jobs": rows}  # fmt: skip
        json_out.write_text(json.dumps(doc, indent=1) + "\n")
        console.print(f"wrote {json_out}")


def register(app: typer.Typer) -> None:
    @app.command()
    def snapshot(
        out: Annotated[
            Path, typer.Option("--out", "-o", help="Where to write the snapshot (JSON).")
        ] = Path("state.json"),
        url: UrlOpt = DEFAULT_URL,
        token: TokenOpt = None,
    ) -> None:
        """The live pool as it stands, for `cpool simulate --from` (admin token)."""
        from computepool.cli.jobs_cmd import Client

        doc = Client(url, token).call("GET", "/v1/snapshot").json()
        out.write_text(json.dumps(doc, indent=1) + "\n")
        waiting = sum(j["status"] != "running" for j in doc["jobs"])
        console.print(
            f"wrote {out}: {len(doc['pool']['nodes'])} nodes "
            f"({len(doc['pool']['cordoned'])} cordoned), {len(doc['tenants'])} tenants, "
            f"{len(doc['jobs']) - waiting} running and {waiting} waiting jobs"
        )
