"""The agent endpoints against hostile agents: a cluster's token speaks for that cluster only,
inventories must match the pool, stale epochs are refused, every field is bounded, and a
report about another cluster's attempt changes nothing."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from computepool.federation.agent import inventory_of
from computepool.federation.loopback import ClusterDef, Loopback, pool_yaml
from computepool.server.runtime import ServeSettings, build_app

CLUSTERS = (
    ClusterDef("alpha", "cn-ulanqab", "H800", nodes=1),
    ClusterDef("beta", "eu-frankfurt", "H100", nodes=1),
)


@pytest.fixture
def fed(tmp_path):
    lb = Loopback(tmp_path, CLUSTERS, tenants={"acme": []}).setup()
    app = build_app(
        ServeSettings(
            data_dir=lb.cp_dir,
            pool=str(tmp_path / "pool.yaml"),
            backend="federated",
            round_seconds=0.1,
            agent_lease_seconds=30.0,
        )
    )
    with TestClient(app) as client:
        yield lb, client


def token(lb: Loopback, name: str) -> dict[str, str]:
    return lb.auth((lb.root / f"{name}.token").read_text().strip())


def inventory(name: str) -> dict:
    from computepool.catalog.pools import load_pool

    c = next(c for c in CLUSTERS if c.name == name)
    return inventory_of(load_pool_text(pool_yaml(c.name, (c,)), load_pool)).model_dump()


def load_pool_text(text: str, load_pool):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "p.yaml"
        p.write_text(text)
        return load_pool(str(p))


def register(client, lb, name: str, inv: dict | None = None, as_token: str | None = None):
    body = {"cluster": name, "inventory": inv or inventory(name)}
    return client.post("/v1/agent/register", json=body, headers=token(lb, as_token or name))


def beat(client, lb, name: str, epoch: int, reports=(), attempts=(), as_token=None):
    body = {"cluster": name, "epoch": epoch, "reports": list(reports), "attempts": list(attempts)}
    return client.post("/v1/agent/heartbeat", json=body, headers=token(lb, as_token or name))


def test_a_token_speaks_for_its_cluster_only(fed):
    lb, client = fed
    r = client.post(
        "/v1/agent/register",
        json={"cluster": "alpha", "inventory": inventory("alpha")},
        headers=lb.auth("cpool_not-a-token"),
    )
    assert r.status_code == 401
    r = register(client, lb, "beta", inventory("beta"), as_token="alpha")
    assert r.status_code == 403 and "alpha" in r.json()["error"]
    assert register(client, lb, "alpha").status_code == 200
    r = beat(client, lb, "alpha", 1, as_token="beta")
    assert r.status_code == 403


def test_inventory_must_match_the_pool(fed):
    lb, client = fed
    inv = inventory("alpha")
    inv["nodes"][0]["name"] = "somebody-elses-node"
    r = register(client, lb, "alpha", inv)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "inventory.nodes.0.name"
    inv = inventory("alpha")
    inv["nodes"][0]["accelerator"] = "H100"
    r = register(client, lb, "alpha", inv)
    assert r.json()["errors"][0]["field"] == "inventory.nodes.0.accelerator"
    inv = inventory("alpha")
    inv["regions"][0]["jurisdiction"] = "EU"
    r = register(client, lb, "alpha", inv)
    assert r.json()["errors"][0]["field"] == "inventory.regions.0.jurisdiction"
    assert register(client, lb, "beta").status_code == 200
    inv = inventory("alpha")  # alpha claims beta's node as well
    inv["regions"] += inventory("beta")["regions"]
    inv["nodes"] += inventory("beta")["nodes"]
    r = register(client, lb, "alpha", inv)
    assert r.status_code == 422 and "beta" in r.json()["error"]


def test_bounds_and_stale_epochs(fed):
    lb, client = fed
    e1 = register(client, lb, "alpha").json()["epoch"]
    big = {"id": "1-1", "state": "running", "logs": [{"rank": 0, "offset": 0, "data": "x" * 20000}]}
    assert beat(client, lb, "alpha", e1, [big]).status_code == 422
    bad = {"id": "../../etc", "state": "running"}
    assert beat(client, lb, "alpha", e1, [bad]).status_code == 422
    assert beat(client, lb, "alpha", e1, attempts=["1-1"] * 5000).status_code == 422
    r = client.post("/v1/agent/register", json={"cluster": "Alpha!", "inventory": {}},
                    headers=token(lb, "alpha"))  # fmt: skip
    assert r.status_code == 422
    assert beat(client, lb, "alpha", e1).status_code == 200
    e2 = register(client, lb, "alpha").json()["epoch"]
    assert e2 == e1 + 1
    assert beat(client, lb, "alpha", e1).status_code == 409  # the old session is fenced
    assert beat(client, lb, "alpha", e2).status_code == 200


def wait_job(client, lb, jid: int, status: str, timeout: float = 15.0) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = client.get(f"/v1/jobs/{jid}", headers=lb.auth(lb.tokens["acme"])).json()
        if job["status"] == status:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {jid} not {status}: {job}")


def start_cmd(client, lb, name: str, epoch: int, timeout: float = 15.0) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        out = beat(client, lb, name, epoch).json()
        if out["start"]:
            return out["start"][0]
        time.sleep(0.05)
    raise AssertionError("no start command")


def submit(client, lb, accel: str) -> int:
    spec = {"name": "j", "command": "true", "accelerator_types": [accel]}
    r = client.post("/v1/jobs", json=spec, headers=lb.auth(lb.tokens["acme"]))
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_a_report_about_another_clusters_attempt_changes_nothing(fed):
    lb, client = fed
    ea = register(client, lb, "alpha").json()["epoch"]
    eb = register(client, lb, "beta").json()["epoch"]
    jid = submit(client, lb, "H800")  # alpha's
    cmd = start_cmd(client, lb, "alpha", ea)
    assert cmd["workers"][0][0].startswith("alpha-")
    assert cmd["residency"]["jurisdiction"] == "CN"
    running = [{"id": cmd["id"], "state": "running"}]
    assert beat(client, lb, "alpha", ea, running, attempts=[cmd["id"]]).status_code == 200
    wait_job(client, lb, jid, "running")
    forged = {"id": cmd["id"], "state": "exited", "rc": 0, "at": time.time()}
    assert beat(client, lb, "beta", eb, [forged], attempts=[cmd["id"]]).status_code == 200
    time.sleep(0.4)
    assert wait_job(client, lb, jid, "running")
    states = {
        c["name"]: c for c in client.get("/v1/clusters", headers=lb.auth(lb.admin_token)).json()
    }
    assert states["beta"]["refused_reports"] == 1
    assert states["alpha"]["state"] == "ready"
    done = {"id": cmd["id"], "state": "exited", "rc": 0, "at": time.time(),
            "logs": [{"rank": 0, "offset": 0, "data": "hello from alpha\n"}]}  # fmt: skip
    assert beat(client, lb, "alpha", ea, [done]).status_code == 200
    wait_job(client, lb, jid, "succeeded")
    logs = client.get(f"/v1/jobs/{jid}/logs", headers=lb.auth(lb.tokens["acme"]))
    assert "hello from alpha" in logs.text


def test_a_refusal_fails_the_job_with_the_clusters_reason(fed):
    lb, client = fed
    ea = register(client, lb, "alpha").json()["epoch"]
    jid = submit(client, lb, "H800")
    cmd = start_cmd(client, lb, "alpha", ea)
    refused = {"id": cmd["id"], "state": "refused", "reason": "residency: CN-1 forbids it"}
    assert beat(client, lb, "alpha", ea, [refused]).status_code == 200
    job = wait_job(client, lb, jid, "failed")
    assert "refused by cluster alpha" in job["reason"] and "CN-1" in job["reason"]


def test_clusters_are_for_admins(fed):
    lb, client = fed
    r = client.get("/v1/clusters", headers=lb.auth(lb.tokens["acme"]))
    assert r.status_code == 403
    r = client.post("/v1/clusters/gamma", headers=lb.auth(lb.tokens["acme"]))
    assert r.status_code == 403
    r = client.post("/v1/clusters/gamma", headers=lb.auth(lb.admin_token))
    assert r.status_code == 201 and r.json()["token"].startswith("cpool_")
    r = client.post("/v1/clusters/gamma", headers=lb.auth(lb.admin_token))
    assert r.status_code == 409
    assert client.delete("/v1/clusters/alpha", headers=lb.auth(lb.admin_token)).status_code == 204
    assert register(client, lb, "alpha").status_code == 401


def test_the_dashboard_shows_clusters_and_their_health(fed):
    lb, client = fed
    register(client, lb, "alpha")
    page = client.get("/", headers=lb.auth(lb.admin_token))
    assert page.status_code == 200
    html = page.text
    assert "Clusters (federation)" in html and "alpha" in html and "cn-ulanqab (CN)" in html
    assert "refused reports" in html
    tenant = client.get("/", headers=lb.auth(lb.tokens["acme"])).text
    assert "alpha" in tenant and "refused reports" not in tenant


def test_an_agent_that_stops_hands_its_jobs_back_at_once(fed, tmp_path):
    """A real agent in-process (its HTTP client is the test client): it runs a job, then
    stops; the job is requeued long before the 30 s lease would have ended."""
    from computepool.admission.rulebook import load_rulebook
    from computepool.catalog.pools import load_pool
    from computepool.federation.agent import Agent, AgentConfig

    lb, client = fed
    pool = load_pool(str(lb.root / "alpha.yaml"))
    cfg = AgentConfig(
        url="", token=(lb.root / "alpha.token").read_text().strip(), cluster="alpha",
        pool=pool, data_dir=tmp_path / "agent-alpha", rulebook=load_rulebook(),
        regions={"cn-ulanqab": "CN"}, grace_s=1.0, wait_s=0.1,
    )  # fmt: skip
    agent = Agent(cfg, client=client)
    agent.start_fence()
    try:
        r = client.post("/v1/jobs", json={"name": "s", "command": "sleep 30",
                                          "accelerator_types": ["H800"]},
                        headers=lb.auth(lb.tokens["acme"]))  # fmt: skip
        jid = r.json()["id"]
        end = time.monotonic() + 20
        while time.monotonic() < end and not agent.local.running:
            agent.step()
        assert agent.local.running
        agent.step()  # the control plane hears it runs
        wait_job(client, lb, jid, "running")
        t0 = time.monotonic()
    finally:
        agent.close()
    wait_job(client, lb, jid, "admitted", timeout=10)
    assert time.monotonic() - t0 < 10
    states = {
        c["name"]: c for c in client.get("/v1/clusters", headers=lb.auth(lb.admin_token)).json()
    }
    assert states["alpha"]["state"] == "lost" and "agent stopped" in states["alpha"]["lost"]
    time.sleep(0.5)
    assert wait_job(client, lb, jid, "admitted")  # not placed on the cluster that left
    assert not agent.local.running and not agent.local.stopping
