"""EMULATED LLM replica for the live serving pieces: token timing from the performance model.

This is NOT an inference engine and loads no model: it sleeps through the steps a
continuous-batching engine would take on the given accelerator (computepool.serving.perf) and
answers vLLM's OpenAI API (``/v1/models``, ``/v1/completions``, ``/v1/chat/completions``, with
server-sent events when ``stream`` is set) and vLLM's ``/metrics``. Use it to exercise the supervisor, the service endpoint, the
live autoscaler and the load generator on 127.0.0.1 without accelerators.

    python examples/serving/emulated_replica.py --model qwen2.5-7b --accelerator H800 --port 8101
    curl -N 127.0.0.1:8101/v1/completions -H 'content-type: application/json' \\
         -d '{"model": "qwen2.5-7b", "prompt": "Hello, pool!", "max_tokens": 20, "stream": true}'
    curl 127.0.0.1:8101/metrics
"""

from __future__ import annotations

from computepool.serving.replica import main

if __name__ == "__main__":
    main()
