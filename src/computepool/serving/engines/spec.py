"""An inference engine as data: a launch template, a readiness probe and a metrics adapter.

A template is an argv whose items may hold ``{placeholders}`` filled per replica:

* ``{port}`` — the replica's port on 127.0.0.1 (``{port1}``, ``{port2}``: the next ones, for
  engines that take several ports); ``{host}`` — 127.0.0.1;
* ``{model_path}`` — the service's ``model_path``; ``{name}`` — the served model name (the
  service's name, as vLLM's ``--served-model-name``);
* ``{tp}`` — tensor-parallel size: the number of devices the replica was given;
* ``{python}`` — the interpreter the pool runs under; ``{config}`` — the engine's config file
  written for the replica (MindIE).

The devices themselves reach the engine in its vendor's variable (``CUDA_VISIBLE_DEVICES``,
``ASCEND_RT_VISIBLE_DEVICES``, ``MLU_VISIBLE_DEVICES``, ``HIP_VISIBLE_DEVICES``), as for jobs.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from computepool.serving.engines.metrics import MetricNames

#: Placeholders a user's own template (``command:``, ``engine_args:``) may use.
PUBLIC_FIELDS = ("port", "port1", "port2", "host", "model_path", "name", "tp", "python")
MAX_ARGS = 256
MAX_ARG_CHARS = 4096


@dataclass(frozen=True)
class Engine:
    name: str
    argv: tuple[str, ...]
    #: The path answering 200 once the model is loaded.
    ready_path: str = "/health"
    #: Its Prometheus names (None: it publishes none the autoscaler can read).
    metrics: MetricNames | None = None
    metrics_path: str = "/metrics"
    #: Which of the replica's ports serves the metrics (0: ``{port}``, 1: ``{port1}``, ...).
    metrics_port: int = 0
    #: Consecutive ports one replica takes.
    ports: int = 1
    needs_model_path: bool = True
    #: Extra fields its own template uses (beyond ``PUBLIC_FIELDS``).
    fields: tuple[str, ...] = ()
    #: Fixed environment it needs.
    env: tuple[tuple[str, str], ...] = ()
    #: A JSON config written per replica (its path is ``{config}``), from the values.
    config: Callable[[Mapping[str, object]], dict] | None = None
    #: Appended when the replica shares its devices with other models' engines
    #: (``{memory_fraction}``: its share of the devices' memory); () : the engine has no
    #: such flag (its memory is not capped).
    memory_args: tuple[str, ...] = ()
    doc: str = ""


def template_problem(argv: Sequence[str], allowed: Sequence[str]) -> str:
    """Why ``argv`` is not a usable template; "" when it is."""
    if len(argv) > MAX_ARGS:
        return f"{len(argv)} arguments (at most {MAX_ARGS})"
    for i, arg in enumerate(argv):
        if not isinstance(arg, str):
            return f"item {i} is not a string"
        if len(arg) > MAX_ARG_CHARS or "\0" in arg:
            return f"item {i} is longer than {MAX_ARG_CHARS} characters or holds a NUL"
        try:
            parts = list(string.Formatter().parse(arg))
        except ValueError as exc:
            return f"item {i} {arg[:80]!r}: {exc} (write a literal brace as {{{{ or }}}})"
        for _, field, spec, conv in parts:
            if field is None:
                continue
            if field not in allowed:
                return (f"item {i} {arg[:80]!r}: unknown placeholder {{{field[:40]}}}; "
                        f"known: {', '.join('{' + f + '}' for f in allowed)}")  # fmt: skip
            if spec or conv:
                return f"item {i} {arg[:80]!r}: placeholder {{{field}}} takes no format"
    return ""


def render(argv: Sequence[str], values: Mapping[str, object]) -> list[str]:
    """The argv with its placeholders filled (check it with ``template_problem`` first)."""
    return [a.format_map({k: str(v) for k, v in values.items()}) for a in argv]
