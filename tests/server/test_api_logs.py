"""Logs with bounded memory and a bounded answer: windows, tails, several workers, follow."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from computepool.bounds import LOG_CHUNK_BYTES, LOG_RESPONSE_MAX_BYTES
from computepool.server import log_view as lv

BIG = 50_000_000  # bytes of log: 500,000 lines of 100 bytes
WRITE_BIG = "import sys; sys.stdout.write(('x' * 99 + '\\n') * 500000)"


def test_window_never_exceeds_the_cap():
    cap = LOG_RESPONSE_MAX_BYTES
    assert lv.window(10, None, None, None) == (0, 10)
    assert lv.window(BIG, None, None, None) == (BIG - cap, BIG)
    assert lv.window(BIG, None, None, 100) == (BIG - 100, BIG)
    assert lv.window(BIG, 5, 10, None) == (5, 15)
    assert lv.window(BIG, 5, None, None) == (5, 5 + cap)
    assert lv.window(BIG, BIG + 7, 10, None) == (BIG, BIG)
    assert lv.window(BIG, 0, 10 * cap, None) == (0, cap)


def test_prefixed_lines_are_whole_and_bounded():
    chunks = [b"cut line\nfirst\nsec", b"ond\n", b"x" * (LOG_CHUNK_BYTES + 5), b"\ntail"]
    out = b"".join(lv.prefixed_lines(chunks, b"[p] ", skip_partial=True)).split(b"\n")
    assert out[:2] == [b"[p] first", b"[p] second"]
    assert out[2].startswith(b"[p] xxx") and out[-2:] == [b"[p] tail", b""]
    assert b"cut line" not in b"".join(out)


def test_follower_waits_for_whole_lines_with_several_files(tmp_path: Path):
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_bytes(b"one\ntw")
    b.write_bytes(b"")
    files = [lv.LogFile(1, 0, a), lv.LogFile(1, 1, b)]
    f = lv.Follower({}, prefixed=True)
    assert b"".join(f.new_bytes(files)) == b"[attempt 1 rank 0] one\n"
    with a.open("ab") as w:
        w.write(b"o\nthr")
    b.write_bytes(b"b1\n")
    got = b"".join(f.new_bytes(files))
    assert got == b"[attempt 1 rank 0] two\n[attempt 1 rank 1] b1\n"
    assert b"".join(f.finish(files)) == b"[attempt 1 rank 0] thr\n"


def test_tails_of_many_files_stay_within_the_cap(tmp_path: Path):
    files = []
    for r in range(4):
        p = tmp_path / f"rank-{r}.log"
        p.write_bytes(b"y\n" * 1_000_000)  # 2 MB each, lines of 2 bytes: the prefix dominates
        files.append(lv.LogFile(1, r, p))
    out = b"".join(lv.tails(files, None))
    assert 0 < len(out) <= LOG_RESPONSE_MAX_BYTES
    assert out.startswith(b"[attempt 1 rank 0] y\n")


@pytest.fixture(scope="module")
def big_log(live_shared):
    live = live_shared
    a = live.tenant("acme")
    j = live.submit(a, command=["python3", "-c", WRITE_BIG]).json()["id"]
    live.wait_status(a, j, "succeeded", timeout=60)
    return live, a, j


def test_a_large_log_is_read_with_bounded_memory_and_answer(big_log):
    live, a, j = big_log
    live.client.get(f"/v1/jobs/{j}/logs", params={"tail_bytes": 10}, headers=a)  # warm up
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        r = live.client.get(f"/v1/jobs/{j}/logs", headers=a)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert r.status_code == 200
    assert len(r.content) == LOG_RESPONSE_MAX_BYTES  # the cap, not 50 MB
    assert int(r.headers["x-log-size"]) == BIG
    assert int(r.headers["x-log-offset"]) == BIG - LOG_RESPONSE_MAX_BYTES
    assert int(r.headers["x-log-next-offset"]) == BIG
    # server and client in this process: the answer (1 MiB, held by the test client and
    # its buffers) plus a few chunks; reading the whole log took 50 MB and more
    assert peak < 6 * LOG_RESPONSE_MAX_BYTES, f"peak {peak / 1e6:.1f} MB"


def test_a_log_is_paged_by_offset_and_limit(big_log):
    live, a, j = big_log
    url = f"/v1/jobs/{j}/logs"
    r = live.client.get(url, params={"offset": 0, "limit": 250}, headers=a)
    assert r.content == (b"x" * 99 + b"\n") * 2 + b"x" * 50
    assert r.headers["x-log-next-offset"] == "250"
    r = live.client.get(url, params={"offset": 250, "limit": 60}, headers=a)
    assert r.content == b"x" * 49 + b"\n" + b"x" * 10
    r = live.client.get(url, params={"tail_bytes": 101}, headers=a)
    assert r.content == b"\n" + b"x" * 99 + b"\n"
    r = live.client.get(url, params={"offset": BIG + 10}, headers=a)
    assert r.content == b"" and r.headers["x-log-offset"] == str(BIG)
    for params, field in [
        ({"limit": LOG_RESPONSE_MAX_BYTES + 1}, "limit"),
        ({"tail_bytes": 0}, "tail_bytes"),
        ({"tail_bytes": 10, "offset": 0}, "tail_bytes"),
        ({"offset": -1}, "offset"),
    ]:
        r = live.client.get(url, params=params, headers=a)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, params


def test_several_workers_prefixed_tails_and_one_chosen(live_sqlite):
    live = live_sqlite
    a = live.tenant("acme")
    j = live.submit(a, command="echo hello from $CPOOL_WORKER_RANK", workers=2).json()["id"]
    live.wait_status(a, j, "succeeded")
    url = f"/v1/jobs/{j}/logs"
    r = live.client.get(url, headers=a)
    assert r.headers["x-log-files"] == "2"
    lines = sorted(r.text.splitlines())
    assert [ln.split("] ", 1)[1] for ln in lines] == ["hello from 0", "hello from 1"]
    r = live.client.get(url, params={"offset": 0}, headers=a)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "offset"
    r = live.client.get(url, params={"rank": 1, "offset": 0}, headers=a)
    assert r.text == "hello from 1\n"
    with live.client.stream("GET", url, params={"follow": True}, headers=a) as s:
        followed = sorted("".join(s.iter_text()).splitlines())
    assert followed == lines


def test_a_follow_stream_ends_when_its_token_is_revoked(live_sqlite):
    live = live_sqlite
    live.tenant("acme")
    tok = live.client.post("/v1/tenants/acme/tokens", headers=live.admin).json()
    a = {"Authorization": f"Bearer {tok['token']}"}
    j = live.submit(a, command="echo started; sleep 30").json()["id"]
    live.wait_status(a, j, "running")
    url = f"/v1/jobs/{j}/logs"
    with live.client.stream("GET", url, params={"follow": True}, headers=a) as s:
        chunks = s.iter_text()
        text = next(chunks)
        while "started" not in text:
            text += next(chunks)
        assert live.client.delete(f"/v1/tokens/{tok['id']}", headers=live.admin).status_code == 204
        t0 = time.monotonic()
        rest = "".join(chunks)  # ends at the next poll, not when the job does
    assert time.monotonic() - t0 < 5 and rest == ""
    assert live.job(live.admin, j)["status"] == "running"
