"""The ``tenants:`` section of a workload file: each tenant's fair-share weight, cohort,
Kueue-style quotas per flavor and budgets, as the live pool's ``cpool admin tenant add``
takes them, so a simulation is gated by the same ``QuotaGate`` as the live pool.

```yaml
tenants:
  - name: byd-auto
    weight: 2
    cohort: automakers
    quotas: {cn-ulanqab/Ascend910B: "64:32"}   # NOMINAL[:BORROWING_LIMIT[:LENDING_LIMIT]]
  - name: europa-auto
    cohort: automakers
    quotas: {eu-frankfurt/H100: 32}
    budget_accel_hours: 500
```
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from computepool.model.tenant import FlavorQuota, Tenant, parse_flavor_quota
from computepool.traces.errors import TraceError

#: Bounds on the section (it is tenant-facing input in a live pool's snapshot too).
MAX_TENANTS = 10_000
MAX_QUOTAS = 1_000


class TenantSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    weight: float = Field(1.0, gt=0, allow_inf_nan=False)
    cohort: str = Field("", max_length=64)
    quotas: dict[str, str | float] = Field(default_factory=dict, max_length=MAX_QUOTAS)
    budget_accel_hours: float | None = Field(None, ge=0, allow_inf_nan=False)
    budget_usd: float | None = Field(None, ge=0, allow_inf_nan=False)

    @field_validator("quotas")
    @classmethod
    def _quotas(cls, v: dict[str, str | float]) -> dict[str, str | float]:
        for key, text in v.items():
            parse_flavor_quota(text)  # raises ValueError naming the expected form
            if not key or len(key) > 128:
                raise ValueError(f"flavor key {key!r}: 1-128 characters")
        return v

    def tenant(self) -> Tenant:
        quotas: dict[str, FlavorQuota] = {
            k: parse_flavor_quota(v) for k, v in sorted(self.quotas.items())
        }
        return Tenant(
            self.name, self.weight, self.cohort, quotas, self.budget_accel_hours, self.budget_usd
        )


def _lines(root: yaml.Node | None) -> list[tuple[int, dict[str, int]]]:
    """[(tenant line, {field: line})] of the ``tenants:`` list in the composed YAML tree."""
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if key.value == "tenants" and isinstance(value, yaml.SequenceNode):
            return [
                (
                    item.start_mark.line + 1,
                    {k.value: k.start_mark.line + 1 for k, _ in item.value}
                    if isinstance(item, yaml.MappingNode)
                    else {},
                )
                for item in value.value
            ]
    return []


def read_tenants_section(
    section: Any, file: str, root: yaml.Node | None = None, section_line: int = 1
) -> dict[str, Tenant]:
    """The tenants of a ``tenants:`` section, by name; errors name file, line and field."""
    if section is None:
        return {}
    if not isinstance(section, list):
        raise TraceError(file, "must be a list of tenants", section_line, "tenants")
    if len(section) > MAX_TENANTS:
        raise TraceError(file, f"at most {MAX_TENANTS} tenants", section_line, "tenants")
    lines = _lines(root)
    out: dict[str, Tenant] = {}
    for i, record in enumerate(section):
        line, fields = lines[i] if i < len(lines) else (section_line, {})
        try:
            spec = TenantSpec.model_validate(record)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = [str(x) for x in err["loc"]]
            field = ".".join(["tenants", str(i), *loc])
            msg = str(err["msg"]).removeprefix("Value error, ")
            raise TraceError(
                file, f"tenant {i}: {msg}", fields.get(loc[0], line) if loc else line, field
            ) from None
        if spec.name in out:
            raise TraceError(
                file, f"tenant {i}: name {spec.name!r} repeats", fields.get("name", line),
                f"tenants.{i}.name",
            )  # fmt: skip
        out[spec.name] = spec.tenant()
    return out
