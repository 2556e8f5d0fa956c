"""Sandboxed workers (bubblewrap, one unprivileged user per tenant): who they run as, what
they see, how they stop, what they leave behind. Skipped where the machine cannot sandbox
(not root, no bubblewrap): the server then says so and runs one tenant only."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from computepool.backends import attempts as att
from computepool.backends.rendezvous import RENDEZVOUS_VARS
from computepool.backends.sandbox import SandboxConfig, SandboxStatus, bwrap_argv, probe
from computepool.scheduler.loop import COMPLETED
from tests.backends.test_local import Live

CFG = SandboxConfig()
STATUS = probe(CFG)
needs_sandbox = pytest.mark.skipif(not STATUS.enabled, reason=STATUS.reason)


def _log(live: Live, key: str, attempt: int = 1) -> str:
    p = live.root / "runs" / key / str(attempt) / "rank-0.log"
    return p.read_text() if p.exists() else ""


def _uid_procs(uid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.stat(f"/proc/{d}").st_uid == uid:
                    out.append(int(d))
            except OSError:
                pass
    return out


def test_probe_says_why_when_off():
    st = probe(SandboxConfig(mode="off"))
    assert not st.enabled and "--sandbox off" in st.reason
    assert "only one tenant" in st.warning
    assert "NOT sandboxed" in SandboxStatus(False, "x", allow_unsandboxed=True).warning
    with pytest.raises(RuntimeError, match="cannot be sandboxed"):
        probe(SandboxConfig(mode="on", bwrap="/no/bwrap"))


def test_the_worker_environment_travels_as_arguments_never_to_a_root_process():
    argv = bwrap_argv(CFG, 200_007, {"LD_PRELOAD": "/x.so"}, ["prog"], work="/w", checkpoint="/c")
    assert argv[:3] == [CFG.bwrap, "--clearenv", "--setenv"]
    tail = argv[argv.index("/usr/bin/env") :]
    assert tail[:2] == ["/usr/bin/env", "-i"] and "LD_PRELOAD=/x.so" in tail
    drop = argv[argv.index("/usr/bin/setpriv") : argv.index("/usr/bin/env")]
    assert "--reuid=200007" in drop and "--no-new-privs" in drop and "--clear-groups" in drop


@needs_sandbox
def test_worker_runs_as_its_tenant_in_a_view_of_its_own(tmp_path, monkeypatch):
    monkeypatch.setenv("SERVER_SECRET", "s3cret")
    live = Live(tmp_path, sandbox=STATUS)
    try:
        script = (
            "id -u; id -G; env | sort; ls -a /; ls -a /cpool; pwd; "
            f"test -e {tmp_path} && echo DATA-VISIBLE; echo end"
        )
        a = live.submit(["/bin/sh", "-c", script], key="who", tenant_id=7, env=(("MINE", "1"),))
        live.run_until(lambda: live.state(a) == COMPLETED)
        out = _log(live, "who").split()
        assert out[0] == str(CFG.uid_base + 7) and out[1] == str(CFG.uid_base + 7)
        env = {ln.split("=", 1)[0] for ln in out if "=" in ln}
        assert "MINE" in env and "CUDA_VISIBLE_DEVICES" in env and "CPOOL_JOB_ID" in env
        assert (
            not env
            - {"MINE", "CUDA_VISIBLE_DEVICES", "PATH", "HOME", "PWD", *RENDEZVOUS_VARS}
            - {k for k in env if k.startswith("CPOOL_")}
        ), env
        assert "s3cret" not in _log(live, "who")
        assert "DATA-VISIBLE" not in out and out[-1] == "end"
        assert "runs" not in out and "checkpoints" not in out  # the pool's data is not there
        assert {"work", "checkpoint"} <= set(out) and "/cpool/work" in out
        # its directories belong to its user, the pool's records to the server
        assert (tmp_path / "work" / "who").stat().st_uid == CFG.uid_base + 7
        assert (tmp_path / "runs" / "who" / "1" / "rank-0.exit").stat().st_uid == os.getuid()
    finally:
        live.cleanup()


@needs_sandbox
def test_preemption_reaches_the_sandboxed_worker_with_grace(tmp_path):
    live = Live(tmp_path, grace_s=5.0, sandbox=STATUS)
    try:
        script = "trap 'echo got-term; exit 0' TERM; echo ready; while :; do sleep 0.05; done"
        a = live.submit(["/bin/sh", "-c", script], key="term")
        live.run_until(lambda: "ready" in _log(live, "term"))
        t0 = time.time()
        live.sched.cancel(np.array([a]))
        live.run_until(lambda: not live.cluster.stopping, timeout=10)
        assert time.time() - t0 < 3  # it ended on SIGTERM, not on the SIGKILL after 5 s
        assert "got-term" in _log(live, "term")
        assert att.read_attempt(tmp_path / "runs" / "term" / "1").ranks[0].rc == 0
    finally:
        live.cleanup()


@needs_sandbox
def test_leftovers_die_with_the_sandbox_and_limits_hold(tmp_path):
    live = Live(tmp_path, sandbox=STATUS)
    try:
        uid = CFG.uid_base + 3
        limits = (("memory_bytes", 1 << 30), ("pids", 4000), ("file_bytes", 1 << 20))
        script = "cat /proc/self/limits; (setsid sleep 60 &); sleep 60 & echo started"
        a = live.submit(["/bin/sh", "-c", script], key="tree", tenant_id=3, limits=limits)
        live.run_until(lambda: live.state(a) == COMPLETED)
        lines = [ln for ln in _log(live, "tree").splitlines() if ln.startswith("Max ")]
        lim = {ln[:26].strip(): ln[26:].split()[0] for ln in lines}
        assert lim["Max address space"] == str(1 << 30), lim
        assert lim["Max processes"] == "4000" and lim["Max file size"] == str(1 << 20)
        assert _uid_procs(uid) == []  # nothing of it runs on
    finally:
        live.cleanup()


@needs_sandbox
def test_the_worker_resumes_from_its_checkpoint_at_its_sandbox_path(tmp_path):
    live = Live(tmp_path, sandbox=STATUS)
    try:
        ck = tmp_path / "checkpoints" / "res"
        ck.mkdir(parents=True)
        (ck / "step").write_text("41")
        a = live.submit(
            ["/bin/sh", "-c", 'echo "$CPOOL_RESUME_FROM" $(cat "$CPOOL_RESUME_FROM")'], key="res"
        )
        live.run_until(lambda: live.state(a) == COMPLETED)
        assert _log(live, "res").split() == ["/cpool/checkpoint/step", "41"]
    finally:
        live.cleanup()


@needs_sandbox
def test_a_workdir_inside_the_pool_data_is_refused(tmp_path):
    live = Live(tmp_path, sandbox=STATUS)
    try:
        (tmp_path / "runs" / "other").mkdir()
        a = live.submit(["true"], key="sneak", workdir=str(tmp_path / "runs" / "other"))
        b = live.submit(["true"], key="above", workdir=str(tmp_path.parent))
        live.run_until(lambda: live.state(a) != 0 and live.state(b) != 0)
        assert "inside the pool's data" in live.cluster.reasons[a]
        assert "holds it" in live.cluster.reasons[b]
    finally:
        live.cleanup()


def test_tenant_ids_outside_the_uid_range_fail_their_job(tmp_path):
    st = SandboxStatus(True, config=SandboxConfig(uid_count=10))
    live = Live(tmp_path, sandbox=st)
    try:
        a = live.submit(["true"], key="far", tenant_id=50)
        live.run_until(lambda: live.state(a) != 0)
        assert "uid range" in live.cluster.reasons[a]
    finally:
        live.cleanup()


def test_paths_are_not_followed_out_of_a_checkpoint_dir(tmp_path):
    from computepool.backends.worker_env import latest_checkpoint

    d = tmp_path / "ck"
    d.mkdir()
    (d / "a").write_text("1")
    (d / "escape").symlink_to("/etc")
    (d / "link").symlink_to("/etc/hostname")
    assert latest_checkpoint(d) == d / "a"
    assert latest_checkpoint(Path(tmp_path / "none")) is None


@needs_sandbox
def test_a_granted_dataset_is_read_only_and_others_are_absent(tmp_path):
    maps, other = tmp_path / "maps", tmp_path / "other"
    for d in (maps, other):
        d.mkdir()
        (d / "f").write_text(d.name)
        d.chmod(0o755)
        (d / "f").chmod(0o644)
    cfg = SandboxConfig(datasets=(("maps", str(maps)), ("other", str(other))))
    live = Live(tmp_path / "pool", sandbox=SandboxStatus(True, config=cfg))
    try:
        script = (
            "cat /cpool/datasets/maps/f; echo; ls /cpool/datasets; "
            "echo x > /cpool/datasets/maps/g || echo read-only"
        )
        a = live.submit(["/bin/sh", "-c", script], key="ds", datasets=("maps", "nope"))
        live.run_until(lambda: live.state(a) == COMPLETED)
        out = _log(live, "ds").split()
        assert out[0] == "maps" and out[1] == "maps" and "other" not in out
        assert out[-1] == "read-only" and not (maps / "g").exists()
    finally:
        live.cleanup()


def test_the_limit_mechanism_is_said_as_it_is(tmp_path):
    from computepool.backends.sandbox import limits_mechanism

    assert limits_mechanism(tmp_path) == "rlimits (no cgroup v2 delegation)"
    (tmp_path / "cgroup.subtree_control").write_text("cpu memory pids\n")
    assert "cgroup v2 is delegated" in limits_mechanism(tmp_path)


@needs_sandbox
def test_a_read_only_dir_under_tmp_is_seen_over_the_private_tmp(tmp_path):
    """A read-only directory below /tmp (a virtual environment in a clone under /tmp, as CI
    makes) was hidden by the sandbox's private /tmp, mounted after it."""
    tools = Path("/tmp") / f"cpool-ro-{os.getpid()}"
    tools.mkdir()
    try:
        (tools / "tool.sh").write_text("echo tool-ran\n")
        tools.chmod(0o755)
        (tools / "tool.sh").chmod(0o755)
        argv = bwrap_argv(SandboxConfig(read_only=(str(tools),)), 1000, {}, ["sh"], work=None,
                          checkpoint=None)  # fmt: skip
        assert argv.index("--tmpfs") < argv.index(str(tools))
        cfg = SandboxConfig(read_only=(str(tools),))
        live = Live(tmp_path / "pool", sandbox=SandboxStatus(True, config=cfg))
        try:
            a = live.submit(["/bin/sh", str(tools / "tool.sh")], key="ro")
            live.run_until(lambda: live.state(a) == COMPLETED)
            assert "tool-ran" in _log(live, "ro")
        finally:
            live.cleanup()
    finally:
        for f in tools.iterdir():
            f.unlink()
        tools.rmdir()
