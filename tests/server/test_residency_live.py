"""Residency in the live pool (``cpool serve`` on the multi-jurisdiction demo pool): approvals
in the store and in force at once, revocation and expiry, person counters across a restart,
the audit endpoint's tenant isolation, and data transfers (start delay, egress in the ledger).
Real store (SQLite file and PostgreSQL), real service and API in-process, jobs as processes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from computepool.server.runtime import ServeSettings, build_app
from tests.server.conftest import LivePool, admin_token, bearer, kill_leftovers

SG_FLEET = {"name": "sg-fleet", "data_class": "sg.personal", "origin": "SG", "handler": "lion"}
CN_PI = {"data_class": "cn.pi", "origin": "CN", "handler": "huaxia"}
CN_ONLY = ["H800"]  # cn-ulanqab only
ABROAD = ["H100"]  # ap-singapore and eu-frankfurt


@contextmanager
def demo_pool(
    data: Path, url: str, token: str | None = None, stop_jobs_on_exit: bool = True
) -> Iterator[tuple[LivePool, str]]:
    tok = token or admin_token(data, url)
    app = build_app(
        ServeSettings(
            data_dir=data, db_url=url, round_seconds=0.1, grace_seconds=0.5,
            stop_jobs_on_exit=stop_jobs_on_exit,
        )
    )  # fmt: skip
    with TestClient(app) as client:
        yield LivePool(client, bearer(tok), data), tok


def approval(live: LivePool, **body) -> dict:
    r = live.client.post("/v1/residency/approvals", json=body, headers=live.admin)
    assert r.status_code == 201, r.text
    return r.json()


def test_approvals_are_stored_checked_and_change_admission_at_once(db_url, tmp_path):
    data = tmp_path / "data"
    try:
        with demo_pool(data, db_url) as (live, tok):
            t = live.tenant("lion-motors", handlers=["lion"])
            spec = {"command": "true", "accelerator_types": CN_ONLY, "datasets": [SG_FLEET]}
            r = live.submit(t, **spec)
            assert r.status_code == 422, r.text
            err = r.json()["errors"][0]
            assert err["field"] == "datasets" and "SG-1" in err["reason"]
            body = {"id": "lion-contract", "kind": "sg_transfer_contract", "handler": "lion",
                    "origin": "SG", "to": ["CN"], "expires": "2099-01-01"}  # fmt: skip
            r = live.client.post("/v1/residency/approvals", json=body, headers=t)
            assert r.status_code == 403
            bad = live.client.post(
                "/v1/residency/approvals", json={**body, "kind": "scc"}, headers=live.admin
            )
            assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "kind"
            assert approval(live, **body)["active"] is True
            again = live.client.post("/v1/residency/approvals", json=body, headers=live.admin)
            assert again.status_code == 409 and again.json()["errors"][0]["field"] == "id"
            j = live.submit(t, **spec).json()["id"]
            done = live.wait_status(t, j, "succeeded")
            assert done["flavor"].startswith("cn-ulanqab/")
            recs = live.client.get("/v1/residency/audit", params={"job": j}, headers=t).json()
            assert [r["outcome"] for r in recs] == ["allowed"]
            assert recs[0]["approvals"] == ["lion-contract"] and recs[0]["tenant"] == "lion-motors"
            assert recs[0]["decided_by"] == ["SG-1/allow[1]"]
        # a restart loads the approval from the store
        with demo_pool(data, db_url, tok) as (live, _):
            t = live.tenant("lion-motors", handlers=["lion"])
            listed = live.client.get("/v1/residency/approvals", headers=live.admin).json()
            assert [a["id"] for a in listed] == ["lion-contract"]
            j = live.submit(t, **spec).json()["id"]
            assert live.wait_status(t, j, "succeeded")["flavor"].startswith("cn-ulanqab/")
            r = live.client.delete("/v1/residency/approvals/lion-contract", headers=live.admin)
            assert r.status_code == 200 and r.json()["active"] is False
            assert r.json()["revoked_by"].startswith("admin:")
            r = live.submit(t, **spec)
            assert r.status_code == 422 and "SG-1" in r.json()["errors"][0]["reason"]
            assert (
                live.client.delete("/v1/residency/approvals/nope", headers=live.admin).status_code
                == 404
            )
    finally:
        kill_leftovers(data)


def test_expiry_and_revocation_stop_jobs_that_depended_on_an_approval(tmp_path):
    data, url = tmp_path / "data", f"sqlite:///{tmp_path / 'c.db'}"
    try:
        with demo_pool(data, url) as (live, _):
            # one H800 node's worth of quota: the second job waits behind the first
            q = {"quotas": {"cn-ulanqab/H800": {"nominal": 8}}}
            t = live.tenant("lion-motors", handlers=["lion"], **q)
            soon = (datetime.now(UTC) + timedelta(seconds=4)).isoformat()
            approval(live, id="short", kind="sg_transfer_contract", handler="lion", to=["CN"],
                     expires=soon)  # fmt: skip
            spec = {"command": "sleep 60", "accelerator_types": CN_ONLY,
                    "accelerators_per_worker": 8, "datasets": [SG_FLEET]}  # fmt: skip
            first = live.submit(t, **spec).json()["id"]
            second = live.submit(t, **spec).json()["id"]
            live.wait_status(t, first, "running")
            live.wait_status(t, second, "admitted")  # waits for quota, not for the approval
            for j in (first, second):  # the approval expired: no legal region is left
                job = live.wait_status(t, j, "rejected", timeout=20)
                assert "SG-1" in job["reason"]
            rejected = live.client.get(
                "/v1/residency/audit", params={"outcome": "rejected"}, headers=live.admin
            ).json()
            assert {r["job"] for r in rejected} == {str(first), str(second)}
            assert all("residency:SG-1" in r["decided_by"] for r in rejected)
            # revocation works the same way
            approval(live, id="long", kind="sg_transfer_contract", handler="lion", to=["CN"])
            third = live.submit(t, **spec).json()["id"]
            live.wait_status(t, third, "running")
            live.client.delete("/v1/residency/approvals/long", headers=live.admin)
            assert "SG-1" in live.wait_status(t, third, "rejected")["reason"]
    finally:
        kill_leftovers(data)


def test_person_counters_survive_a_restart(db_url, tmp_path):
    """CN-5: without a standard contract, fewer than 100,000 persons a year may leave China.
    60,000 go abroad; after a restart, 50,000 more may not."""
    data = tmp_path / "data"
    try:
        with demo_pool(data, db_url) as (live, tok):
            t = live.tenant("huaxia")
            for kind in ("consent", "pipia"):
                approval(live, id=f"hx-{kind}", kind=kind, handler="huaxia", origin="CN")
            ds = {**CN_PI, "name": "cabin-2026a", "persons": 60_000}
            j = live.submit(t, command="true", accelerator_types=ABROAD, datasets=[ds]).json()
            live.wait_status(t, j["id"], "succeeded")
            rec = live.client.get("/v1/residency/audit", params={"job": j["id"]}, headers=t)
            assert rec.json()[0]["exports"][0][4:] == ["cabin-2026a", 60_000]
        with demo_pool(data, db_url, tok) as (live, _):
            t = live.tenant("huaxia")
            ds2 = {**CN_PI, "name": "cabin-2026b", "persons": 50_000}
            r = live.submit(t, command="true", accelerator_types=ABROAD, datasets=[ds2])
            assert r.status_code == 422, r.text
            assert "CN-5" in r.json()["errors"][0]["reason"]
            assert "cn-ulanqab" in r.json()["errors"][0]["reason"]  # still allowed at home
            # the dataset already counted may still go (it counts once a year)
            again = live.submit(t, command="true", accelerator_types=ABROAD, datasets=[ds])
            assert again.status_code == 201, again.text
            live.wait_status(t, again.json()["id"], "succeeded")
    finally:
        kill_leftovers(data)


def test_tenants_see_only_their_own_audit_records(tmp_path):
    data, url = tmp_path / "data", f"sqlite:///{tmp_path / 'c.db'}"
    try:
        with demo_pool(data, url) as (live, _):
            a, b = live.tenant("acme"), live.tenant("bolt")
            ds = [{"name": "x", "data_class": "cn.important", "origin": "CN"}]
            ja = live.submit(a, command="true", datasets=ds).json()["id"]
            jb = live.submit(b, command="true", datasets=ds).json()["id"]
            live.wait_status(a, ja, "succeeded")
            live.wait_status(b, jb, "succeeded")
            mine = live.client.get("/v1/residency/audit", headers=a).json()
            assert {r["job"] for r in mine} == {str(ja)} and mine[0]["decided_by"] == [
                "CN-1/allow[0]"
            ]
            assert (
                live.client.get("/v1/residency/audit", params={"job": jb}, headers=a).json() == []
            )
            assert (
                live.client.get("/v1/residency/audit", params={"tenant": "bolt"}, headers=a)
            ).status_code == 403
            every = live.client.get("/v1/residency/audit", headers=live.admin).json()
            assert {r["job"] for r in every} == {str(ja), str(jb)}
            only_b = live.client.get(
                "/v1/residency/audit", params={"tenant": "bolt"}, headers=live.admin
            ).json()
            assert {r["job"] for r in only_b} == {str(jb)}
            r = live.client.post(
                "/v1/residency/route",
                json={"source": "shanghai", "deadline_ms": 1500, "work_h100_ms": 100,
                      "data": [{"data_class": "cn.pi", "origin": "CN"}]},
                headers=a,
            )  # fmt: skip
            assert r.status_code == 200 and r.json()["target"].startswith("cn-"), r.text
            bad = live.client.post(
                "/v1/residency/route",
                json={"source": "atlantis", "deadline_ms": 1, "work_h100_ms": 1},
                headers=a,
            )
            assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "source"
            paths = set(live.client.get("/openapi.json").json()["paths"])
            assert {"/v1/residency/route", "/v1/residency/audit", "/v1/residency/approvals",
                    "/v1/residency/approvals/{approval_id}"} <= paths  # fmt: skip
    finally:
        kill_leftovers(data)


def test_a_remote_read_delays_the_start_and_is_charged_as_egress(tmp_path):
    """2.5 GB stored in Singapore, job on H20 (Hangzhou): 2 s at 10 Gbit/s, 0.09 USD/GB."""
    data, url = tmp_path / "data", f"sqlite:///{tmp_path / 'c.db'}"
    try:
        with demo_pool(data, url) as (live, _):
            t = live.tenant("acme")
            ds = {"name": "maps", "data_class": "general", "origin": "CN",
                  "stored_in": "ap-singapore", "size_gb": 2.5}  # fmt: skip
            j = live.submit(t, command="date +%s.%N", accelerator_types=["H20"], datasets=[ds])
            j = j.json()["id"]
            done = live.wait_status(t, j, "succeeded")
            kinds = [e["kind"] for e in done["events"]]
            assert kinds.index("transfer") == kinds.index("running") + 1, kinds
            started = datetime.fromisoformat(done["allocations"][0]["started_at"]).timestamp()
            ran_at = float(live.client.get(f"/v1/jobs/{j}/logs", headers=t).text.strip())
            assert ran_at - started >= 2.0 - 0.05, (ran_at, started)
            meta = json.loads(next((data / "runs" / str(j)).glob("*/meta.json")).read_text())
            assert abs(meta["transfer_s"] - 2.0) < 1e-9
            usage = live.client.get("/v1/usage", headers=t).json()
            rec = live.client.get("/v1/residency/audit", params={"job": j}, headers=t).json()[0]
            assert abs(rec["egress_usd"] - 2.5 * 0.09) < 1e-9 and rec["delay_s"] == 2.0
            # the ledger entry: accelerator time (copy included) plus the egress
            assert usage["total"]["cost_usd"] >= 2.5 * 0.09
            from computepool.server.db import LedgerRow, make_engine, sessions

            engine = make_engine(url)
            with sessions(engine)() as s:
                (row,) = s.query(LedgerRow).filter(LedgerRow.job_id == j).all()
                assert abs(row.egress_usd - 0.225) < 1e-9
                assert row.cost_usd > row.egress_usd and row.end - row.start >= 2.0 - 0.05
            engine.dispose()
    finally:
        kill_leftovers(data)


def test_a_transfer_waiting_at_a_restart_waits_out_its_delay(tmp_path):
    data, url = tmp_path / "data", f"sqlite:///{tmp_path / 'c.db'}"
    ds = {"name": "big", "data_class": "general", "origin": "CN", "stored_in": "ap-singapore",
          "size_gb": 5.0}  # fmt: skip  # 4 s to Hangzhou
    try:
        # the server stops while the data is being copied, leaving the attempt to the next one
        with demo_pool(data, url, stop_jobs_on_exit=False) as (live, tok):
            t = live.tenant("acme")
            j = live.submit(t, command="date +%s.%N", accelerator_types=["H20"], datasets=[ds])
            j = j.json()["id"]
            live.wait_status(t, j, "running")
        meta = json.loads(next((data / "runs" / str(j)).glob("*/meta.json")).read_text())
        assert not list((data / "runs" / str(j)).glob("*/rank-0.pid"))
        with demo_pool(data, url, tok) as (live, _):
            t = live.tenant("acme")
            live.wait_status(t, j, "succeeded")
            ran_at = float(live.client.get(f"/v1/jobs/{j}/logs", headers=t).text.strip())
            assert ran_at >= meta["spawn_at"] - 0.05
    finally:
        kill_leftovers(data)
