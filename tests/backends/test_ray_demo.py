"""The Ray set-up of docs/ray.md ("Try it on one machine") end to end: `cpool ray up --demo`,
`cpool ray status`, a real `cpool serve --backend ray://...` with jobs submitted over the API,
`cpool ray down`."""

from __future__ import annotations

import os
import sys
import time

import httpx
import pytest

pytest.importorskip("ray")

from computepool.backends.ray_demo import (  # noqa: E402
    check_ports,
    client_server_address,
    client_server_processes,
    cluster_processes,
    temp_dir_for,
)
from tests.pgcluster import free_port  # noqa: E402
from tests.server.conftest import admin_token, bearer  # noqa: E402
from tests.server.serverproc import ServerProcess  # noqa: E402


def cpool(*args: str, timeout: float = 240) -> str:
    import subprocess

    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    p = subprocess.run(
        [sys.executable, "-m", "computepool.cli.app", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def _wait(client: httpx.Client, who: dict, job: int, statuses: set[str], timeout=60.0) -> dict:
    end = time.time() + timeout
    while time.time() < end:
        doc = client.get(f"/v1/jobs/{job}", headers=who).json()
        if doc["status"] in statuses:
            return doc
        time.sleep(0.3)
    raise AssertionError(f"job {job} not in {statuses}: {doc}")


def test_demo_cluster_serve_submit_cancel_and_down(tmp_path, monkeypatch):
    port, client_port = free_port(), free_port()
    temp = temp_dir_for(port)
    server = None
    try:
        out = cpool("ray", "up", "--demo", "--port", str(port), "--client-port", str(client_port))
        client = client_server_address(port)
        # the address printed is where Ray's client server really listens
        assert client is not None and client.endswith(f":{client_port}")
        assert "ulq-h800-1" in out and f"--backend {client}" in out
        out = cpool("ray", "status", "--address", f"127.0.0.1:{port}")
        assert "cn-ulanqab/H800=16" in out and "ap-singapore/H100=8" in out
        out = cpool("ray", "status", "--address", client)
        assert "cn-ulanqab/H800=16" in out

        data = tmp_path / "home"
        url = f"sqlite:///{data / 'cpool.db'}"
        data.mkdir()
        admin = bearer(admin_token(data, url))
        # the control plane as a driver on the head (GCS address); ray://HOST:PORT goes through
        # Ray Client instead, whose per-client server is slow to start on a loaded 2-core box
        monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
        server = ServerProcess(data, url, "--backend", "ray", "--grace-seconds", "1").start(
            timeout=90
        )
        with httpx.Client(base_url=server.url, timeout=30) as c:
            assert c.post("/v1/tenants", json={"name": "byd"}, headers=admin).status_code == 201
            who = bearer(c.post("/v1/tenants/byd/tokens", headers=admin).json()["token"])
            pool = c.get("/v1/pool", headers=who).json()
            assert "cn-ulanqab/H800" in str(pool) and "automotive" not in str(pool)
            gang = {
                "command": 'echo "rank $CPOOL_WORKER_RANK on $CPOOL_NODE: $CUDA_VISIBLE_DEVICES"',
                "workers": 2,
                "accelerators_per_worker": 8,
                "accelerator_types": ["H800"],
            }
            g = c.post("/v1/jobs", json=gang, headers=who).json()["id"]
            slow = {"command": "sleep 120", "accelerator_types": ["H100"]}
            s = c.post("/v1/jobs", json=slow, headers=who).json()["id"]
            bad = {"command": "true", "accelerator_types": ["B200"]}
            r = c.post("/v1/jobs", json=bad, headers=who)
            assert r.status_code == 422 and "accelerator_types" in r.text
            assert _wait(c, who, g, {"succeeded", "failed"})["status"] == "succeeded"
            logs = c.get(f"/v1/jobs/{g}/logs", headers=who).text
            assert "rank 0 on ulq-h800-" in logs and "rank 1 on ulq-h800-" in logs
            assert "0,1,2,3,4,5,6,7" in logs
            _wait(c, who, s, {"running"})
            assert c.post(f"/v1/jobs/{s}/cancel", headers=who).status_code == 202
            assert _wait(c, who, s, {"cancelled"}, timeout=30)["status"] == "cancelled"
        server.stop()
        assert server.proc is not None and server.proc.returncode in (0, -15)
        log = server.log.read_text()
        assert "Application shutdown complete" in log
    finally:
        if server is not None:
            server.stop()
        out = cpool("ray", "down", "--port", str(port))
    assert "stopped" in out
    assert not cluster_processes(temp), "processes of the demo cluster left behind"
    assert not client_server_processes(port), "the demo's Ray Client server left behind"
    assert not temp.exists()


@pytest.mark.parametrize(
    "port,client_port,says",
    [
        (6379, 10011, "--client-port 10011 is inside Ray's worker port range 10002-19999"),
        (12000, 10001, "--port 12000 is inside Ray's worker port range"),
        (6379, 6379, "must differ"),
        (80, 10001, "--port 80: must be a port number in 1024..65535"),
    ],
)
def test_demo_refuses_ports_ray_would_refuse_half_way(port, client_port, says):
    with pytest.raises(ValueError, match=says):
        check_ports(port, client_port)
    p = __import__("subprocess").run(
        [sys.executable, "-m", "computepool.cli.app", "ray", "up", "--demo"]
        + ["--port", str(port), "--client-port", str(client_port)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode != 0 and says.split(":")[0] in p.stdout + p.stderr
    assert "Traceback" not in p.stdout + p.stderr
