"""The README's quickstart, run as written: every ```bash block under "## Quickstart" is parsed
from README.md itself and run through bash in a fresh folder with a private CPOOL_HOME, and each
command must exit 0 and print what the README says it prints. Select with ``-k readme``.

The one liberty taken: the live pool listens on a free port instead of 8000 (every ``8000`` in
the block is replaced, and ``CPOOL_URL`` points at it), so the test never meets another server.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARK = "@@readme-step"


def quickstart_blocks(text: str) -> list[str]:
    """The ```bash blocks of the "## Quickstart" section, in order."""
    start = text.index("\n## Quickstart")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end > 0 else len(text)]
    return re.findall(r"^```bash\n(.*?)^```", section, flags=re.S | re.M)


def commands(block: str) -> list[str]:
    """One entry per command line (continuation lines joined), blank and comment lines left out."""
    out: list[str] = []
    pending = ""
    for line in block.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line + "\n"
        if not line.rstrip().endswith("\\"):
            out.append(pending.rstrip("\n"))
            pending = ""
    if pending:
        out.append(pending.rstrip("\n"))
    return out


@dataclass
class Step:
    command: str
    rc: int | None
    output: str


def run_block(block: str, cwd: Path, env: dict[str, str], timeout: float) -> list[Step]:
    """Run the commands of ``block`` in one bash, recording each one's exit status and output."""
    cmds = commands(block)
    script = ["exec 2>&1"]
    for i, c in enumerate(cmds):
        # rc first, then a newline: a command whose output has no final newline (curl) must
        # not hide the marker at the end of its last line
        script += [f"echo '{MARK} {i} start'", c, f"rc=$?; echo; echo '{MARK} {i} rc' $rc"]
    proc = subprocess.Popen(
        ["bash", "-c", "\n".join(script)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the block's background server is in this process group
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"the quickstart block ran past {timeout:g} s; output:\n{out[-4000:]}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # whatever the block left running
    steps = [Step(c, None, "") for c in cmds]
    current = None
    for line in out.splitlines():
        m = re.match(rf"^{MARK} (\d+) (start|rc)(?: (\d+))?$", line)
        if m and m[2] == "start":
            current = int(m[1])
        elif m:
            steps[int(m[1])].rc = int(m[3])
            current = None
        elif current is not None:
            steps[current].output += line + "\n"
    return steps


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fresh(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A fresh folder with the repository's examples, a private CPOOL_HOME and ``cpool`` on PATH
    running this interpreter and this source tree."""
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "cpool"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m computepool.cli.app "$@"\n')
    shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CPOOL_")}
    src = str(ROOT / "src")
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p),
        CPOOL_HOME=str(tmp_path / ".cpool"),
        COLUMNS="80",  # the README promises every command at 80 columns
    )
    return tmp_path, env


Expectations = list[tuple[str, list[str]]]


def expect(steps: list[Step], wanted: Expectations, unwanted: Expectations = ()) -> None:
    """Each step exited 0; the n-th command containing KEY (n: how often KEY came before in
    the list) printed every string listed with it (and none of the unwanted ones)."""
    for s in steps:
        assert s.rc == 0, f"`{s.command}` exited {s.rc}:\n{s.output}"
    for table, present in ((wanted, True), (unwanted, False)):
        seen: dict[str, int] = {}
        for key, strings in table:
            n = seen[key] = seen.get(key, -1) + 1
            hits = [s for s in steps if key in s.command]
            assert len(hits) > n, (
                f"no command #{n + 1} with {key!r}: update this test with the README"
            )
            step = hits[n]
            for text in strings:
                assert (text in step.output) == present, (
                    f"`{step.command}` {'did not print' if present else 'printed'} "
                    f"{text!r}:\n{step.output}"
                )


FIGURES = ["avg JCT", "p50 JCT", "p99 JCT", "makespan", "FTF", "util ", "energy", "cost", "carbon"]


def test_readme_quickstart_simulation(fresh):
    cwd, env = fresh
    blocks = [b for b in quickstart_blocks(README.read_text()) if "cpool serve" not in b]
    assert len(blocks) == 2, "the quickstart's simulation blocks changed: update this test"
    steps = [s for b in blocks for s in run_block(b, cwd, env, timeout=300)]
    expect(
        steps,
        [
            ("cpool compare", [*FIGURES, "fifo-agnostic", "tiresias", "wrote out-compare.html"]),
            ("cpool simulate", [*FIGURES, "wrote out-sim.json", "wrote out-sim.html"]),
        ],
    )
    for name in ("out-compare.html", "out-sim.json", "out-sim.html"):
        assert (cwd / name).stat().st_size > 0


def test_readme_quickstart_live_pool(fresh):
    cwd, env = fresh
    blocks = [
        b for b in quickstart_blocks(README.read_text()) if "cpool serve" in b and "submit" in b
    ]
    assert len(blocks) == 1, "the quickstart's live-pool block changed: update this test"
    port = _free_port()
    env["CPOOL_URL"] = f"http://127.0.0.1:{port}"
    steps = run_block(blocks[0].replace("8000", str(port)), cwd, env, timeout=300)
    expect(
        steps,
        [
            ("admin init", []),  # its token goes into $ADMIN, used for /metrics below
            ("tenant add byd-auto", ["created tenant 'byd-auto'"]),
            ("tenant add europa-auto", ["created tenant 'europa-auto'"]),
            ("cpool wait", ["server up"]),
            ("pretrain-ascend.yaml", ["job 1 "]),
            ("eval-h100.yaml", ["job 2 "]),
            ("eval-h100.yaml", ["job 2 ", "already submitted with this key"]),
            ("cpool wait 1", ["job 1 running", "job 2 running"]),
            ("cpool jobs", ["perception-pretrain", "running"]),
            ("ps -o", ["sleep 30", "sleep 20"]),
            (
                "/metrics",
                [
                    'cpool_jobs_running{tenant="byd-auto"} 1.0',
                    'cpool_jobs_running{tenant="europa-auto"} 1.0',
                    'cpool_queue_length{tenant="byd-auto"} 0.0',
                ],
            ),
            (
                "logs 1 --follow",
                ["rank 0/2 on ulq-910b-0", "rank 1/2", "devices 0,1,2,3,4,5,6,7", "done"],
            ),
            ("cpool job 2", ["eu-frankfurt/H100", "fra-h100"]),
            ("cpool usage", ["byd-auto", "ACCEL-H", "KWH", "USD", "KG CO2"]),
        ],
        [("cpool jobs", ["planner-eval"]), ("cpool usage", ["europa-auto"])],
    )


def test_readme_quickstart_gateway(fresh):
    cwd, env = fresh
    blocks = [b for b in quickstart_blocks(README.read_text()) if "one-chat.yaml" in b]
    assert len(blocks) == 1, "the quickstart's gateway block changed: update this test"
    port = _free_port()
    env["CPOOL_URL"] = f"http://127.0.0.1:{port}"
    steps = run_block(blocks[0].replace("8000", str(port)), cwd, env, timeout=300)
    expect(
        steps,
        [
            ("tenant add cabin-team", ["created tenant 'cabin-team'"]),
            ("cpool wait", ["server up"]),
            ("cpool loadgen", ["requests (ok / sent)", "20 / 20", "TTFT p50 / p99", "none"]),
            ("/v1/chat/completions", ['"object"', '"usage"', '"completion_tokens"']),
            ("cpool usage --tokens", ["cabin-team", "one-chat", "21"]),
        ],
    )
