"""EMULATED LLM replica for the live serving pieces: token timing from the performance model.

This is NOT an inference engine and loads no model: it sleeps through the steps a
continuous-batching engine would take on the given accelerator (computepool.serving.perf) and
streams one line per "token". Use it to exercise the supervisor, the service endpoint, the
live autoscaler and the load generator on 127.0.0.1 without accelerators.

    python examples/serving/emulated_replica.py --model qwen2.5-7b --accelerator H800 --port 8101
    curl -N -X POST 127.0.0.1:8101/v1/completions -H 'content-type: application/json' \\
         -d '{"prompt_tokens": 1000, "max_tokens": 50}'
    curl 127.0.0.1:8101/metrics
"""

from __future__ import annotations

import argparse

import uvicorn

from computepool.serving.emulator import replica_timing
from computepool.serving.http import replica_app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-7b")
    ap.add_argument("--accelerator", default="H800")
    ap.add_argument("--tp", type=int, default=1)
    ap.add_argument("--frac", type=float, default=1.0, help="device share (packed replica)")
    ap.add_argument("--tbt-slo", type=float, default=0.1)
    ap.add_argument("--port", type=int, default=8101)
    ap.add_argument(
        "--start-delay",
        type=float,
        default=None,
        help="seconds before /health is OK (default: modelled weight loading)",
    )
    args = ap.parse_args()
    timing = replica_timing(args.model, args.accelerator, args.tp, args.frac, args.tbt_slo)
    app = replica_app(timing, args.start_delay, name=f"{args.model}@{timing.label}:{args.port}")
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
