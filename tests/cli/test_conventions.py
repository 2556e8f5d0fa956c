"""The conventions every command follows (docs/cli.md): --version, help without ``<bool>`` and
with text for every option, ``--url``/``$CPOOL_URL`` on client commands, ``--pool`` on
commands that take a pool, old spellings as hidden aliases that still work."""

from __future__ import annotations

import json
from importlib.metadata import version

import pytest
import typer
from typer.testing import CliRunner

from computepool.cli.app import app
from computepool.cli.conventions import DEFAULT_URL
from computepool.cli.ray_cmd import demo_port

runner = CliRunner()


def _commands(cmd=None, path=()):
    cmd = cmd or typer.main.get_command(app)
    subs = getattr(cmd, "commands", None)
    if not subs:
        yield path, cmd
        return
    for name, sub in subs.items():
        yield from _commands(sub, (*path, name))


COMMANDS = dict(_commands())


def _option(cmd, flag: str):
    return next((p for p in cmd.params if flag in getattr(p, "opts", ())), None)


def test_version_prints_the_package_version():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"cpool {version('computepool')}"


def test_every_visible_option_has_help_and_every_flag_a_negative():
    missing, flags = [], []
    for path, cmd in COMMANDS.items():
        for p in cmd.params:
            if getattr(p, "hidden", False):
                continue
            if not getattr(p, "help", None):
                missing.append(f"{' '.join(path)} {p.name}")
            if getattr(p, "is_flag", False) and not p.secondary_opts:
                flags.append(f"{' '.join(path)} {p.opts}")
    assert not missing, missing
    assert not flags, flags


@pytest.mark.parametrize(
    "path", [("ray", "up"), ("audit",), ("logs",), ("report",), ("admin", "token", "create")]
)
def test_help_shows_flags_without_a_bool_type(path):
    r = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "100"})
    assert r.exit_code == 0 and "<bool>" not in r.output
    assert "--help" in r.output


def test_client_commands_take_url_from_cpool_url_with_one_default():
    clients = [(path, cmd) for path, cmd in COMMANDS.items() if _option(cmd, "--token")]
    assert len(clients) >= 10  # submit, jobs, job, logs, cancel, usage, audit, route, approvals
    for path, cmd in clients:
        url = _option(cmd, "--url")
        assert url is not None and url.envvar == "CPOOL_URL", path
        # route answers on a local pool unless a server is named
        assert url.default == (None if path == ("route",) else DEFAULT_URL), path
        assert _option(cmd, "--server") is None or _option(cmd, "--server").hidden, path


@pytest.mark.parametrize(
    ("path", "old"),
    [(("simulate",), None), (("compare",), None), (("route",), None), (("serve",), "--config"),
     (("pack",), "--nodes")],
)  # fmt: skip
def test_commands_that_take_a_pool_take_pool(path, old):
    cmd = COMMANDS[path]
    assert _option(cmd, "--pool") is not None and not _option(cmd, "--pool").hidden
    if old is not None:
        assert _option(cmd, old).hidden


def test_ray_down_takes_address_like_ray_status():
    assert demo_port("127.0.0.1:6390") == 6390 and demo_port("localhost:7000") == 7000
    for bad in ("10.0.0.2:6379", "127.0.0.1", "127.0.0.1:x", "127.0.0.1:70000"):
        with pytest.raises(ValueError, match="127.0.0.1:PORT"):
            demo_port(bad)
    r = runner.invoke(app, ["ray", "down", "--address", "10.0.0.2:6379"])
    assert r.exit_code == 2 and "only a demo cluster on this machine" in r.output
    assert _option(COMMANDS[("ray", "down")], "--port").hidden
    from tests.pgcluster import free_port

    port = free_port()  # no demo cluster there: nothing to stop, by either spelling
    for args in (["--address", f"127.0.0.1:{port}"], ["--port", str(port)]):
        r = runner.invoke(app, ["ray", "down", *args])
        assert r.exit_code == 0 and f"stopped 0 processes of the demo cluster on port {port}" in (
            r.output
        )


def test_compare_takes_what_simulate_takes(tmp_path):
    sim = {o for p in COMMANDS[("simulate",)].params for o in getattr(p, "opts", ())}
    cmp = {o for p in COMMANDS[("compare",)].params for o in getattr(p, "opts", ())}
    # the what-if from a live snapshot (--from, --add) is one policy's prediction
    assert sim - cmp == {"--policy", "--from", "--add"}
    audit = tmp_path / "audit.jsonl"
    out = tmp_path / "c.json"
    r = runner.invoke(
        app,
        ["compare", "--pool", "automotive-demo", "--workload", "examples/workloads/small.yaml",
         "--policies", "fifo,las", "--until-hours", "2", "--audit", str(audit), "--json", str(out),
         "--rulebook", "default"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    for policy in ("fifo", "las"):
        lines = (tmp_path / f"audit.{policy}.jsonl").read_text().splitlines()
        assert lines and all(json.loads(line)["outcome"] for line in lines)
    docs = json.loads(out.read_text())
    assert all(d["makespan_hours"] <= 2.0 + 1e-6 for d in docs)


def test_pack_takes_pool_and_the_old_nodes(tmp_path):
    r = runner.invoke(app, ["pack", "--pods", str(tmp_path / "none.csv")])
    assert r.exit_code == 2 and "--pool" in r.output
    r = runner.invoke(app, ["pack", "--pool", "a.csv", "--nodes", "b.csv", "--pods", "p.csv"])
    assert r.exit_code == 2 and "--nodes is the old name of --pool" in r.output
