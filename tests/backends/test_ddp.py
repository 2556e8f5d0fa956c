"""A real distributed PyTorch job on the local backend: 2 workers on 2 nodes find each other
through the pool's rendezvous (sandboxed where the machine can), all-reduce with gloo,
checkpoint, are preempted by the scheduler and resume to the loss of an uninterrupted run."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest

from computepool.backends import attempts as att
from computepool.backends.sandbox import SandboxConfig, probe
from computepool.scheduler.loop import COMPLETED, FAILED
from tests.backends.test_local import Live
from tests.fakes import TenantGate

pytest.importorskip("torch")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "jobs" / "ddp_train.py"
PY = sys.executable
STEPS = 40


def _status():
    """Sandboxed where the machine can; the workers need the Python they run and the example."""
    roots = {sys.prefix, sys.base_prefix, str(EXAMPLE.parent)}
    return probe(SandboxConfig(read_only=tuple(sorted(roots))))


def _logs(live: Live, key: str) -> list[str]:
    return [p.read_text() for _, _, p in att.log_files(live.root / "runs", key)]


def final_loss(text: str) -> float:
    m = re.search(r"final step (\d+) loss (\S+)", text)
    assert m, text
    assert int(m.group(1)) == STEPS
    return float(m.group(2))


def _run(live: Live, key: str, gate: TenantGate | None, **env: str) -> int:
    e = (("DDP_STEPS", str(STEPS)), ("DDP_CKPT_EVERY", "5"), *env.items())
    return live.submit([PY, str(EXAMPLE)], workers=2, per=4, accel="N", key=key, env=e)


def test_ddp_job_resumes_after_preemption_to_the_uninterrupted_loss(tmp_path):
    status = _status()
    gate = TenantGate({0})
    live = Live(tmp_path, gate=gate, sandbox=status if status.enabled else None)
    try:
        t0 = time.time()
        a = _run(live, "through", None)
        live.run_until(lambda: live.state(a) in (COMPLETED, FAILED), timeout=60)
        assert live.state(a) == COMPLETED, _logs(live, "through")
        t_through = time.time() - t0
        logs = _logs(live, "through")
        assert len(logs) == 2 and all("backend gloo starts at step 0" in t for t in logs)
        assert "rank 0/2" in logs[0] and "rank 1/2" in logs[1]
        through = final_loss(logs[0])
        # where the machine can, the ranks ran sandboxed, sharing the host's network
        spec = json.loads((tmp_path / "runs" / "through" / "1" / "rank-1.launch").read_text())
        assert spec["sandboxed"] == status.enabled and "--unshare-net" not in spec["argv"]

        b = _run(live, "preempted", gate, DDP_STEP_SLEEP="0.1")
        ck = tmp_path / "checkpoints" / "preempted"
        live.run_until(lambda: ck.is_dir() and len(list(ck.glob("ckpt-*.pt"))) >= 2, timeout=60)
        gate.allowed = set()  # its tenant's quota is reclaimed: the scheduler preempts it
        live.sched._decide(time.time(), changed=False)
        assert live.events.seen[-1] == (b, "preempted")
        live.run_until(lambda: not live.cluster.stopping, timeout=30)
        gate.allowed = {0}
        live.sched._decide(time.time(), changed=False)
        live.run_until(lambda: live.state(b) in (COMPLETED, FAILED), timeout=90)
        assert live.state(b) == COMPLETED, _logs(live, "preempted")
    finally:
        live.cleanup()
    by_attempt: dict[int, list[str]] = {}
    for attempt, _, p in att.log_files(tmp_path / "runs", "preempted"):
        by_attempt.setdefault(attempt, []).append(p.read_text())
    assert sorted(by_attempt) == [1, 2], by_attempt
    stopped = int(re.search(r"preempted after step (\d+)", by_attempt[1][0]).group(1))
    resumed = int(re.search(r"starts at step (\d+)", by_attempt[2][0]).group(1))
    assert 0 < resumed == stopped < STEPS, (stopped, resumed)
    assert "final" not in by_attempt[1][0]
    assert final_loss(by_attempt[2][0]) == pytest.approx(through, abs=1e-6)
    print(f"uninterrupted run {t_through:.1f} s, sandboxed={status.enabled}")
