"""Services in the dashboard (a Services page in the nav), in ``GET /v1/pool``, per viewer."""

from __future__ import annotations


def _login(gw, who) -> dict[str, str]:
    return {"Cookie": f"cpool_token={who['Authorization'].split()[1]}"}


def test_services_page_and_pool(gw):
    a, b = gw.tenant("oem-a"), gw.tenant("oem-b")
    for _ in range(3):
        r = gw.http.post("/v1/completions", headers=a,
                         json={"model": "private-a", "prompt": "x y", "max_tokens": 3})  # fmt: skip
        assert r.status_code == 200
    body = {"model": "chat-7b", "prompt": "x", "max_tokens": 2, "stream": True}
    with gw.http.stream("POST", "/v1/completions", headers=b, json=body) as r:
        r.read()
    gw.flush()
    page = gw.http.get("/serving", headers=_login(gw, a)).text
    assert "href='/serving'" in page or 'href="/serving"' in page
    assert "private-a" in page and "qwen2.5-3b" in page
    assert "<td>15</td>" in page  # oem-a's tokens on private-a: 3 x (2 + 3)
    other = gw.http.get("/serving", headers=_login(gw, b)).text
    assert "private-a" not in other
    assert "100.0%" in other  # chat-7b's one streamed request within its 2 s TTFT objective
    pool_a = {s["name"]: s for s in gw.http.get("/v1/pool", headers=a).json()["services"]}
    assert set(pool_a) == {"chat-7b", "private-a", "no-usage", "down"}
    assert pool_a["chat-7b"]["replicas_ready"] == 2 and pool_a["down"]["replicas_ready"] == 0
    assert pool_a["private-a"]["owner"] == "oem-a"
    pool_b = {s["name"] for s in gw.http.get("/v1/pool", headers=b).json()["services"]}
    assert "private-a" not in pool_b
    admin = gw.http.get(
        "/serving", headers={"Cookie": f"cpool_token={gw.admin['Authorization'].split()[1]}"}
    ).text
    assert "private-a" in admin and "everyone" in admin
