"""Entry point of an EMULATED replica process: ``python -m computepool.serving.replica``.

No model is loaded: token timing is slept from the performance model (``emulator.py``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn

    from computepool.serving.emulator import replica_timing, with_memory_fraction
    from computepool.serving.http import replica_app

    ap = argparse.ArgumentParser(description="EMULATED LLM replica (no model, CPU only)")
    ap.add_argument("--model", default="qwen2.5-7b")
    ap.add_argument("--accelerator", default="H800")
    ap.add_argument("--tp", type=int, default=1)
    ap.add_argument("--frac", type=float, default=1.0, help="device share (packed replica)")
    ap.add_argument("--tbt-slo", type=float, default=0.1)
    ap.add_argument("--port", type=int, default=8101)
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on")
    ap.add_argument("--served-model-name", default=None, help="default: --model")
    ap.add_argument(
        "--start-delay",
        type=float,
        default=None,
        help="seconds before /health is OK (default: modelled weight loading)",
    )
    ap.add_argument(
        "--gpu-memory-utilization",
        type=float,
        default=None,
        help="share of the devices' memory this replica may take (vLLM's flag): its KV cache "
        "is what the weights leave of it; it refuses to start when the weights do not fit",
    )
    args = ap.parse_args(argv)
    timing = replica_timing(args.model, args.accelerator, args.tp, args.frac, args.tbt_slo)
    share = args.gpu_memory_utilization
    if share is not None:
        from computepool.catalog.accelerators import load_accelerators

        if not 0 < share <= 1:
            ap.error("--gpu-memory-utilization must be in (0, 1]")
        mem = load_accelerators()[args.accelerator].memory_gib
        try:
            timing = with_memory_fraction(timing, share, mem, args.tp)
        except ValueError as exc:
            ap.exit(1, f"replica: {exc}\n")
    app = replica_app(timing, args.start_delay, name=f"{args.model}@{timing.label}:{args.port}",
                      served_name=args.served_model_name)  # fmt: skip
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
