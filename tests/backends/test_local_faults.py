"""What the pool believes about a worker comes from its supervisor: an exit record counts only
once the shim is gone, the whole process tree is gone before a job ends, and a record that
does not parse fails its job (with the reason) instead of every round."""

from __future__ import annotations

import json
import time

import numpy as np

from computepool.backends import attempts as att
from computepool.scheduler.loop import COMPLETED, FAILED
from tests.backends.test_local import PY, Live


def _rank0(live: Live, key: str):
    return att.read_attempt(live.root / "runs" / key / "1")


def test_a_worker_that_writes_its_own_exit_record_is_not_believed(tmp_path):
    live = Live(tmp_path)
    try:
        forged = tmp_path / "runs" / "f" / "1" / "rank-0.exit"
        # writes "succeeded, ended at 0" where the supervisor keeps its record, runs on, fails
        script = (
            "import json, sys, time; "
            f"open({str(forged)!r}, 'w').write(json.dumps({{'rc': 0, 'at': 0}})); "
            "print('forged', flush=True); time.sleep(1.0); sys.exit(3)"
        )
        t0 = time.time()
        a = live.submit([PY, "-c", script], per=2, key="f")
        log = tmp_path / "runs" / "f" / "1" / "rank-0.log"
        live.run_until(lambda: log.exists() and "forged" in log.read_text())
        for _ in range(3):  # rounds while the forged record is there: still running
            live.sched.step()
            assert live.state(a) == 0 and a in live.cluster.running
        live.run_until(lambda: live.state(a) != 0)
        assert live.state(a) == FAILED  # the supervisor's exit code, not the forged 0
        assert live.sched.history.end[a] >= t0 + 0.9  # billed to the real end
        assert json.loads(forged.read_text())["rc"] == 3
    finally:
        live.cleanup()


TREE = """
import os, subprocess, time
subprocess.Popen(["sh", "-c", "sleep 60 & echo $! > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; wait"],
                 start_new_session=True)
for _ in range(500):
    if os.path.exists("{pidfile}"):
        break
    time.sleep(0.01)
"""


def test_a_job_ends_when_its_whole_process_tree_is_gone(tmp_path):
    live = Live(tmp_path)
    try:
        pidfile = tmp_path / "leftover.pid"
        # the command returns at once, leaving a detached tree behind (a shell and its child)
        script = TREE.format(pidfile=str(pidfile))
        a = live.submit([PY, "-c", script], per=1, key="tree")
        live.run_until(lambda: live.state(a) == COMPLETED)
        leftover = int(pidfile.read_text())
        assert not att.alive(leftover, None)  # killed (and reaped) before the job ended
        rec = _rank0(live, "tree")
        assert rec.ranks[0].rc == 0
    finally:
        live.cleanup()


def test_a_malformed_exit_record_fails_its_job_and_rounds_go_on(tmp_path):
    live = Live(tmp_path)
    try:
        a = live.submit(["sleep", "30"], per=1, key="bad")
        live.run_until(lambda: a in live.cluster.running and _rank0(live, "bad").ranks[0].alive)
        rec = _rank0(live, "bad")
        att.kill_attempt(rec)  # the supervisor is gone ...
        end = time.time() + 5
        while att.alive(rec.ranks[0].pid, None) and time.time() < end:
            time.sleep(0.02)
        (rec.dir / "rank-0.exit").write_text('{"rc": "zero", "at": []}')  # ... record garbled
        b = live.submit([PY, "-c", "pass"], per=1, key="ok")
        live.run_until(lambda: live.state(b) == COMPLETED)  # rounds go on
        assert live.state(a) == FAILED
        (_, kind), *_ = [e for e in live.events.seen if e == (a, "failed")]
        assert kind == "failed"
        assert "rank-0.exit" in live.cluster.reasons[a]
        assert "not an integer" in live.cluster.reasons[a]
    finally:
        live.cleanup()


def test_a_bad_start_fails_that_job_and_starts_the_others(tmp_path):
    live = Live(tmp_path)
    try:
        bad = live.submit(["true"], per=1, key="nowd", workdir=str(tmp_path / "missing"))
        nul = live.submit(["/bin/echo", "a\0b"], per=1, key="nul")
        ok = live.submit([PY, "-c", "pass"], per=1, key="fine")
        live.sched.step()  # one round starts all three
        assert (ok, "running") in live.events.seen
        live.run_until(lambda: live.state(ok) == COMPLETED)
        assert live.state(bad) == FAILED and live.state(nul) == FAILED
        assert "does not exist" in live.cluster.reasons[bad]
        assert "NUL byte" in live.cluster.reasons[nul]
        assert live.sched.history.end[bad] == live.sched.history.first_start[bad]  # billed 0 s
    finally:
        live.cleanup()


def test_stop_of_a_job_whose_attempt_dir_is_gone_stops_nothing_else(tmp_path):
    live = Live(tmp_path)
    try:
        a = live.submit(["sleep", "30"], per=1, key="gone")
        b = live.submit(["sleep", "30"], per=1, key="stays")
        live.run_until(lambda: a in live.cluster.running and b in live.cluster.running)
        rec = _rank0(live, "gone")
        live.run_until(lambda: _rank0(live, "gone").ranks[0].alive)
        att.kill_attempt(_rank0(live, "gone"))
        for p in rec.dir.iterdir():
            p.unlink()
        rec.dir.rmdir()
        live.sched.cancel(np.array([a]))
        live.run_until(lambda: not live.cluster.stopping)
        assert b in live.cluster.running
    finally:
        live.cleanup()
