"""``cpool demo``: demos on this machine (``federation``: clusters under one control plane)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from computepool.cli.common import console, fail
from computepool.cli.conventions import CpoolTyper
from computepool.cli.output import Col, Output, OutputOpt, emit


def register(app: typer.Typer) -> None:
    demo = CpoolTyper(help="Demos on this machine.")
    app.add_typer(demo, name="demo")

    @demo.command("federation")
    def federation(
        directory: Annotated[
            Path,
            typer.Option("--dir", help="Where the control plane, agents and logs keep files."),
        ] = Path("federation-demo"),
        job_seconds: Annotated[
            float, typer.Option("--job-seconds", help="How long each demo job runs.")
        ] = 2.0,
        keep: Annotated[
            bool,
            typer.Option(
                "--keep/--no-keep",
                help="Keep the control plane and agents running (dashboard) until Ctrl-C.",
            ),
        ] = False,
        ray: Annotated[
            str | None,
            typer.Option(
                "--ray",
                help="The Ray demo's address (HOST:PORT, after `cpool ray up --demo`): the "
                "ap-singapore agent runs its Singapore node with --backend ray.",
            ),
        ] = None,
        output: OutputOpt = Output.table,
    ) -> None:
        """A control plane and three agents (cn-ulanqab, eu-frankfurt, ap-singapore) on
        loopback; the residency scenario's tenants submit jobs that land only where the law
        allows. Results also go to DIR/demo.json."""
        from computepool.federation.demo import run_demo

        if not 0 < job_seconds <= 600:
            raise fail("--job-seconds must be in (0, 600]")
        if directory.exists() and any(directory.iterdir()):
            raise fail(f"--dir {directory}: not empty (the demo makes a fresh store there)")
        if ray is not None:
            from computepool.backends.ray_inventory import RayBackendError, parse_backend

            try:
                parse_backend("ray", {"RAY_ADDRESS": ray})
            except RayBackendError as exc:
                raise fail(f"--ray: {exc}") from None
        console.print("starting a control plane and 3 agents on 127.0.0.1 ...")
        lb, outcomes = run_demo(directory.resolve(), job_seconds, ray_address=ray or "")
        try:
            clusters = lb.clusters_state()
            doc = {"jobs": [asdict(o) for o in outcomes], "clusters": clusters}
            (directory / "demo.json").write_text(json.dumps(doc, indent=1))
            cols = [
                Col("job", lambda o: o.name, key=True),
                Col("tenant", lambda o: o.tenant),
                Col("data", lambda o: o.data, wide=True),
                Col("asks", lambda o: o.asked),
                Col("status", lambda o: o.status),
                Col("cluster", lambda o: o.cluster or "-"),
                Col("why", lambda o: o.reason if o.status != "succeeded" else "", wrap=True),
            ]
            emit(output, cols, outcomes, title="Jobs", data=doc["jobs"])
            ccols = [
                Col("cluster", lambda c: c["name"], key=True),
                Col("state", lambda c: c["state"]),
                Col("regions", lambda c: ",".join(f"{k} ({v})" for k, v in c["regions"].items())),
                Col("nodes", lambda c: str(c["nodes"]), right=True),
                Col("epoch", lambda c: str(c["epoch"]), right=True),
            ]
            if output != Output.json:
                emit(output, ccols, clusters, title="Clusters")
            if keep:
                console.print(f"dashboard: {lb.url}/  (admin token: {lb.admin_token})")
                console.print("Ctrl-C stops the control plane and the agents.")
                while True:
                    time.sleep(1)
        except KeyboardInterrupt:
            pass
        finally:
            lb.close()
