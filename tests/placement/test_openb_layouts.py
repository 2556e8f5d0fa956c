"""``cpool pack`` reads every column layout of the public openb pod lists (a missing optional
column means none), and still refuses a list without a required column."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from computepool.cli.app import app
from computepool.placement.openb import read_pods
from computepool.traces import load_workload, read_openb_pods
from computepool.traces.detect import detect_format
from computepool.traces.errors import TraceError
from tests.placement.helpers import DATA

LAYOUTS = ["layout_full.csv", "layout_minimal.csv", "layout_nomem.csv", "layout_spec_only.csv"]
HAS_SPEC = {"layout_full.csv", "layout_nomem.csv", "layout_spec_only.csv"}
HAS_MEM = {"layout_full.csv", "layout_minimal.csv", "layout_spec_only.csv"}
HAS_TIMES = {"layout_full.csv", "layout_nomem.csv"}


@pytest.mark.parametrize("name", LAYOUTS)
def test_every_layout_reads_with_missing_columns_as_none(name):
    p = DATA / name
    assert detect_format(p) == "openb"
    table = read_openb_pods(p)
    assert table.name.tolist() == ["p-share", "p-whole", "p-two", "p-cpu"]
    assert table.gpu_request.tolist() == [0.5, 1.0, 2.0, 0.0]
    assert table.memory_mib.tolist() == ([8192, 16384, 32768, 4096] if name in HAS_MEM else [0] * 4)
    assert table.allowed_models(1) == (("T4", "P100") if name in HAS_SPEC else ())
    assert np.isnan(table.creation_time).all() == (name not in HAS_TIMES)
    pods = read_pods(p)
    assert [r.num_gpu for r in pods.requests] == [1, 1, 2, 0]
    assert pods.requests[0].is_share


@pytest.mark.parametrize("name", LAYOUTS)
def test_cpool_pack_runs_on_every_layout(name, tmp_path):
    out = tmp_path / "pack.json"
    r = CliRunner().invoke(
        app,
        ["pack", "--nodes", str(DATA / "layout_nodes.csv"), "--pods", str(DATA / name)]
        + ["--policy", "fgd", "--seeds", "42", "--tune", "1.0", "--json", str(out)],
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert doc["seeds"] == [42] and doc["allocated_at_top"] > 0


def test_a_list_without_times_is_no_workload():
    with pytest.raises(TraceError, match="no creation times") as e:
        load_workload(str(DATA / "layout_minimal.csv"))
    assert "layout_minimal.csv" in str(e.value)


def test_a_required_column_is_still_required(tmp_path):
    p = tmp_path / "pods.csv"
    p.write_text("name,cpu_milli,memory_mib,gpu_milli\na,1000,10,500\n")
    with pytest.raises(TraceError, match=r"pods.csv:1: field 'num_gpu': header lacks column"):
        read_pods(p)
