"""``cpool demo federation``: a control plane and three agents on loopback (cn-ulanqab,
eu-frankfurt, ap-singapore), the residency scenario's tenants submit their jobs, and each job
lands only in a cluster whose jurisdiction the law allows (or is refused with the rule).

The jobs and approvals are those of ``examples/residency/small-workload.yaml`` and
``approvals.yaml``, with the accelerators the three demo clusters have (H800 in Ulanqab,
H100 in Frankfurt and Singapore); each job is one worker on one device for a few seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from computepool.federation.loopback import DEMO_CLUSTERS, ClusterDef, Loopback

TENANTS = {
    "huaxia": ["huaxia-motors"],
    "brandx": ["brandx"],
    "lion": ["lion-fleet"],
    "tiger": ["tiger-fleet"],
}
HX_LOGS = {"name": "hx-drive-logs", "data_class": "cn.important", "origin": "CN",
           "stored_in": "cn-ulanqab", "size_gb": 800, "handler": "huaxia-motors"}  # fmt: skip
BX_CABIN = {"name": "bx-cabin-eu", "data_class": "eu.personal", "origin": "EU",
            "stored_in": "eu-frankfurt", "size_gb": 50, "persons": 40000, "handler": "brandx"}  # fmt: skip
LION = {"name": "lion-fleet-video", "data_class": "sg.personal", "origin": "SG",
        "stored_in": "ap-singapore", "size_gb": 2.5, "handler": "lion-fleet"}  # fmt: skip
TIGER = {"name": "tiger-fleet-video", "data_class": "sg.personal", "origin": "SG",
         "stored_in": "ap-singapore", "size_gb": 2.5, "handler": "tiger-fleet"}  # fmt: skip

#: (name, tenant, accelerator types, datasets)
JOBS: tuple[tuple[str, str, list[str], list[dict]], ...] = (
    ("cn-important", "huaxia", [], [HX_LOGS]),
    ("cn-important-abroad", "huaxia", ["H100"], [HX_LOGS]),
    ("eu-personal", "brandx", [], [BX_CABIN]),
    ("eu-personal-in-cn", "brandx", ["H800"], [BX_CABIN]),
    ("sg-approved", "lion", ["H800"], [LION]),
    ("sg-no-approval", "tiger", ["H800"], [TIGER]),
    ("sg-at-home", "tiger", [], [TIGER]),
    (
        "cn-pi-export",
        "huaxia",
        ["H100"],
        [
            {
                "name": "hx-cabin-2026a",
                "data_class": "cn.pi",
                "origin": "CN",
                "persons": 60000,
                "handler": "huaxia-motors",
            }
        ],
    ),  # fmt: skip
    (
        "remote-read",
        "huaxia",
        ["H800"],
        [
            {
                "name": "hd-map-tiles",
                "data_class": "general",
                "origin": "CN",
                "stored_in": "ap-singapore",
                "size_gb": 2.5,
                "handler": "huaxia-motors",
            }
        ],
    ),  # fmt: skip
)
APPROVALS = (
    {"id": "lion-sg-contract", "kind": "sg_transfer_contract", "handler": "lion-fleet",
     "origin": "SG", "data_class": "sg.personal", "to": ["CN"], "expires": "2099-01-01"},
    {"id": "hx-consent", "kind": "consent", "handler": "huaxia-motors", "origin": "CN",
     "data_class": "cn.pi"},
    {"id": "hx-pipia", "kind": "pipia", "handler": "huaxia-motors", "origin": "CN",
     "data_class": "cn.pi"},
)  # fmt: skip
FINAL = ("succeeded", "failed", "cancelled", "rejected")


@dataclass
class Outcome:
    name: str
    tenant: str
    data: str
    asked: str
    status: str = "not submitted"
    cluster: str = ""
    flavor: str = ""
    reason: str = ""
    job_id: int | None = None
    datasets: list[dict] = field(default_factory=list)


def demo_clusters(ray_address: str = "") -> tuple[ClusterDef, ...]:
    """The demo's clusters; with ``ray_address`` (the Ray demo, ``cpool ray up --demo``)
    ap-singapore is its Singapore node (``sg-h100-0``), driven by ``cpool agent --backend ray``."""
    if not ray_address:
        return DEMO_CLUSTERS
    sg = ClusterDef(
        "ap-singapore", "ap-singapore", "H100", nodes=1, per_node=8,
        ray_address=ray_address, node_prefix="sg-h100",
    )  # fmt: skip
    return tuple(sg if c.name == "ap-singapore" else c for c in DEMO_CLUSTERS)


def cluster_of_node(node: str, clusters: tuple[ClusterDef, ...] = DEMO_CLUSTERS) -> str:
    """The demo's node names start with their cluster's prefix (``<prefix>-<i>``)."""
    return next((c.name for c in clusters if node.startswith(c.prefix + "-")), "")


def submit_all(lb: Loopback, job_seconds: float) -> list[Outcome]:
    out = []
    for name, tenant, accels, datasets in JOBS:
        o = Outcome(
            name, tenant, ", ".join(f"{d['data_class']} from {d['origin']}" for d in datasets),
            ", ".join(accels) or "any", datasets=datasets,
        )  # fmt: skip
        spec = {
            "name": name,
            "command": f'echo "{name} on $CPOOL_NODE ($CPOOL_FLAVOR)"; sleep {job_seconds:g}',
            "datasets": datasets,
            **({"accelerator_types": accels} if accels else {}),
        }
        try:
            o.job_id = lb.submit(tenant, spec)
            o.status = "queued"
        except RuntimeError as exc:
            o.status, o.reason = "refused", str(exc)[:300]
        out.append(o)
    return out


def add_approvals(lb: Loopback) -> None:
    for a in APPROVALS:
        r = httpx.post(
            lb.url + "/v1/residency/approvals", json=a, headers=lb.auth(lb.admin_token), timeout=10
        )
        r.raise_for_status()


def follow(lb: Loopback, outcomes: list[Outcome], timeout_s: float) -> None:
    """Poll the jobs until each is final (or ``timeout_s``): status, where it ran, why not."""
    end = time.monotonic() + timeout_s
    while True:
        for o in outcomes:
            if o.job_id is None:
                continue
            j = lb.job(o.tenant, o.job_id)
            o.status, o.flavor = j["status"], j.get("flavor") or ""
            allocs = j.get("allocations") or []
            if allocs:
                o.cluster = cluster_of_node(allocs[-1]["workers"][0][0], lb.clusters)
            pending = j.get("pending_reason") or {}
            o.reason = j.get("reason") or pending.get("message", "") or ""
        if all(o.status in FINAL or o.job_id is None for o in outcomes):
            return
        if time.monotonic() >= end:
            return
        time.sleep(0.2)


def run_demo(
    root: Path,
    job_seconds: float = 2.0,
    timeout_s: float = 90.0,
    lease_s: float = 5.0,
    ray_address: str = "",
):
    """Start everything, submit, follow; returns (loopback, outcomes). The caller closes.
    ``ray_address``: ap-singapore is the Ray demo's Singapore node (``demo_clusters``)."""
    clusters = demo_clusters(ray_address)
    lb = Loopback(root, clusters, lease_s=lease_s, round_s=0.3, tenants=TENANTS).setup()
    try:
        lb.start_server()
        add_approvals(lb)
        for c in clusters:
            lb.start_agent(c.name)
        lb.wait_clusters([c.name for c in clusters])
        outcomes = submit_all(lb, job_seconds)
        follow(lb, outcomes, timeout_s)
    except BaseException:
        lb.close()
        raise
    return lb, outcomes
