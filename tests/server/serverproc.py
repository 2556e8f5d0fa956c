"""Run a real ``cpool serve`` process (crash tests, benchmarks)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.pgcluster import free_port


class ServerProcess:
    def __init__(self, data_dir: Path, db_url: str, *extra: str, log: Path | None = None) -> None:
        self.data_dir, self.db_url, self.extra = Path(data_dir), db_url, extra
        self.log = log or self.data_dir.parent / "server.log"
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ServerProcess:
        self.port = free_port()
        cmd = [
            sys.executable, "-m", "computepool.cli.app", "serve",
            "--data-dir", str(self.data_dir), "--db", self.db_url, "--port", str(self.port),
            # sandboxed where the machine can; elsewhere the tests' tenants share the test user
            "--allow-unsandboxed",
            *self.extra,
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("CPOOL_")}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True,
            )  # fmt: skip
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"cpool serve exited with {self.proc.returncode}; see {self.log}"
                )
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"cpool serve did not come up in {timeout}s; see {self.log}")

    def kill9(self) -> None:
        """SIGKILL, like a crash: no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill9()


def shared_marks(marks: Path) -> Path:
    """A directory every tenant's (sandboxed) workers may append to: it is their ``workdir``."""
    marks.mkdir()
    marks.chmod(0o777)
    for name in ("starts", "ends"):
        (marks / name).touch()
        (marks / name).chmod(0o666)
    return marks
