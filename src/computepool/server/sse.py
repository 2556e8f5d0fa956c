"""Reading an OpenAI-style server-sent event stream as it passes through the gateway.

``SseTap.feed(chunk)`` returns the bytes to send on now (whole events only; a partial event
waits for its end, so one event is never split by the gateway's filtering) and notes the
usage the stream reports (its final ``usage`` chunk) and how many chunks carried text (the
token count the gateway falls back to when a replica reports no usage). With
``drop_usage``, the usage-only chunk the gateway asked for on the client's behalf is not
sent on (the client did not ask for it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

#: An event larger than this is passed on without being read.
EVENT_MAX = 1024 * 1024


@dataclass
class SseTap:
    drop_usage: bool = False
    usage: dict | None = None
    text_chunks: int = 0
    text_chars: int = 0
    events: int = 0
    _buf: bytearray = field(default_factory=bytearray)

    def feed(self, chunk: bytes) -> bytes:
        self._buf += chunk
        out = bytearray()
        while True:
            end, sep = _boundary(self._buf)
            if end < 0:
                break
            event = bytes(self._buf[: end + sep])
            del self._buf[: end + sep]
            if self._keep(event):
                out += event
        if len(self._buf) > EVENT_MAX:  # not an event stream we can read: pass it on
            out += self._buf
            self._buf.clear()
        return bytes(out)

    def close(self) -> bytes:
        """What is left (an unterminated last event)."""
        rest = bytes(self._buf)
        self._buf.clear()
        return rest

    def _keep(self, event: bytes) -> bool:
        self.events += 1
        data = _data(event)
        if data is None or data == b"[DONE]" or not data.startswith(b"{"):
            return True
        if b'"usage"' not in data and b'"text"' not in data and b'"content"' not in data:
            return True
        try:
            doc = json.loads(data)
        except ValueError:
            return True
        if not isinstance(doc, dict):
            return True
        choices = doc.get("choices") or []
        for c in choices if isinstance(choices, list) else []:
            if not isinstance(c, dict):
                continue
            delta = c.get("delta") if isinstance(c.get("delta"), dict) else {}
            text = c.get("text") or delta.get("content") or ""
            if isinstance(text, str) and text:
                self.text_chunks += 1
                self.text_chars += len(text)
        usage = doc.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
            if self.drop_usage and not choices:
                return False
        return True


def _boundary(buf: bytearray) -> tuple[int, int]:
    """(index, length) of the first blank line ending an event, or (-1, 0)."""
    best = (-1, 0)
    for sep in (b"\n\n", b"\r\n\r\n"):
        i = buf.find(sep)
        if i >= 0 and (best[0] < 0 or i < best[0]):
            best = (i, len(sep))
    return best


def _data(event: bytes) -> bytes | None:
    lines = [ln[5:].lstrip() for ln in event.splitlines() if ln.startswith(b"data:")]
    return b"\n".join(lines).strip() if lines else None


def usage_counts(usage: dict | None) -> tuple[int, int] | None:
    """(prompt, completion) tokens of an OpenAI ``usage`` object, or None if it has none."""
    if not isinstance(usage, dict):
        return None
    p, c = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not isinstance(p, int) or not isinstance(c, int) or isinstance(p, bool) or p < 0 or c < 0:
        return None
    cap = 10**12  # a replica's claim is bounded too
    return min(p, cap), min(c, cap)
