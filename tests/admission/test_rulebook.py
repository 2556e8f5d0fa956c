import pytest

from computepool.admission.approvals import TimeBase, parse_approvals
from computepool.admission.rulebook import RulebookError, load_rulebook


def test_shipped_rulebook_has_every_rule_of_the_draft_table_with_a_basis():
    rb = load_rulebook()
    ids = {r.id for r in rb.rules}
    assert {f"CN-{i}" for i in range(1, 10)} <= ids
    assert {"EU-1", "EU-2", "SG-1"} <= ids
    assert {n.id for n in rb.notes} >= {"X-1", "HW-1"}
    assert all(r.basis for r in rb.rules)
    assert rb.automotive_strict is True


def test_first_match_and_ciio_selector():
    rb = load_rulebook()
    assert rb.match("cn.pi", "CN", "maker").id == "CN-5"
    assert rb.match("general", "EU").id == "EU-2"
    assert rb.match("general", "JP").id == "GEN-1"
    assert rb.match("weird", "CN") is None
    ciio = rb.with_settings(ciio_handlers={"grid-op"})
    assert ciio.match("cn.pi", "CN", "grid-op").id == "CN-9"
    assert ciio.match("cn.pi", "CN", "maker").id == "CN-5"


def _write(tmp_path, text):
    p = tmp_path / "rules.yaml"
    p.write_text(text)
    return p


BASE = """
approval_kinds: {sa: "security assessment"}
rules:
  - id: R-1
    data_classes: [x]
    origins: [CN]
    allow: [{to: [CN]}]
    basis: "law"
"""


@pytest.mark.parametrize(
    "text, field, reason",
    [
        ("rules: [", "line", "not valid YAML"),
        ("- 1\n- 2\n", "(top level)", "expected a mapping"),
        (BASE.replace('basis: "law"', 'basis: ""'), "rules[0].basis", "at least 1 character"),
        (BASE + "    extra: 1\n", "rules[0].extra", "Extra inputs"),
        (
            BASE.replace("[{to: [CN]}]", "[{to: [CN], requires: [scc]}]"),
            "rules[0].allow[0].requires",
            "unknown approval kind 'scc'",
        ),
        (
            BASE.replace("[{to: [CN]}]", "[{to: [CN], persons_below: 10}]"),
            "rules[0].allow[0]",
            "persons_below and counter go together",
        ),
        (
            BASE.replace("[{to: [CN]}]", "[{to: [CN], counter: loud, persons_below: 3}]"),
            "rules[0].allow[0].counter",
            "Input should be",
        ),
        (BASE.replace("[{to: [CN]}]", "[]"), "rules[0].allow", "allows nothing"),
        (BASE + BASE.split("rules:\n")[1], "rules[1].id", "duplicate rule id 'R-1'"),
        (BASE.replace("id: R-1", "id: R 1"), "rules[0].id", "must not contain spaces"),
        (
            BASE + "    when_anonymised: nope\n",
            "rules[0].when_anonymised",
            "no rule covers data class 'nope'",
        ),
        (BASE.replace("version", "v") + "version: 2\n", "version", "Input should be 1"),
    ],
    ids=[
        "yaml",
        "not-mapping",
        "empty-basis",
        "unknown-field",
        "unknown-approval",
        "half-threshold",
        "bad-counter",
        "no-grants",
        "duplicate-id",
        "id-with-space",
        "anon-class",
        "version",
    ],
)
def test_bad_rulebook_names_file_field_and_reason(tmp_path, text, field, reason):
    p = _write(tmp_path, text)
    with pytest.raises(RulebookError) as err:
        load_rulebook(p)
    msg = str(err.value)
    assert str(p) in msg and field in msg and reason in msg, msg


def test_missing_file(tmp_path):
    with pytest.raises(RulebookError, match="no such file"):
        load_rulebook(tmp_path / "nope.yaml")


def test_anonymisation_cycle_is_rejected(tmp_path):
    text = (
        BASE.replace("    basis", "    when_anonymised: y\n    basis")
        + """
  - id: R-2
    data_classes: [y]
    origins: [CN]
    when_anonymised: x
    allow: [{to: [CN]}]
    basis: "law"
"""
    )
    with pytest.raises(RulebookError, match="cycle: x -> y -> x"):
        load_rulebook(_write(tmp_path, text))


def test_operator_override_extends_the_shipped_rules(tmp_path):
    p = _write(
        tmp_path,
        """
extends: default
automotive_strict: false
ciio_handlers: [grid-op]
rules:
  - id: EU-1
    title: EU personal data, EU only by company policy
    data_classes: [eu.personal]
    origins: [EU]
    allow: [{to: [EU]}]
    basis: "company policy, stricter than GDPR"
  - id: OP-1
    data_classes: [telemetry.raw]
    origins: [CN]
    allow: [{to: [CN]}]
    basis: "operator rule"
""",
    )
    rb = load_rulebook(p)
    assert rb.automotive_strict is False
    assert "grid-op" in rb.ciio_handlers
    assert rb.by_id["EU-1"].allow[0].to == ("EU",) and len(rb.by_id["EU-1"].allow) == 1
    assert rb.rules[0].id == "OP-1"  # new rules first: they win the first match
    assert [r.id for r in rb.rules].index("EU-1") > [r.id for r in rb.rules].index("CN-1")
    assert rb.match("telemetry.raw", "CN").id == "OP-1"


APPROVALS = """
approvals:
  - {id: a1, kind: standard_contract, handler: maker, origin: CN, to: [SG], expires: 2026-03-01}
"""


def test_approvals_yaml_and_errors(tmp_path):
    import yaml

    rb = load_rulebook()
    tb = TimeBase()
    book = parse_approvals(yaml.safe_load(APPROVALS), rb, tb, "a.yaml")
    a = book.approvals[0]
    assert a.expires == pytest.approx(59 * 86400)
    assert a.active(0.0) and not a.active(60 * 86400)
    bad = yaml.safe_load(APPROVALS.replace("standard_contract", "handshake"))
    with pytest.raises(RulebookError, match=r"a.yaml: approvals\[0\].kind: unknown approval kind"):
        parse_approvals(bad, rb, tb, "a.yaml")
    bad = yaml.safe_load(APPROVALS.replace("expires: 2026-03-01", "expires: soon"))
    with pytest.raises(RulebookError, match=r"approvals\[0\].expires"):
        parse_approvals(bad, rb, tb, "a.yaml")
    bad = yaml.safe_load(APPROVALS.replace("expires:", "valid_from: 2026-04-01, expires:"))
    with pytest.raises(RulebookError, match="expires on or before valid_from"):
        parse_approvals(bad, rb, tb, "a.yaml")
