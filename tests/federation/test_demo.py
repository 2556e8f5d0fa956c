"""``cpool demo federation`` runs: three agents on loopback, and every job of the residency
scenario lands only in a cluster whose jurisdiction the law allows (judged here again)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from computepool.admission.approvals import ApprovalBook, PersonCounters, TimeBase
from computepool.admission.judge import State, judge_profile
from computepool.admission.rulebook import load_rulebook
from computepool.catalog.regions import load_regions
from computepool.federation.demo import APPROVALS
from computepool.federation.protocol import ApprovalOut
from computepool.federation.residency import approval_in
from computepool.model.job import Dataset


def test_demo_jobs_land_only_where_the_law_allows(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CPOOL_")}
    out = subprocess.run(
        [sys.executable, "-m", "computepool.cli.app", "demo", "federation",
         "--dir", str(tmp_path / "demo"), "--job-seconds", "0.5", "-o", "json"],
        capture_output=True, text=True, timeout=240, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads((tmp_path / "demo" / "demo.json").read_text())
    jobs = {j["name"]: j for j in doc["jobs"]}
    assert {c["name"]: c["state"] for c in doc["clusters"]} == {
        "cn-ulanqab": "ready", "eu-frankfurt": "ready", "ap-singapore": "ready",
    }  # fmt: skip
    assert jobs["cn-important"]["cluster"] == "cn-ulanqab"
    assert jobs["eu-personal"]["cluster"] == "eu-frankfurt"
    assert jobs["sg-approved"]["cluster"] == "cn-ulanqab"  # under the transfer contract
    for name in ("cn-important-abroad", "eu-personal-in-cn", "sg-no-approval"):
        assert jobs[name]["status"] == "refused" and jobs[name]["cluster"] == ""
    regions = {n: r.jurisdiction for n, r in load_regions().items()}
    book = ApprovalBook(tuple(approval_in(ApprovalOut(**{k: v for k, v in a.items()
                                                         if k != "expires"})) for a in APPROVALS))  # fmt: skip
    state = State(book, PersonCounters(), 0.0, TimeBase())
    ran = [j for j in jobs.values() if j["status"] == "succeeded"]
    assert len(ran) >= 5
    for j in ran:
        datasets = tuple(Dataset(**d) for d in j["datasets"])
        v = judge_profile(datasets, j["cluster"], regions, load_rulebook(), state)
        assert v.allowed, (j["name"], j["cluster"], v.reason)


def test_with_the_ray_demo_ap_singapore_is_its_singapore_node(tmp_path):
    from computepool.federation.demo import cluster_of_node, demo_clusters
    from computepool.federation.loopback import pool_yaml

    clusters = demo_clusters("127.0.0.1:6379")
    sg = next(c for c in clusters if c.name == "ap-singapore")
    assert (sg.ray_address, sg.prefix, sg.nodes) == ("127.0.0.1:6379", "sg-h100", 1)
    assert "prefix: sg-h100, region: ap-singapore, accelerator: H100" in pool_yaml("f", clusters)
    assert cluster_of_node("sg-h100-0", clusters) == "ap-singapore"
    assert cluster_of_node("cn-ulanqab-h800-1", clusters) == "cn-ulanqab"
    assert demo_clusters("") == demo_clusters()


def test_agent_backend_options_are_checked_before_anything_starts(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CPOOL_", "RAY_"))}
    token = tmp_path / "t.token"
    token.write_text("abc\n")
    base = [sys.executable, "-m", "computepool.cli.app", "agent", "--control-plane",
            "http://127.0.0.1:9", "--token-file", str(token), "--cluster", "c1"]  # fmt: skip
    cases = {
        "with --backend ray the pool is read": ["--backend", "ray", "--pool", "x.yaml"],
        "only with --backend ray": ["--pool", "x.yaml", "--regions", "ap-singapore"],
        "needs RAY_ADDRESS": ["--backend", "ray"],
        "known: local, ray": ["--backend", "k8s"],
    }
    for why, args in cases.items():
        out = subprocess.run([*base, *args], capture_output=True, text=True, timeout=60, env=env)
        assert out.returncode != 0 and why in out.stdout + out.stderr, (args, out.stderr[-500:])
