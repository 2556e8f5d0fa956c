"""Hostile input is bounded: ids, NUL and unpaired surrogates, sizes, NaN and Infinity, the
Idempotency-Key header. Each answer is a 4xx naming the field; nothing is stored; no 5xx on
SQLite or PostgreSQL."""

from __future__ import annotations

import json

import pytest

from computepool import bounds as B


def _err(r, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text[:300])
    doc = r.json()
    assert doc["errors"][0]["reason"]
    return doc["errors"][0]["field"]


@pytest.fixture
def acme(live):
    return live, live.tenant("acme")


ID_PATHS = ("/v1/jobs/{id}", "/v1/jobs/{id}/logs")
#: (id, status): beyond what PostgreSQL's INTEGER holds but valid: 404; outside 1..2^63-1: 422
IDS = [(2**31, 404), (2**63 - 1, 404), (2**63, 422), (2**70, 422), (0, 422), (-1, 422)]


def test_ids_outside_the_store_or_the_range_answer_404_or_422(acme):
    live, a = acme
    for job_id, status in IDS:
        for path in ID_PATHS:
            r = live.client.get(path.format(id=job_id), headers=a)
            assert r.status_code == status, (path, job_id, r.text[:200])
        r = live.client.post(f"/v1/jobs/{job_id}/cancel", headers=a)
        assert r.status_code == status, (job_id, r.text[:200])
        r = live.client.delete(f"/v1/tokens/{job_id}", headers=live.admin)
        assert r.status_code == status, (job_id, r.text[:200])
        r = live.client.get(f"/jobs/{job_id}", headers=a)  # the dashboard's job page
        assert r.status_code in (404, 422), (job_id, r.text[:200])
    for cursor in (2**31, 2**63 - 1):
        assert live.client.get("/v1/jobs", params={"before": cursor}, headers=a).status_code == 200
        r = live.client.get("/v1/residency/audit", params={"before": cursor}, headers=a)
        assert r.status_code == 200
    assert _err(live.client.get("/v1/jobs", params={"before": 2**63}, headers=a), 422) == "before"


NUL_JOBS = [
    ({"command": "echo a\x00b"}, "command"),
    ({"command": ["echo", "a\x00"]}, "command"),
    ({"command": "true", "name": "n\x00"}, "name"),
    ({"command": "true", "env": {"A": "x\x00"}}, "env"),
    ({"command": "true", "workdir": "/tmp/a\x00b"}, "workdir"),
    ({"command": "true", "accelerator_types": ["V100\x00"]}, "accelerator_types"),
    ({"command": "true", "job_type": "generic\x00"}, "job_type"),
    ({"command": "true", "datasets": [{"name": "d\x00"}]}, "datasets"),
    ({"command": "true", "datasets": [{"name": "d", "handler": "h\x00"}]}, "datasets"),
    ({"command": "true", "idempotency_key": "k\x00"}, "idempotency_key"),
    ({"command": "true", "name": "\ud800"}, "name"),  # an unpaired surrogate
]


@pytest.mark.parametrize(("body", "field"), NUL_JOBS, ids=[f for _, f in NUL_JOBS])
def test_nul_and_lone_surrogates_are_refused_naming_the_field(acme, body, field):
    live, a = acme
    raw = json.dumps(body).encode()  # escaped: "\\u0000", "\\ud800"
    r = live.client.post("/v1/jobs", content=raw, headers={**a, "Content-Type": "application/json"})
    assert _err(r, 422).split(".")[0] == field
    assert live.count_jobs() == 0


def test_nul_in_path_query_and_admin_bodies(acme):
    live, a = acme
    r = live.client.get("/v1/jobs", params={"tenant": "a\x00"}, headers=a)
    assert _err(r, 422) == "tenant"
    assert _err(live.client.post("/v1/tenants/a%00b/tokens", headers=live.admin), 422) == "path"
    r = live.client.post(
        "/v1/tenants", json={"name": "bolt", "cohort": "c\x00"}, headers=live.admin
    )
    assert _err(r, 422) == "cohort"
    r = live.client.get("/v1/usage", params={"since": "1h\x00"}, headers=a)
    assert _err(r, 422) == "since"


RAW_BODIES = [
    (b'{"command": "true", "work": Infinity}', "work"),
    (b'{"command": "true", "work": NaN}', "work"),
    (b'{"command": "true", "weight": -Infinity}', "weight"),
    (b'{"command": "true", "datasets": [{"name": "d", "size_gb": Infinity}]}', "datasets"),
]


@pytest.mark.parametrize(
    ("raw", "field"), RAW_BODIES, ids=[f"{f}{i}" for i, (_, f) in enumerate(RAW_BODIES)]
)
def test_nan_and_infinity_are_refused(acme, raw, field):
    live, a = acme
    r = live.client.post("/v1/jobs", content=raw, headers={**a, "Content-Type": "application/json"})
    assert _err(r, 422).split(".")[0] == field
    assert live.count_jobs() == 0


def test_nan_and_infinity_in_tenant_bodies(live):
    for raw, field in [
        (b'{"name": "acme", "budget_usd": Infinity}', "budget_usd"),
        (b'{"name": "acme", "quotas": {"*": {"nominal": NaN}}}', "quotas"),
    ]:
        h = {**live.admin, "Content-Type": "application/json"}
        r = live.client.post("/v1/tenants", content=raw, headers=h)
        assert _err(r, 422).split(".")[0] == field
    assert live.client.get("/v1/tenants", headers=live.admin).json() == []


OVERSIZE = [
    ({"command": "x" * (B.COMMAND_MAX + 1)}, "command"),
    ({"command": ["x"] * (B.ARGV_MAX_ITEMS + 1)}, "command"),
    ({"command": ["x" * (B.ARGV_ITEM_MAX + 1)]}, "command"),
    ({"command": ["x" * B.ARGV_ITEM_MAX, "y" * B.ARGV_ITEM_MAX, "z"]}, "command"),
    ({"env": {f"V{i}": "1" for i in range(B.ENV_MAX_VARS + 1)}}, "env"),
    ({"env": {"V": "x" * (B.ENV_VALUE_MAX + 1)}}, "env"),
    ({"env": {"V" * (B.ENV_NAME_MAX + 1): "1"}}, "env"),
    ({"env": {f"V{i}": "x" * 30_000 for i in range(3)}}, "env"),
    ({"datasets": [{"name": f"d{i}"} for i in range(B.DATASETS_MAX + 1)]}, "datasets"),
    ({"name": "n" * (B.NAME_MAX + 1)}, "name"),
    ({"job_type": "t" * (B.SHORT_MAX + 1)}, "job_type"),
    ({"accelerator_types": ["V100"] * (B.ACCELERATOR_TYPES_MAX + 1)}, "accelerator_types"),
    ({"stacks": ["cuda"] * (B.STACKS_MAX + 1)}, "stacks"),
    ({"workdir": "relative/dir"}, "workdir"),
    ({"workdir": "/" + "a" * 256}, "workdir"),
    ({"workdir": "/a" * 2100}, "workdir"),
    ({"work": 1e13}, "work"),
    ({"datasets": [{"name": "d", "persons": 2**40}]}, "datasets"),
    ({"idempotency_key": "k" * 129}, "idempotency_key"),
    ({"idempotency_key": "  "}, "idempotency_key"),
]


@pytest.mark.parametrize(
    ("extra", "field"), OVERSIZE, ids=[f"{f}{i}" for i, (_, f) in enumerate(OVERSIZE)]
)
def test_oversized_fields_are_refused_naming_the_field(live_shared, extra, field):
    live = live_shared
    a = live.tenant("acme")
    before = live.count_jobs()
    r = live.client.post("/v1/jobs", json={"command": "true", **extra}, headers=a)
    assert _err(r, 422).split(".")[0] == field
    assert live.count_jobs() == before


def test_a_job_at_every_cap_is_accepted(live_sqlite):
    live = live_sqlite
    a = live.tenant("acme", quotas={"*": {"nominal": 0}})  # stored, never started
    body = {
        "command": ["x" * 1000] * 65,
        "name": "n" * B.NAME_MAX,
        "env": {f"V{i}": "x" * 200 for i in range(B.ENV_MAX_VARS)},
        "workdir": "/" + "/".join(["d" * 255] * 15),
        "datasets": [{"name": f"d{i}"} for i in range(B.DATASETS_MAX)],
    }
    r = live.client.post("/v1/jobs", json=body, headers=a)
    assert r.status_code == 201, r.text[:300]
    # caps above the default string cap: a long shell line, a long argv item, a long value
    for body in (
        {"command": "x" * B.COMMAND_MAX, "env": {"A": "y" * B.ENV_VALUE_MAX}},
        {"command": ["x" * B.ARGV_ITEM_MAX, "y" * B.ARGV_ITEM_MAX]},
    ):
        r = live.client.post("/v1/jobs", json=body, headers=a)
        assert r.status_code == 201, r.text[:300]


def test_a_body_over_the_cap_is_413_declared_or_chunked(live_shared):
    live = live_shared
    a = live.tenant("acme")
    before = live.count_jobs()
    big = json.dumps({"command": "true", "name": "x" * B.BODY_MAX_BYTES}).encode()
    h = {**a, "Content-Type": "application/json"}
    assert _err(live.client.post("/v1/jobs", content=big, headers=h), 413) == "body"

    def chunks():  # no Content-Length: Transfer-Encoding: chunked
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    assert _err(live.client.post("/v1/jobs", content=chunks(), headers=h), 413) == "body"
    small = json.dumps({"command": "true", "name": "chunked"}).encode()
    r = live.client.post("/v1/jobs", content=iter([small[:10], small[10:]]), headers=h)
    assert r.status_code == 201, r.text
    assert live.count_jobs() == before + 1


def test_an_empty_idempotency_key_header_is_refused(acme):
    live, a = acme
    for key in ("", "   ", "a\tb"):
        r = live.client.post(
            "/v1/jobs", json={"command": "true"}, headers={**a, "Idempotency-Key": key}
        )
        assert _err(r, 422) == "Idempotency-Key", key
    r = live.client.post(
        "/v1/jobs", json={"command": "true"}, headers={**a, "Idempotency-Key": "k" * 129}
    )
    assert _err(r, 422) == "Idempotency-Key"
    assert live.count_jobs() == 0
    r = live.client.post(
        "/v1/jobs", json={"command": "true"}, headers={**a, "Idempotency-Key": "ok-1"}
    )
    assert r.status_code == 201


def test_dashboard_pages_take_hostile_parameters(acme):
    live, a = acme
    live.submit(a, command="true")
    huge = str(10**30)
    for path, params in [
        ("/jobs", {"page": huge}),
        ("/jobs", {"page": "²"}),  # a digit to str.isdigit, not to int()
        ("/jobs", {"page": "9" * 5000}),
        ("/jobs", {"status": "x" * 5000, "flavor": "f" * 5000, "q": "%" * 100}),
        ("/residency", {"page": huge, "outcome": "x"}),
        ("/usage", {"w": "x" * 100}),
        ("/", {"w": huge}),
        (f"/jobs/{2**70}", {}),
    ]:
        r = live.client.get(path, params=params, headers=a)
        assert r.status_code in (200, 404), (path, r.status_code)


def test_the_guard_answers_absurd_content_lengths_itself():
    import asyncio

    from computepool.server.guard import Guard

    async def app(scope, receive, send):
        raise AssertionError("the guard should have answered")

    async def receive():
        return {"type": "http.request", "body": b""}

    for length, status in [(b"9" * 5000, 413), (b"12x", 400), (b"-1", 400)]:
        sent: list = []

        async def send(m, sent=sent):
            sent.append(m)

        scope = {"type": "http", "method": "POST", "path": "/v1/jobs", "headers": [(b"content-length", length)]}  # fmt: skip
        asyncio.run(Guard(app)(scope, receive, send))
        assert sent[0]["status"] == status, length
        assert (b"x-frame-options", b"DENY") in sent[0]["headers"]
