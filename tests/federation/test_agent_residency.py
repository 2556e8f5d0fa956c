"""The agent's second line of defence: it judges each start's data again, with the same
residency code and its own region data, and refuses what its jurisdiction may not run
whatever the control plane's ticket says."""

from __future__ import annotations

import math

from computepool.admission.approvals import Approval, ApprovalBook, PersonCounters, TimeBase
from computepool.admission.judge import State, judge_profile
from computepool.admission.rulebook import load_rulebook
from computepool.catalog.pools import load_pool
from computepool.catalog.regions import load_regions
from computepool.federation.agent import Agent, AgentConfig
from computepool.federation.loopback import ClusterDef, pool_yaml
from computepool.federation.protocol import HeartbeatOut, StartCmd
from computepool.federation.residency import make_ticket, recheck
from computepool.model.job import Dataset

RULES = load_rulebook()
REGIONS = {n: r.jurisdiction for n, r in load_regions().items()}
EU_PERSONAL = Dataset("cabin", "eu.personal", "EU", "eu-frankfurt", 50, 40_000, False, "bx")
SG_PERSONAL = Dataset("fleet", "sg.personal", "SG", "ap-singapore", 2.5, None, False, "lion")
CONTRACT = Approval("lion-cn", "sg_transfer_contract", "lion", "SG", "sg.personal", ("CN",))


def ticket(datasets, region: str, approvals=ApprovalBook(), forged_allow: bool | None = None):
    state = State(approvals, PersonCounters(), 0.0, TimeBase())
    v = judge_profile(tuple(datasets), region, REGIONS, RULES, state)
    t = make_ticket(datasets, region, REGIONS[region], v, approvals, 0.0)
    return t if forged_allow is None else t.model_copy(update={"allowed": forged_allow})


def test_a_forged_ticket_is_refused_by_the_agents_own_judgement():
    forged = ticket([EU_PERSONAL], "cn-ulanqab", forged_allow=True)
    why = recheck(forged, REGIONS, ["cn-ulanqab"], RULES)
    assert why.startswith("residency:") and "EU" in why
    honest = ticket([EU_PERSONAL], "eu-frankfurt")
    assert recheck(honest, REGIONS, ["eu-frankfurt"], RULES) == ""


def test_a_ticket_for_another_region_or_none_is_refused():
    t = ticket([EU_PERSONAL], "eu-frankfurt")
    assert "verdict is for 'eu-frankfurt'" in recheck(t, REGIONS, ["cn-ulanqab"], RULES)
    assert "no residency verdict" in recheck(None, REGIONS, ["cn-ulanqab"], RULES)
    assert "not one of this cluster's" in recheck(t, {"x": "EU"}, ["eu-frankfurt"], RULES)
    refused = ticket([EU_PERSONAL], "cn-ulanqab")
    assert not refused.allowed
    assert "verdict itself refuses" in recheck(refused, REGIONS, ["cn-ulanqab"], RULES)


def test_approvals_travel_with_the_ticket_and_only_those_count():
    book = ApprovalBook((CONTRACT,))
    t = ticket([SG_PERSONAL], "cn-ulanqab", book)
    assert t.allowed and [a.id for a in t.approvals] == ["lion-cn"]
    assert t.approvals[0].expires is None  # infinity travels as null
    assert recheck(t, REGIONS, ["cn-ulanqab"], RULES) == ""
    stripped = t.model_copy(update={"approvals": []})
    assert recheck(stripped, REGIONS, ["cn-ulanqab"], RULES).startswith("residency:")
    expired = t.model_copy(update={"at": 1e10})
    expired.approvals[0].expires = 1.0
    assert recheck(expired, REGIONS, ["cn-ulanqab"], RULES).startswith("residency:")
    assert not math.isnan(t.at)


def test_the_agent_reports_a_refusal_and_starts_nothing(tmp_path):
    c = ClusterDef("alpha", "cn-ulanqab", "H800", nodes=1)
    (tmp_path / "p.yaml").write_text(pool_yaml("alpha", (c,)))
    pool = load_pool(str(tmp_path / "p.yaml"))
    cfg = AgentConfig(
        url="http://127.0.0.1:9", token="t", cluster="alpha", pool=pool,
        data_dir=tmp_path / "agent", rulebook=RULES, regions=REGIONS,
    )  # fmt: skip
    agent = Agent(cfg)
    base = {"job_id": 1, "key": "1", "attempt": 1, "argv": ["true"],
            "flavor": "cn-ulanqab/H800", "workers": [("alpha-h800-0", [0])]}  # fmt: skip
    forged = ticket([EU_PERSONAL], "cn-ulanqab", forged_allow=True)
    agent._start(StartCmd(id="1-1", residency=forged, **base))
    elsewhere = {**base, "workers": [("beta-h100-0", [0])]}
    agent._start(StartCmd(id="1-2", residency=forged, **elsewhere))
    too_many = {**base, "workers": [("alpha-h800-0", [8])]}
    agent._start(StartCmd(id="1-3", residency=ticket([], "cn-ulanqab"), **too_many))
    states = {r.id: (r.state, r.reason) for r in agent.reports}
    assert states["1-1"][0] == "refused" and "EU" in states["1-1"][1]
    assert states["1-2"][0] == "refused" and "not one of this cluster's" in states["1-2"][1]
    assert states["1-3"][0] == "refused" and "no devices" in states["1-3"][1]
    assert not agent.local.running and not list((tmp_path / "agent" / "runs").iterdir())
    ok = ticket([], "cn-ulanqab")
    again = StartCmd(id="1-1", residency=ok, **base)  # a refused id is never run later
    agent.apply(HeartbeatOut(lease_s=9, poll_s=1, start=[again]))
    assert not agent.tracked
    agent.apply(HeartbeatOut(lease_s=9, poll_s=1, start=[StartCmd(id="1-4", residency=ok, **base)]))
    try:
        assert list(agent.tracked) == ["1-4"] and len(agent.local.running) == 1
    finally:
        agent.local.shutdown(stop_jobs=True)
