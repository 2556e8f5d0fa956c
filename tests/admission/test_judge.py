import pytest

from computepool.admission.approvals import Approval, ApprovalBook, PersonCounters, TimeBase
from computepool.admission.judge import State, judge_dataset, judge_profile
from computepool.admission.rulebook import load_rulebook
from computepool.model.job import Dataset

RB = load_rulebook()
JUR = {"cn-ulanqab": "CN", "cn-hangzhou": "CN", "ap-singapore": "SG", "eu-frankfurt": "EU"}


def state(*approvals, counters=None, now=0.0):
    return State(ApprovalBook(tuple(approvals)), counters or PersonCounters(), now, TimeBase())


def ok(a_id, kind, **kw):
    return Approval(a_id, kind, **kw)


CASES = [
    # (dataset kwargs, destination, approvals, allowed, deciding rule)
    (dict(data_class="cn.important", origin="CN"), "CN", (), True, "CN-1"),
    (dict(data_class="cn.important", origin="CN"), "SG", (), False, "CN-1"),
    (
        dict(data_class="cn.important", origin="CN"),
        "SG",
        (ok("sa", "security_assessment"),),
        True,
        "CN-1",
    ),
    (
        dict(data_class="cn.mapping", origin="CN"),
        "EU",
        (ok("sa", "security_assessment"),),
        False,
        "CN-2",
    ),
    (dict(data_class="cn.exterior_media", origin="CN"), "SG", (), False, "CN-3"),
    (dict(data_class="cn.exterior_media", origin="CN", anonymised=True), "SG", (), True, "CN-8"),
    (
        dict(data_class="cn.pi.sensitive", origin="CN", persons=10),
        "SG",
        (ok("c", "consent"), ok("p", "pipia"), ok("s", "standard_contract")),
        False,
        "CN-4",
    ),
    (dict(data_class="cn.pi", origin="CN", persons=5_000), "SG", (), False, "CN-5"),
    (
        dict(data_class="cn.pi", origin="CN", persons=5_000),
        "SG",
        (ok("c", "consent"), ok("p", "pipia")),
        True,
        "CN-5",
    ),
    (
        dict(data_class="cn.pi", origin="CN", persons=None),
        "SG",
        (ok("c", "consent"), ok("p", "pipia")),
        False,
        "CN-5",
    ),
    (
        dict(data_class="cn.pi", origin="CN", persons=200_000),
        "SG",
        (ok("c", "consent"), ok("p", "pipia"), ok("s", "standard_contract")),
        False,
        "CN-5",
    ),
    (dict(data_class="eu.personal", origin="EU"), "EU", (), True, "EU-1"),
    (dict(data_class="eu.personal", origin="EU"), "CN", (), False, "EU-1"),
    (dict(data_class="eu.personal", origin="EU"), "CN", (ok("scc", "eu_scc"),), True, "EU-1"),
    (dict(data_class="eu.personal", origin="EU"), "US", (), False, "EU-1"),
    (dict(data_class="eu.personal", origin="EU"), "JP", (), True, "EU-1"),
    (dict(data_class="eu.personal", origin="EU", anonymised=True), "CN", (), True, "EU-2"),
    (dict(data_class="sg.personal", origin="SG"), "CN", (), False, "SG-1"),
    (
        dict(data_class="sg.personal", origin="SG"),
        "CN",
        (ok("t", "sg_transfer_contract"),),
        True,
        "SG-1",
    ),
    (dict(data_class="foreign.reexport", origin="EU"), "SG", (), True, "CN-7"),
    (dict(data_class="general", origin=""), "SG", (), True, "GEN-1"),
    (dict(data_class="mystery", origin="CN"), "CN", (), True, "UNMATCHED"),
    (dict(data_class="mystery", origin="CN"), "EU", (), False, "UNMATCHED"),
]


@pytest.mark.parametrize("kw, dest, approvals, allowed, rule", CASES)
def test_rule_table(kw, dest, approvals, allowed, rule):
    ds = Dataset("d", handler="maker", **kw)
    v = judge_dataset(ds, dest, RB, state(*approvals))
    assert (v.allowed, v.rule) == (allowed, rule), v.reason
    assert v.allowed == bool(v.grant)
    if not allowed:
        assert rule in v.reason


def test_relaxed_reading_opens_the_standard_contract_route():
    relaxed = RB.with_settings(automotive_strict=False)
    ds = Dataset("d", data_class="cn.pi", origin="CN", persons=200_000, handler="m")
    appr = (ok("c", "consent"), ok("p", "pipia"), ok("s", "standard_contract"))
    assert not judge_dataset(ds, "SG", RB, state(*appr)).allowed
    v = judge_dataset(ds, "SG", relaxed, state(*appr))
    assert v.allowed and v.grant == "CN-5/allow[2]" and v.approvals == ("c", "p", "s")


def test_approval_scope_and_expiry():
    ds = Dataset("d", data_class="cn.important", origin="CN", handler="m")
    scoped = ok("sa", "security_assessment", handler="other")
    assert not judge_dataset(ds, "SG", RB, state(scoped)).allowed
    to_eu = ok("sa", "security_assessment", to=("EU",))
    assert not judge_dataset(ds, "SG", RB, state(to_eu)).allowed
    assert judge_dataset(ds, "EU", RB, state(to_eu)).allowed
    only = ok("sa", "security_assessment", datasets=("other-set",))
    assert not judge_dataset(ds, "SG", RB, state(only)).allowed
    expiring = ok("sa", "security_assessment", expires=100.0)
    assert judge_dataset(ds, "SG", RB, state(expiring, now=99.0)).allowed
    assert not judge_dataset(ds, "SG", RB, state(expiring, now=100.0)).allowed


def test_person_threshold_counts_across_datasets_and_resets_each_year():
    appr = (ok("c", "consent"), ok("p", "pipia"))
    a = Dataset("a", data_class="cn.pi", origin="CN", persons=60_000, handler="m")
    b = Dataset("b", data_class="cn.pi", origin="CN", persons=50_000, handler="m")
    # each fits under 100k alone, not together in one job
    assert judge_profile((a,), "ap-singapore", JUR, RB, state(*appr)).allowed
    v = judge_profile((a, b), "ap-singapore", JUR, RB, state(*appr))
    assert not v.allowed and v.forbidden_by == "CN-5" and "110,000" in v.reason
    # after a was exported this year, b alone breaks the threshold, a again does not
    counters = PersonCounters()
    va = judge_profile((a,), "ap-singapore", JUR, RB, state(*appr, counters=counters))
    for key, name, persons in va.exports:
        counters.add(key, name, persons)
    assert counters.used(("m", "CN", "non_sensitive", 2026)) == 60_000
    assert not judge_profile((b,), "ap-singapore", JUR, RB, state(*appr, counters=counters)).allowed
    assert judge_profile((a,), "ap-singapore", JUR, RB, state(*appr, counters=counters)).allowed
    next_year = TimeBase().next_year_start(0.0)
    assert judge_profile(
        (b,), "ap-singapore", JUR, RB, state(*appr, counters=counters, now=next_year)
    ).allowed
    # another handler has its own counter
    c = Dataset("c", data_class="cn.pi", origin="CN", persons=50_000, handler="n")
    assert judge_profile((c,), "ap-singapore", JUR, RB, state(*appr, counters=counters)).allowed


def test_remote_read_counts_as_transfer_and_storage_must_be_legal():
    # EU personal data stored in Frankfurt, read from Ulanqab: a transfer EU -> CN
    eu = Dataset("eu", data_class="eu.personal", origin="EU", stored_in="eu-frankfurt", size_gb=10)
    v = judge_profile((eu,), "cn-ulanqab", JUR, RB, state())
    assert not v.allowed and v.forbidden_by == "EU-1"
    assert judge_profile((eu,), "eu-frankfurt", JUR, RB, state()).allowed
    # CN important data stored (illegally) in Singapore: nowhere may read it, even in CN
    bad = Dataset("x", data_class="cn.important", origin="CN", stored_in="ap-singapore")
    v = judge_profile((bad,), "cn-hangzhou", JUR, RB, state())
    assert not v.allowed and v.forbidden_by == "CN-1" and "stored in ap-singapore" in v.reason
    unknown = Dataset("u", data_class="general", origin="CN", stored_in="mars-1")
    assert not judge_profile((unknown,), "cn-hangzhou", JUR, RB, state()).allowed


def test_profile_verdict_lists_rules_consulted_and_allowing_grants():
    a = Dataset("a", data_class="cn.important", origin="CN")
    g = Dataset("g", data_class="general", origin="CN")
    v = judge_profile((a, g), "cn-ulanqab", JUR, RB, state())
    assert v.allowed and v.consulted == ("CN-1", "CN-8")
    assert v.allowed_by == ("CN-1/allow[0]", "CN-8/allow[0]")
