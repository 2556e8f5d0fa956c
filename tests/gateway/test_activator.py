"""The gateway's activator against TEST DOUBLES of replicas (fast; the real controller and
emulated engines are in ``test_scale_to_zero.py``): a replica stopped between the lookup and
the send does not cost the request (it is held, then sent to the replica that came up), and a
replica already up when the request came is not counted as a cold start."""

from __future__ import annotations

from dataclasses import dataclass, field

from computepool.server.service_directory import ServiceInfo, StaticDirectory
from computepool.serving.activity import ActivatorBounds, Activity
from tests.gateway.conftest import dead_url

BODY = {"model": "chat-7b", "prompt": "one two", "max_tokens": 3}


@dataclass
class Waking(StaticDirectory):
    """A directory whose one service scales to zero: ``endpoints`` gives ``first`` once,
    then nothing; ``starting`` gives the replicas that are coming up (``after_wake``: only
    once a held request woke the controller)."""

    first: list[str] = field(default_factory=list)
    up: list[str] = field(default_factory=list)
    activity: Activity = field(default_factory=lambda: Activity(["chat-7b"]))
    woken: int = 0
    after_wake: bool = False

    def endpoints(self, name: str) -> list[str]:
        out, self.first = self.first, []
        return out

    def bounds(self, name: str) -> ActivatorBounds:
        return ActivatorBounds(idle_s=60, queue=4, max_wait_s=5)

    def hold(self, name: str, tenant: int) -> str:
        return self.activity.hold(name, tenant, self.bounds(name))

    def unhold(self, name: str, tenant: int) -> None:
        self.activity.unhold(name, tenant)

    def ready(self, name: str) -> float | None:
        return self.activity.ready(name)

    def starting(self, name: str) -> list[tuple[str, str]]:
        if self.after_wake and not self.woken:
            return []
        return [(u, f"{u}/health") for u in self.up]

    def begin(self, name: str) -> None:
        self.activity.begin(name)

    def end(self, name: str) -> None:
        self.activity.end(name)

    def wake(self) -> None:
        self.woken += 1


def _info() -> list[ServiceInfo]:
    return [ServiceInfo("chat-7b", "default", "qwen2.5-7b", scale_to_zero=True)]


def test_a_replica_stopped_before_the_send_gets_the_request_held(gw):
    live = gw.gateway.directory.endpoints("chat-7b")[0]  # a double that answers
    d = Waking(_info(), {}, first=[dead_url()], up=[live], after_wake=True)
    gw.gateway.directory = d
    who = gw.tenant("oem-a")
    r = gw.http.post("/v1/completions", headers=who, json=BODY)
    assert r.status_code == 200, r.text
    assert d.woken == 1  # held: the controller's round was woken
    a = d.activity.snapshot("chat-7b")
    assert (a.inflight, a.held, a.cold_starts) == (0, 0, 1)


def test_a_replica_already_up_is_no_cold_start(gw):
    live = gw.gateway.directory.endpoints("chat-7b")[0]
    d = Waking(_info(), {}, up=[live])
    gw.gateway.directory = d
    r = gw.http.post("/v1/completions", headers=gw.tenant("oem-a"), json=BODY)
    assert r.status_code == 200, r.text
    a = d.activity.snapshot("chat-7b")
    assert (d.woken, a.cold_starts, a.inflight) == (0, 0, 0)


def test_a_service_that_does_not_scale_to_zero_is_not_held(gw):
    r = gw.http.post("/v1/completions", headers=gw.tenant("oem-a"), json={**BODY, "model": "down"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "no_replica_ready"
    assert r.headers["retry-after"] == "5"


@dataclass
class Standby(Waking):
    """The same service on a standby server: another server holds the lease."""

    retry_s: float | None = 7.0

    def standby_retry_s(self) -> float | None:
        return self.retry_s


def test_a_standby_refuses_at_once_with_retry_after_and_holds_nothing(gw):
    live = gw.gateway.directory.endpoints("chat-7b")[0]
    d = Standby(_info(), {}, up=[live])
    gw.gateway.directory = d
    who = gw.tenant("oem-a")
    r = gw.http.post("/v1/completions", headers=who, json=BODY)
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "standby_not_serving"
    assert r.headers["Retry-After"] == "7"
    a = d.activity.snapshot("chat-7b")
    assert (d.woken, a.held, a.inflight, a.cold_starts) == (0, 0, 0, 0)  # nothing waited
    text = gw.http.get("/metrics", headers=gw.admin).text
    assert 'cpool_gateway_activator_refused_total{reason="standby",service="chat-7b"} 1.0' in text
    d.retry_s = None  # it leads now: served as before
    r = gw.http.post("/v1/completions", headers=who, json=BODY)
    assert r.status_code == 200, r.text


def test_the_live_directory_knows_when_its_server_is_a_standby():
    from types import SimpleNamespace

    from computepool.server.service_directory import LiveDirectory

    role = {"leader": False}
    ctl = SimpleNamespace(activity=Activity(["a"]), states=[])
    d = LiveDirectory(ctl, leading=lambda: role["leader"], retry_s=15.0)
    assert d.standby_retry_s() == 15.0
    role["leader"] = True
    assert d.standby_retry_s() is None
    assert LiveDirectory(ctl).standby_retry_s() is None  # no HA: always leads


def test_cpool_serve_wires_the_server_role_into_the_gateway():
    from types import SimpleNamespace

    from fastapi import FastAPI

    from computepool.server.runtime import mount_services

    def app_with(**service):
        app = FastAPI()
        svc = SimpleNamespace(wake=lambda: None, fenced=None, **service)
        app.state.ctx = SimpleNamespace(service=svc, gateway=SimpleNamespace(directory=None))
        mount_services(app, SimpleNamespace(activity=Activity([]), states=[]))
        return app.state.ctx.gateway.directory, svc

    d, svc = app_with(standby=True, role="standby", lease=SimpleNamespace(ttl_s=15.0))
    assert d.standby_retry_s() == 15.0
    svc.role = "leader"  # took the lease
    assert d.standby_retry_s() is None
    d, _ = app_with(standby=False, role="standby", lease=None)  # one server, still starting
    assert d.standby_retry_s() is None
