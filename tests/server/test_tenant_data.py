"""A tenant's data is its own: it cannot name another tenant's handler (nor so use that
tenant's approvals), a data class no rule names is refused (not left to the fallback), and
submissions refused for their data are in the residency audit, seen by their tenant only."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.server.conftest import kill_leftovers
from tests.server.test_residency_live import CN_ONLY, approval, demo_pool

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "jobs"
SG = {"name": "fleet", "data_class": "sg.personal", "origin": "SG"}


def test_a_tenant_cannot_use_another_tenants_handler_or_its_approvals(db_url, tmp_path):
    data = tmp_path / "data"
    try:
        with demo_pool(data, db_url) as (live, _):
            lion = live.tenant("lion-motors", handlers=["lion"])
            mallory = live.tenant("mallory")
            approval(live, id="lion-contract", kind="sg_transfer_contract", handler="lion",
                     origin="SG", to=["CN"])  # fmt: skip
            spec = {"command": "true", "accelerator_types": CN_ONLY}
            stolen = live.submit(mallory, **spec, datasets=[{**SG, "handler": "lion"}])
            assert stolen.status_code == 403, stolen.text
            err = stolen.json()["errors"][0]
            assert err["field"] == "datasets[0].handler"
            assert "'lion' does not belong to tenant 'mallory'" in err["reason"]
            # its own, approved handler: allowed, and the approval serves only it
            ok = live.submit(lion, **spec, datasets=[{**SG, "handler": "lion"}])
            assert ok.status_code == 201, ok.text
            live.wait_status(lion, ok.json()["id"], "succeeded")
            # no handler given: the tenant's own name, which the approval does not cover
            mine = live.submit(mallory, **spec, datasets=[SG])
            assert mine.status_code == 422 and "SG-1" in mine.json()["error"]
            # a handler belongs to one tenant
            r = live.client.post(
                "/v1/tenants", json={"name": "mallory", "handlers": ["lion"]}, headers=live.admin
            )
            assert r.status_code == 409 and r.json()["errors"][0]["field"] == "handlers"
            assert "belongs to tenant 'lion-motors'" in r.json()["error"]
            # the refusals are in the audit: each tenant sees its own
            seen = live.client.get("/v1/residency/audit", headers=mallory).json()
            assert [(r["stage"], r["field"]) for r in seen] == [
                ("submission", "datasets[0].handler"), ("submission", "datasets")
            ]  # fmt: skip
            assert seen[0]["decided_by"] == ["residency:HANDLER"]
            assert seen[1]["decided_by"] == ["residency:SG-1"] and seen[1]["tenant"] == "mallory"
            theirs = live.client.get("/v1/residency/audit", headers=lion).json()
            assert [r["outcome"] for r in theirs] == ["allowed"]
            rule = {"rule": "residency:HANDLER"}
            assert len(live.client.get("/v1/residency/audit", params=rule, headers=live.admin)
                       .json()) == 1  # fmt: skip
    finally:
        kill_leftovers(data)


def test_an_unknown_data_class_is_refused_naming_the_known_ones(db_url, tmp_path):
    data = tmp_path / "data"
    try:
        with demo_pool(data, db_url) as (live, _):
            t = live.tenant("acme")
            ds = {"name": "drives", "data_class": "personal", "origin": "EU"}
            r = live.submit(t, command="true", datasets=[{**ds, "data_class": "general"}, ds])
            assert r.status_code == 422, r.text
            err = r.json()["errors"][0]
            assert err["field"] == "datasets[1].data_class"
            assert "unknown data class 'personal'" in err["reason"]
            assert "eu.personal" in err["reason"] and "cn.pi" in err["reason"]
            recs = live.client.get("/v1/residency/audit", headers=t).json()
            assert [r["decided_by"] for r in recs] == [["residency:UNKNOWN_CLASS"]]
            assert recs[0]["datasets"][1]["data_class"] == "personal"
            assert live.count_jobs() == 0
    finally:
        kill_leftovers(data)


def test_the_shipped_job_examples_use_the_rulebooks_classes(tmp_path):
    from computepool.admission.rulebook import load_rulebook

    rb = load_rulebook()
    for path in sorted(EXAMPLES.glob("*.yaml")):
        classes = [d["data_class"] for d in yaml.safe_load(path.read_text()).get("datasets", [])]
        assert rb.unknown_classes(classes) == [], path.name
