"""Parse generator spec strings such as ``gavel:rate=5.6,jobs=6000,seed=0``."""

from __future__ import annotations

from computepool.traces.errors import TraceError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def split_spec(spec: str, kind: str) -> dict[str, str]:
    """``'kind:a=1,b=2'`` -> ``{'a': '1', 'b': '2'}``; errors name the spec and the option."""
    head, _, body = spec.partition(":")
    if head.strip() != kind:
        raise TraceError(spec, f"not a {kind!r} generator spec (expected '{kind}:key=value,...')")
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in body.split(","))):
        key, eq, value = part.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or not key:
            raise TraceError(
                spec, f"option {part!r} is not of the form key=value", field=key or part
            )
        if key in out:
            raise TraceError(spec, "given twice", field=key)
        out[key] = value.strip()
    return out


def check_known(spec: str, options: dict[str, str], known: set[str]) -> None:
    for key in options:
        if key not in known:
            raise TraceError(spec, f"unknown option (known: {', '.join(sorted(known))})", field=key)


def opt_float(spec: str, options: dict[str, str], key: str, default: float | None) -> float | None:
    if key not in options:
        return default
    try:
        return float(options[key])
    except ValueError:
        raise TraceError(spec, f"{options[key]!r} is not a number", field=key) from None


def opt_int(spec: str, options: dict[str, str], key: str, default: int) -> int:
    if key not in options:
        return default
    text = options[key].replace("_", "")
    try:
        value = float(text)
    except ValueError:
        raise TraceError(spec, f"{options[key]!r} is not a whole number", field=key) from None
    if value != int(value):
        raise TraceError(spec, f"{options[key]!r} is not a whole number", field=key)
    return int(value)


def opt_bool(spec: str, options: dict[str, str], key: str, default: bool) -> bool:
    if key not in options:
        return default
    value = options[key].lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise TraceError(spec, f"{options[key]!r} is not true/false", field=key)
