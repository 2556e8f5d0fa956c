"""The local backend runs real processes: device variables, exit codes, preemption, checkpoints."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from computepool.backends import attempts as att
from computepool.backends.clock import WallClock
from computepool.backends.local import Launch, LocalCluster
from computepool.backends.slots import SlotAssigner
from computepool.model.job import Job
from computepool.model.workload import Workload
from computepool.policies import get_policy
from computepool.scheduler.loop import COMPLETED, FAILED, Scheduler, SchedulerConfig
from tests.builders import accel, make_pool, rates_table
from tests.fakes import TenantGate

PY = sys.executable


class ListSource:
    def __init__(self) -> None:
        self.pending: list[int] = []

    def arrivals(self, now: float) -> list[int]:
        out, self.pending = self.pending, []
        return out

    def next_arrival(self) -> float:
        return math.inf

    def exhausted(self) -> bool:
        return False


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[int, str]] = []

    def on_event(self, job, kind, now, detail=""):
        self.seen.append((job, kind))


class Live:
    """A Scheduler on the local backend, with jobs given as (argv, workers, devices, accel)."""

    def __init__(self, root: Path, grace_s: float = 2.0, gate=None, sandbox=None) -> None:
        self.pool = make_pool(
            {"N": (2, 4), "ASC": (1, 8)}, accels=[accel("N"), accel("ASC", stack="cann")]
        )
        tp = rates_table(self.pool, {"m": {"N": 1.0, "ASC": 1.0}})
        self.workload = Workload.empty("live")
        self.launch: dict[int, Launch] = {}
        self.shape: dict[int, tuple[int, int]] = {}
        self.root = root
        self.cluster = LocalCluster(
            self.pool, root, self.launch.__getitem__, grace_s=grace_s, sandbox=sandbox
        )
        self.placer = SlotAssigner(self.pool, self.shape.__getitem__)
        self.source = ListSource()
        self.events = Events()
        self.sched = Scheduler(
            self.pool,
            self.workload,
            tp,
            get_policy("fifo"),
            self.cluster,
            WallClock(),
            self.source,
            SchedulerConfig(round_seconds=0.1),
            sink=self.events,
            placer=self.placer,
            gate=gate,
        )

    def submit(
        self, argv, workers=1, per=1, accel="N", key=None, tenant="t", tenant_id=0, **launch
    ) -> int:
        i = len(self.workload)
        job = Job(
            id=key or f"job{i}",
            tenant=tenant,
            job_type="m",
            workers=workers,
            accel_per_worker=per,
            accelerators=(accel,),
            total_steps=1.0,
            arrival=time.time(),
        )
        (idx,) = self.workload.append([job]).tolist()
        self.launch[idx] = Launch(job.id, tuple(argv), tenant, tenant_id=tenant_id, **launch)
        self.shape[idx] = (workers, per)
        self.source.pending.append(idx)
        return idx

    def adopt(self, rec, argv, key: str, **shape) -> int:
        """Take over a recovered attempt (a restarted server): the job as submitted, its
        workers' placement claimed and the scheduler told it runs; returns its index."""
        idx = self.submit(argv, key=key, **shape)
        self.source.pending.clear()
        p = self.cluster.placement_of(idx, rec)
        assert self.placer.claim(p)
        self.cluster.adopt(idx, rec, p)
        self.sched.adopt(np.array([idx]), np.array([p.flavor]), np.array([rec.started_at]))
        return idx

    def run_until(self, cond, timeout=20.0):
        end = time.time() + timeout
        while time.time() < end:
            self.sched.step()
            if cond():
                return
            time.sleep(0.05)
        raise AssertionError(
            f"condition not reached in time: {self.events.seen} {self.sched.rejections}"
        )

    def state(self, j):
        return int(self.sched.history.state[j])

    def cleanup(self):
        self.cluster.shutdown(stop_jobs=True)
        for rec in att.scan(self.root / "runs", wait_for_pid_s=0):
            att.kill_attempt(rec)


@pytest.fixture
def live(tmp_path):
    lv = Live(tmp_path)
    yield lv
    lv.cleanup()


ENV_DUMP = (
    "import json, os; "
    "keys = [k for k in os.environ if k.startswith(('CPOOL_', 'CUDA_', 'ASCEND_'))]; "
    "print(json.dumps({k: os.environ[k] for k in keys}))"
)


def _env_of(root: Path, key: str) -> list[dict]:
    return [
        json.loads(p.read_text().strip().splitlines()[-1])
        for _, _, p in att.log_files(root / "runs", key)
    ]


def test_workers_get_their_device_slots_in_the_stack_variable(live):
    a = live.submit([PY, "-c", ENV_DUMP], workers=2, per=2, accel="N", key="ja")
    b = live.submit([PY, "-c", ENV_DUMP], workers=1, per=4, accel="ASC", key="jb")
    live.run_until(lambda: live.state(a) == COMPLETED and live.state(b) == COMPLETED)
    ea = _env_of(live.root, "ja")
    assert [e["CPOOL_WORKER_RANK"] for e in ea] == ["0", "1"]
    assert all(e["CPOOL_WORLD_SIZE"] == "2" and e["CPOOL_JOB_ID"] == "ja" for e in ea)
    devs = [(e["CPOOL_NODE"], e["CUDA_VISIBLE_DEVICES"]) for e in ea]
    assert len(set(devs)) == 2 and all(len(d.split(",")) == 2 for _, d in devs)
    assert all("ASCEND_RT_VISIBLE_DEVICES" not in e for e in ea)
    (eb,) = _env_of(live.root, "jb")
    assert eb["ASCEND_RT_VISIBLE_DEVICES"] == "0,1,2,3" and "CUDA_VISIBLE_DEVICES" not in eb
    assert eb["CPOOL_CHECKPOINT_DIR"].endswith(os.path.join("checkpoints", "jb"))
    kinds = [k for j, k in live.events.seen if j == a]
    assert kinds == ["admitted", "running", "succeeded"]


def test_nonzero_exit_fails_the_job_and_frees_its_slots(live):
    a = live.submit([PY, "-c", "import sys; sys.exit(3)"], per=4, accel="ASC")
    b = live.submit([PY, "-c", "pass"], per=8, accel="ASC")
    live.run_until(lambda: live.state(b) == COMPLETED)
    assert live.state(a) == FAILED
    closed = json.loads((live.root / "runs" / "job0" / "1" / "closed").read_text())
    assert closed == {"outcome": "failed", "rc": 3, "at": closed["at"]}


def test_preemption_sends_sigterm_then_sigkill_after_grace(tmp_path):
    live = Live(tmp_path, grace_s=0.5)
    try:
        stubborn = (
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)"
        )
        a = live.submit([PY, "-c", stubborn], per=8, accel="ASC")
        log = live.root / "runs" / "job0" / "1" / "rank-0.log"
        live.run_until(lambda: log.exists() and "ready" in log.read_text())
        pid = json.loads((live.root / "runs" / "job0" / "1" / "rank-0.pid").read_text())["pid"]
        t0 = time.time()
        live.sched.cancel(np.array([a]))
        live.run_until(lambda: not live.cluster.stopping, timeout=10)
        assert 0.4 < time.time() - t0 < 5
        assert not att.alive(pid, None)
        assert (live.root / "runs" / "job0" / "1" / "closed").exists()
    finally:
        live.cleanup()


CKPT_JOB = """
import os, pathlib, signal, sys, time
ckpt = pathlib.Path(os.environ["CPOOL_CHECKPOINT_DIR"]) / "step"
start = int(pathlib.Path(os.environ["CPOOL_RESUME_FROM"]).read_text()) if "CPOOL_RESUME_FROM" in os.environ else 0
print("attempt", os.environ["CPOOL_ATTEMPT"], "resumes at", start, flush=True)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
for step in range(start, 30):
    time.sleep(0.05)
    tmp = ckpt.with_suffix(".tmp"); tmp.write_text(str(step + 1)); os.replace(tmp, ckpt)
print("done at", step + 1, flush=True)
"""


def test_preempted_job_restarts_from_its_last_checkpoint(tmp_path):
    gate = TenantGate({0})
    live = Live(tmp_path, gate=gate)
    try:
        a = live.submit([PY, "-c", CKPT_JOB], per=8, accel="ASC", key="ck")
        ckpt = live.root / "checkpoints" / "ck" / "step"
        live.run_until(lambda: ckpt.exists() and int(ckpt.read_text()) >= 5)
        gate.allowed = set()  # e.g. its tenant's borrowed quota is reclaimed
        live.sched._decide(time.time(), changed=False)
        assert live.events.seen[-1] == (a, "preempted")
        gate.allowed = {0}
        # restarts on the same devices once the stopping worker has exited
        live.sched._decide(time.time(), changed=False)
        live.run_until(lambda: live.state(a) == COMPLETED)
    finally:
        live.cleanup()
    logs = [p.read_text() for _, _, p in att.log_files(live.root / "runs", "ck")]
    assert len(logs) == 2
    resumed = int(logs[1].split("resumes at")[1].split()[0])
    assert resumed >= 5 and "done at 30" in logs[1]


def test_a_new_backend_adopts_a_running_attempt(live, tmp_path):
    a = live.submit([PY, "-c", "import time; time.sleep(1.0)"], per=2, accel="N", key="ad")
    live.run_until(lambda: (tmp_path / "runs" / "ad" / "1" / "rank-0.pid").exists())
    # a "crash": forget the backend; a fresh one finds the attempt running
    fresh = Live(tmp_path)
    (rec,) = fresh.cluster.recover()
    assert rec.state == att.RUNNING and rec.key == "ad"
    idx = fresh.adopt(rec, [PY, "-c", "pass"], "ad", per=2, accel="N")
    fresh.run_until(lambda: fresh.state(idx) == COMPLETED)
    assert len(att.attempt_dirs(tmp_path / "runs", "ad")) == 1
    assert a == idx
    os.kill(os.getpid(), 0)  # still here
    assert signal.SIGTERM


def _launch_by_hand(root: Path, key: str, workers: int, ranks: list[int], argv: list[str]) -> Path:
    """An attempt whose launch a crash cut short: meta written, only ``ranks`` spawned."""
    d = root / "runs" / key / "1"
    d.mkdir(parents=True)
    meta = {
        "key": key,
        "attempt": 1,
        "flavor": "r1/N",
        "workers": [["N-0", [w]] for w in range(workers)],
        "started_at": time.time(),
    }
    (d / "meta.json").write_text(json.dumps(meta))
    for r in ranks:
        subprocess.Popen(
            [PY, "-m", "computepool.backends.shim", str(d), str(r), "--", *argv],
            start_new_session=True,
        )
    return d


def test_only_one_shim_runs_a_rank(tmp_path):
    d = _launch_by_hand(tmp_path, "dup", 1, [], [])
    marks = tmp_path / "marks"
    argv = [PY, "-c", f"open({str(marks)!r}, 'a').write('x')"]
    procs = [
        subprocess.Popen([PY, "-m", "computepool.backends.shim", str(d), "0", "--", *argv])
        for _ in range(3)
    ]
    for p in procs:
        p.wait(timeout=20)
    assert marks.read_text() == "x"
    assert json.loads((d / "rank-0.exit").read_text())["rc"] == 0


def test_a_launch_cut_short_is_completed_not_restarted(tmp_path):
    marks = tmp_path / "marks"
    argv = [
        PY,
        "-c",
        f"import os, time; open({str(marks)!r}, 'a').write(os.environ.get('CPOOL_WORKER_RANK', 'r0') + ' '); time.sleep(0.5)",
    ]
    _launch_by_hand(tmp_path, "cut", 3, [0], argv)
    fresh = Live(tmp_path)
    try:
        fresh.run_until(lambda: marks.exists())
        (rec,) = fresh.cluster.recover()
        assert rec.state == att.PARTIAL and rec.unclaimed == [1, 2]
        idx = fresh.adopt(rec, argv, "cut", workers=3, per=1, accel="N")
        fresh.run_until(lambda: fresh.state(idx) == COMPLETED)
    finally:
        fresh.cleanup()
    assert sorted(marks.read_text().split()) == ["1", "2", "r0"]
    assert len(att.attempt_dirs(tmp_path / "runs", "cut")) == 1


def test_a_shim_launched_by_a_deposed_control_plane_does_not_run(tmp_path):
    """The leader that took over put its epoch on file before it read the attempts: a worker
    an older leader launches afterwards (unseen by the new one) never runs, nor claims."""
    from computepool.backends.sandbox import Limits

    d = _launch_by_hand(tmp_path, "late", 1, [], [])
    marks, epoch_file = tmp_path / "marks", tmp_path / "writer-epoch"
    spec = {
        "sandboxed": False,
        "argv": [PY, "-c", f"open({str(marks)!r}, 'a').write('x')"],
        "env": {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        "cwd": str(tmp_path),
        "rlimits": Limits().rlimits(),
        "writer_epoch": {"epoch": 1, "file": str(epoch_file)},
    }
    (d / "rank-0.launch").write_text(json.dumps(spec))
    shim = [PY, "-m", "computepool.backends.shim", str(d), "0", "--launch"]
    epoch_file.write_text("2\n")  # a newer leader holds the store now
    assert subprocess.run(shim, timeout=30).returncode == 0
    assert not marks.exists() and not (d / "rank-0.claim").exists()
    epoch_file.write_text("1\n")  # still the launching leader's epoch: it runs
    assert subprocess.run(shim, timeout=30).returncode == 0
    assert marks.read_text() == "x" and (d / "rank-0.claim").exists()


def test_a_leader_puts_its_epoch_on_file_and_launches_with_it_but_never_goes_back(tmp_path):
    live = Live(tmp_path)
    live.cluster.fence_epoch(3)
    assert (tmp_path / "writer-epoch").read_text().strip() == "3"
    j = live.submit([PY, "-c", "pass"], workers=1, per=1, accel="N")
    live.run_until(lambda: live.state(j) == COMPLETED)
    spec = json.loads(next((tmp_path / "runs").glob("*/1/rank-0.launch")).read_text())
    assert spec["writer_epoch"] == {"epoch": 3, "file": str(tmp_path / "writer-epoch")}
    (tmp_path / "writer-epoch").write_text("4\n")  # another leader took the data dir over
    with pytest.raises(RuntimeError, match="newer writer .epoch 4."):
        live.cluster.fence_epoch(3)
