"""llama-cpp-python's OpenAI server with what the pool needs around it: ``python -m
computepool.serving.engines.llama_cpp_python --model FILE.gguf --model_alias NAME --port P``.

The package's server (``python -m llama_cpp.server``) has no ``/metrics`` and no ``/health``,
and its streams carry no usage. ``Metered`` wraps its ASGI app: requests to
``/v1/completions`` and ``/v1/chat/completions`` are counted in and out (the server runs one
at a time: one running, the rest waiting), tokens come from the answer's ``usage`` or, for a
stream, one per text chunk and the prompt tokenized by the model, the time to the first
chunk feeds the TTFT histogram, and a stream asked with ``stream_options.include_usage`` gets
its usage chunk before ``data: [DONE]``. ``/metrics`` shows them under vLLM's names
(``emulator.metrics_text``), so the vLLM adapter reads them. A chat stream's prompt tokens are
its messages' contents tokenized (the chat template's own tokens are not counted).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from computepool.serving.emulator import EngineStats, metrics_text

GENERATE = ("/v1/completions", "/v1/chat/completions")
MAX_BODY = 8 << 20


def _text_of(event: dict) -> bool:
    choices = event.get("choices") or []
    if not choices:
        return False
    c = choices[0]
    return bool(c.get("text") or (c.get("delta") or {}).get("content"))


@dataclass
class Metered:
    """ASGI wrapper adding the pool's metering to an OpenAI server that has none."""

    app: Any
    name: str
    #: request body -> prompt tokens (for streams, whose answers carry no usage)
    count_prompt: Callable[[dict], int] = lambda body: 0
    stats: EngineStats = field(default_factory=EngineStats)
    in_flight: int = 0

    def _load(self) -> None:
        self.stats.running = min(self.in_flight, 1)
        self.stats.waiting = max(self.in_flight - 1, 0)

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if path in ("/metrics", "/health") and scope["method"] == "GET":
            text = metrics_text(self.stats, self.name) if path == "/metrics" else "ok"
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8")]})  # fmt: skip
            return await send({"type": "http.response.body", "body": text.encode()})
        if path not in GENERATE or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        await self._generate(scope, receive, send)

    async def _generate(self, scope, receive, send) -> None:
        chunks, more = [], True
        while more:
            msg = await receive()
            chunks.append(msg.get("body", b""))
            more = msg.get("more_body", False) and sum(map(len, chunks)) <= MAX_BODY
        raw = b"".join(chunks)
        try:
            body = json.loads(raw)
            body = body if isinstance(body, dict) else {}
        except ValueError:
            body = {}
        opts = body.get("stream_options")
        want_usage = bool(body.get("stream")) and isinstance(opts, dict) and bool(
            opts.get("include_usage")
        )  # fmt: skip
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        st = self.stats
        st.requests_total += 1
        self.in_flight += 1
        self._load()
        t0 = time.monotonic()
        state: dict[str, Any] = {"status": 500, "sse": False, "gen": 0, "first": None,
                                 "json": [], "last": None}  # fmt: skip

        def sse_events(text: str) -> list[str]:
            return [e.strip() for e in text.replace("\r\n", "\n").split("\n\n") if e.strip()]

        async def metered_send(msg) -> None:
            if msg["type"] == "http.response.start":
                state["status"] = msg["status"]
                kind = dict(msg.get("headers") or []).get(b"content-type", b"")
                state["sse"] = kind.startswith(b"text/event-stream")
                return await send(msg)
            if msg["type"] != "http.response.body":
                return await send(msg)
            data = msg.get("body", b"")
            if not state["sse"]:
                state["json"].append(data)
                return await send(msg)
            out = []
            for ev in sse_events(data.decode(errors="replace")):
                if ev == "data: [DONE]" and want_usage and state["last"] is not None:
                    p = self.count_prompt(body)
                    state["prompt"] = p
                    usage = {**state["last"], "choices": [], "usage": {
                        "prompt_tokens": p, "completion_tokens": state["gen"],
                        "total_tokens": p + state["gen"]}}  # fmt: skip
                    out.append("data: " + json.dumps(usage))
                elif ev.startswith("data: {"):
                    try:
                        event = json.loads(ev[6:])
                    except ValueError:
                        event = {}
                    if _text_of(event):
                        state["gen"] += 1
                        state["first"] = state["first"] or time.monotonic()
                    state["last"] = {k: event.get(k) for k in ("id", "object", "created", "model")}
                out.append(ev)
            payload = "".join(e + "\r\n\r\n" for e in out).encode() if out else data
            return await send({**msg, "body": payload})

        try:
            await self.app(scope, replay, metered_send)
        finally:
            self.in_flight -= 1
            self._load()
            if state["status"] == 200:
                self._done(body, state, t0)

    def _done(self, body: dict, state: dict, t0: float) -> None:
        st = self.stats
        st.completed_total += 1
        if state["sse"]:
            prompt = state.get("prompt")
            st.prompt_tokens_total += self.count_prompt(body) if prompt is None else prompt
            st.generated_tokens_total += state["gen"]
            st.first_token((state["first"] or time.monotonic()) - t0)
            return
        try:
            usage = json.loads(b"".join(state["json"])).get("usage") or {}
        except (ValueError, AttributeError):
            usage = {}
        st.prompt_tokens_total += int(usage.get("prompt_tokens", 0))
        st.generated_tokens_total += int(usage.get("completion_tokens", 0))
        st.first_token(time.monotonic() - t0)  # a whole answer: its first token is its end


def prompt_counter(tokenize: Callable[[str], int]) -> Callable[[dict], int]:
    """A request body's prompt tokens with the model's tokenizer (``tokenize(text)``)."""

    def count(body: dict) -> int:
        p = body.get("prompt")
        if isinstance(p, str):
            return tokenize(p)
        if isinstance(p, list):
            return sum(tokenize(x) if isinstance(x, str) else 1 for x in p)
        n = 0
        for m in body.get("messages") or []:
            c = m.get("content") if isinstance(m, dict) else None
            if isinstance(c, str):
                n += tokenize(c)
            elif isinstance(c, list):
                n += sum(tokenize(x.get("text") or "") for x in c if isinstance(x, dict))
        return n

    return count


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn
    from llama_cpp.server import app as lapp
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    ap = argparse.ArgumentParser(description="llama-cpp-python's server, metered for the pool")
    ap.add_argument("--model", required=True)
    ap.add_argument("--model_alias", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--n_ctx", type=int, default=2048)
    ap.add_argument("--n_threads", type=int, default=1)
    args = ap.parse_args(argv)
    app = lapp.create_app(
        server_settings=ServerSettings(host=args.host, port=args.port),
        model_settings=[ModelSettings(model=args.model, model_alias=args.model_alias,
                                      n_ctx=args.n_ctx, n_threads=args.n_threads,
                                      n_threads_batch=args.n_threads, verbose=False)],
    )  # fmt: skip
    llama = lapp._llama_proxy(None)  # the one model (loaded by create_app)

    def tokenize(text: str) -> int:
        return len(llama.tokenize(text.encode(), add_bos=False, special=False))

    metered = Metered(app, args.model_alias, prompt_counter(tokenize))
    uvicorn.run(metered, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
