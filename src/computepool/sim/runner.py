"""Name-based entry points used by the CLI, benchmarks and the server: resolve names, then run."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from computepool.catalog.pools import load_pool
from computepool.catalog.throughputs import load_throughputs
from computepool.model.pool import Pool
from computepool.model.tenant import Tenant
from computepool.model.throughput import Throughputs
from computepool.model.workload import Workload
from computepool.policies.registry import get_policy
from computepool.sim.metrics import SimResult
from computepool.sim.run import SimConfig, simulate

if TYPE_CHECKING:
    from computepool.serving.service import ServingWorkload

GENERATOR_PREFIXES = ("gavel:", "scale:")


@dataclass(frozen=True)
class Inputs:
    pool: Pool
    workload: Workload
    throughputs: Throughputs
    #: Services read from the workload file's ``services:`` section, if any.
    services: ServingWorkload | None = None
    #: Tenants (weights, quotas, cohorts, budgets) from the workload file's ``tenants:``
    #: section, if any: the simulation is then gated by the live pool's ``QuotaGate``.
    tenants: Mapping[str, Tenant] | None = None


def with_seed(spec: str, seed: int | None) -> str:
    """Add ``seed=N`` to a generator spec that has none."""
    if seed is None or not spec.startswith(GENERATOR_PREFIXES) or "seed=" in spec:
        return spec
    sep = "" if spec.endswith(":") else ","
    return f"{spec}{sep}seed={seed}"


def load_inputs(
    pool: str,
    workload: str,
    fmt: str | None = None,
    seed: int | None = None,
    throughputs: str = "gavel",
) -> Inputs:
    from computepool.traces.detect import load_workload

    p = load_pool(pool)
    tp = load_throughputs(throughputs, accelerators=p.accelerators)
    w = load_workload(with_seed(workload, seed), fmt=fmt, throughputs=tp)
    services = tenants = None
    if workload.endswith((".yaml", ".yml")) and fmt in (None, "yaml"):
        from computepool.serving.config import read_serving
        from computepool.traces.jobfile import read_yaml_tenants

        services = read_serving(workload)
        tenants = read_yaml_tenants(workload) or None
    return Inputs(p, w, tp, services, tenants)


def with_serving_mode(inputs: Inputs, mode: str | None) -> Inputs:
    """The same inputs with the services run ``pooled``, ``dedicated`` (first listed card) or
    ``dedicated-best`` (each model on its cheapest shape) (None: as the file says)."""
    if mode is None or inputs.services is None:
        return inputs
    if mode == "dedicated":  # the status quo: first listed card, whole devices, peak-sized
        cfg = inputs.services.config.variant(mode=mode, flavor_choice="first")
    elif mode == "dedicated-best":  # whole devices of the best card per model, peak-sized
        cfg = inputs.services.config.variant(mode="dedicated", flavor_choice="price")
    else:
        cfg = inputs.services.config.variant(mode=mode)
    return replace(inputs, services=inputs.services.with_config(cfg))


def with_serving_settings(inputs: Inputs, pairs: list[str]) -> Inputs:
    """The same inputs with ``serving:`` settings changed (``--serving-set KEY=VALUE``);
    ValueError naming the setting and the reason."""
    if not pairs or inputs.services is None:
        return inputs
    from computepool.serving.config import serving_settings

    cfg = serving_settings(pairs, inputs.services.config)
    return replace(inputs, services=inputs.services.with_config(cfg))


def run_policy(
    inputs: Inputs,
    policy: str,
    config: SimConfig,
    policy_params: dict[str, Any] | None = None,
    on_progress: Callable[[float], None] | None = None,
    checks: tuple = (),
) -> SimResult:
    pol = get_policy(policy, **(policy_params or {}))
    res = simulate(
        inputs.pool,
        inputs.workload,
        inputs.throughputs,
        pol,
        config,
        checks=checks,
        on_progress=on_progress,
        services=inputs.services,
        tenants=inputs.tenants,
    )
    res.policy = policy
    return res


#: ``--ftf-baseline`` values: ``analytic`` (cheap default: run time on a contention-averaged 1/N
#: share, ``sim.metrics.isolated_seconds``) or ``isolated`` (Gavel's definition: the JCT the job
#: gets in a separate simulation of the same workload under the ``isolated`` policy).
FTF_BASELINES = ("analytic", "isolated")


def isolated_jct(inputs: Inputs, config: SimConfig, checks: tuple = ()) -> Any:
    """Each job's JCT (seconds; nan if not finished) under the ``isolated`` policy."""
    return run_policy(inputs, "isolated", config, checks=checks).jct


def use_ftf_baseline(result: SimResult, baseline: Any) -> SimResult:
    """Make ``mean_ftf_rho`` JCT / ``baseline`` (per-job seconds, e.g. ``isolated_jct``)."""
    result.isolated_seconds = baseline
    result.config["ftf_baseline"] = "isolated"
    return result
