"""The client commands against a real ``cpool serve``: every listing fits 80 columns with its
key columns (ids, names, statuses, flavors) whole, ``-o wide`` shows all, ``-o json`` parses;
``--url``/``$CPOOL_URL`` everywhere, the old ``--server`` still works."""

from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

from computepool.cli.app import app
from tests.server.conftest import kill_leftovers
from tests.server.serverproc import ServerProcess

runner = CliRunner()
TENANT = "europa-autonomous-driving-lab"
JOB_NAME = "nightly-evaluation-of-the-motion-planner-on-every-munich-drive-of-the-week"
FLAVOR = "cn-ulanqab/Ascend910C"


def cpool(*args: str, env: dict | None = None, columns: int = 80):
    env = {"COLUMNS": str(columns), **(env or {})}
    return runner.invoke(app, list(args), env=env, catch_exceptions=False)


def fits(output: str, width: int = 80) -> bool:
    return all(len(line) <= width for line in output.splitlines())


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("live")
    data, db = tmp / "data", f"sqlite:///{tmp / 'c.db'}"
    store = ["--data-dir", str(data), "--db", db]
    assert cpool("admin", "init", *store).exit_code == 0
    assert cpool("admin", "tenant", "add", TENANT, *store).exit_code == 0
    tok = cpool("admin", "token", "create", TENANT, *store).output.strip()
    adm = cpool("admin", "token", "create", "--admin", *store).output.strip()
    job = tmp / "job.yaml"
    job.write_text(
        f"name: {JOB_NAME}\ncommand: echo hi\nworkers: 1\naccelerators_per_worker: 1\n"
        "accelerator_types: [Ascend910C]\n"
    )
    server = ServerProcess(data, db, "--pool", "automotive-demo", "--round-seconds", "0.1")
    try:
        server.start()
        env = {"CPOOL_URL": server.url, "CPOOL_TOKEN": tok}
        assert cpool("submit", str(job), env=env).exit_code == 0
        end = time.time() + 30
        while "succeeded" not in cpool("job", "1", "-o", "json", env=env).output:
            assert time.time() < end, cpool("job", "1", env=env).output
            time.sleep(0.1)
        yield server, env, adm
    finally:
        server.stop()
        kill_leftovers(data)


def test_jobs_table_fits_80_columns_and_keeps_key_columns_whole(live):
    _, env, _ = live
    out = cpool("jobs", env=env).output
    assert fits(out), out
    row = next(line for line in out.splitlines() if TENANT in line)
    for whole in (TENANT, "succeeded", FLAVOR):
        assert whole in row, row
    assert JOB_NAME not in row and "…" in row  # the free text is shortened, with an ellipsis
    wide = cpool("jobs", "-o", "wide", env=env).output
    assert JOB_NAME in wide and "SUBMITTED" in wide and "REASON" in wide
    doc = json.loads(cpool("jobs", "-o", "json", env=env).output)
    assert doc["jobs"][0]["name"] == JOB_NAME and doc["jobs"][0]["flavor"] == FLAVOR


def test_job_and_usage_fit_80_columns(live):
    _, env, _ = live
    out = cpool("job", "1", env=env).output
    assert fits(out), out
    assert FLAVOR in out and "succeeded" in out and "placements" in out
    assert json.loads(cpool("job", "1", "-o", "json", env=env).output)["id"] == 1
    usage = cpool("usage", env=env).output
    assert fits(usage), usage
    assert any(TENANT in line and FLAVOR in line for line in usage.splitlines()), usage
    assert "KWH" not in usage and "KWH" in cpool("usage", "-o", "wide", env=env).output
    doc = json.loads(cpool("usage", "-o", "json", env=env).output)
    assert doc["rows"][0]["tenant"] == TENANT


def test_audit_from_a_server_url_and_the_old_server_option(live):
    server, env, adm = live
    admin = {"CPOOL_TOKEN": adm}
    out = cpool("audit", "--url", server.url, env=admin).output
    assert fits(out), out
    assert "allowed" in out and "cn-ulanqab" in out
    lines = cpool("audit", "--server", server.url, "-o", "json", env=admin).output.splitlines()
    assert lines and all(json.loads(line)["outcome"] == "allowed" for line in lines)
    from_env = cpool("audit", "-o", "json", env={**env, "CPOOL_TOKEN": adm}).output.splitlines()
    assert from_env == lines  # $CPOOL_URL is the default server
    both = cpool("audit", "--url", server.url, "--server", "http://x:1", env=admin)
    assert both.exit_code == 2 and "--server is the old name of --url" in both.output


def test_route_and_approvals_take_url(live):
    server, env, adm = live
    r = cpool("route", "--from", "shanghai", "--deadline-ms", "1500", "--work-h100-ms", "300",
              "-o", "json", env=env)  # fmt: skip
    assert r.exit_code == 0 and json.loads(r.output)["target"]
    old = cpool("route", "--from", "shanghai", "--deadline-ms", "1500", "--work-h100-ms", "300",
                "--server", server.url, "--token", env["CPOOL_TOKEN"], "--json")  # fmt: skip
    assert json.loads(old.output)["target"] == json.loads(r.output)["target"]
    here = cpool("route", "--from", "shanghai", "--deadline-ms", "1500", "--work-h100-ms", "300",
                 "--pool", "automotive-demo", env={"CPOOL_URL": "http://127.0.0.1:1"})  # fmt: skip
    assert here.exit_code == 0, here.output  # an explicit --pool answers here despite $CPOOL_URL
    assert json.loads(cpool("approvals", "list", "-o", "json", env={**env, "CPOOL_TOKEN": adm})
                      .output) == []  # fmt: skip


def test_serve_with_a_relative_data_dir_runs_jobs(tmp_path):
    """``cpool serve`` with the default ``./.cpool`` (or any relative --data-dir): jobs ran
    in directories under it and every worker failed at start."""
    import os
    import subprocess
    import sys

    from tests.pgcluster import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith("CPOOL_")}
    cli = [sys.executable, "-m", "computepool.cli.app"]

    def admin(*args: str) -> str:
        return subprocess.run([*cli, "admin", *args], cwd=tmp_path, env=env, check=True,
                              capture_output=True, text=True).stdout.strip()  # fmt: skip

    admin("tenant", "add", "acme")
    tok = admin("token", "create", "acme")
    port = free_port()
    server = subprocess.Popen(
        [*cli, "serve", "--pool", "gavel-36x3", "--port", str(port), "--round-seconds", "0.1"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        (tmp_path / "job.yaml").write_text("command: echo hi\n")
        end = time.time() + 30
        while cpool("submit", str(tmp_path / "job.yaml"), "--url", url, "--token", tok,
                    columns=200).exit_code != 0:  # fmt: skip
            assert time.time() < end and server.poll() is None
            time.sleep(0.2)
        while True:
            doc = json.loads(cpool("job", "1", "-o", "json", "--url", url, "--token", tok).output)
            if doc["status"] in ("succeeded", "failed"):
                break
            assert time.time() < end, doc
            time.sleep(0.1)
        assert doc["status"] == "succeeded" and doc["attempts"] == 1, doc
    finally:
        server.terminate()
        server.wait(timeout=30)
        kill_leftovers(tmp_path / ".cpool")
