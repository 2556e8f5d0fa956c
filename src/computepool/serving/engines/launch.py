"""One replica's argv and environment from its service's engine (templates in ``spec.py``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from computepool.serving.engines import Engine, get_engine
from computepool.serving.engines.spec import PUBLIC_FIELDS, render, template_problem


@dataclass(frozen=True)
class EngineChoice:
    """What a service says about its engine (the ``engine:`` fields of a services file)."""

    engine: str = "emulator"
    model_path: str = ""
    #: The argv of a ``command`` engine (placeholders allowed).
    command: tuple[str, ...] = ()
    #: Appended to the engine's argv (placeholders allowed).
    args: tuple[str, ...] = ()
    #: Overrides the engine's readiness path; for ``command``, which adapter reads its metrics.
    ready_path: str = ""
    metrics: str = ""


def choice_problem(c: EngineChoice) -> tuple[str, str]:
    """``(field, why)`` when the choice cannot launch; ``("", "")`` when it can."""
    try:
        eng = get_engine(c.engine)
    except KeyError as exc:
        return "engine", str(exc.args[0])
    if eng.needs_model_path and c.engine != "command" and not c.model_path:
        return "model_path", f"engine {c.engine!r} needs model_path (the weights to serve)"
    if c.engine == "command":
        if not c.command:
            return "command", "engine 'command' needs command: the server's argv"
        if why := template_problem(c.command, PUBLIC_FIELDS):
            return "command", why
        if not any("{port}" in a for a in c.command):
            return "command", "the command must listen on {port} (the pool gives each replica one)"
    elif c.command:
        return "command", f"command: is for engine 'command', not {c.engine!r}"
    if why := template_problem(c.args, PUBLIC_FIELDS):
        return "engine_args", why
    if c.ready_path and not (c.ready_path.startswith("/") and len(c.ready_path) <= 256):
        return "ready_path", "must be a path starting with '/' (at most 256 characters)"
    if c.metrics:
        from computepool.serving.engines.metrics import ADAPTERS

        if c.metrics not in ADAPTERS:
            return "metrics", f"unknown metrics adapter {c.metrics!r}; known: {', '.join(ADAPTERS)}"
    return "", ""


def engine_of(c: EngineChoice) -> Engine:
    """The engine with the service's own command, readiness path and metrics adapter."""
    from computepool.serving.engines.metrics import ADAPTERS

    eng = get_engine(c.engine)
    if c.command:
        eng = replace(eng, argv=tuple(c.command))
    if c.ready_path:
        eng = replace(eng, ready_path=c.ready_path)
    if c.metrics:
        eng = replace(eng, metrics=ADAPTERS[c.metrics])
    return replace(eng, argv=(*eng.argv, *c.args))


def replica_values(
    c: EngineChoice, name: str, port: int, tp: int, extra: Mapping[str, object] = ()
) -> dict[str, object]:
    return {
        "python": sys.executable,
        "host": "127.0.0.1",
        "port": port,
        "port1": port + 1,
        "port2": port + 2,
        "model_path": c.model_path,
        "name": name,
        "tp": max(tp, 1),
        **dict(extra),
    }


def replica_launch(
    eng: Engine,
    values: Mapping[str, object],
    devices: Sequence[int] = (),
    device_env: str = "CUDA_VISIBLE_DEVICES",
    run_dir: Path | None = None,
) -> tuple[list[str], dict[str, str]]:
    """``(argv, env)`` of one replica: the template filled, the engine's config written
    (MindIE) under ``run_dir``, the devices in the vendor's variable."""
    values = dict(values)
    if eng.config is not None:
        if run_dir is None:
            raise ValueError(f"engine {eng.name!r} writes a config file: give run_dir")
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / f"{values['name']}-{values['port']}.json"
        path.write_text(json.dumps(eng.config(values), indent=2))
        values["config"] = str(path)
    env = {k: render([v], values)[0] for k, v in eng.env}
    argv = list(eng.argv)
    if values.get("memory_fraction") is not None:  # sharing its devices with other models
        argv += eng.memory_args
    if devices:
        visible = ",".join(str(d) for d in devices)
        env[device_env] = visible
        env["CPOOL_VISIBLE_DEVICES"] = visible
    return render(argv, values), env


#: The example replica docs/serving.md shows (a test renders every engine with it).
EXAMPLE = {"model_path": "/models/Qwen2.5-7B-Instruct", "name": "chat", "port": 8101, "tp": 2}


def example_command(engine: str, stack_env: str = "CUDA_VISIBLE_DEVICES") -> str:
    """The command line the pool runs for ``EXAMPLE`` on devices 4 and 5 (shell-quoted, the
    interpreter written ``python``, the config file of MindIE under ``/run/cpool``)."""
    import shlex

    c = EngineChoice(engine, EXAMPLE["model_path"])
    values = replica_values(c, EXAMPLE["name"], EXAMPLE["port"], EXAMPLE["tp"])
    values["python"] = "python"
    eng = get_engine(engine)
    if eng.config is not None:
        values["config"] = f"/run/cpool/{EXAMPLE['name']}-{EXAMPLE['port']}.json"
        eng = replace(eng, config=None)
    argv, env = replica_launch(eng, values, (4, 5), stack_env)
    env.pop("CPOOL_VISIBLE_DEVICES", None)
    return shlex.join([f"{k}={v}" for k, v in env.items()] + argv)
