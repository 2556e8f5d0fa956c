"""The OpenAI API as vLLM serves it: request bodies, token counting, response and SSE chunks.

Pure functions and pydantic models, no I/O: ``http.replica_app`` (the emulated replica) answers
with them, so a client, the gateway or a load generator talks to an emulated replica exactly as
to ``vllm serve``.

Token counting (the emulator has no tokenizer): a prompt's tokens are its **words and
punctuation marks** — the matches of ``\\w+|[^\\w\\s]`` (``"Hello, world!"`` is 4 tokens); a
prompt given as a list of token ids counts one per id. A chat request adds 3 tokens per
message (role and delimiters) and 3 for the assistant's reply header, as OpenAI's own
counting rule for chat models does. Generated tokens are words cycled from ``WORDS``, so the
text the emulator returns counts back to ``completion_tokens`` by the same rule.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: Bounds on a request (every tenant input is hostile).
MAX_PROMPT_CHARS = 4_000_000
MAX_PROMPT_TOKENS = 1_000_000
MAX_MESSAGES = 4096
MAX_OUTPUT_TOKENS = 100_000
DEFAULT_MAX_TOKENS = 16  # OpenAI's and vLLM's default for /v1/completions

Text = Annotated[str, Field(max_length=MAX_PROMPT_CHARS)]
TokenIds = Annotated[list[int], Field(max_length=MAX_PROMPT_TOKENS)]

TOKEN_RE = re.compile(r"\w+|[^\w\s]")
WORDS = ("the", "pool", "serves", "tokens", "on", "emulated", "accelerators", "today")
PER_MESSAGE_TOKENS = 3
REPLY_PRIMING_TOKENS = 3


def count_tokens(text: str) -> int:
    """Tokens of ``text`` by the emulator's rule: words and punctuation marks."""
    return sum(1 for _ in TOKEN_RE.finditer(text))


def token_text(i: int) -> str:
    """The text of generated token ``i`` (a leading space, then a word)."""
    return " " + WORDS[i % len(WORDS)]


class StreamOptions(BaseModel):
    include_usage: bool = False
    continuous_usage_stats: bool = False


class _Request(BaseModel):
    # OpenAI's and vLLM's sampling parameters are accepted (and do not change the emulation)
    model_config = ConfigDict(extra="allow")

    model: str | None = Field(None, max_length=512)
    max_tokens: int | None = Field(None, ge=1, le=MAX_OUTPUT_TOKENS)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    ignore_eos: bool = False
    user: str | None = Field(None, max_length=512)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class CompletionRequest(_Request):
    prompt: Text | TokenIds | Annotated[list[Text], Field(min_length=1, max_length=64)]

    def prompt_tokens(self) -> int:
        p = self.prompt
        if isinstance(p, str):
            return count_tokens(p)
        if p and isinstance(p[0], str):
            if len(p) != 1:
                raise ValueError("batched prompts (a list of several strings) are not served")
            return count_tokens(p[0])
        return len(p)


class ContentPart(BaseModel):
    type: str = Field(max_length=64)
    text: Text | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: Text | Annotated[list[ContentPart], Field(max_length=1024)] | None = None


class ChatRequest(_Request):
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_OUTPUT_TOKENS)

    def prompt_tokens(self) -> int:
        n = REPLY_PRIMING_TOKENS
        for m in self.messages:
            n += PER_MESSAGE_TOKENS
            if isinstance(m.content, str):
                n += count_tokens(m.content)
            elif m.content:
                n += sum(count_tokens(p.text or "") for p in m.content)
        return n


def output_tokens(req: _Request) -> int:
    """Tokens the emulated engine generates: ``max_tokens`` (it never stops early)."""
    if isinstance(req, ChatRequest) and req.max_completion_tokens is not None:
        return req.max_completion_tokens
    return req.max_tokens or DEFAULT_MAX_TOKENS


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion,
        "completion_tokens": completion,
    }


def new_id(chat: bool) -> str:
    return ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex


def completion_body(
    rid: str, model: str, chat: bool, text: str, prompt: int, completion: int
) -> dict[str, Any]:
    """A whole (non-streamed) response, as vLLM answers it."""
    choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": "length"}
    if chat:
        choice["message"] = {"role": "assistant", "content": text}
    else:
        choice |= {"text": text, "stop_reason": None}
    return {
        "id": rid,
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": usage(prompt, completion),
    }


def chunk(
    rid: str, model: str, chat: bool, text: str | None, finish: str | None = None,
    *, role: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """One streamed chunk carrying ``text`` (for chat, ``role`` opens the assistant message)."""
    choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": finish}
    if chat:
        delta: dict[str, Any] = {"role": "assistant"} if role else {}
        if text is not None:
            delta["content"] = text
        choice["delta"] = delta
    else:
        choice["text"] = text or ""
    return {
        "id": rid,
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
    }


def usage_chunk(rid: str, model: str, chat: bool, prompt: int, completion: int) -> dict:
    """The last chunk of a stream asked with ``stream_options.include_usage``."""
    return {
        "id": rid,
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [],
        "usage": usage(prompt, completion),
    }


def error_body(message: str, code: int, kind: str = "BadRequestError") -> dict[str, Any]:
    """vLLM's error object."""
    return {"object": "error", "message": message, "type": kind, "param": None, "code": code}


def models_body(name: str, max_model_len: int, owned_by: str = "vllm") -> dict[str, Any]:
    """``GET /v1/models`` with one served model."""
    return {
        "object": "list",
        "data": [
            {
                "id": name,
                "object": "model",
                "created": int(time.time()),
                "owned_by": owned_by,
                "root": name,
                "parent": None,
                "max_model_len": max_model_len,
            }
        ],
    }
