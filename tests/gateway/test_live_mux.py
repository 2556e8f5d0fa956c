"""Several models on one device slot on the live pool (emulated replica processes): the
simulator's mux plan groups three cold models; two share one V100 (their reservations fit
its memory) and both answer through the gateway; a request for the third, which does not
fit beside them, evicts the least recently used idle one and is answered on that device.

The trend forecast is on (the default): the group's first measured rates jump from 0 within
2-s rounds; the trend's span has a floor of ``window_s``, so they do not size the group for
~20x its load and spread the models over new instances (they did before that floor: 1 run in
6 failed here)."""

from __future__ import annotations

from tests.server.conftest import LivePool, sqlite_live

MUX = """
traffic: {rate_scale: 0.05, duration_hours: 0.25, seed: 0}
serving: {interval_s: 2, multiplex: true, keep_alive_s: 600, packing: false}
services:
  - {name: alpha, model: qwen2.5-3b, accelerators: [V100], share: 0.001}
  - {name: beta, model: qwen1.5-1.8b, accelerators: [V100], share: 0.001}
  - {name: gamma, model: llama-3.2-1b, accelerators: [V100], share: 0.001}
"""


def _status(p: LivePool) -> dict[str, dict]:
    return {s["name"]: s for s in p.client.get("/services", headers=p.admin).json()}


def _ask(p: LivePool, who, model: str):
    body = {"model": model, "prompt": "hello", "max_tokens": 2}
    return p.client.post("/v1/completions", headers=who, json=body)


def test_two_models_share_a_device_and_the_lru_idle_one_makes_room(tmp_path):
    path = tmp_path / "mux.yaml"
    path.write_text(MUX)
    with sqlite_live(tmp_path, services=str(path)) as p:
        who = p.tenant("cabin")
        p.wait(lambda: _status(p)["beta"]["healthy"] == 1 and _status(p)["alpha"]["healthy"] == 1,
               60, "alpha and beta ready")  # fmt: skip
        st = _status(p)
        # one device slot, two engines: 6.78 + 6.90 GB reserved of 14.4 usable (V100 16 GiB)
        assert st["alpha"]["devices"] == st["beta"]["devices"]
        assert len(st["alpha"]["devices"]) == 1 and len(st["alpha"]["devices"][0]["devices"]) == 1
        assert st["alpha"]["mux_group"] == st["beta"]["mux_group"] == st["gamma"]["mux_group"]
        assert 0 < st["alpha"]["memory_fraction"] + st["beta"]["memory_fraction"] <= 0.9
        # gamma (3.0 GB) does not fit beside them: not started while nobody asks for it
        assert st["gamma"]["replicas"] == 0
        flavors = p.client.get("/v1/pool", headers=p.admin).json()["flavors"]
        assert sum(f["services"] for f in flavors) == 1
        assert _ask(p, who, "alpha").status_code == 200
        r = _ask(p, who, "beta")  # beta used last: alpha is the least recently used
        assert r.status_code == 200, r.text
        r = _ask(p, who, "gamma")
        assert r.status_code == 200, r.text
        st = _status(p)
        assert st["alpha"]["evictions"] == 1 and st["alpha"]["replicas"] == 0
        assert st["beta"]["evictions"] == 0 and st["beta"]["replicas"] == 1
        assert st["gamma"]["cold_starts"] == 1 and st["gamma"]["cold_start_s_last"] > 0
        assert st["gamma"]["devices"] == st["beta"]["devices"]  # alpha's room, same device
        flavors = p.client.get("/v1/pool", headers=p.admin).json()["flavors"]
        assert sum(f["services"] for f in flavors) == 1
        # and alpha comes back when asked (evicting gamma or beta, whichever is older)
        assert _ask(p, who, "alpha").status_code == 200


MERGED = """
traffic: {rate_scale: 0.05, duration_hours: 0.25, seed: 0}
serving: {interval_s: 2, multiplex: true, keep_alive_s: 600, packing: false, mux_merge: true}
services:
  - {name: beta, model: qwen1.5-1.8b, accelerators: [V100], share: 0.001}
  - {name: gamma, model: llama-3.2-1b, accelerators: [V100], share: 0.001}
  - {name: delta, model: qwen2.5-7b, accelerators: [V100], share: 0.001}
  - {name: epsilon, model: qwen2.5-7b, accelerators: [V100], share: 0.001}
"""


def test_a_merged_group_serves_its_small_models_on_the_bigger_instances(tmp_path):
    # mux_merge: the 7B models need 2-V100 instances, the small ones 1; together they hold
    # fewer devices, so the small models' group joins the 2-device one (the simulator's plan),
    # and the live pool runs them there
    path = tmp_path / "merged.yaml"
    path.write_text(MERGED)
    with sqlite_live(tmp_path, services=str(path)) as p:
        who = p.tenant("cabin")
        st = _status(p)
        groups = {st[n]["mux_group"] for n in ("beta", "gamma", "delta", "epsilon")}
        assert len(groups) == 1 and None not in groups
        for name in ("beta", "delta"):
            r = _ask(p, who, name)
            assert r.status_code == 200, r.text
        st = _status(p)
        for name in ("beta", "delta"):
            (slot,) = st[name]["devices"]
            assert len(slot["devices"]) == 2, st[name]  # a 2-V100 instance
