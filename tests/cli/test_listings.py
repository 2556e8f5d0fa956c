"""Listings at 80 columns: key columns (ids, names, statuses, flavors) whole, free text
shortened with an ellipsis; ``-o wide`` shows every column, ``-o json`` parses."""

from __future__ import annotations

import json

import pytest
from rich.console import Console
from typer.testing import CliRunner

from computepool.cli.app import app
from computepool.cli.output import Col, build_table

runner = CliRunner()
COLS = {"COLUMNS": "80"}


def run(*args: str, columns: int = 80):
    r = runner.invoke(app, list(args), env={"COLUMNS": str(columns)})
    assert r.exit_code == 0, r.output
    return r.output


def fits(output: str, width: int = 80) -> bool:
    return all(len(line) <= width for line in output.splitlines())


def _render(table, width: int) -> str:
    c = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    c.print(table)
    return c.export_text()


def test_build_table_never_cuts_key_columns_and_shortens_free_text():
    cols = [Col("ID", lambda r: r[0], key=True), Col("FLAVOR", lambda r: r[1], key=True),
            Col("WHY", lambda r: r[2]), Col("EXTRA", lambda r: r[3], wide=True)]  # fmt: skip
    rows = [("12345", "cn-ulanqab/Ascend910C", "x" * 200, "only-in-wide")]
    text = _render(build_table(cols, rows, False, 40), 40)
    assert fits(text, 40) and "cn-ulanqab/Ascend910C" in text and "12345" in text
    assert "…" in text and "only-in-wide" not in text
    wide = _render(build_table(cols, rows, True, 40), 400)
    assert "x" * 200 in wide and "only-in-wide" in wide


def test_optional_columns_leave_before_the_free_text_is_squeezed_away():
    cols = [Col("NAME", lambda r: r[0], key=True), Col("TEXT", lambda r: r[1]),
            Col("AGE", lambda r: r[2], key=True, optional=True)]  # fmt: skip
    rows = [("n" * 28, "t" * 40, "12d")]
    text = _render(build_table(cols, rows, False, 40), 40)
    assert fits(text, 40) and "AGE" not in text and "n" * 28 in text
    assert "AGE" in _render(build_table(cols, rows, False, 80), 80)


def test_catalog_fits_80_columns_with_whole_names():
    out = run("catalog")
    assert fits(out), out
    for name in ("Ascend910B", "Ascend910C", "V100M16", "V100M32", "K100-AI", "cambricon",
                 "undisclosed", "cn-zhangjiakou", "automotive-demo"):  # fmt: skip
        assert name in out, name
    assert "…" not in out
    assert "MEM GB/S" in run("catalog", "-o", "wide") and "MEM GB/S" not in out
    doc = json.loads(run("catalog", "-o", "json"))
    assert {a["name"] for a in doc["accelerators"]} >= {"Ascend910B", "Ascend910C"}
    assert {"regions", "pools"} <= set(doc)


ROUTE = ["route", "--from", "shanghai", "--deadline-ms", "1500", "--work-h100-ms", "300",
         "--data-class", "cn.pi.sensitive", "--origin", "CN"]  # fmt: skip


def test_route_fits_80_columns_and_names_the_choice_once():
    out = run(*ROUTE)
    assert fits(out), out
    for flavor in ("cn-ulanqab/Ascend910C", "cn-hangzhou/Ascend910B", "eu-frankfurt/H100"):
        assert flavor in out
    ans = json.loads(run(*ROUTE, "-o", "json"))
    verdict = out.strip().splitlines()[-1]
    assert verdict.startswith(ans["target"] + ":") and verdict.count(ans["target"]) == 1
    assert "COMPUTE MS" in run(*ROUTE, "-o", "wide")


@pytest.fixture(scope="module")
def scenario_audit(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scn")
    audit = tmp / "audit.jsonl"
    r = runner.invoke(
        app,
        ["scenario", "examples/residency/three-automakers.yaml", "--audit", str(audit)],
        env=COLS,
    )
    assert r.exit_code == 0, r.output
    return r.output, audit


def test_scenario_fits_80_columns(scenario_audit):
    out, _ = scenario_audit
    assert fits(out), out
    for tenant in ("huaxia-motors", "europa-auto", "merlion-fleet"):
        assert tenant in out


def test_audit_fits_80_columns_and_json_is_one_object_per_line(scenario_audit):
    _, audit = scenario_audit
    out = run("audit", str(audit), "--limit", "20")
    assert fits(out), out
    recs = [json.loads(line) for line in audit.read_text().splitlines()][-20:]
    for r in recs:
        assert r["job"] in out and r["outcome"] in out
    lines = run("audit", str(audit), "--limit", "3", "--json").splitlines()
    assert [json.loads(line) for line in lines] == recs[-3:]
    assert run("audit", str(audit), "--limit", "3", "-o", "json").splitlines() == lines
    wide = run("audit", str(audit), "--limit", "3", "-o", "wide")
    assert "RULES CONSULTED" in wide and recs[-1]["reason"] in wide


def test_services_table_fits_80_columns_with_whole_names_and_shapes():
    from computepool.cli.serving_view import SERVICE_COLUMNS

    row = {"name": "cabin-assistant-7b", "model": "qwen2.5-7b", "status": "ok",
           "requests": 97516, "slo_attainment": 1.0, "ttft_p99_s": 0.5, "tbt_p99_s": 0.09,
           "accelerator_hours": 4.1, "replicas_max": 5,
           "accelerator_hours_by_shape": {"cn-hangzhou/Ascend910B 1/2": 3.0, "x": 1.0}}  # fmt: skip
    text = _render(build_table(SERVICE_COLUMNS, [row], False, 80), 80)
    assert fits(text) and "cabin-assistant-7b" in text and "cn-hangzhou/Ascend910B" in text
    assert "…" not in text


def test_audit_prints_hostile_text_literally(tmp_path):
    rec = {"time": 3600, "job": "[bold red]x[/]", "tenant": "t[/]", "outcome": "[blink]allowed",
           "region": "[x]", "decided_by": ["[/]"], "reason": "[/b]"}  # fmt: skip
    p = tmp_path / "a.jsonl"
    p.write_text(json.dumps(rec) + "\n")
    out = run("audit", str(p), "-o", "wide")
    for text in ("[bold red]x[/]", "t[/]", "[blink]allowed", "[x]", "[/b]"):
        assert text in out, text


def test_services_table_shows_a_rejected_service_and_its_reason(capsys):
    # a rejected row carries no latency or replica figures (serving/results.py): the table
    # printed dashes for them instead of failing with KeyError 'ttft_p99_s'
    from computepool.cli.serving_view import print_services

    ok = {"name": "chat-7b", "model": "qwen2.5-7b", "status": "ok", "requests": 10,
          "slo_attainment": 1.0, "ttft_p99_s": 0.5, "tbt_p99_s": 0.09, "accelerator_hours": 4.1,
          "replicas_max": 2, "accelerator_hours_by_shape": {"r/H20 x1": 4.1}}  # fmt: skip
    bad = {"name": "sql-72b", "model": "qwen2.5-72b", "trace": "code", "requests": 7,
           "status": "rejected", "reason": "no shape meets the TTFT SLO [x]",
           "slo_attainment": 0.0, "accelerator_hours": 0.0}  # fmt: skip
    total = {"mode": "dedicated", "requests": 17, "slo_attainment": 0.5,
             "slo_attainment_min_service": 0.0, "accelerator_hours": 4.1,
             "peak_accelerators": 1, "pool_utilization": 0.1}  # fmt: skip
    print_services([ok, bad], total)
    out = capsys.readouterr().out
    assert "sql-72b" in out and "rejected" in out
    assert "no shape meets the TTFT SLO [x]" in out
