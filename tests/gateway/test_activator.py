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
