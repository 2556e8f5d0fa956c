"""``DatasetSpec``: a dataset as every input names it (a submitted job, a workload file, a
residency scenario, a routing request): one definition, bounded like every tenant input."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from computepool import bounds as B
from computepool.model.job import Dataset


class DatasetSpec(B.BoundedModel):
    name: Annotated[str, Field(min_length=1, max_length=B.NAME_MAX)]
    data_class: Annotated[str, Field(max_length=B.SHORT_MAX)] = "general"
    origin: Annotated[str, Field(max_length=B.SHORT_MAX)] = Field(
        "", description="Jurisdiction it was collected in (CN, EU, SG, ...)."
    )
    stored_in: Annotated[str, Field(max_length=B.SHORT_MAX)] = Field(
        "", description="Region its bytes sit in (a job elsewhere reads it remotely)."
    )
    size_gb: float = Field(0.0, ge=0, le=B.SIZE_GB_MAX)
    persons: int | None = Field(None, ge=0, le=B.PERSONS_MAX)
    anonymised: bool = False
    handler: str = Field(
        "", max_length=B.NAME_MAX, description="Data controller (e.g. the automaker): approvals "
        "and per-year person counters are kept per handler.",
    )  # fmt: skip

    def dataset(self) -> Dataset:
        return Dataset(**self.model_dump())
