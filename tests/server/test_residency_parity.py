"""Residency is enforced identically in ``cpool simulate`` and ``cpool serve``.

The same ten jobs (``examples/residency/small-workload.yaml``: CN important data, EU personal
data, SG personal data with and without a transfer contract, CN personal data under the
100,000-person threshold, a remote read) and the same approvals file run through
``cpool simulate --audit`` and through a real ``cpool serve`` process (local backend, short
jobs, approvals added with ``cpool approvals add``). Per job, the two must agree on the
outcome, the region, the rules that decided, the approvals used and the data moved; a job the
simulator rejects is refused at submission live (HTTP 422 naming the same rule) or rejected
with the same rule in its audit record.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import yaml
from typer.testing import CliRunner

from computepool.cli.app import app
from tests.server.conftest import admin_token, bearer, kill_leftovers
from tests.server.serverproc import ServerProcess

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "residency"
WORKLOAD = EXAMPLES / "small-workload.yaml"
APPROVALS = EXAMPLES / "approvals.yaml"
runner = CliRunner()


def cpool(*args: str) -> str:
    r = runner.invoke(app, list(args), catch_exceptions=False, env={})
    assert r.exit_code == 0, r.output
    return r.output


def simulated(tmp: Path) -> dict[str, dict]:
    audit = tmp / "sim-audit.jsonl"
    cpool(
        "simulate", "--pool", "automotive-demo", "--workload", str(WORKLOAD),
        "--policy", "fifo-sticky", "--round-seconds", "60", "--approvals", str(APPROVALS),
        "--audit", str(audit),
    )  # fmt: skip
    recs = [json.loads(line) for line in audit.read_text().splitlines()]
    assert len({r["job"] for r in recs}) == len(recs)
    return {r["job"]: r for r in recs}


def live_spec(job: dict, defaults: dict) -> dict:
    j = {**defaults, **job}
    return {
        "name": j["id"],
        "command": "true",
        "job_type": j["job_type"],
        "work": j["work"],
        "accelerator_types": j.get("accelerator_types", []),
        "datasets": j["datasets"],
    }


def live(tmp: Path, db_url: str) -> tuple[dict[str, dict], dict[str, str], str, str]:
    """(records per job name, 422 reasons per job name, server URL, admin token)."""
    data = tmp / "data"
    token = admin_token(data, db_url)
    adm = bearer(token)
    doc = yaml.safe_load(WORKLOAD.read_text())
    server = ServerProcess(
        data, db_url, "--policy", "fifo-sticky", "--round-seconds", "0.2",
        "--grace-seconds", "1", "--stop-jobs-on-exit",
    )  # fmt: skip
    try:
        server.start()
        out = cpool("approvals", "add", str(APPROVALS), "--server", server.url, "--token", token)
        assert out.count("on record") == 3
        http = httpx.Client(base_url=server.url, timeout=30)
        tokens: dict[str, dict] = {}
        refused: dict[str, str] = {}
        names: dict[str, str] = {}
        for job in doc["jobs"]:
            tenant = job["tenant"]
            if tenant not in tokens:
                owns = sorted(  # the handlers its datasets name are its own
                    {d["handler"] for x in doc["jobs"] if x["tenant"] == tenant
                     for d in x.get("datasets", ()) if d.get("handler")} - {tenant}
                )  # fmt: skip
                body = {"name": tenant, "handlers": owns}
                assert http.post("/v1/tenants", json=body, headers=adm).is_success
                tok = http.post(f"/v1/tenants/{tenant}/tokens", headers=adm).json()["token"]
                tokens[tenant] = bearer(tok)
            r = http.post("/v1/jobs", json=live_spec(job, doc["defaults"]), headers=tokens[tenant])
            if r.status_code == 422:
                err = r.json()["errors"][0]
                assert err["field"] == "datasets", r.text
                refused[job["id"]] = err["reason"]
                continue
            assert r.status_code == 201, r.text
            jid = r.json()["id"]
            names[str(jid)] = job["id"]
            end = time.time() + 30
            while (st := http.get(f"/v1/jobs/{jid}", headers=tokens[tenant]).json()["status"]) not in (
                "succeeded", "rejected", "failed",
            ):  # fmt: skip
                assert time.time() < end, f"job {job['id']} stuck in {st}"
                time.sleep(0.1)
        recs = http.get("/v1/residency/audit", headers=adm).json()
        tok = tokens["huaxia"]["Authorization"].removeprefix("Bearer ")
        routed = cpool(
            "route", "--from", "shanghai", "--deadline-ms", "1500", "--work-h100-ms", "300",
            "--data-class", "cn.pi", "--origin", "CN", "--server", server.url, "--token", tok,
            "--json",
        )  # fmt: skip
        assert json.loads(routed)["target"].startswith("cn-")
        assert "by rule: CN-1 1, CN-5 1" in cpool("audit", "--server", server.url, "--token", token)
        shown = cpool("audit", server.url, "--token", token, "--rule", "SG-1", "--json")
        assert '"SG-1/allow[1]"' in shown and '"lion-sg-contract"' in shown
        # submissions refused for their data are in the audit too, with their reasons
        at_submission = [r for r in recs if r.get("stage") == "submission"]
        assert sorted(r["reason"] for r in at_submission) == sorted(refused.values())
        return {names[r["job"]]: r for r in recs if r["job"]}, refused, server.url, token
    finally:
        server.stop()
        kill_leftovers(data)


def test_simulated_and_live_pools_decide_alike(db_url, tmp_path):
    sim = simulated(tmp_path)
    got, refused, _url, _tok = live(tmp_path, db_url)
    assert set(sim) == set(got) | set(refused), (sorted(sim), sorted(got), sorted(refused))
    outcomes = {"allowed": 0, "rejected": 0}
    for name, s in sim.items():
        outcomes[s["outcome"]] += 1
        if name in refused:  # refused at submission: never queued, the reason names the rule
            assert s["outcome"] == "rejected", (name, refused[name])
            for rule in s["decided_by"][0].removeprefix("residency:").split(","):
                assert rule in refused[name], (name, rule, refused[name])
            continue
        g = got[name]
        assert g["outcome"] == s["outcome"], (name, g, s)
        for key in ("region", "rules_consulted", "decided_by", "approvals"):
            assert g[key] == s[key], (name, key, g[key], s[key])
        for key in ("transfer_gb", "delay_s", "egress_usd"):
            assert abs(g[key] - s[key]) < 1e-9, (name, key, g[key], s[key])
    # the workload covers both outcomes, approvals, a threshold and data movement
    assert outcomes["allowed"] >= 5 and outcomes["rejected"] >= 3, outcomes
    assert sim["sg-approved"]["approvals"] == ["lion-sg-contract"]
    assert sim["cn-pi-export-b"]["decided_by"] == ["residency:CN-5"]
    assert sim["remote-read"]["transfer_gb"] == 2.5
