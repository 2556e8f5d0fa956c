"""A hostile tenant's job against a live pool: everything it tries fails and the pool's records
stay true. And where workers cannot be sandboxed, the server says so and runs one tenant."""

from __future__ import annotations

import json
import os
import time

import pytest

from computepool.backends import attempts as att
from computepool.backends.sandbox import SandboxConfig, probe
from computepool.server.runtime import private_data_dir
from tests.server.conftest import LivePool, bearer, kill_leftovers, open_live

STATUS = probe(SandboxConfig())

PROBE = """
try() {{ if sh -c "$2" >/dev/null 2>&1; then echo "PROBE $1 SUCCEEDED"; else echo "PROBE $1 denied"; fi; }}
try victim-log 'cat {victim_log}'
try victim-checkpoint 'cat {victim_ckpt}'
try victim-checkpoint-write 'echo owned > {victim_ckpt}'
try store 'cat {store}'
try store-write 'echo x >> {store}'
try cpool-home 'ls {data}'
try runs 'ls {data}/runs'
try kill-victim 'kill -9 {victim_pids}'
try own-exit-record 'echo "{{\\"rc\\": 0, \\"at\\": 0}}" > {data}/runs/$CPOOL_JOB_ID/$CPOOL_ATTEMPT/rank-0.exit'
try own-exit-record-here 'echo "{{\\"rc\\": 0, \\"at\\": 0}}" > rank-0.exit && test -e ../rank-0.exit'
echo PROBES-DONE
sleep 2
exit 0
"""


def _victim_pids(data, job_id: int) -> list[int]:
    rec = att.read_attempt(att.attempt_dirs(data / "runs", str(job_id))[-1])
    return [r.pid for r in rec.ranks if r.alive]


@pytest.mark.skipif(not STATUS.enabled, reason=STATUS.reason)
def test_a_hostile_job_reaches_nothing_of_the_pool_or_other_tenants(tmp_path):
    data = private_data_dir(tmp_path / "data")
    url = f"sqlite:///{data / 'cpool.db'}"  # the default layout: the store in $CPOOL_HOME
    client, tok = open_live(data, url, allow_unsandboxed=False, sandbox="on")
    try:
        with client:
            live = LivePool(client, bearer(tok), data)
            assert client.get("/healthz").json()["sandbox"]["sandboxed"] is True
            assert oct(data.stat().st_mode & 0o777) == "0o700"
            assert oct((data / "cpool.db").stat().st_mode & 0o777) == "0o600"
            victim, attacker = live.tenant("victim"), live.tenant("mallory")
            v = live.submit(
                victim,
                command='echo victim-secret; echo ckpt-secret > "$CPOOL_CHECKPOINT_DIR/s"; '
                "exec sleep 60",
            ).json()["id"]
            ckpt = data / "checkpoints" / str(v) / "s"
            live.wait(lambda: ckpt.exists() and ckpt.read_text() == "ckpt-secret\n", what="ckpt")
            pids = _victim_pids(data, v)
            assert pids
            script = PROBE.format(
                victim_log=data / "runs" / str(v) / "1" / "rank-0.log",
                victim_ckpt=ckpt,
                store=data / "cpool.db",
                data=data,
                victim_pids=" ".join(map(str, pids)),
            )
            m = live.submit(attacker, command=script).json()["id"]
            log = data / "runs" / str(m) / "1" / "rank-0.log"
            live.wait(lambda: log.exists() and "PROBES-DONE" in log.read_text(), what="probes")
            probes = [ln for ln in log.read_text().splitlines() if ln.startswith("PROBE ")]
            assert len(probes) == 10 and all(ln.endswith(" denied") for ln in probes), probes
            t_done = time.time()
            # the pool's records stay true: the attacker still runs, the victim too, untouched
            time.sleep(0.5)
            assert live.job(attacker, m)["status"] == "running"
            assert live.job(victim, v)["status"] == "running"
            assert all(att.alive(p, None) for p in pids)
            assert ckpt.read_text() == "ckpt-secret\n"
            job = live.wait_status(attacker, m, "succeeded", "failed")
            assert job["status"] == "succeeded" and job["exit_code"] == 0
            end = job["allocations"][0]["ended_at"]
            from datetime import datetime

            assert datetime.fromisoformat(end).timestamp() >= t_done + 1.0  # billed to its end
            exit_rec = json.loads((log.parent / "rank-0.exit").read_text())
            assert exit_rec["at"] > t_done and (log.parent / "rank-0.exit").stat().st_uid == 0
            # the victim's log is its own (nothing of the attacker's in it)
            text = live.client.get(f"/v1/jobs/{v}/logs", headers=victim).text
            assert "victim-secret" in text and "PROBE" not in text
    finally:
        kill_leftovers(data)


def test_unsandboxed_server_runs_one_tenant_and_says_so(tmp_path):
    data = tmp_path / "data"
    url = f"sqlite:///{tmp_path / 'cpool.db'}"
    client, tok = open_live(data, url, sandbox="off", allow_unsandboxed=False)
    try:
        with client:
            live = LivePool(client, bearer(tok), data)
            sb = client.get("/healthz").json()["sandbox"]
            assert sb["sandboxed"] is False and "--allow-unsandboxed" in sb["warning"]
            pool = client.get("/v1/pool", headers=live.admin).json()
            assert pool["sandbox"]["warning"] == sb["warning"]
            page = client.get("/", headers=live.admin).text
            assert "sandbox-warning" in page and "not sandboxed" in page
            a, b = live.tenant("acme"), live.tenant("bolt")
            ja = live.submit(a, command="echo a").json()["id"]
            assert live.wait_status(a, ja, "succeeded")["status"] == "succeeded"
            jb = live.submit(b, command="echo b").json()["id"]
            job = live.wait_status(b, jb, "failed")
            assert "--allow-unsandboxed" in job["reason"] and "'acme'" in job["reason"]
            ja2 = live.submit(a, command="echo again").json()["id"]
            live.wait_status(a, ja2, "succeeded")
    finally:
        kill_leftovers(data)


def test_allowed_unsandboxed_server_runs_every_tenant_with_a_warning(tmp_path):
    data = tmp_path / "data"
    client, tok = open_live(
        data, f"sqlite:///{tmp_path / 'c.db'}", sandbox="off", allow_unsandboxed=True
    )
    try:
        with client:
            live = LivePool(client, bearer(tok), data)
            assert "NOT sandboxed" in client.get("/healthz").json()["sandbox"]["warning"]
            for name in ("acme", "bolt"):
                who = live.tenant(name)
                j = live.submit(who, command="echo hi").json()["id"]
                live.wait_status(who, j, "succeeded")
    finally:
        kill_leftovers(data)


def test_sandbox_on_refuses_to_start_where_it_cannot(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(RuntimeError, match="not run as root"):
        open_live(tmp_path / "d", f"sqlite:///{tmp_path / 'c.db'}", sandbox="on")
