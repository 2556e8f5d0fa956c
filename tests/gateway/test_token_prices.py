"""The token price list: shipped rows with sources, service before model, globs, bad files."""

from __future__ import annotations

import pytest

from computepool.catalog.errors import CatalogFileError
from computepool.catalog.token_prices import load_token_prices
from computepool.server.runtime import ServeSettings, gateway_config


def test_shipped_prices_cover_every_shipped_model_with_a_source():
    from computepool.serving.models import known_models

    prices = load_token_prices()
    for m in known_models():
        p = prices.of("any-service", m)
        assert p.input_usd_per_mtok > 0 and p.source.startswith("together.ai"), m
    assert prices.of("x", "unknown-model").cost(10**6, 10**6) == 0.0


def test_service_row_wins_over_model_glob(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text(
        "prices:\n"
        "  - {model: 'qwen2.5-*', input_usd_per_mtok: 1, output_usd_per_mtok: 2, source: a}\n"
        "  - {service: vip, input_usd_per_mtok: 5, output_usd_per_mtok: 7, source: b}\n"
    )
    p = load_token_prices(f)
    assert p.of("vip", "qwen2.5-7b").cost(10**6, 2 * 10**6) == pytest.approx(19.0)
    assert p.of("other", "qwen2.5-7b").cost(10**6, 10**6) == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("prices:\n  - {model: m, input_usd_per_mtok: -1, output_usd_per_mtok: 1, source: s}\n",
         "prices[0].input_usd_per_mtok"),
        ("prices:\n  - {input_usd_per_mtok: 1, output_usd_per_mtok: 1, source: s}\n", "prices[0]"),
        ("prices:\n  - {model: m, input_usd_per_mtok: 1, output_usd_per_mtok: 1}\n",
         "prices[0].source"),
    ],
)  # fmt: skip
def test_bad_price_file_names_file_and_field(tmp_path, text, where):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(CatalogFileError) as exc:
        load_token_prices(f)
    assert "bad.yaml" in str(exc.value) and where in str(exc.value)
    # the server refuses to start with it (before anything is stored)
    with pytest.raises(ValueError, match="bad.yaml"):
        gateway_config(ServeSettings(data_dir=tmp_path, token_prices=str(f)))
