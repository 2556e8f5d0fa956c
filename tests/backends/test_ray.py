"""The Ray backend on a real multi-node Ray cluster (one machine, CPU and memory pinned small).

One cluster for the module: a head (no accelerators) and three worker nodes, two H800 nodes
in one island and an Ascend node in another region. Jobs are real processes run by Ray actors
in placement groups pinned to the nodes the placer chose.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from ray.cluster_utils import Cluster as RayTestCluster  # noqa: E402
from ray.util.placement_group import placement_group_table  # noqa: E402

from computepool.backends import attempts as att  # noqa: E402
from computepool.backends.clock import WallClock  # noqa: E402
from computepool.backends.engine_placer import LivePlacer  # noqa: E402
from computepool.backends.ray_backend import RayCluster  # noqa: E402
from computepool.backends.ray_demo import (  # noqa: E402
    client_server_processes,
    cluster_processes,
    short_temp_root,
)
from computepool.backends.ray_inventory import current_nodes, pool_from_nodes  # noqa: E402
from computepool.backends.shim import proc_start_ticks  # noqa: E402
from computepool.backends.worker_env import Launch  # noqa: E402
from computepool.model.job import Job  # noqa: E402
from computepool.model.workload import Workload  # noqa: E402
from computepool.policies import get_policy  # noqa: E402
from computepool.scheduler.interfaces import Placement, RoundPlan  # noqa: E402
from computepool.scheduler.loop import (  # noqa: E402
    CANCELLED,
    COMPLETED,
    FAILED,
    Scheduler,
    SchedulerConfig,
)
from tests.backends.test_local import ListSource  # noqa: E402
from tests.builders import rates_table  # noqa: E402
from tests.fakes import TenantGate  # noqa: E402

PY = sys.executable
SMALL = {"num_cpus": 1, "object_store_memory": 75 * 2**20, "memory": 512 * 2**20}


def _node_args(name: str, accel: str, region: str, island: str, count: int = 4) -> dict:
    labels = {"cpool/region": region, "cpool/island": island, "cpool/node": name}
    return {**SMALL, "resources": {f"accel:{accel}": count}, "labels": labels}


H800 = {
    "ulq-h800-0": _node_args("ulq-h800-0", "H800", "cn-ulanqab", "ulq-rack-0"),
    "ulq-h800-1": _node_args("ulq-h800-1", "H800", "cn-ulanqab", "ulq-rack-0"),
}


def _our_processes(marker: str) -> list[str]:
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd:
            out.append(f"{p.name}: {cmd[:160]}")
    return out


@pytest.fixture(scope="module")
def cluster():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray's unix sockets must fit 107 bytes: pytest's temp dirs are too deep for them
    tmp = Path(tempfile.mkdtemp(prefix="cpr-", dir=short_temp_root()))
    # ray.cluster_utils writes its address file under Ray's default temp dir whatever the
    # head's temp_dir says: point that default into our private dir too, so the tests never
    # depend on (or write to) a directory an earlier Ray run left on the machine
    (tmp / "ray").mkdir()
    saved_tmpdir = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = str(tmp)
    head = {
        **SMALL,
        "include_dashboard": False,
        "temp_dir": str(tmp),
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 4},
    }
    c = RayTestCluster(initialize_head=True, head_node_args=head)
    try:
        nodes = {name: c.add_node(**args) for name, args in H800.items()}
        nodes["hz-910b-0"] = c.add_node(
            **_node_args("hz-910b-0", "Ascend910B", "cn-hangzhou", "hz-rack-0")
        )
        c.wait_for_nodes()
        ray.init(address=c.address, log_to_driver=False)
        yield c, nodes
    finally:
        # the cluster's processes name its temp dir; their children are the Ray workers
        # (actors) and under those the worker shims
        gcs_port = int(c.address.rsplit(":", 1)[1])
        ours = set(cluster_processes(tmp)) | set(client_server_processes(gcs_port))
        started = [(p, proc_start_ticks(p)) for p in ours if p != os.getpid()]
        ray.shutdown()
        c.shutdown()
        # ray.cluster_utils leaves the head's Ray Client server running: stop it (ours is
        # the process list above, checked below)
        for pid in client_server_processes(gcs_port):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if saved_tmpdir is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = saved_tmpdir
    deadline = time.time() + 15
    left = started
    while time.time() < deadline and left:
        left = [(p, t) for p, t in left if t is not None and proc_start_ticks(p) == t]
        time.sleep(0.2)
    assert not left, f"processes of the Ray cluster left behind: {_our_processes(str(tmp))}"
    assert not _our_processes(str(tmp)), "processes of the Ray cluster left behind"
    shutil.rmtree(tmp, ignore_errors=True)


class RayLive:
    """The shared Scheduler on the Ray backend, the engine placer, jobs as argv lists."""

    def __init__(self, root: Path, grace_s: float = 1.0, gate=None) -> None:
        nodes = current_nodes(ray.nodes())
        self.pool = pool_from_nodes(nodes)
        tp = rates_table(self.pool, {"m": {"H800": 1.0, "Ascend910B": 1.0}})
        self.workload = Workload.empty("live")
        self.launch: dict[int, Launch] = {}
        self.shape: dict[int, tuple[int, int]] = {}
        self.root = root
        self.cluster = RayCluster(
            self.pool, nodes, root, self.launch.__getitem__, grace_s=grace_s, health_every_s=0.2
        )
        self.placer = LivePlacer(self.pool, self.workload, tp, self.shape.__getitem__)
        self.cluster.bind_placer(self.placer)
        gate = self.cluster.wrap_gate(gate)  # as the server does: dead flavors leave the round
        self.source = ListSource()
        self.seen: list[tuple[int, str]] = []
        self.sched = Scheduler(
            self.pool,
            self.workload,
            tp,
            get_policy("fifo-sticky"),
            self.cluster,
            WallClock(),
            self.source,
            SchedulerConfig(round_seconds=0.2),
            sink=self,
            placer=self.placer,
            gate=gate,
        )

    def on_event(self, job, kind, now, detail=""):
        self.seen.append((job, kind))

    def submit(self, argv, workers=1, per=1, accel="H800", key=None, env=()) -> int:
        i = len(self.workload)
        job = Job(
            id=key or f"job{i}",
            tenant="t",
            job_type="m",
            workers=workers,
            accel_per_worker=per,
            accelerators=(accel,) if isinstance(accel, str) else tuple(accel),
            total_steps=1.0,
            arrival=time.time(),
        )
        (idx,) = self.workload.append([job]).tolist()
        self.launch[idx] = Launch(job.id, tuple(argv), "t", env=tuple(env))
        self.shape[idx] = (workers, per)
        self.source.pending.append(idx)
        return idx

    def run_until(self, cond, timeout=60.0):
        end = time.time() + timeout
        while time.time() < end:
            self.sched.step()
            if cond():
                return
            time.sleep(0.05)
        raise AssertionError(f"not reached in time: {self.seen} {self.sched.rejections}")

    def state(self, j):
        return int(self.sched.history.state[j])

    def logs(self, key):
        return [p.read_text() for _, _, p in att.log_files(self.root / "runs", key)]


@pytest.fixture
def live(cluster, tmp_path):
    lv = RayLive(tmp_path)
    yield lv
    lv.cluster.shutdown()


ENV_DUMP = (
    "import json, os; "
    "keys = [k for k in os.environ if k.startswith(('CPOOL_', 'CUDA_', 'ASCEND_', 'MASTER_')) "
    "or k in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE', 'NODE_RANK')]; "
    "print(json.dumps({k: os.environ[k] for k in keys}))"
)


def _ray_node_of(root: Path, key: str, attempt: int, rank: int) -> str:
    return json.loads((root / "runs" / key / str(attempt) / f"rank-{rank}.ray").read_text())[
        "node_id"
    ]


def test_single_worker_jobs_get_devices_logs_and_exit_codes(live):
    a = live.submit([PY, "-c", ENV_DUMP], per=2, accel="H800", key="one")
    b = live.submit([PY, "-c", ENV_DUMP], per=4, accel="Ascend910B", key="asc")
    c = live.submit([PY, "-c", "import sys; print('bye'); sys.exit(3)"], key="bad")
    live.run_until(lambda: all(live.state(j) in (COMPLETED, FAILED) for j in (a, b, c)))
    assert (live.state(a), live.state(b), live.state(c)) == (COMPLETED, COMPLETED, FAILED)
    (ea,) = [json.loads(t.strip().splitlines()[-1]) for t in live.logs("one")]
    assert ea["CPOOL_WORKER_RANK"] == "0" and ea["CPOOL_WORLD_SIZE"] == "1"
    assert ea["CPOOL_ACCELERATOR"] == "H800" and ea["CPOOL_FLAVOR"] == "cn-ulanqab/H800"
    assert len(ea["CUDA_VISIBLE_DEVICES"].split(",")) == 2
    assert ea["CPOOL_CHECKPOINT_DIR"].endswith(os.path.join("checkpoints", "one"))
    node = live.pool.nodes.index(next(n for n in live.pool.nodes if n.name == ea["CPOOL_NODE"]))
    assert _ray_node_of(live.root, "one", 1, 0) == live.cluster.node_ids[node]
    (eb,) = [json.loads(t.strip().splitlines()[-1]) for t in live.logs("asc")]
    assert eb["ASCEND_RT_VISIBLE_DEVICES"] == "0,1,2,3" and eb["CPOOL_NODE"] == "hz-910b-0"
    assert "CUDA_VISIBLE_DEVICES" not in eb or eb["CUDA_VISIBLE_DEVICES"] == ""
    assert live.logs("bad") == ["bye\n"] and live.cluster.exit_codes[c] == 3
    closed = json.loads((live.root / "runs" / "bad" / "1" / "closed").read_text())
    assert (closed["outcome"], closed["rc"]) == ("failed", 3)


def test_a_gang_spans_two_nodes_pinned_where_the_placer_put_it(live):
    g = live.submit([PY, "-c", ENV_DUMP + "; import time; time.sleep(1)"], workers=2, per=4)
    live.run_until(lambda: g in live.cluster.running and live.cluster.running[g].placed)
    r = live.cluster.running[g]
    bundles = placement_group_table(r.pg)["bundles_to_node_id"]
    assert [bundles[i] for i in range(2)] == [live.cluster.node_ids[n] for n, _ in r.workers]
    live.run_until(lambda: live.state(g) == COMPLETED)
    envs = [json.loads(t.strip().splitlines()[-1]) for t in live.logs(f"job{g}")]
    assert sorted(e["CPOOL_NODE"] for e in envs) == ["ulq-h800-0", "ulq-h800-1"]
    assert [e["CPOOL_WORKER_RANK"] for e in envs] == ["0", "1"]
    assert all(
        e["CPOOL_WORLD_SIZE"] == "2" and e["CUDA_VISIBLE_DEVICES"] == "0,1,2,3" for e in envs
    )
    assert placement_group_table(r.pg)["state"] == "REMOVED"
    # the rendezvous: rank 0's host and one port for both ranks, each rank its own node
    assert len({(e["MASTER_ADDR"], e["MASTER_PORT"]) for e in envs}) == 1
    assert 0 < int(envs[0]["MASTER_PORT"]) < 65536 and envs[0]["MASTER_ADDR"]
    assert [(e["RANK"], e["NODE_RANK"], e["LOCAL_RANK"]) for e in envs] == [
        ("0", "0", "0"),
        ("1", "1", "0"),
    ]


CKPT_JOB = """
import os, pathlib, signal, sys, time
ckpt = pathlib.Path(os.environ["CPOOL_CHECKPOINT_DIR"]) / "step"
step = int(pathlib.Path(os.environ["CPOOL_RESUME_FROM"]).read_text()) if "CPOOL_RESUME_FROM" in os.environ else 0
print("attempt", os.environ["CPOOL_ATTEMPT"], "resumes at", step, flush=True)
signal.signal(signal.SIGTERM, lambda *a: (print("sigterm", flush=True), sys.exit(0)))
while step < int(sys.argv[1]):
    time.sleep(0.05)
    step += 1
    tmp = ckpt.with_suffix(".tmp"); tmp.write_text(str(step)); os.replace(tmp, ckpt)
print("done at", step, flush=True)
"""


def test_preemption_stops_workers_releases_the_group_and_resumes_from_checkpoint(cluster, tmp_path):
    gate = TenantGate({0})
    live = RayLive(tmp_path, gate=gate)
    try:
        a = live.submit([PY, "-c", CKPT_JOB, "40"], per=4, key="ck")
        ckpt = tmp_path / "checkpoints" / "ck" / "step"
        live.run_until(lambda: ckpt.exists() and int(ckpt.read_text()) >= 5)
        pg = live.cluster.running[a].pg
        gate.allowed = set()  # e.g. its tenant's borrowed quota is reclaimed
        live.sched._decide(time.time(), changed=False)
        assert live.seen[-1] == (a, "preempted")
        live.run_until(lambda: not live.cluster.stopping, timeout=20)
        assert placement_group_table(pg)["state"] == "REMOVED"
        gate.allowed = {0}
        live.sched._decide(time.time(), changed=False)
        live.run_until(lambda: live.state(a) == COMPLETED)
    finally:
        live.cluster.shutdown()
    first, second = live.logs("ck")
    assert "sigterm" in first
    resumed = int(second.split("resumes at")[1].split()[0])
    assert resumed >= 5 and "done at 40" in second


def test_cancel_kills_a_worker_that_ignores_sigterm(live):
    stubborn = (
        "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('pid', os.getpid(), flush=True); time.sleep(120)"
    )
    live.cluster.grace_s = 0.5
    a = live.submit([PY, "-c", stubborn], per=1, key="stub")
    live.run_until(lambda: any("pid" in t for t in live.logs("stub")))
    pid = int(live.logs("stub")[0].split()[1])
    pg = live.cluster.running[a].pg
    t0 = time.time()
    live.sched.cancel(np.array([a]))
    live.run_until(lambda: not live.cluster.stopping, timeout=20)
    assert live.state(a) == CANCELLED
    assert time.time() - t0 < 10
    assert not att.alive(pid, None)
    assert placement_group_table(pg)["state"] == "REMOVED"
    closed = json.loads((live.root / "runs" / "stub" / "1" / "closed").read_text())
    assert closed["outcome"] == "cancelled"


def test_a_start_with_a_data_transfer_holds_the_group_and_starts_workers_after_it(live):
    j = live.submit([PY, "-c", "pass"], key="late")
    node = next(i for i, n in enumerate(live.pool.nodes) if n.accelerator == "H800")
    flavor = int(live.pool.node_flavor[node])
    t0 = time.time()
    plan = RoundPlan(
        now=t0,
        round_seconds=0.2,
        start=np.array([j]),
        start_flavor=np.array([flavor]),
        placements=(Placement(j, flavor, ((node, (0,)),)),),
        start_delay=np.array([2.0]),
    )
    live.cluster.apply(plan)
    done = []
    while not done and time.time() < t0 + 60:
        done = live.cluster.observe(time.time()).completed.tolist()
        time.sleep(0.1)
    assert done == [j]
    assert (
        json.loads((live.root / "runs" / "late" / "1" / "meta.json").read_text())["transfer_s"]
        == 2.0
    )
    started = json.loads((live.root / "runs" / "late" / "1" / "rank-0.ray").read_text())["at"]
    assert started >= t0 + 2.0


def test_a_job_no_ray_node_can_run_is_rejected(live):
    j = live.submit([PY, "-c", "pass"], accel="B200")
    k = live.submit([PY, "-c", "pass"], workers=3, per=4)  # 12 H800 > 8 in the pool
    live.run_until(lambda: j in live.sched.rejections and k in live.sched.rejections)
    assert "B200" in str(live.sched.rejections[j]) or live.sched.rejections[j]
    assert not live.cluster.running


def test_a_killed_node_fails_its_workers_and_the_job_is_requeued_and_completes(cluster, live):
    c, nodes = cluster
    a = live.submit([PY, "-c", CKPT_JOB, "120"], per=4, key="nk")
    ckpt = live.root / "checkpoints" / "nk" / "step"
    live.run_until(lambda: ckpt.exists() and int(ckpt.read_text()) >= 3)
    ((node, _),) = live.cluster.running[a].workers
    name = live.pool.nodes[node].name
    c.remove_node(nodes.pop(name), allow_graceful=False)
    live.run_until(lambda: (a, "requeued") in live.seen, timeout=30)
    live.run_until(lambda: node in live.cluster.down, timeout=30)  # and cordoned
    live.run_until(lambda: live.state(a) == COMPLETED, timeout=60)
    logs = live.logs("nk")
    assert "done at" not in logs[0] and "done at 120" in logs[-1]
    # the killed node's worker stopped with it: the last attempt resumed from its checkpoint
    assert 3 <= int(logs[-1].split("resumes at")[1].split()[0]) < 100
    last = att.read_attempt(att.attempt_dirs(live.root / "runs", "nk")[-1])
    assert last is not None and last.workers[0][0] != name
    # the node comes back under its name: the placer may use it again
    nodes[name] = c.add_node(**H800[name])
    live.run_until(lambda: node not in live.cluster.down, timeout=30)
    assert live.placer._flavor_nodes[int(live.pool.node_flavor[node])][node]
    assert math.isfinite(live.sched.history.end[a])


def test_a_requeued_job_leaves_a_flavor_whose_every_ray_node_died(cluster, live):
    """The only Ascend node dies under a job that may run on Ascend or H800: the dead flavor
    stayed in the round's capacity, and the sticky policy kept the requeued job waiting for
    it. Now the flavor leaves the round and the job resumes on H800."""
    c, nodes = cluster
    block = live.submit([PY, "-c", "import time; time.sleep(120)"], workers=2, per=4)
    live.run_until(lambda: block in live.cluster.running)  # every H800 device is held
    a = live.submit([PY, "-c", CKPT_JOB, "60"], per=4, key="mv", accel=("Ascend910B", "H800"))
    ckpt = live.root / "checkpoints" / "mv" / "step"
    live.run_until(lambda: ckpt.exists() and int(ckpt.read_text()) >= 3)
    ((node, _),) = live.cluster.running[a].workers
    name = live.pool.nodes[node].name
    assert live.pool.nodes[node].accelerator == "Ascend910B"
    live.sched.cancel(np.array([block]))
    live.run_until(lambda: not live.cluster.stopping)  # H800 is free now
    c.remove_node(nodes.pop(name), allow_graceful=False)
    try:
        live.run_until(lambda: (a, "requeued") in live.seen, timeout=30)
        live.run_until(lambda: live.state(a) == COMPLETED, timeout=60)
        last = att.read_attempt(att.attempt_dirs(live.root / "runs", "mv")[-1])
        assert last is not None and last.workers[0][0].startswith("ulq-h800-")
        assert "done at 60" in live.logs("mv")[-1]
    finally:  # the node comes back for the module's other tests
        nodes[name] = c.add_node(**_node_args(name, "Ascend910B", "cn-hangzhou", "hz-rack-0"))
        live.run_until(lambda: node not in live.cluster.down, timeout=30)


def test_a_ddp_gang_on_two_ray_nodes_resumes_to_the_uninterrupted_loss(cluster, tmp_path):
    """examples/jobs/ddp_train.py on 2 workers on the 2 H800 nodes: the rendezvous is rank 0's
    node; preempted and resumed, it ends at the loss of a run that went through."""
    pytest.importorskip("torch")
    from tests.backends.test_ddp import EXAMPLE, STEPS, final_loss

    gate = TenantGate({0})
    live = RayLive(tmp_path, gate=gate)
    env = (("DDP_STEPS", str(STEPS)), ("DDP_CKPT_EVERY", "5"))
    try:
        a = live.submit([PY, str(EXAMPLE)], workers=2, per=4, key="through", env=env)
        live.run_until(lambda: live.state(a) in (COMPLETED, FAILED), timeout=90)
        assert live.state(a) == COMPLETED, live.logs("through")
        through = final_loss(live.logs("through")[0])
        slow = (*env, ("DDP_STEP_SLEEP", "0.1"))
        b = live.submit([PY, str(EXAMPLE)], workers=2, per=4, key="preempted", env=slow)
        ck = tmp_path / "checkpoints" / "preempted"
        live.run_until(lambda: len(list(ck.glob("ckpt-*.pt"))) >= 2, timeout=90)
        gate.allowed = set()
        live.sched._decide(time.time(), changed=False)
        assert live.seen[-1] == (b, "preempted")
        live.run_until(lambda: not live.cluster.stopping, timeout=30)
        gate.allowed = {0}
        live.sched._decide(time.time(), changed=False)
        live.run_until(lambda: live.state(b) in (COMPLETED, FAILED), timeout=90)
        assert live.state(b) == COMPLETED, live.logs("preempted")
    finally:
        live.cluster.shutdown()
    logs = live.logs("preempted")
    assert len(logs) == 4 and "preempted after step" in logs[0]
    assert "starts at step 0" not in logs[2]
    assert final_loss(logs[2]) == pytest.approx(through, abs=1e-6)


ADOPTABLE = (
    "import os, sys, time; "
    "open(sys.argv[1], 'a').write(os.environ['CPOOL_JOB_ID'] + ' ' + os.environ['CPOOL_ATTEMPT'] + '\\n'); "
    "print('started', flush=True); time.sleep(float(sys.argv[2])); print('done', flush=True)"
)


def test_a_new_control_plane_adopts_running_ray_workers_and_kills_broken_attempts(
    cluster, tmp_path
):
    from computepool.backends.ray_adopt import NAMESPACE, actor_name, tag_of
    from computepool.server.recovery import _outcome

    marks = tmp_path / "starts"
    old = RayLive(tmp_path)
    a = old.submit([PY, "-c", ADOPTABLE, str(marks), "3"], workers=2, per=2, key="keep")
    b = old.submit([PY, "-c", ADOPTABLE, str(marks), "30"], workers=2, per=2, key="broken")
    old.run_until(lambda: marks.exists() and len(marks.read_text().splitlines()) == 4)
    old.run_until(lambda: all(old.cluster.running[j].placed for j in (a, b)))
    broken_dir = old.cluster.running[b].dir
    old.cluster.shutdown(stop_jobs=False)  # the control plane goes; its workers stay
    tag = tag_of(att.read_attempt(broken_dir))
    ray.kill(ray.get_actor(actor_name(tag, 1), namespace=NAMESPACE), no_restart=True)

    new = RayLive(tmp_path)
    try:
        recs = {r.key: r for r in new.cluster.recover()}
        assert recs["keep"].state == att.RUNNING and _outcome(recs["keep"]) == "adopt"
        assert recs["broken"].state == att.LOST and _outcome(recs["broken"]) == "requeue"
        new.cluster.discard(recs["broken"], "lost")  # what is left of it is killed
        k = new.submit([PY, "-c", ADOPTABLE, str(marks), "3"], workers=2, per=2, key="keep")
        new.source.pending.remove(k)  # known to the scheduler only through the adoption
        p = new.cluster.placement_of(k, recs["keep"])
        assert p is not None and new.placer.claim(p)
        new.cluster.adopt(k, recs["keep"], p)
        assert new.sched.adopt(
            np.array([k]), np.array([p.flavor]), np.array([recs["keep"].started_at])
        ).all()
        new.run_until(lambda: new.state(k) == COMPLETED, timeout=30)
        logs = new.logs("keep")
        assert len(logs) == 2 and all("started" in t and "done" in t for t in logs)
        with pytest.raises(ValueError):  # the broken attempt's other rank was killed
            deadline = time.time() + 10
            while time.time() < deadline:
                ray.get_actor(actor_name(tag, 0), namespace=NAMESPACE)
                time.sleep(0.1)
    finally:
        new.cluster.shutdown()
    # each worker started once, in its first attempt: adopted, never started again
    assert sorted(marks.read_text().splitlines()) == sorted(["keep 1"] * 2 + ["broken 1"] * 2)
    assert (tmp_path / "runs" / "keep" / "1" / "closed").exists()
    assert not (tmp_path / "runs" / "keep" / "2").exists()


@pytest.mark.timeout(240)
def test_a_server_killed_and_restarted_adopts_its_running_ray_jobs(cluster, tmp_path, monkeypatch):
    """kill -9 of a real ``cpool serve --backend ray`` (the actors' driver): its workers run
    on, and the restarted server adopts them; each rank starts once."""
    import httpx

    from tests.server.conftest import admin_token, bearer
    from tests.server.serverproc import ServerProcess

    c, _ = cluster
    data, marks = tmp_path / "data", tmp_path / "starts"
    url = f"sqlite:///{tmp_path / 'cpool.db'}"
    admin = bearer(admin_token(data, url))
    monkeypatch.setenv("RAY_ADDRESS", c.address)
    server = ServerProcess(
        data, url, "--backend", "ray", "--grace-seconds", "1", "--round-seconds", "0.2"
    )
    gang = {
        "command": f'echo "$CPOOL_JOB_ID $CPOOL_WORKER_RANK $CPOOL_ATTEMPT" >> {marks}; '
        "sleep 6; echo done",
        "workers": 2,
        "accelerators_per_worker": 2,
        "accelerator_types": ["H800"],
    }

    def job(h: dict, j: int) -> dict:
        return httpx.get(server.url + f"/v1/jobs/{j}", headers=h, timeout=10).json()

    try:
        server.start(timeout=90)
        h = admin
        assert httpx.post(server.url + "/v1/tenants", json={"name": "t"}, headers=h).is_success
        who = bearer(httpx.post(server.url + "/v1/tenants/t/tokens", headers=h).json()["token"])
        j = httpx.post(server.url + "/v1/jobs", json=gang, headers=who).json()["id"]
        end = time.time() + 60
        while not (marks.exists() and len(marks.read_text().splitlines()) == 2):
            assert time.time() < end, job(who, j)
            time.sleep(0.1)
        server.kill9()
        server.start(timeout=90)
        end = time.time() + 60
        while (doc := job(who, j))["status"] != "succeeded":
            assert time.time() < end and doc["status"] in ("running", "queued"), doc
            time.sleep(0.2)
        logs = httpx.get(server.url + f"/v1/jobs/{j}/logs", headers=who, timeout=10).text
    finally:
        server.stop()
    assert "adopted" in [e["kind"] for e in doc["events"]]
    assert doc["attempts"] == 1 and "requeued" not in [e["kind"] for e in doc["events"]]
    assert sorted(marks.read_text().splitlines()) == [f"{j} 0 1", f"{j} 1 1"]
    assert logs.count("done") == 2


def _plan_one(live: RayLive, j: int, nodes: list[int], delay: float = 0.0) -> RoundPlan:
    flavor = int(live.pool.node_flavor[nodes[0]])
    return RoundPlan(
        now=time.time(),
        round_seconds=0.2,
        start=np.array([j]),
        start_flavor=np.array([flavor]),
        placements=(Placement(j, flavor, tuple((n, (0,)) for n in nodes)),),
        start_delay=np.array([delay]),
    )


def test_ray_workers_of_a_deposed_leader_never_run_and_free_their_group(cluster, tmp_path):
    """A leader that created a job's group, was paused, and resumed after a take-over spawns
    its actors: the new leader's epoch is on record in the Ray cluster, so they refuse to run
    and remove their group; the old leader cannot put its epoch back nor start anything."""
    marks = tmp_path / "starts"
    old = RayLive(tmp_path)
    h800 = [i for i, n in enumerate(old.pool.nodes) if n.accelerator == "H800"]
    try:
        old.cluster.fence_epoch(1)
        j = old.submit([PY, "-c", ADOPTABLE, str(marks), "0"], key="ok")
        k = old.submit([PY, "-c", ADOPTABLE, str(marks), "0"], workers=2, key="late")
        old.cluster.apply(_plan_one(old, j, h800[:1]))  # its own epoch is on record: runs
        end = time.time() + 30
        while j not in old.cluster.observe(time.time()).completed.tolist():
            assert time.time() < end, "the fenced leader's job did not complete"
            time.sleep(0.1)
        old.cluster.apply(_plan_one(old, k, h800, delay=1.0))  # the group now, actors later
        pg = old.cluster.running[k].pg
        RayLive(tmp_path).cluster.fence_epoch(2)  # a standby takes the store over
        failed: list[int] = []
        end = time.time() + 30
        while not old.cluster.running[k].spawned:
            assert time.time() < end
            old.cluster.observe(time.time())
            time.sleep(0.1)
        # the workers remove their own group (the old leader is not asked to)
        while placement_group_table(pg)["state"] != "REMOVED":
            assert time.time() < end, "the deposed leader's group is still held"
            time.sleep(0.1)
        while k not in failed:
            assert time.time() < end, "the refused workers were not seen as lost"
            failed = old.cluster.observe(time.time()).failed.tolist()
            time.sleep(0.1)
        with pytest.raises(RuntimeError, match=r"newer writer \(epoch 2\)"):
            old.cluster.fence_epoch(1)
        again = old.submit([PY, "-c", ADOPTABLE, str(marks), "0"], key="again")
        applied = old.cluster.apply(_plan_one(old, again, h800[:1]))
        assert applied is not None and again in applied.start_failed
    finally:
        old.cluster.shutdown()
    assert marks.read_text().splitlines() == ["ok 1"]  # nothing the new leader missed ran
    refused = [
        json.loads((tmp_path / "runs" / "late" / "1" / f"rank-{r}.ray").read_text())
        for r in range(2)
        if (tmp_path / "runs" / "late" / "1" / f"rank-{r}.ray").exists()
    ]
    assert all(x.get("refused") for x in refused)
