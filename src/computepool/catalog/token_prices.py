"""Read ``data/serving/token_prices.yaml``: what the gateway charges per million tokens, per
service or model (family, by glob), with each price's source."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from computepool.catalog.errors import CatalogFileError, problems_from_validation
from computepool.catalog.files import as_ref, label, read_yaml_mapping


@dataclass(frozen=True)
class TokenPrice:
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    source: str = ""

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens * self.input_usd_per_mtok + completion_tokens * self.output_usd_per_mtok
        ) / 1e6


FREE = TokenPrice(0.0, 0.0, "no price in the catalog")


class _PriceRow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    service: str | None = Field(None, min_length=1, max_length=128)
    model: str | None = Field(None, min_length=1, max_length=128)
    input_usd_per_mtok: float = Field(ge=0, le=1e6)
    output_usd_per_mtok: float = Field(ge=0, le=1e6)
    source: str = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _one_key(self) -> _PriceRow:
        if (self.service is None) == (self.model is None):
            raise ValueError("give exactly one of service or model")
        return self


class _PricesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    prices: list[_PriceRow] = Field(max_length=10_000)


@dataclass(frozen=True)
class TokenPrices:
    rows: tuple[_PriceRow, ...] = ()

    def of(self, service: str, model: str) -> TokenPrice:
        """The price of ``service`` (running ``model``): its own row, else its model's."""
        for key, value in (("service", service), ("model", model)):
            for r in self.rows:
                pattern = getattr(r, key)
                if pattern is not None and value and fnmatchcase(value, pattern):
                    return TokenPrice(r.input_usd_per_mtok, r.output_usd_per_mtok, r.source)
        return FREE


def load_token_prices(path: str | Path | None = None) -> TokenPrices:
    """The shipped price list, or the YAML file at ``path`` (errors name the file and field)."""
    ref = as_ref(path, "serving", "token_prices.yaml")
    doc = read_yaml_mapping(ref)
    try:
        parsed = _PricesFile.model_validate(doc)
    except ValidationError as exc:
        raise CatalogFileError(label(ref), problems_from_validation(exc)) from exc
    return TokenPrices(tuple(parsed.prices))
