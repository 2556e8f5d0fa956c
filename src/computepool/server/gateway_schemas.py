"""Request bodies of the OpenAI-compatible gateway, bounded, and its error answers.

Fields the gateway reads are checked (model name, ``max_tokens``, ``n``, messages, prompt,
streaming); other OpenAI and vLLM fields pass through to the replica unchanged, bounded by
the body size (``bounds.BODY_MAX_BYTES``). Errors are OpenAI's shape:
``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from computepool import bounds as B

#: A served model name: what a service may be called (no spaces, quotes or control chars).
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$")
#: Completion tokens one choice may ask for (none named: the engine's context length bounds it).
MAX_TOKENS = 32_768
#: Choices per request (``n``, ``best_of``).
CHOICES_MAX = 16
#: Chat messages per request, and items of a batched prompt.
MESSAGES_MAX = 1024
PROMPTS_MAX = 256
#: The largest replica answer the gateway reads (non-streamed), in bytes.
UPSTREAM_BODY_MAX = 16 * 1024 * 1024


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    model: str = Field(min_length=1, max_length=B.NAME_MAX)
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    n: int = Field(1, ge=1, le=CHOICES_MAX)
    best_of: int | None = Field(None, ge=1, le=CHOICES_MAX)
    stream: bool = False
    stream_options: StreamOptions | None = None

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        if not MODEL_NAME.match(v):
            raise ValueError(
                "a model name is letters, digits and . _ : / @ + - (no spaces or control "
                "characters)"
            )
        return v

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class CompletionIn(_Request):
    prompt: str | list[str] | list[int] | list[list[int]] = Field(max_length=B.BODY_MAX_BYTES)

    @field_validator("prompt")
    @classmethod
    def _prompts(cls, v: Any) -> Any:
        if isinstance(v, list) and v and not isinstance(v[0], int) and len(v) > PROMPTS_MAX:
            raise ValueError(f"at most {PROMPTS_MAX} prompts in one request")
        return v


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str = Field(min_length=1, max_length=32)
    content: str | list[dict[str, Any]] | None = None


class ChatIn(_Request):
    messages: list[Message] = Field(min_length=1, max_length=MESSAGES_MAX)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)


def prompt_text(body: CompletionIn | ChatIn) -> str:
    """The text of the prompt (for counting its tokens when a replica reports none)."""
    if isinstance(body, ChatIn):
        parts = []
        for m in body.messages:
            if isinstance(m.content, str):
                parts.append(m.content)
            elif isinstance(m.content, list):
                parts.extend(str(c.get("text", "")) for c in m.content)
        return "\n".join(parts)
    p = body.prompt
    if isinstance(p, str):
        return p
    return " ".join(str(x) for x in p)


def estimate_tokens(text: str) -> int:
    """About four characters a token (OpenAI's rule of thumb for English text)."""
    return math.ceil(len(text) / 4) if text else 0


ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    502: "upstream_error",
    503: "service_unavailable",
}


def error(
    status: int,
    message: str,
    code: str,
    param: str | None = None,
    retry_after_s: float | None = None,
) -> JSONResponse:
    headers = {}
    if retry_after_s is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after_s)))
    body = {
        "error": {
            "message": message,
            "type": ERROR_TYPES.get(status, "server_error"),
            "param": param,
            "code": code,
        }
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _finite(text: str) -> float:
    v = float(text)
    if math.isinf(v):
        raise ValueError("number out of range")
    return v


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def parse_body(raw: bytes, model: type[_Request]) -> tuple[dict, _Request] | JSONResponse:
    try:  # strict JSON: no NaN / Infinity, no number beyond a double (they would pass on)
        doc = json.loads(raw, parse_float=_finite, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return error(
            400, "the body is not valid JSON (or holds NaN, Infinity, a number out of range)",
            "invalid_json",
        )  # fmt: skip
    if not isinstance(doc, dict):
        return error(400, "the body must be a JSON object", "invalid_json")
    try:
        body = model.model_validate(doc)
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(x) for x in e.get("loc", ())) or "body"
        return error(400, f"{where}: {e.get('msg', 'invalid')}", "invalid_value", where)
    except RecursionError:
        return error(400, "the body nests too deeply", "invalid_json")
    return doc, body


def upstream_body(doc: dict, body: _Request) -> dict:
    """The body sent to the replica: the client's, with the final usage chunk asked for.

    A request that names no ``max_tokens`` is passed on without one: the engine bounds it by
    its context length (vLLM refuses a ``max_tokens`` beyond it, so a default here would
    break small-context models)."""
    out = dict(doc)
    if body.stream:
        opts = dict(doc.get("stream_options") or {})
        opts["include_usage"] = True  # always: the gateway meters from it
        out["stream_options"] = opts
    return out


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.split("/")[-1]], defs)
        return {k: _inline(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting ``model`` as the JSON body (the route reads the body
    itself, to answer errors in OpenAI's shape)."""
    schema = model.model_json_schema()
    schema = _inline(schema, schema.get("$defs", {}))
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
