"""A local multi-node Ray cluster on one machine, for trying the Ray backend (``cpool ray up --demo``).

A head without accelerators and worker nodes that advertise fake accelerators of several types
and regions (``--resources`` ``accel:<TYPE>``, ``--labels`` ``cpool/region``, ``cpool/island``,
``cpool/node``), each with CPU and memory pinned small. Every process of the cluster is
started with the cluster's own ``--temp-dir``, so ``down`` stops exactly this cluster (never
another Ray cluster on the machine, as ``ray stop`` would).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DemoNode:
    name: str
    accelerator: str
    count: int
    region: str
    island: str


#: The demo's worker nodes: two H800 nodes in one rack and an Ascend node in Ulanqab (China),
#: an H100 node in Singapore.
DEMO_NODES = (
    DemoNode("ulq-h800-0", "H800", 8, "cn-ulanqab", "ulq-rack-0"),
    DemoNode("ulq-h800-1", "H800", 8, "cn-ulanqab", "ulq-rack-0"),
    DemoNode("ulq-910b-0", "Ascend910B", 8, "cn-ulanqab", "ulq-rack-1"),
    DemoNode("sg-h100-0", "H100", 8, "ap-singapore", "sg-rack-0"),
)


@dataclass(frozen=True)
class DemoSizes:
    """Per-node resources, pinned so that several nodes fit one small machine."""

    num_cpus: int = 1
    object_store_bytes: int = 80 * 2**20
    memory_bytes: int = 512 * 2**20


#: Ray puts unix sockets about 70 bytes deep under its temp dir and AF_UNIX paths end at 107
#: bytes, so a Ray temp dir must sit under a short root.
SHORT_ROOT_MAX = 32


def short_temp_root() -> Path:
    """The machine's temp dir when its path is short enough for Ray's sockets, else ``/tmp``."""
    root = Path(tempfile.gettempdir())
    return root if len(str(root)) <= SHORT_ROOT_MAX else Path("/tmp")


def temp_dir_for(port: int) -> Path:
    """The demo cluster's Ray temp dir (short: Ray puts unix sockets under it)."""
    return short_temp_root() / f"cpool-ray-{port}"


def ray_executable() -> str:
    beside = Path(sys.executable).parent / "ray"
    return str(beside) if beside.exists() else "ray"


def head_command(port: int, client_port: int, temp: Path, sizes: DemoSizes) -> list[str]:
    return [
        ray_executable(),
        "start",
        "--head",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        f"--ray-client-server-port={client_port}",
        f"--num-cpus={sizes.num_cpus}",
        f"--object-store-memory={sizes.object_store_bytes}",
        f"--memory={sizes.memory_bytes}",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--temp-dir={temp}",
    ]


def worker_command(node: DemoNode, port: int, temp: Path, sizes: DemoSizes) -> list[str]:
    labels = f"cpool/region={node.region},cpool/island={node.island},cpool/node={node.name}"
    return [
        ray_executable(),
        "start",
        f"--address=127.0.0.1:{port}",
        "--node-ip-address=127.0.0.1",
        f"--num-cpus={sizes.num_cpus}",
        f"--object-store-memory={sizes.object_store_bytes}",
        f"--memory={sizes.memory_bytes}",
        f"--resources={json.dumps({f'accel:{node.accelerator}': node.count})}",
        f"--labels={labels}",
        "--disable-usage-stats",
        f"--temp-dir={temp}",
    ]


#: Ray's default range of worker ports (``ray start --min-worker-port/--max-worker-port``).
WORKER_PORTS = range(10002, 20000)


def node_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The nodes' environment: this interpreter's bin first on PATH (Ray workers and the jobs'
    ``python`` are then the venv's), no usage stats."""
    env = dict(os.environ if environ is None else environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return env


def check_ports(port: int, client_port: int) -> None:
    """Refuse ports that Ray would refuse after starting half a cluster, in our words."""
    for name, p in (("--port", port), ("--client-port", client_port)):
        if not 1024 <= p <= 65535:
            raise ValueError(f"{name} {p}: must be a port number in 1024..65535")
        if p in WORKER_PORTS:
            raise ValueError(
                f"{name} {p} is inside Ray's worker port range "
                f"{WORKER_PORTS.start}-{WORKER_PORTS.stop - 1}: pick a port outside it "
                "(defaults: --port 6379, --client-port 10001)"
            )
    if port == client_port:
        raise ValueError(f"--port and --client-port are both {port}: they must differ")


def _run(cmds: list[list[str]], env: dict[str, str], timeout_s: float) -> None:
    procs = [
        subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for c in cmds
    ]
    failed = []
    for c, p in zip(cmds, procs, strict=True):
        out, _ = p.communicate(timeout=timeout_s)
        if p.returncode != 0:
            failed.append(f"{' '.join(c[:3])} ... exited {p.returncode}:\n{out[-2000:]}")
    if failed:
        raise RuntimeError("\n".join(failed))


def up(
    port: int = 6379,
    client_port: int = 10001,
    nodes: tuple[DemoNode, ...] = DEMO_NODES,
    sizes: DemoSizes | None = None,
    timeout_s: float = 180.0,
) -> Path:
    """Start the head, then the worker nodes one by one (in parallel they overload a small
    machine: a node that does not register in time fails); on failure stop what started."""
    check_ports(port, client_port)
    sizes = sizes or DemoSizes()
    temp = temp_dir_for(port)
    if cluster_processes(temp):
        raise RuntimeError(f"a demo cluster on port {port} is already up (`cpool ray down`)")
    env = node_env()
    try:
        _run([head_command(port, client_port, temp, sizes)], env, timeout_s)
        for n in nodes:
            _run([worker_command(n, port, temp, sizes)], env, timeout_s)
    except BaseException:
        down(port)
        raise
    return temp


def cluster_processes(temp: Path) -> list[int]:
    """Pids of the processes started with this temp dir, and of their children (the Ray
    workers, whose command lines do not name it)."""
    ours: set[int] = set()
    parent: dict[int, int] = {}
    marker = str(temp).encode()
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes()
            stat = (p / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(p.name)
        parent[pid] = int(stat[1])
        if marker in cmd and pid != os.getpid():
            ours.add(pid)
    return sorted(ours | _descendants(ours, parent))


def client_server_processes(gcs_port: int) -> list[int]:
    """Pids of the Ray Client servers (``ray.util.client.server``) of the cluster whose GCS
    listens on ``gcs_port``, and of their children. ``ray start`` leaves them detached and
    their command lines do not name the temp dir, so ``cluster_processes`` misses them."""
    ours: set[int] = set()
    parent: dict[int, int] = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            args = (p / "cmdline").read_bytes().split(b"\0")
            stat = (p / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(p.name)
        parent[pid] = int(stat[1])
        if b"ray.util.client.server" in args and any(
            a.startswith(b"--address=") and a.endswith(b":%d" % gcs_port) for a in args
        ):
            ours.add(pid)
    return sorted(ours | _descendants(ours, parent))


def client_server_address(gcs_port: int) -> str | None:
    """``ray://HOST:PORT`` where the demo's Ray Client server really listens, or None.

    Ray turns ``--node-ip-address=127.0.0.1`` into the host's own address for its servers
    (``resolve_ip_for_localhost``: Ray keeps loopback only for single-machine clusters, which
    refuse worker nodes), so the client server binds that address, not loopback: read it from
    the server's own command line rather than assume it."""
    for pid in client_server_processes(gcs_port):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        opts = dict(a[2:].split("=", 1) for a in args if a.startswith("--") and "=" in a)
        if "host" in opts and "port" in opts:
            return f"ray://{opts['host']}:{opts['port']}"
    return None


def _descendants(roots: set[int], parent: dict[int, int]) -> set[int]:
    out: set[int] = set()
    frontier = set(roots)
    while frontier:
        frontier = {pid for pid, pp in parent.items() if pp in frontier and pid not in out}
        frontier -= roots
        out |= frontier
    return out


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def down(port: int = 6379, grace_s: float = 10.0) -> int:
    """Stop every process of the demo cluster on ``port`` (SIGTERM, SIGKILL after the grace)
    and remove its temp dir; the number of processes stopped."""
    temp = temp_dir_for(port)
    pids = sorted(set(cluster_processes(temp)) | set(client_server_processes(port)))
    _signal_all(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    _signal_all([p for p in pids if _alive(p)], signal.SIGKILL)
    later = set(cluster_processes(temp)) | set(client_server_processes(port))
    pids += [p for p in sorted(later) if p not in pids]  # spawned meanwhile
    _signal_all(pids, signal.SIGKILL)
    shutil.rmtree(temp, ignore_errors=True)
    return len(pids)
