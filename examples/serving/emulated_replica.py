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

from computepool.serving.replica import main

if __name__ == "__main__":
    main()
