"""``cpool loadgen``: replay a trace (or constant / Poisson arrivals) against a service through
the pool's OpenAI-compatible gateway with a tenant's token."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

import typer

from computepool.cli.common import err_console, fail, load_or_exit
from computepool.cli.conventions import DEFAULT_URL, TokenOpt, UrlOpt
from computepool.cli.output import Col, Output, OutputOpt, emit, print_json


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f}"


ROWS = [
    Col("MEASURE", lambda r: r[0], key=True),
    Col("VALUE", lambda r: r[1], key=True, right=True),
]


def register(app: typer.Typer) -> None:
    @app.command()
    def loadgen(
        model: Annotated[
            str, typer.Argument(metavar="SERVICE", help="The service (served model name) to load.")
        ],
        trace: Annotated[
            str | None,
            typer.Option("--trace", help="Replay an Azure LLM trace: conv or code."),
        ] = None,
        source: Annotated[
            str,
            typer.Option(
                "--source",
                help="The trace: azure-llm-2023 (shipped) or a folder with the original CSVs.",
            ),
        ] = "azure-llm-2023",
        speed: Annotated[
            float, typer.Option("--speed", help="Trace time compressed this many times.")
        ] = 1.0,
        rate: Annotated[
            float | None,
            typer.Option("--rate", help="Instead of a trace: this many requests a second."),
        ] = None,
        arrivals: Annotated[
            str, typer.Option("--arrivals", help="With --rate: poisson or constant.")
        ] = "poisson",
        requests: Annotated[int, typer.Option("--requests", help="Requests to send.")] = 100,
        prompt_tokens: Annotated[
            int, typer.Option("--prompt-tokens", help="With --rate: prompt words a request.")
        ] = 64,
        max_tokens: Annotated[
            int,
            typer.Option("--max-tokens", help="Completion tokens a request (cap with a trace)."),
        ] = 32,
        concurrency: Annotated[
            int, typer.Option("--concurrency", help="Requests in flight at most.")
        ] = 32,
        seed: Annotated[int, typer.Option("--seed", help="Seed of Poisson arrivals.")] = 0,
        wait_ready: Annotated[
            float,
            typer.Option(
                "--wait-ready",
                help="Seconds to wait for the service's first ready replica (0: do not wait).",
            ),
        ] = 300.0,
        url: UrlOpt = DEFAULT_URL,
        token: TokenOpt = None,
        output: OutputOpt = Output.table,
    ) -> None:
        """Send load to a service through the gateway; print the achieved rate, p50/p99
        latency and time to first token, and errors."""
        from computepool.cli.common import progress_bar
        from computepool.serving import openai_load as ol

        token = token or os.environ.get("CPOOL_TOKEN")
        if not token:
            raise fail("a tenant's token is needed: --token or $CPOOL_TOKEN")
        if not 1 <= requests <= 1_000_000 or not 1 <= concurrency <= 10_000:
            raise fail("--requests must be 1..1,000,000 and --concurrency 1..10,000")
        if not 1 <= max_tokens <= 32_768 or not 1 <= prompt_tokens <= ol.PROMPT_MAX:
            raise fail(f"--max-tokens must be 1..32768 and --prompt-tokens 1..{ol.PROMPT_MAX}")
        if (trace is None) == (rate is None):
            raise fail("give either --trace conv|code or --rate R")
        if rate is not None:
            if not rate > 0:
                raise fail("--rate must be > 0")
            if arrivals not in ("poisson", "constant"):
                raise fail("--arrivals must be poisson or constant")
            plan = (
                ol.poisson_plan(rate, requests, prompt_tokens, max_tokens, seed)
                if arrivals == "poisson"
                else ol.constant_plan(rate, requests, prompt_tokens, max_tokens)
            )
        else:
            if not speed > 0:
                raise fail("--speed must be > 0")
            plan = load_or_exit(lambda: ol.trace_plan(source, trace, requests, speed))
        if wait_ready > 0:
            why = ol.wait_ready(url, token, model, wait_ready)
            if why is not None:
                raise fail(why)
        span = float(plan.t[-1]) if len(plan.t) > 1 else 0.0
        offered = len(plan.t) / rate if rate is not None else span
        with progress_bar(f"{model}: {len(plan.t)} requests") as update:
            res = asyncio.run(
                ol.run(
                    url,
                    token,
                    model,
                    plan,
                    concurrency,
                    max_tokens,
                    on_done=lambda d: update(d / len(plan.t)),
                )  # fmt: skip
            )
        s = ol.summary(res, offered)
        if output == Output.json:
            print_json(s)
            return
        rows = [
            ("requests (ok / sent)", f"{s['ok']:,} / {s['requests']:,}"),
            ("offered rate (req/s)", "-" if s["offered_rps"] is None else f"{s['offered_rps']:.2f}"),
            ("achieved rate (req/s)", f"{s['achieved_rps']:.2f}"),
            ("latency p50 / p99 (ms)", f"{_ms(s['latency_ms']['p50'])} / {_ms(s['latency_ms']['p99'])}"),
            ("TTFT p50 / p99 (ms)", f"{_ms(s['ttft_ms']['p50'])} / {_ms(s['ttft_ms']['p99'])}"),
            ("tokens (prompt / completion)", f"{s['prompt_tokens']:,} / {s['completion_tokens']:,}"),
            ("completion tokens/s", f"{s['completion_tokens_per_s']:,.1f}"),
            ("errors", ", ".join(f"{k}: {v}" for k, v in s["errors"].items()) or "none"),
        ]  # fmt: skip
        emit(output, ROWS, rows, f"loadgen {model} via {url}")
        if s["errors"]:
            err_console.print(f"{sum(s['errors'].values())} request(s) failed")
            raise typer.Exit(1)
