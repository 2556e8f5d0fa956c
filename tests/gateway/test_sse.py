"""Reading an SSE stream in transit: whole events passed on, usage noted, the usage-only
chunk dropped when the client did not ask for it."""

from __future__ import annotations

import json

from computepool.server.sse import SseTap, usage_counts


def _ev(doc) -> bytes:
    return f"data: {json.dumps(doc)}\n\n".encode()


def test_events_split_anywhere_come_out_whole():
    stream = (
        _ev({"choices": [{"text": "a"}]})
        + _ev({"choices": [{"delta": {"content": "b"}}]})
        + _ev({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}})
        + b"data: [DONE]\n\n"
    )
    for cut in range(1, len(stream)):
        tap = SseTap()
        out = tap.feed(stream[:cut]) + tap.feed(stream[cut:]) + tap.close()
        assert out == stream
        assert tap.text_chunks == 2
        assert usage_counts(tap.usage) == (3, 2)


def test_usage_chunk_dropped_only_when_not_asked():
    usage = _ev({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}})
    text = _ev({"choices": [{"text": "a"}], "usage": None})
    tap = SseTap(drop_usage=True)
    assert tap.feed(text + usage + b"data: [DONE]\n\n") == text + b"data: [DONE]\n\n"
    assert usage_counts(tap.usage) == (1, 1)


def test_bad_usage_is_ignored():
    assert usage_counts({"prompt_tokens": -1, "completion_tokens": 2}) is None
    assert usage_counts({"prompt_tokens": True, "completion_tokens": 2}) is None
    assert usage_counts({"prompt_tokens": "3", "completion_tokens": 2}) is None
    assert usage_counts(None) is None
    assert usage_counts({"prompt_tokens": 10**20, "completion_tokens": 0}) == (10**12, 0)


def test_not_an_event_stream_is_passed_on():
    tap = SseTap()
    blob = b"x" * (2 * 1024 * 1024)
    assert tap.feed(blob) == blob
