"""A hostile tenant against a real ``cpool serve`` on loopback: each attack class N times.

    python benchmarks/api_probe.py [--db sqlite|postgresql|both] [-n 20]

Starts the server (SQLite file, or a throwaway PostgreSQL from the machine's binaries), an
admin and a tenant token, then runs every attack class and prints, per class, the attempts
and what came back (status codes; for logs the answer size and the growth of the server's
peak RSS; for the job file the client's time and peak RSS). ``verdict`` is ``held`` when
every attempt got the safe answer. Everything it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.pgcluster import ThrowawayPostgres  # noqa: E402
from tests.server.conftest import admin_token, kill_leftovers  # noqa: E402
from tests.server.serverproc import ServerProcess  # noqa: E402

BIG_LOG = "import sys; sys.stdout.write(('x' * 99 + '\\n') * 500000)"  # 50 MB
BOMB_LEVELS = 7  # 9^7 = 4.8 million strings once expanded (9 levels: 387 million)


@dataclass
class Outcome:
    attack: str
    attempts: int = 0
    answers: Counter = field(default_factory=Counter)
    held: bool = True
    note: str = ""

    def add(self, answer: str, ok: bool) -> None:
        self.attempts += 1
        self.answers[answer] += 1
        self.held = self.held and ok


def send(c: httpx.Client, method: str, url: str, **kw) -> str:
    try:
        return str(c.request(method, url, **kw).status_code)
    except httpx.HTTPError as exc:
        return type(exc).__name__


def probe(
    name: str, n: int, requests: list[tuple[str, str, dict]], ok: Callable[[str], bool], c
) -> Outcome:
    out = Outcome(name)
    for i in range(n):
        method, url, kw = requests[i % len(requests)]
        answer = send(c, method, url, **kw)
        out.add(answer, ok(answer))
    return out


def refused(answer: str) -> bool:
    return answer.isdigit() and 400 <= int(answer) < 500


def vm_hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def bomb_file(path: Path) -> Path:
    lines = ["a: &a [" + ",".join(["'lol'"] * 9) + "]"]
    for i in range(1, BOMB_LEVELS):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    lines.append("command: echo")
    path.write_text("\n".join(lines) + "\n")
    return path


def run_measured(cmd: list[str], env: dict, log: Path) -> tuple[str, int, int, float]:
    """(output, exit status, peak RSS in KiB, seconds) of one child process."""
    t0 = time.perf_counter()
    with log.open("w") as f:
        p = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return log.read_text(), p.returncode, usage.ru_maxrss, time.perf_counter() - t0


def logs_probe(server: ServerProcess, c: httpx.Client, a: dict, n: int) -> Outcome:
    """One 50 MB log read n times: the answer is capped, the server's peak RSS stays put."""
    out = Outcome("logs of a 50 MB job")
    j = c.post("/v1/jobs", json={"command": ["python3", "-c", BIG_LOG]}, headers=a).json()["id"]
    end = time.time() + 60
    while c.get(f"/v1/jobs/{j}", headers=a).json()["status"] not in ("succeeded", "failed"):
        if time.time() > end:
            out.held, out.note = False, "the job never ran: scheduler rounds fail"
            return out
        time.sleep(0.2)
    hwm0 = vm_hwm_kb(server.proc.pid)
    sizes = []
    for _ in range(n):
        r = c.get(f"/v1/jobs/{j}/logs", headers=a)
        sizes.append(len(r.content))
        out.add(str(r.status_code), r.status_code == 200 and len(r.content) <= 1024 * 1024)
    grew = (vm_hwm_kb(server.proc.pid) - hwm0) / 1024
    out.note = f"answer {max(sizes):,} B; server peak RSS +{grew:.0f} MiB"
    out.held = out.held and grew < 20
    return out


def attacks(server: ServerProcess, c: httpx.Client, admin: dict, a: dict, n: int, tmp: Path):
    jb = json.dumps
    yield logs_probe(server, c, a, n)  # first: before any hostile job is stored
    big_ids = [2**31, 2**63 - 1, 2**63, 2**70, 0, -1]
    yield probe(
        "ids out of range",
        n,
        [("GET", f"/v1/jobs/{i}", {"headers": a}) for i in big_ids]
        + [("POST", f"/v1/jobs/{i}/cancel", {"headers": a}) for i in big_ids]
        + [("GET", "/v1/jobs", {"headers": a, "params": {"before": 2**63}})],
        refused,
        c,
    )
    raw = {**a, "Content-Type": "application/json"}
    nul_bodies = [
        {"command": "echo a\x00b"},
        {"command": "true", "name": "n\x00"},
        {"command": "true", "env": {"A": "\x00"}},
        {"command": "true", "workdir": "/tmp/\x00"},
        {"command": "true", "name": "\ud800"},
    ]
    yield probe(
        "NUL / lone surrogate",
        n,
        [("POST", "/v1/jobs", {"content": jb(b).encode(), "headers": raw}) for b in nul_bodies]
        + [
            ("GET", "/v1/jobs", {"headers": a, "params": {"tenant": "x\x00"}}),
            ("POST", "/v1/tenants/a%00/tokens", {"headers": admin}),
        ],
        refused,
        c,
    )
    yield probe(
        "NaN / Infinity",
        n,
        [
            (
                "POST",
                "/v1/jobs",
                {"content": b'{"command":"true","work":Infinity}', "headers": raw},
            ),
            ("POST", "/v1/jobs", {"content": b'{"command":"true","work":NaN}', "headers": raw}),
            (
                "POST",
                "/v1/tenants",
                {"content": b'{"name":"x","budget_usd":Infinity}', "headers": {**raw, **admin}},
            ),
        ],
        refused,
        c,
    )
    yield probe(
        "oversized input",
        n,
        [
            ("POST", "/v1/jobs", {"json": {"command": "x" * 70_000}, "headers": a}),
            ("POST", "/v1/jobs", {"json": {"command": ["x"] * 5000}, "headers": a}),
            (
                "POST",
                "/v1/jobs",
                {
                    "json": {"command": "t", "env": {f"V{i}": "1" for i in range(1000)}},
                    "headers": a,
                },
            ),  # fmt: skip
            (
                "POST",
                "/v1/jobs",
                {"json": {"command": "t", "datasets": [{"name": "d"}] * 500}, "headers": a},
            ),  # fmt: skip
            (
                "POST",
                "/v1/jobs",
                {"content": b'{"command":"' + b"x" * 2_000_000 + b'"}', "headers": raw},
            ),  # fmt: skip
        ],
        refused,
        c,
    )
    yield probe(
        "empty Idempotency-Key",
        n,
        [
            (
                "POST",
                "/v1/jobs",
                {"json": {"command": "true"}, "headers": {**a, "Idempotency-Key": ""}},
            )
        ],
        refused,
        c,
    )
    # logs: one 50 MB log, read n times; the server's peak RSS must not follow the log size
    out = Outcome("/metrics without a token")
    for _ in range(n):
        text = c.get("/metrics").text
        leak = 'tenant="' in text
        out.add("tenant series" if leak else "pool-wide only", not leak)
    yield out
    yield probe(
        "form post, Origin: null",
        n,
        [
            (
                "POST",
                "/ui/login",
                {"data": {"token": a["Authorization"][7:]}, "headers": {"Origin": "null"}},
            ),  # fmt: skip
            ("POST", "/ui/jobs", {"data": {"command": "true"}, "headers": {**a, "Origin": "null"}}),
        ],
        lambda s: s == "403",
        c,
    )
    out = Outcome("security headers")
    want = ("content-security-policy", "x-frame-options", "x-content-type-options")
    for i in range(n):
        r = c.get(["/", "/v1/jobs", "/ui/login", "/healthz", "/nope"][i % 5], headers=a)
        missing = [h for h in want if h not in r.headers]
        out.add("missing " + ",".join(missing) if missing else "all present", not missing)
    yield out
    out = Outcome("token revoked in the store")
    for _ in range(n):
        t = c.post("/v1/tenants/acme/tokens", headers=admin).json()
        h = {"Authorization": f"Bearer {t['token']}"}
        c.get("/v1/jobs", headers=h)  # the token is known (and would be cached)
        revoke = [sys.executable, "-m", "computepool.cli.app", "admin", "token", "revoke"]
        subprocess.run(
            [*revoke, str(t["id"]), "--data-dir", str(server.data_dir), "--db", server.db_url],
            check=True,
            capture_output=True,
        )
        s = send(c, "GET", "/v1/jobs", headers=h)
        out.add("accepted" if s == "200" else s, s == "401")
    yield out
    out = Outcome(f"cpool submit of a YAML alias bomb (9^{BOMB_LEVELS})")
    bomb = bomb_file(tmp / "bomb.yaml")
    env = {**os.environ, "CPOOL_URL": server.url, "CPOOL_TOKEN": a["Authorization"][7:]}
    runs = []
    for _ in range(max(n // 5, 1)):
        cmd = [sys.executable, "-m", "computepool.cli.app", "submit", str(bomb)]
        said, code, rss_kb, secs = run_measured(cmd, env, tmp / "bomb.out")
        runs.append((rss_kb, secs))
        said = "refused (aliases)" if "aliases" in said else f"exit {code}"
        out.add(said, said.startswith("refused"))
    rss, secs = max(r[0] for r in runs), max(r[1] for r in runs)
    out.note = f"at most {secs:.2f} s and {rss / 1024:.0f} MiB peak RSS per run"
    yield out


def run_one(db: str, n: int, work: Path) -> list[Outcome]:
    pg = None
    if db == "postgresql":
        pg = ThrowawayPostgres().start()
        url = pg.new_database()
    else:
        url = f"sqlite:///{work / 'cpool.db'}"
    data = work / "data"
    tok = admin_token(data, url)
    server = ServerProcess(data, url, "--config", "gavel-36x3", "--log-level", "warning")
    try:
        server.start()
        admin = {"Authorization": f"Bearer {tok}"}
        with httpx.Client(base_url=server.url, timeout=60) as c:
            c.post("/v1/tenants", json={"name": "acme"}, headers=admin)
            t = c.post("/v1/tenants/acme/tokens", headers=admin).json()["token"]
            return list(attacks(server, c, admin, {"Authorization": f"Bearer {t}"}, n, work))
    finally:
        server.stop()
        kill_leftovers(data)
        if pg is not None:
            pg.stop()


def table(db: str, rows: list[Outcome]) -> str:
    out = [f"\n{db}:", "| attack | attempts | answers | verdict |", "| --- | ---: | --- | --- |"]
    for r in rows:
        answers = ", ".join(f"{k} x{v}" for k, v in sorted(r.answers.items()))
        if r.note:
            answers += f" ({r.note})"
        out.append(f"| {r.attack} | {r.attempts} | {answers} | {'held' if r.held else 'BROKEN'} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="sqlite")
    ap.add_argument("-n", type=int, default=20, help="attempts per attack class")
    args = ap.parse_args()
    dbs = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    broken = False
    for db in dbs:
        with tempfile.TemporaryDirectory(prefix="cpool-probe-") as tmp:
            rows = run_one(db, args.n, Path(tmp))
        print(table(db, rows), flush=True)
        broken = broken or not all(r.held for r in rows)
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
