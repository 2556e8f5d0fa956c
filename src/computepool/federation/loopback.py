"""A federation on one machine: a control plane (``cpool serve --backend federated``) and
one ``cpool agent`` per cluster, all on loopback. The demo, the failure tests and the
dispatch benchmark use it.

Every process listens on 127.0.0.1 only and is stopped by ``close``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

#: The node names of a cluster: ``<cluster>-<accelerator>-<i>`` (lower case).
POOL_HEADER = "name: {name}\nregions: [{regions}]\nnode_groups:\n"
GROUP = (
    "  - {{prefix: {prefix}, region: {region}, accelerator: {accel}, per_node: {per}, "
    "nodes: {nodes}}}\n"
)


@dataclass(frozen=True)
class ClusterDef:
    name: str
    region: str
    accelerator: str
    nodes: int = 2
    per_node: int = 8
    #: A Ray cluster's address (``HOST:PORT`` of its GCS): the agent runs ``--backend ray``
    #: with its nodes of ``region``, named ``node_prefix-<i>`` there; "": the local backend.
    ray_address: str = ""
    node_prefix: str = ""

    @property
    def prefix(self) -> str:
        return self.node_prefix or f"{self.name}-{self.accelerator.lower()}"


#: The demo's three clusters, one per jurisdiction (CN, EU, SG).
DEMO_CLUSTERS = (
    ClusterDef("cn-ulanqab", "cn-ulanqab", "H800"),
    ClusterDef("eu-frankfurt", "eu-frankfurt", "H100"),
    ClusterDef("ap-singapore", "ap-singapore", "H100"),
)


def pool_yaml(name: str, clusters: tuple[ClusterDef, ...]) -> str:
    regions = ", ".join(dict.fromkeys(c.region for c in clusters))
    out = POOL_HEADER.format(name=name, regions=regions)
    for c in clusters:
        out += GROUP.format(
            prefix=c.prefix, region=c.region, accel=c.accelerator, per=c.per_node, nodes=c.nodes
        )
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CPOOL_")}


def cpool(*args: str) -> list[str]:
    return [sys.executable, "-m", "computepool.cli.app", *args]


@dataclass
class Loopback:
    root: Path
    clusters: tuple[ClusterDef, ...] = DEMO_CLUSTERS
    lease_s: float = 3.0
    round_s: float = 0.2
    grace_s: float = 2.0
    #: tenant -> data handlers it owns
    tenants: dict[str, list[str]] = field(default_factory=dict)
    server: subprocess.Popen | None = None
    agents: dict[str, subprocess.Popen] = field(default_factory=dict)
    port: int = 0
    admin_token: str = ""
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def cp_dir(self) -> Path:
        return self.root / "control-plane"

    def setup(self) -> Loopback:
        """Pool files, the store with an admin token, cluster tokens and tenants."""
        from computepool.server import clusters_store, store
        from computepool.server.db import sessions
        from computepool.server.runtime import open_store, private_data_dir
        from computepool.server.schemas import TenantIn

        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "pool.yaml").write_text(pool_yaml("federation", self.clusters))
        for c in self.clusters:
            (self.root / f"{c.name}.yaml").write_text(pool_yaml(c.name, (c,)))
        engine = open_store(private_data_dir(self.cp_dir))
        try:
            with sessions(engine)() as s:
                _row, self.admin_token = store.create_token(s, "admin", None, "setup")
                for c in self.clusters:
                    _c, tok = clusters_store.create_cluster(s, c.name, "setup")
                    p = self.root / f"{c.name}.token"
                    p.write_text(tok + "\n")
                    p.chmod(0o600)
                for name, handlers in self.tenants.items():
                    row, _ = store.upsert_tenant(s, TenantIn(name=name), "setup")
                    s.flush()
                    store.set_handlers(s, row, handlers)
                    _t, self.tokens[name] = store.create_token(s, "tenant", row, "setup")
                s.commit()
        finally:
            engine.dispose()
        return self

    def start_server(self, timeout: float = 60.0, port: int | None = None) -> None:
        """Start the control plane (on ``port``: again where it was, after a crash)."""
        self.port = port or free_port()
        args = cpool(
            "serve", "--data-dir", str(self.cp_dir), "--pool", str(self.root / "pool.yaml"),
            "--backend", "federated", "--port", str(self.port), "--host", "127.0.0.1",
            "--agent-lease-seconds", str(self.lease_s), "--round-seconds", str(self.round_s),
            "--grace-seconds", str(self.grace_s), "--log-level", "warning",
        )  # fmt: skip
        with open(self.root / "server.log", "ab") as log:
            self.server = subprocess.Popen(
                args, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=_env(),
                start_new_session=True,
            )  # fmt: skip
        self._wait(lambda: httpx.get(self.url + "/healthz", timeout=1).status_code == 200,
                   timeout, "cpool serve", self.server)  # fmt: skip

    def start_agent(self, name: str, url: str | None = None) -> subprocess.Popen:
        """Start cluster ``name``'s agent (talking to ``url``: the control plane, or a proxy
        in front of it)."""
        c = next(c for c in self.clusters if c.name == name)
        env = _env()
        if c.ray_address:
            nodes = ["--backend", "ray", "--regions", c.region]
            env["RAY_ADDRESS"] = c.ray_address
        else:
            nodes = ["--pool", str(self.root / f"{c.name}.yaml")]
        args = cpool(
            "agent", "--control-plane", url or self.url, "--token-file", str(self.root / f"{name}.token"),
            "--cluster", c.name, *nodes,
            "--data-dir", str(self.root / f"agent-{c.name}"),
            "--checkpoint-dir", str(self.root / "checkpoints"),
            "--grace-seconds", str(self.grace_s), "--sandbox", "off", "--allow-unsandboxed",
            "--log-level", "warning",
        )  # fmt: skip
        with open(self.root / f"agent-{name}.log", "ab") as log:
            p = subprocess.Popen(
                args,
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        self.agents[name] = p
        return p

    def wait_clusters(self, names: list[str], timeout: float = 60.0) -> None:
        def ready() -> bool:
            live = {c["name"] for c in self.clusters_state() if c.get("state") == "ready"}
            return set(names) <= live

        self._wait(ready, timeout, f"clusters {names}", self.server)

    def clusters_state(self) -> list[dict]:
        r = httpx.get(self.url + "/v1/clusters", headers=self.auth(self.admin_token), timeout=5)
        r.raise_for_status()
        return r.json()

    @staticmethod
    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def submit(self, tenant: str, spec: dict) -> int:
        r = httpx.post(
            self.url + "/v1/jobs", json=spec, headers=self.auth(self.tokens[tenant]), timeout=10
        )
        if r.status_code not in (200, 201):
            try:
                why = str(r.json().get("error", r.text))
            except ValueError:
                why = r.text
            raise RuntimeError(f"refused at submission ({r.status_code}): {why[:300]}")
        return int(r.json()["id"])

    def job(self, tenant: str, job_id: int) -> dict:
        r = httpx.get(
            f"{self.url}/v1/jobs/{job_id}", headers=self.auth(self.tokens[tenant]), timeout=10
        )
        r.raise_for_status()
        return r.json()

    def kill_server(self) -> None:
        """SIGKILL the control plane, like a crash: no shutdown code runs."""
        if self.server is not None and self.server.poll() is None:
            self.server.kill()
            self.server.wait(timeout=30)

    def signal_agent(self, name: str, sig: int) -> None:
        p = self.agents[name]
        if p.poll() is None:
            os.kill(p.pid, sig)
        if sig == signal.SIGKILL:
            p.wait(timeout=10)

    def stop_agent(self, name: str) -> None:
        p = self.agents.pop(name, None)
        if p is None or p.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGCONT)
            p.terminate()
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def close(self) -> None:
        for name in list(self.agents):
            self.stop_agent(name)
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()

    @staticmethod
    def _wait(ok, timeout: float, what: str, proc: subprocess.Popen | None) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{what}: its process exited with {proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if ok():
                    return
            time.sleep(0.05)
        raise RuntimeError(f"{what}: not ready within {timeout:g} s")
