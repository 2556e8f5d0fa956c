"""The gateway's view of live services: ``LiveDirectory`` over a real
``LiveServingController`` (emulated replica processes)."""

from __future__ import annotations

import numpy as np

from computepool.server.service_directory import LiveDirectory, ServiceInfo


def test_live_directory_reads_the_controller(tmp_path):
    from computepool.catalog.accelerators import load_accelerators
    from computepool.serving.live_pool import LiveServingController
    from computepool.serving.service import ServiceSpec, ServingConfig, ServingWorkload
    from computepool.serving.streams import RequestStream, TrafficSpec
    from tests.serving.helpers import gpu, model, one_node_pool

    pool = one_node_pool(per_node=2, accel=gpu("H800"))
    pool = type(pool)(pool.name, {"H800": load_accelerators()["H800"]}, pool.regions, pool.nodes)
    svc = ServiceSpec("chat", model("qwen2.5-1.5b"), ttft_slo_s=1.5, tenant="oem-a")
    s = RequestStream(np.linspace(0, 60, 10), np.full(10, 100.0), np.full(10, 10.0))
    sw = ServingWorkload((svc,), (s,), TrafficSpec(duration_s=60), ServingConfig(packing=False))
    ctl = LiveServingController(pool, sw, log_dir=tmp_path, start_delay_s=0.0)
    d = LiveDirectory(ctl)
    try:
        assert d.endpoints("chat") == [] and d.endpoints("nope") == []
        ctl.states[0].supervisor.scale_to(1)
        assert ctl.states[0].supervisor.wait_healthy(timeout_s=30)
        (info,) = d.services()
        assert info == ServiceInfo("chat", "oem-a", "qwen2.5-1.5b", 1.5, ready=1, desired=1)
        assert info.usable_by("oem-a") and not info.usable_by("oem-b")
        (url,) = d.endpoints("chat")
        assert url.startswith("http://127.0.0.1:")
    finally:
        ctl.stop()
