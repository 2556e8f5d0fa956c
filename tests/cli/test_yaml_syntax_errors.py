"""A YAML syntax error names the file and the line wherever the product reads YAML (it used to
say ``in "<unicode string>"``)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from computepool.admission.approvals import TimeBase, load_approvals
from computepool.admission.rulebook import RulebookError, load_rulebook
from computepool.cli.app import app
from computepool.scenario.residency import load_scenario
from computepool.serving.config import read_serving
from computepool.traces.detect import load_workload
from computepool.traces.errors import TraceError

BROKEN = "name: x\njobs: [\n  {id: a}\n"  # the flow sequence never closes
runner = CliRunner()


@pytest.fixture
def broken(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text(BROKEN)
    return p


@pytest.mark.parametrize("argv", [["submit"], ["approvals", "add"]])
def test_cli_names_file_and_line(broken, argv):
    res = runner.invoke(app, [*argv, str(broken), "--token", "t"])
    assert res.exit_code == 2
    assert f"{broken}:4:1: not valid YAML" in res.output and "unicode string" not in res.output


def test_readers_name_file_and_line(broken):
    for read in (load_workload, read_serving):
        with pytest.raises(TraceError) as e:
            read(str(broken))
        assert e.value.file == str(broken) and e.value.line == 4
    for read in (load_scenario, lambda p: load_approvals(p, load_rulebook(), TimeBase())):
        with pytest.raises(RulebookError) as e:
            read(broken)
        assert str(broken) in str(e.value) and "line 4" in str(e.value)
        assert "unicode string" not in str(e.value)
