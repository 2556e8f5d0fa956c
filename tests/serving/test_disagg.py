"""Prefill/decode disaggregation: prompts in a prefill pool shared across models."""

import numpy as np
import pytest

from computepool.catalog.pools import load_pool
from computepool.model.throughput import Throughputs
from computepool.model.workload import Workload
from computepool.policies import get_policy
from computepool.serving.disagg import kv_transfer_s
from computepool.serving.service import ServiceSpec
from computepool.sim.run import SimConfig, simulate
from tests.serving.helpers import model, one_node_pool, stream, workload

EMPTY = Workload(np.zeros(0), np.zeros(0), np.zeros(0), [])


def _run(pool, services):
    tp = Throughputs(pool.accelerators)
    return simulate(pool, EMPTY, tp, get_policy("las"), SimConfig(), services=services)


def test_kv_transfer_is_a_round_trip_plus_bytes_over_the_catalogued_link():
    pool = load_pool("automotive-demo")
    b = np.array([0.0, 1e9])
    same = kv_transfer_s(b, pool, "cn-ulanqab", "cn-ulanqab")
    across = kv_transfer_s(b, pool, "cn-ulanqab", "cn-hangzhou")
    key = ("cn-hangzhou", "cn-ulanqab")
    assert across == pytest.approx(pool.rtt(*key) / 1e3 + b * 8 / (pool.bandwidth_gbps[key] * 1e9))
    assert (same < across).all() and same[0] == pytest.approx(
        pool.rtt("cn-ulanqab", "cn-ulanqab") / 1e3
    )


def _two(disaggregate: bool):
    pool = one_node_pool(per_node=8, nodes=2)
    svcs = [ServiceSpec(n, model("qwen2.5-7b"), max_replicas=8) for n in ("a", "b")]
    streams = [stream(np.full(900, 4.0), prompt=3000, seed=1), stream(np.full(900, 0.5), seed=2)]
    return _run(pool, workload(svcs, streams, 900.0, packing=False, disaggregate=disaggregate))


def test_services_share_one_prefill_pool_and_decode_steps_hold_no_prompts():
    mixed, split = _two(False), _two(True)
    rows = {r["name"]: r for r in split.extra["services"]}
    pools = [r for r in rows.values() if r["status"] == "prefill pool"]
    assert len(pools) == 1 and sorted(pools[0]["members"]) == ["a", "b"]
    assert rows["a"]["prefilled_by"] == pools[0]["name"]
    assert rows["a"]["prefill_accelerator_hours"] > rows["b"]["prefill_accelerator_hours"] > 0
    # decode replicas no longer fill their steps with prompt chunks (Sarathi-style mixing)
    a_mixed = mixed.serving.states[0].replay
    a_split = split.serving.states[0].replay
    assert np.median(a_split.tbt) < 0.5 * np.median(a_mixed.tbt)
    # every first token waited at least for its KV cache to move
    pool_state = next(s for s in split.serving.states if s.prefill_for)
    member, pos = pool_state.member_pos
    assert (a_split.ttft[pos[member == 0]] >= pool_state.transfer[member == 0]).all()
    assert split.extra["serving"]["slo_attainment_min_service"] >= 0.99


def test_decode_groups_charge_their_members_and_the_table_names_the_pool():
    from computepool.cli.serving_view import SERVICE_COLUMNS

    pool = one_node_pool(per_node=8, nodes=2)
    svcs = [ServiceSpec(f"m{i}", model("qwen2.5-7b"), max_replicas=4) for i in range(4)]
    streams = [stream(np.full(900, 0.05), seed=50 + i) for i in range(4)]
    res = _run(
        pool,
        workload(svcs, streams, 900.0, packing=False, multiplex=True, disaggregate=True),
    )
    rows = {r["name"]: r for r in res.extra["services"]}
    group = next(r for r in rows.values() if r["status"] == "group")
    members = [rows[m] for m in group["members"]]
    assert all(m["accelerator_hours"] > 0 for m in members)  # by output tokens, not prompts
    assert sum(m["accelerator_hours"] for m in members) == pytest.approx(group["accelerator_hours"])
    p = next(r for r in rows.values() if r["status"] == "prefill pool")
    att = next(c for c in SERVICE_COLUMNS if c.header == "SLO ATT.")
    assert att.cell(p) == "prefill pool"
