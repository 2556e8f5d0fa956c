"""The CLI end to end: ``cpool admin`` on the store, the client commands against a real
``cpool serve``."""

from __future__ import annotations

import time

from typer.testing import CliRunner

from computepool.cli.app import app
from tests.server.conftest import kill_leftovers
from tests.server.serverproc import ServerProcess

runner = CliRunner()


def cpool(*args: str, env: dict | None = None):
    return runner.invoke(app, list(args), env=env or {}, catch_exceptions=False)


def test_admin_then_client_commands(tmp_path):
    data, url = tmp_path / "data", f"sqlite:///{tmp_path / 'c.db'}"
    store = ["--data-dir", str(data), "--db", url]
    assert cpool("admin", "init", *store).exit_code == 0
    r = cpool("admin", "tenant", "add", "acme", "--quota", "*=8:4", "--cohort", "c", *store)
    assert r.exit_code == 0 and "created tenant 'acme'" in r.output
    bad = cpool("admin", "tenant", "add", "acme", "--quota", "V100", *store)
    assert bad.exit_code == 2 and "FLAVOR=NOMINAL" in bad.output
    assert cpool("admin", "token", "create", "nobody", *store).exit_code == 2
    token = cpool("admin", "token", "create", "acme", *store).output.strip()
    assert token.startswith("cpool_")
    listing = cpool("admin", "tenant", "list", *store).output
    assert "acme" in listing and "*=8+4" in listing

    job = tmp_path / "job.yaml"
    job.write_text("name: hello\ncommand: echo hello from $CPOOL_JOB_ID; sleep 0.3\n")
    server = ServerProcess(data, url, "--config", "gavel-36x3", "--round-seconds", "0.1")
    try:
        server.start()
        env = {"CPOOL_URL": server.url, "CPOOL_TOKEN": token}
        r = cpool("submit", str(job), "--key", "k1", env=env)
        assert r.exit_code == 0 and "job 1" in r.output
        assert "already submitted" in cpool("submit", str(job), "--key", "k1", env=env).output
        logs = cpool("logs", "1", "--follow", env=env)
        assert logs.output.strip() == "hello from 1"
        assert "succeeded" in cpool("job", "1", env=env).output
        assert "hello" in cpool("jobs", env=env).output
        assert "acme" in cpool("usage", "--since", "1h", env=env).output
        long = tmp_path / "long.yaml"
        long.write_text("command: exec sleep 60\n")
        cpool("submit", str(long), env=env)
        time.sleep(0.5)
        assert cpool("cancel", "2", env=env).exit_code == 0
        end = time.time() + 20
        while "cancelled" not in cpool("job", "2", env=env).output:
            assert time.time() < end
            time.sleep(0.1)
        bad = tmp_path / "bad.yaml"
        bad.write_text("command: true\nworkers: 0\n")
        r = cpool("submit", str(bad), env=env)
        assert r.exit_code == 2 and "workers" in r.output
        r = cpool("jobs", env={"CPOOL_URL": server.url, "CPOOL_TOKEN": "cpool_nope"})
        assert r.exit_code == 2 and "401" in r.output
    finally:
        server.stop()
        kill_leftovers(data)
