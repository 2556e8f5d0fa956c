"""The gateway probed by a hostile tenant: another tenant's private service, oversize bodies,
huge generation requests, header injection through the model name, malformed JSON. Every
probe gets an OpenAI-style 4xx and none reaches a replica."""

from __future__ import annotations

import pytest


def _seen(gw) -> int:
    return sum(len(d.state.seen) for d in gw.doubles.values())


def _err(r, status: int) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    return err


def test_private_service_of_another_tenant_is_neither_listed_nor_usable(gw):
    mallory = gw.tenant("mallory")
    listed = {m["id"] for m in gw.http.get("/v1/models", headers=mallory).json()["data"]}
    assert "private-a" not in listed
    for path, body in (
        ("/v1/completions", {"model": "private-a", "prompt": "x"}),
        ("/v1/chat/completions",
         {"model": "private-a", "messages": [{"role": "user", "content": "x"}], "stream": True}),
    ):  # fmt: skip
        hidden = _err(gw.http.post(path, headers=mallory, json=body), 404)
        missing = _err(
            gw.http.post(path, headers=mallory, json={**body, "model": "no-such-x"}), 404
        )
        # the same answer as for a model that does not exist: nothing about its owner
        assert hidden["message"].replace("private-a", "M") == missing["message"].replace(
            "no-such-x", "M"
        )
        assert hidden["code"] == "model_not_found"
    assert _seen(gw) == 0


def test_oversize_body_is_413_before_anything_is_read(gw):
    who = gw.tenant("mallory")
    r = gw.http.post(
        "/v1/completions",
        headers={**who, "content-type": "application/json"},
        content=b'{"model": "chat-7b", "prompt": "' + b"a" * (1024 * 1024 + 10) + b'"}',
    )
    err = _err(r, 413)
    assert err["code"] == "request_too_large"
    assert _seen(gw) == 0


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "chat-7b", "prompt": "x", "max_tokens": 10**9}, "max_tokens"),
        ({"model": "chat-7b", "prompt": "x", "max_tokens": 0}, "max_tokens"),
        ({"model": "chat-7b", "prompt": "x", "n": 1000}, "n"),
        ({"model": "chat-7b", "prompt": "x", "best_of": 1000}, "best_of"),
        ({"model": "chat-7b\r\nX-Injected: 1", "prompt": "x"}, "model"),
        ({"model": "chat-7b\nSet-Cookie: a=b", "prompt": "x"}, "model"),
        ({"model": "chat 7b", "prompt": "x"}, "model"),
        ({"model": "chat-7b\x00", "prompt": "x"}, "model"),
        ({"model": "m" * 5000, "prompt": "x"}, "model"),
        ({"model": "", "prompt": "x"}, "model"),
        ({"prompt": "x"}, "model"),
        ({"model": "chat-7b"}, "prompt"),
        ({"model": "chat-7b", "prompt": ["x"] * 1000}, "prompt"),
        ({"model": "chat-7b", "prompt": "x", "stream": "yes please"}, "stream"),
    ],
)
def test_bad_completion_bodies(gw, body, param):
    who = gw.tenant("mallory")
    err = _err(gw.http.post("/v1/completions", headers=who, json=body), 400)
    assert err["param"].split(".")[0] == param
    assert err["type"] == "invalid_request_error"
    assert "X-Injected" not in str(err) and "Set-Cookie" not in str(err)
    assert _seen(gw) == 0


def test_bad_chat_bodies(gw):
    who = gw.tenant("mallory")
    many = [{"role": "user", "content": "x"}] * 1025
    for body, param in (
        ({"model": "chat-7b", "messages": many}, "messages"),
        ({"model": "chat-7b", "messages": []}, "messages"),
        ({"model": "chat-7b", "messages": [{"content": "no role"}]}, "messages"),
        ({"model": "chat-7b", "messages": [{"role": "user", "content": "x"}],
          "max_completion_tokens": 10**7}, "max_completion_tokens"),
    ):  # fmt: skip
        err = _err(gw.http.post("/v1/chat/completions", headers=who, json=body), 400)
        assert err["param"].split(".")[0] == param
    assert _seen(gw) == 0


def test_malformed_json(gw):
    who = {**gw.tenant("mallory"), "content-type": "application/json"}
    for raw in (
        b"{",
        b"[1, 2]",
        b'"x"',
        b"[" * 200_000 + b"]" * 200_000,
        b"\xff\xfe",
        b'{"model": "chat-7b", "prompt": "x", "max_tokens": 1e400}',
        b'{"model": "chat-7b", "prompt": "x", "temperature": NaN}',
        b'{"model": "chat-7b", "prompt": "x", "top_p": -Infinity}',
    ):
        err = _err(gw.http.post("/v1/completions", headers=who, content=raw), 400)
        assert err["code"] == "invalid_json"
    assert _seen(gw) == 0


def test_tokens_refused(gw):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic eA=="},
                    {"Authorization": "Bearer " + "x" * 10_000}):  # fmt: skip
        err = _err(gw.http.post("/v1/completions", headers=headers,
                                json={"model": "chat-7b", "prompt": "x"}), 401)  # fmt: skip
        assert err["type"] == "authentication_error"
    assert _seen(gw) == 0


def test_revoked_token_is_refused_at_once(gw):
    r = gw.http.post("/v1/tenants", json={"name": "gone"}, headers=gw.admin)
    assert r.status_code == 201
    tok = gw.http.post("/v1/tenants/gone/tokens", headers=gw.admin).json()
    who = {"Authorization": f"Bearer {tok['token']}"}
    assert gw.http.get("/v1/models", headers=who).status_code == 200
    assert gw.http.delete(f"/v1/tokens/{tok['id']}", headers=gw.admin).status_code == 204
    _err(gw.http.get("/v1/models", headers=who), 401)


def test_random_bodies_never_answer_5xx(gw):
    """Hostile JSON of any shape, and near-valid bodies with hostile values: always a 4xx or
    a 200 from a replica, never a 5xx."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    who = gw.tenant("mallory")
    scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False,
              allow_infinity=False) | st.text(max_size=20)  # fmt: skip
    anything = st.recursive(scalars, lambda c: st.lists(c, max_size=4)
                            | st.dictionaries(st.text(max_size=8), c, max_size=4),
                            max_leaves=12)  # fmt: skip
    near = st.fixed_dictionaries(
        {"model": st.sampled_from(["chat-7b", "private-a", "no-usage", "down"]) | st.text(max_size=30)},
        optional={"prompt": anything, "messages": anything, "max_tokens": anything,
                  "stream": anything, "stream_options": anything, "n": anything},
    )  # fmt: skip

    @settings(max_examples=120, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(body=anything | near, path=st.sampled_from(["/v1/completions", "/v1/chat/completions"]))
    def run(body, path):
        r = gw.http.post(path, headers=who, json=body)
        assert r.status_code < 500 or r.status_code == 503, (body, r.status_code, r.text)
        if r.status_code >= 400:
            assert set(r.json()["error"]) == {"message", "type", "param", "code"}

    run()
