"""``cpool serve --services FILE``: the gateway routes to the live serving controller's
services (the emulated replicas themselves answer OpenAI bodies only with the merged
emulator; here: listing, pool view, and 503 while the replica loads its weights)."""

from __future__ import annotations

from pathlib import Path

from tests.server.conftest import sqlite_live

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "serving" / "one-chat.yaml"


def test_services_file_is_what_the_gateway_serves(tmp_path):
    from computepool.server.service_directory import LiveDirectory

    with sqlite_live(tmp_path, services=str(EXAMPLE)) as live:
        gw = live.client.app.state.ctx.gateway
        assert isinstance(gw.directory, LiveDirectory)
        who = live.tenant("cabin-team")
        models = live.client.get("/v1/models", headers=who).json()["data"]
        assert [(m["id"], m["root"], m["owned_by"]) for m in models] == [
            ("one-chat", "qwen2.5-1.5b", "computepool")
        ]
        (svc,) = live.client.get("/v1/pool", headers=who).json()["services"]
        assert (svc["name"], svc["replicas_desired"], svc["ttft_slo_s"]) == ("one-chat", 1, 2.0)
        # the emulated replica loads its (modelled) weights for ~20 s: none ready yet
        assert svc["replicas_ready"] == 0
        r = live.client.post("/v1/chat/completions", headers=who,
                             json={"model": "one-chat",
                                   "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert r.json()["error"]["code"] == "no_replica_ready"


def test_the_gateway_is_the_only_door_to_a_live_service(tmp_path):
    """No unauthenticated, unmetered per-service endpoint beside the gateway, and the replicas'
    status (hosts, devices) is for an admin."""
    with sqlite_live(tmp_path, services=str(EXAMPLE)) as live:
        body = {"model": "one-chat", "prompt": "hi", "max_tokens": 2}
        for path in ("/services/one-chat/v1/completions", "/services/one-chat/v1/chat/completions"):
            assert live.client.post(path, json=body).status_code in (404, 405)
        assert live.client.get("/services").status_code == 401
        who = live.tenant("cabin-team")
        assert live.client.get("/services", headers=who).status_code == 403
        (st,) = live.client.get("/services", headers=live.admin).json()
        assert st["name"] == "one-chat"
