"""ModelSpec: what the performance model needs to know about an LLM.

Weight bytes come from the parameter count and the precision; KV-cache bytes per token from the
attention shape (layers, KV heads, head size). Known architectures are data
(``catalog/data/serving/llm_models.yaml``, from each model's public ``config.json``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

#: Bytes per weight (or KV element) for each precision a service may ask for.
PRECISION_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    params_b: float
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int = 0
    precision: str = "bf16"
    kv_precision: str = "bf16"

    @property
    def dim_per_head(self) -> int:
        return self.head_dim or self.hidden // self.heads

    @property
    def params(self) -> float:
        return self.params_b * 1e9

    @property
    def weight_bytes(self) -> float:
        return self.params * PRECISION_BYTES[self.precision]

    @property
    def kv_bytes_per_token(self) -> float:
        """K and V of every layer for one token."""
        per = PRECISION_BYTES[self.kv_precision]
        return 2.0 * self.layers * self.kv_heads * self.dim_per_head * per

    @property
    def attn_dim(self) -> int:
        return self.heads * self.dim_per_head


@cache
def _known() -> dict[str, dict[str, Any]]:
    text = (
        resources.files("computepool.catalog")
        .joinpath("data/serving/llm_models.yaml")
        .read_text(encoding="utf-8")
    )
    return dict(yaml.safe_load(text)["models"])


def known_models() -> list[str]:
    return sorted(_known())


def model_fields(name: str) -> dict[str, Any]:
    """The shipped architecture of ``name`` (a copy); KeyError naming the known ones."""
    table = _known()
    if name not in table:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(sorted(table))}")
    return dict(table[name])
