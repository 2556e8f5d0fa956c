import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from computepool.admission.residency import ResidencyCheck
from computepool.catalog.pools import load_pool
from computepool.model.job import Dataset
from computepool.routing.api import RouteIn, residency_router, route_one
from computepool.routing.latency import erlang_c_wait_ms, load_latency_model
from computepool.routing.stream import RequestClass, generate_stream, replay_stream

POOL = load_pool("automotive-demo")
MODEL = load_latency_model()


def check():
    return ResidencyCheck(pool=POOL)


def ask(**kw):
    return route_one(RouteIn(**kw), check(), MODEL)


def test_erlang_c_matches_mm1_and_saturation():
    assert erlang_c_wait_ms(1, 0.5, 10.0) == pytest.approx(10.0)
    assert erlang_c_wait_ms(4, 0.0, 10.0) == 0.0
    assert erlang_c_wait_ms(4, 1.0, 10.0) == float("inf")
    assert erlang_c_wait_ms(8, 0.5, 10.0) < erlang_c_wait_ms(2, 0.5, 10.0)


def test_rtt_grows_with_distance_and_access_network():
    sh = MODEL.site("shanghai")
    hz, fra = POOL.regions["cn-hangzhou"], POOL.regions["eu-frankfurt"]
    assert MODEL.rtt_ms(sh, hz, "5g") < MODEL.rtt_ms(sh, fra, "5g")
    assert MODEL.rtt_ms(sh, hz, "4g") - MODEL.rtt_ms(sh, hz, "5g") == pytest.approx(55.0)
    # crossing the Chinese border adds its extra
    sg = POOL.regions["ap-singapore"]
    kl = MODEL.site("3.14,101.69,MY")
    assert MODEL.rtt_ms(MODEL.site("shenzhen"), sg, "wired") > MODEL.rtt_ms(kl, sg, "wired") + 30


def test_cockpit_request_in_china_stays_in_china_and_meets_deadline():
    ans = ask(
        source="shanghai",
        deadline_ms=1500,
        work_h100_ms=300,
        data=[{"data_class": "cn.pi.sensitive", "origin": "CN"}],
    )
    assert ans["target"].startswith("cn-") and not ans["edge"]
    assert ans["total_ms"] <= 1500
    sg = [o for o in ans["options"] if o["region"] == "ap-singapore"]
    assert sg and not any(o["legal"] for o in sg) and all(o["rule"] == "CN-4" for o in sg)


def test_fastest_accelerator_wins_and_tight_deadline_goes_to_edge():
    ans = ask(source="munich", deadline_ms=2000, work_h100_ms=500)
    assert ans["target"] == "eu-frankfurt/B200"  # nearest region, fastest chip
    ans = ask(source="munich", deadline_ms=40, work_h100_ms=50, network="4g")
    assert ans["edge"] and "run on the device" in ans["reason"]


def test_no_legal_region_goes_to_edge():
    ans = ask(
        source="singapore",
        deadline_ms=2000,
        work_h100_ms=10,
        data=[{"data_class": "cn.important", "origin": "CN"}],
        stacks=["cuda"],
    )
    # CN-only data with a CUDA-only model: CN has H800/A800/H20, so it is still legal
    assert not ans["edge"] and ans["target"].startswith("cn-")
    ans = ask(
        source="singapore",
        deadline_ms=2000,
        work_h100_ms=10,
        data=[{"data_class": "cn.important", "origin": "CN"}],
        stacks=["rocm"],
    )
    assert ans["edge"] and "legally" in ans["reason"]


def test_bad_source_and_network_are_clear_errors():
    with pytest.raises(ValueError, match="not a known site"):
        ask(source="atlantis", deadline_ms=100, work_h100_ms=1)
    with pytest.raises(ValueError, match="network '6g': unknown"):
        ask(source="shanghai", deadline_ms=100, work_h100_ms=1, network="6g")


def _stream(rate, seconds=60.0):
    cls = RequestClass(
        "cockpit",
        "cn-maker",
        ("shanghai", "beijing"),
        rate,
        1500.0,
        100.0,
        data=(Dataset("cabin", "cn.pi.sensitive", "CN"),),
        work_sigma=0.0,
    )
    return generate_stream([cls], MODEL, seconds, seed=1)


def test_stream_replay_hits_with_capacity_and_misses_when_overloaded():
    s = _stream(rate=5.0)
    assert 200 < len(s) < 400
    plenty = replay_stream(
        s, POOL, MODEL, check(), {"cn-hangzhou/H20": 16, "ap-singapore/H100": 64}
    )
    assert plenty.hit_rate() == 1.0
    used = {plenty.flavors[f] for f in plenty.target}
    assert used == {"cn-hangzhou/H20"}  # SG is faster hardware but not allowed
    none = replay_stream(s, POOL, MODEL, check(), {"ap-singapore/H100": 64})
    assert none.hit_rate() == 0.0 and none.edge_rate() == 1.0
    # one slot, ~0.67 s per request on an H20, 5 requests/s: the queue explodes
    tight = replay_stream(s, POOL, MODEL, check(), {"cn-hangzhou/H20": 1})
    service_ms = 100.0 / POOL.accelerators["H20"].h100_equiv
    most = (60_000.0 + 1500.0) / service_ms + 1  # one slot serves at most this many in time
    assert 0.0 < tight.hit_rate() <= most / len(s) < 0.5
    assert np.all(tight.total_ms[tight.hit] <= 1500.0)


def test_stream_rejects_unknown_flavor():
    with pytest.raises(ValueError, match="unknown flavor"):
        replay_stream(_stream(1.0), POOL, MODEL, check(), {"cn-hangzhou/TPU": 1})


def test_api_route_audit_and_approvals():
    c = check()
    app = FastAPI()
    app.include_router(residency_router(c, MODEL), prefix="/api")
    client = TestClient(app)
    r = client.post(
        "/api/route",
        json={
            "source": "shanghai",
            "deadline_ms": 1500,
            "work_h100_ms": 100,
            "data": [{"data_class": "cn.pi", "origin": "CN"}],
        },
    )
    assert r.status_code == 200 and r.json()["target"].startswith("cn-")
    assert (
        client.post(
            "/api/route", json={"source": "x", "deadline_ms": 1, "work_h100_ms": 1}
        ).status_code
        == 422
    )
    body = {
        "id": "sa-1",
        "kind": "security_assessment",
        "origin": "CN",
        "to": ["SG"],
        "expires": "2027-01-01T00:00:00Z",
    }
    r = client.post("/api/approvals", json=body)
    assert r.status_code == 201 and r.json()["active"] is True
    assert client.post("/api/approvals", json=body).status_code == 409
    assert (
        client.post("/api/approvals", json={**body, "id": "x", "kind": "nope"}).status_code == 422
    )
    ds = (Dataset("fleet", "cn.important", "CN"),)
    assert c.flavor_mask(ds, POOL)[0][[f.region == "ap-singapore" for f in POOL.flavors]].all()
    assert client.delete("/api/approvals/sa-1").json()["active"] is False
    c.sync(c.now)
    assert not c.flavor_mask(ds, POOL)[0][[f.region == "ap-singapore" for f in POOL.flavors]].any()
    assert client.delete("/api/approvals/nope").status_code == 404
    assert client.get("/api/approvals").json()[0]["id"] == "sa-1"
    assert client.get("/api/audit").json() == []
