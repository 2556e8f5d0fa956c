"""A throwaway PostgreSQL cluster from the machine's binaries (tests and benchmarks).

``initdb`` + ``pg_ctl`` in a private temp dir, listening on loopback on a free port, trust
auth, fsync off. As root the server runs as the ``postgres`` user (initdb refuses root);
only the server runs as that user, clients connect over TCP.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path


def find_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _traversable(path: str) -> bool:
    """Whether any user may walk down to ``path`` (execute bit for others on each part)."""
    p = Path(path).resolve()
    return all(os.stat(d).st_mode & 0o001 for d in (p, *p.parents))


class ThrowawayPostgres:
    def __init__(self) -> None:
        self.bin = find_bin()
        if self.bin is None:
            raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        as_root = os.geteuid() == 0
        # as root the server runs as 'postgres', which must reach its data dir: a private
        # temp dir (mode 0700, e.g. from mktemp -d) is not traversable, /tmp is
        where = None if not as_root or _traversable(tempfile.gettempdir()) else "/tmp"
        self.root = Path(tempfile.mkdtemp(prefix="cpool-pg-", dir=where))
        self.data = self.root / "data"
        self.port = free_port()
        self._as: list[str] = []
        if as_root:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise FileNotFoundError(
                    "running as root, but there is no 'postgres' user to run the server as"
                ) from None
            os.chmod(self.root, 0o755)
            self.data.mkdir()
            os.chown(self.data, pw.pw_uid, pw.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, cwd=self.root)

    def start(self) -> ThrowawayPostgres:
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "app", "--auth=trust",
            "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        opts = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.data / "server.log"),
            "-w", "-o", opts, "start",
        )  # fmt: skip
        return self

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://app@127.0.0.1:{self.port}/{db}"

    def new_database(self, template: str | None = None) -> str:
        """A fresh database, optionally a copy of ``template`` (fast: no migrations to run)."""
        import psycopg

        name = "t" + uuid.uuid4().hex[:12]
        clone = f' TEMPLATE "{template}"' if template else ""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{clone}')
        return self.url(name)

    def truncate_all(self, url: str, keep: tuple[str, ...] = ("alembic_version",)) -> None:
        """Empty every table of ``url`` (ids restart): a clean store without a new database."""
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            names = [
                r[0]
                for r in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                ).fetchall()
                if r[0] not in keep
            ]
            if names:
                quoted = ", ".join(f'"{n}"' for n in names)
                conn.execute(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE")

    def migrated_template(self, migrate) -> str:
        """A database name migrated once by ``migrate(url)``, to clone per test."""
        if getattr(self, "_template", None) is None:
            url = self.new_database()
            migrate(url)
            self._template = url.rsplit("/", 1)[1]
        return self._template

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(
                str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"
            )
        deadline = time.time() + 5
        while time.time() < deadline and (self.data / "postmaster.pid").exists():
            time.sleep(0.05)
        shutil.rmtree(self.root, ignore_errors=True)
