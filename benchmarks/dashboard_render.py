"""Time to first render of the dashboard's pages with 10,000 jobs stored.

    python benchmarks/dashboard_render.py [--jobs 10000] [--runs 10] [--json OUT]

Fills a SQLite store with N finished jobs of 8 tenants over the last week (their events,
placement intervals, ledger entries and residency decisions; ``tests/web/fill.py``) plus a
backlog of waiting jobs, starts a real ``cpool serve`` on 127.0.0.1 (the automotive demo pool,
12 flavors in 4 regions), and loads each page in headless Debian Chromium (Playwright with
``/usr/bin/chromium``), logged in as the admin and as a tenant. For each load it reads the
browser's own Navigation Timing and Paint Timing: time to first byte, DOMContentLoaded and
first contentful paint, all from navigation start. The pages are rendered on the server with
their data, so the first contentful paint shows the data. Prints medians and maxima;
everything it started is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.server.conftest import kill_leftovers  # noqa: E402
from tests.server.serverproc import ServerProcess  # noqa: E402
from tests.web.conftest import CHROMIUM, launch  # noqa: E402
from tests.web.fill import fill  # noqa: E402

PAGES = (
    "/",
    "/?w=7d",
    "/jobs",
    "/jobs?status=failed",
    "/jobs/5000",
    "/tenants",
    "/usage",
    "/residency",
)
TIMING_JS = """() => {
  const n = performance.getEntriesByType('navigation')[0];
  const p = performance.getEntriesByName('first-contentful-paint')[0];
  return {ttfb: n.responseStart, dcl: n.domContentLoadedEventEnd,
          fcp: p ? p.startTime : null, bytes: n.transferSize};
}"""


def measure(browser, base: str, token: str, path: str, runs: int) -> dict:
    ctx = browser.new_context(viewport={"width": 1360, "height": 900})
    ctx.add_cookies([{"name": "cpool_token", "value": token, "url": base}])
    out = []
    for i in range(runs + 1):
        page = ctx.new_page()
        page.goto(base + path, wait_until="load")
        page.wait_for_timeout(50)  # paint entries are queued after load
        t = page.evaluate(TIMING_JS)
        assert "/ui/login" not in page.url, "not logged in"
        page.close()
        if i:  # the first load warms the server's caches and the browser
            out.append(t)
    ctx.close()

    def stats(key: str) -> dict:
        vals = [float(t[key]) for t in out if t[key] is not None]
        return {"median_ms": statistics.median(vals), "max_ms": max(vals)}

    return {
        "ttfb": stats("ttfb"),
        "dcl": stats("dcl"),
        "fcp": stats("fcp"),
        "bytes": out[-1]["bytes"],
    }


def server_ms(base: str, token: str, path: str, runs: int) -> float:
    h = {"Authorization": f"Bearer {token}"}
    vals = []
    with httpx.Client(timeout=30) as c:
        for _ in range(runs):
            t = time.perf_counter()
            r = c.get(base + path, headers=h)
            vals.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, (path, r.status_code)
    return statistics.median(vals)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="cpool-dash-"))
    data, url = tmp / "data", f"sqlite:///{tmp / 'cpool.db'}"
    t = time.perf_counter()
    filled = fill(data, url, "automotive-demo", jobs=args.jobs)
    print(f"filled {args.jobs:,} jobs in {time.perf_counter() - t:.1f} s", flush=True)
    server = ServerProcess(data, url, "--config", "automotive-demo", log=tmp / "server.log")
    results: dict = {"jobs": args.jobs, "runs": args.runs, "load_avg": os.getloadavg()[0]}
    try:
        server.start()
        with sync_playwright() as p:
            browser = launch(p)
            results["chromium"] = browser.version
            try:
                for who, token in (("admin", filled.admin), ("tenant", filled.tenant)):
                    for path in PAGES:
                        m = measure(browser, server.url, token, path, args.runs)
                        m["server_ms"] = server_ms(server.url, token, path, args.runs)
                        results[f"{who} {path}"] = m
                        print(
                            f"{who:6} {path:22} server {m['server_ms']:6.1f} ms · ttfb "
                            f"{m['ttfb']['median_ms']:6.1f} · DOMContentLoaded "
                            f"{m['dcl']['median_ms']:6.1f} · first contentful paint "
                            f"{m['fcp']['median_ms']:6.1f} ms (max {m['fcp']['max_ms']:.1f}) · "
                            f"{m['bytes'] / 1024:.0f} KiB",
                            flush=True,
                        )
            finally:
                browser.close()
    finally:
        server.stop()
        kill_leftovers(data)
        results["load_avg_after"] = os.getloadavg()[0]
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
