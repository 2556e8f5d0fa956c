"""Scale to zero on the live pool with the gateway's activator (real emulated replica
processes on the local backend): an idle service is stopped and its device goes back; a
request wakes it and is answered after a measured cold start; the activator's queue and wait
are bounded (503 + Retry-After); a tenant hammering a cold model meets its own rate limit and
its share of the queue, and another tenant's request still gets through. And the same wake-up
with a real engine (llama-cpp-python on a tiny random GGUF) where it is installed (opt-in)."""

from __future__ import annotations

import importlib.util
import threading
import time

import pytest

from tests.server.conftest import LivePool, sqlite_live

SLEEPY = """
traffic: {rate_scale: 0.05, duration_hours: 0.25, seed: 0}
serving: {interval_s: 2, packing: false}
services:
  - name: sleepy
    model: qwen2.5-0.5b
    accelerators: [V100]
    max_replicas: 1
    scale_to_zero: {idle_s: 1.0, queue: QUEUE, max_wait_s: WAIT}
    engine_args: ARGS
"""
CHAT = {"model": "sleepy", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def _file(tmp_path, queue=4, wait=60, args="[]"):
    p = tmp_path / "s.yaml"
    p.write_text(
        SLEEPY.replace("QUEUE", str(queue)).replace("WAIT", str(wait)).replace("ARGS", args)
    )
    return str(p)


def _status(p: LivePool) -> dict:
    (st,) = p.client.get("/services", headers=p.admin).json()
    return st


def _asleep(p: LivePool) -> None:
    """Scaled to zero and its engine process gone (its device is held until then)."""
    p.wait(lambda: (st := _status(p))["asleep"] and st["replicas"] == 0 and st["stopping"] == 0,
           30, "scaled to zero")  # fmt: skip


def _services_on_v100(p: LivePool) -> int:
    flavors = p.client.get("/v1/pool", headers=p.admin).json()["flavors"]
    return sum(f.get("services", 0) for f in flavors if "V100" in f["flavor"])


def test_idle_service_goes_to_zero_and_a_request_wakes_it(tmp_path):
    with sqlite_live(tmp_path, services=_file(tmp_path)) as p:
        who = p.tenant("cabin")
        _asleep(p)
        st = _status(p)
        assert st["devices"] == [] and st["scaled_to_zero"] + st["cold_starts"] >= 0
        # its device goes back to the training queue (at the round that saw its process gone)
        p.wait(lambda: _services_on_v100(p) == 0, 10, "device back")
        t0 = time.monotonic()
        r = p.client.post("/v1/chat/completions", headers=who, json=CHAT)
        took = time.monotonic() - t0
        assert r.status_code == 200, r.text
        assert r.json()["usage"]["completion_tokens"] == 2
        st = _status(p)
        assert st["cold_starts"] == 1
        # real: a process started and the engine became ready (modelled weight load ~0.3 s)
        assert 0.3 < st["cold_start_s_last"] <= took
        assert len(st["devices"]) == 1
        (mine,) = p.client.get("/v1/pool", headers=who).json()["services"]  # a tenant's view
        assert (mine["scale_to_zero"], mine["cold_starts"]) == (True, 1)
        assert mine["cold_start_s"] == st["cold_start_s_last"]
        text = p.client.get("/metrics", headers=p.admin).text
        assert 'cpool_service_cold_starts_total{service="sleepy"} 1.0' in text
        assert 'cpool_service_cold_start_seconds_count{service="sleepy"} 1.0' in text
        page = p.client.get("/serving", headers=p.admin).text
        assert "Cold starts" in page
        # idle again: back to zero, and a second wake is a second cold start
        _asleep(p)
        assert p.client.post("/v1/chat/completions", headers=who, json=CHAT).status_code == 200
        assert _status(p)["cold_starts"] == 2


def _post(p: LivePool, who, out: list, i: int) -> None:
    out[i] = p.client.post("/v1/chat/completions", headers=who, json=CHAT)


def test_activator_queue_and_wait_are_bounded(tmp_path):
    # the engine takes 60 s to be ready: nobody may wait that long
    path = _file(tmp_path, queue=1, wait=2, args='["--start-delay", "60"]')
    with sqlite_live(tmp_path, services=path) as p:
        a, b = p.tenant("oem-a"), p.tenant("oem-b")
        _asleep(p)
        got: list = [None]
        t = threading.Thread(target=_post, args=(p, a, got, 0))
        t.start()
        p.wait(lambda: _status(p)["held_requests"] == 1, 10, "a request held")
        full = p.client.post("/v1/chat/completions", headers=b, json=CHAT)
        assert full.status_code == 503, full.text
        assert full.json()["error"]["code"] == "activator_queue_full"
        assert int(full.headers["retry-after"]) >= 1
        t.join(30)
        late = got[0]
        assert late.status_code == 503 and late.json()["error"]["code"] == "cold_start_timeout"
        assert int(late.headers["retry-after"]) >= 1
        assert _status(p)["held_requests"] == 0
        text = p.client.get("/metrics", headers=p.admin).text
        assert 'cpool_gateway_activator_refused_total{reason="queue",service="sleepy"} 1.0' in text


def test_a_tenant_hammering_a_cold_model_does_not_starve_others(tmp_path):
    path = _file(tmp_path, queue=4, wait=60, args='["--start-delay", "3"]')
    with sqlite_live(tmp_path, services=path) as p:
        hostile = p.tenant("hostile", requests_per_s=0.2)
        greedy = p.tenant("greedy")  # no rate limit: its share of the queue bounds it
        other = p.tenant("other")
        _asleep(p)
        n = 12
        out: list = [None] * (n + 4)
        threads = [threading.Thread(target=_post, args=(p, hostile, out, i)) for i in range(n)]
        threads += [threading.Thread(target=_post, args=(p, greedy, out, n + i)) for i in range(3)]
        for t in threads:
            t.start()
        p.wait(lambda: _status(p)["held_requests"] >= 2, 10, "requests held")
        _post(p, other, out, n + 3)  # held beside the others, answered once the replica is up
        for t in threads:
            t.join(60)
        codes = [r.status_code for r in out[:n]]
        # the rate limit (one request, then one per 5 s) applies before the queue: at most one
        # of the hostile tenant's requests reaches it, so it cannot fill the queue (4 places)
        assert codes.count(429) >= n - 1, codes
        assert all(r.json()["error"]["code"] == "rate_limit_exceeded"
                   for r in out[:n] if r.status_code == 429)  # fmt: skip
        greedy_codes = sorted(r.status_code for r in out[n : n + 3])
        assert greedy_codes == [200, 200, 429], greedy_codes  # at most half the queue: 2 of 4
        refused = next(r for r in out[n : n + 3] if r.status_code == 429)
        assert refused.json()["error"]["code"] == "activator_share_exceeded"
        assert out[n + 3].status_code == 200, out[n + 3].text


LLAMA = """
traffic: {rate_scale: 0.05, duration_hours: 0.25, seed: 0}
serving: {interval_s: 2, packing: false}
services:
  - {name: sleepy, model: qwen2.5-0.5b, accelerators: [V100], max_replicas: 1,
     engine: llama-cpp-python, model_path: GGUF, scale_to_zero: {idle_s: 1.0}}
"""


@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("gguf") is None,
    reason="llama-cpp-python is opt-in (pip install -e '.[engines]' compiles llama.cpp)",
)
def test_a_real_engine_scales_to_zero_and_wakes(tmp_path):
    from computepool.serving.engines.tiny_gguf import write_tiny_llama

    gguf = write_tiny_llama(tmp_path / "tiny.gguf")
    path = tmp_path / "s.yaml"
    path.write_text(LLAMA.replace("GGUF", str(gguf)))
    with sqlite_live(tmp_path, services=str(path)) as p:
        who = p.tenant("cabin")
        _asleep(p)
        body = {"model": "sleepy", "prompt": "hello pool", "max_tokens": 3}
        r = p.client.post("/v1/completions", headers=who, json=body)
        assert r.status_code == 200, r.text
        assert r.json()["usage"]["completion_tokens"] >= 1
        st = _status(p)
        assert st["cold_starts"] == 1 and st["cold_start_s_last"] > 0
        assert st["memory_fraction"] is None  # not multiplexed: no memory share
