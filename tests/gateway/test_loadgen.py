"""``cpool loadgen`` through the gateway (test-double replicas), and ``cpool usage --tokens``."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from computepool.cli.app import app
from computepool.serving import openai_load as ol


def _token(who: dict[str, str]) -> str:
    return who["Authorization"].split()[1]


def test_plans():
    c = ol.constant_plan(10.0, 5, 3, 4)
    assert np.allclose(c.t, [0, 0.1, 0.2, 0.3, 0.4]) and set(c.output) == {4.0}
    p = ol.poisson_plan(100.0, 2000, 3, 4, seed=1)
    assert p.t[0] == 0 and np.all(np.diff(p.t) >= 0)
    assert abs(len(p.t) / p.t[-1] - 100.0) < 10.0
    t = ol.trace_plan("azure-llm-2023", "conv", 50, speed=10.0)
    assert len(t.t) == 50 and t.t[0] == 0 and t.prompt.min() >= 1


def test_loadgen_rate_through_the_gateway(gw):
    a = gw.tenant("oem-a")
    r = CliRunner().invoke(app, ["loadgen", "chat-7b", "--rate", "100", "--requests", "20",
                                 "--max-tokens", "3", "--url", gw.url, "--token", _token(a),
                                 "-o", "json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["ok"] == 20 and s["errors"] == {}
    assert s["completion_tokens"] == 60 and s["achieved_rps"] > 0
    assert s["ttft_ms"]["p50"] is not None and s["latency_ms"]["p99"] >= s["latency_ms"]["p50"]
    # metered to the tenant: cpool usage --tokens
    gw.flush()
    r = CliRunner().invoke(app, ["usage", "--tokens", "--url", gw.url, "--token", _token(a),
                                 "-o", "json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert [(x["service"], x["requests"], x["completion_tokens"]) for x in rows] == [
        ("chat-7b", 20, 60)
    ]
    r = CliRunner().invoke(app, ["usage", "--tokens", "--url", gw.url, "--token", _token(a)])
    assert r.exit_code == 0 and "chat-7b" in r.output and "60" in r.output


def test_loadgen_trace_and_errors(gw):
    b = gw.tenant("oem-b")
    r = CliRunner().invoke(app, ["loadgen", "private-a", "--trace", "code", "--speed", "1000",
                                 "--requests", "5", "--max-tokens", "2", "--url", gw.url,
                                 "--token", _token(b), "--wait-ready", "0"])  # fmt: skip
    assert r.exit_code == 1
    assert "HTTP 404: 5" in r.output
    # waiting for a ready replica first: told at once that it is not theirs, or not ready
    r = CliRunner().invoke(app, ["loadgen", "private-a", "--rate", "1", "--url", gw.url,
                                 "--token", _token(b)])  # fmt: skip
    assert r.exit_code == 2 and "no service 'private-a' for this token" in r.output
    r = CliRunner().invoke(app, ["loadgen", "down", "--rate", "1", "--url", gw.url,
                                 "--token", _token(b), "--wait-ready", "1"])  # fmt: skip
    assert r.exit_code == 2 and "no replica ready after 1 s" in r.output
    r = CliRunner().invoke(app, ["loadgen", "chat-7b", "--url", gw.url, "--token", "x"])
    assert r.exit_code != 0 and "either --trace" in r.output
