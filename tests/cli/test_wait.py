"""``cpool wait``: the condition table, and a clear exit 1 when nothing answers in time."""

from __future__ import annotations

import socket

import pytest
from typer.testing import CliRunner

from computepool.cli.app import app
from computepool.cli.wait_cmd import reached

runner = CliRunner()


@pytest.mark.parametrize(
    ("status", "running", "done"),
    [
        ("queued", None, None),
        ("admitted", None, None),
        ("running", True, None),
        ("succeeded", True, True),
        ("failed", False, True),
        ("cancelled", False, True),
        ("rejected", False, True),
    ],
)
def test_conditions(status, running, done):
    assert reached(status, "running") is running
    assert reached(status, "done") is done


def test_no_server_times_out_with_exit_1():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = runner.invoke(app, ["wait", "--timeout", "0.3", "--url", f"http://127.0.0.1:{port}"])
    assert res.exit_code == 1 and "no answer from" in res.output


@pytest.mark.parametrize("args", [["--for", "soon"], ["--timeout", "0"]])
def test_bad_options(args):
    assert runner.invoke(app, ["wait", *args]).exit_code == 2
