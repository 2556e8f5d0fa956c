"""Stopping a replica never blocks the controller's round: an engine that ignores SIGTERM
keeps its device slot (counted, not rebooked) until it is gone, and gets SIGKILL after the
grace."""

from __future__ import annotations

import sys
import time

import numpy as np

from computepool.backends.slots import SlotAssigner
from computepool.serving.activity import ActivatorBounds
from computepool.serving.binding import ServiceSlots, replica_keys
from computepool.serving.live_pool import ProcessReplicas
from computepool.serving.service import ServiceSpec
from computepool.serving.supervisor import Supervisor
from tests.serving.helpers import gpu, model, one_node_pool, stream, workload

GRACE = 1.5
#: An engine double that ignores SIGTERM (a slow shutdown) and just sleeps.
STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"


def _stubborn(*_: object) -> tuple[list[str], dict[str, str]]:
    return [sys.executable, "-c", STUBBORN], {}


def _placer(pool):
    return SlotAssigner(pool, lambda j: (1, 1))


def _wait_gone(sup: Supervisor, limit: float = 10.0) -> float:
    t0 = time.monotonic()
    while sup.reap_stopping() and time.monotonic() - t0 < limit:
        time.sleep(0.05)
    return time.monotonic() - t0


def test_a_stop_returns_at_once_and_the_slot_waits_for_the_process():
    pool = one_node_pool(per_node=1, accel=gpu("H800"))
    slots = ServiceSlots(_placer(pool), 0, 1.0, replica_keys())
    sup = Supervisor(name="s", launch=_stubborn, slots=slots, stop_grace_s=GRACE)
    r = sup.start_one()
    assert r is not None and slots.held() == 1
    time.sleep(0.2)  # the double has installed its handler
    t0 = time.monotonic()
    sup.stop(wait=False)
    assert time.monotonic() - t0 < 0.3  # SIGTERM sent, nothing waited for
    assert r.proc.poll() is None and len(sup.stopping) == 1
    assert slots.held() == 1 and sup.start_one() is None  # the only device is not rebooked
    took = _wait_gone(sup)
    assert took >= GRACE - 0.3  # it ignored SIGTERM for the whole grace ...
    assert r.proc.returncode == -9  # ... and was killed
    assert [e[3] for e in sup.events if e[1] == "stopped"] == ["killed"]
    assert slots.held() == 0 and sup.start_one() is not None  # the slot is free again
    sup.stop()
    assert not sup.stopping and not sup.replicas


def test_a_round_that_scales_an_idle_service_to_zero_does_not_wait_for_it():
    pool = one_node_pool(per_node=1, accel=gpu("H800"))
    svc = ServiceSpec("nap", model("qwen2.5-0.5b"), min_replicas=0,
                      scale_to_zero=ActivatorBounds(idle_s=0.01))  # fmt: skip
    quiet = stream(np.full(60, 0.1))
    live = ProcessReplicas(pool, workload([svc], [quiet], 60.0))
    try:
        live.bind_placer(_placer(pool))
        (s,) = live.states
        s.supervisor.launch, s.supervisor.stop_grace_s = _stubborn, GRACE
        live.activity.begin("nap")  # a request came and went: awake, then idle
        live.activity.end("nap")
        s.asleep = False
        assert s.supervisor.start_one() is not None
        time.sleep(0.2)
        t0 = time.monotonic()
        live.release(None, 0.0)
        assert time.monotonic() - t0 < 0.3  # the round goes on
        assert s.asleep and s.supervisor.stopping
        assert live.held()[0] == 1  # still counted while its process lives
        t0 = time.monotonic()
        while s.supervisor.stopping and time.monotonic() - t0 < 10:
            live.advance(0.0)  # each round's health pass looks again
            assert time.monotonic() - t0 < GRACE + 2.0
            time.sleep(0.05)
        assert not s.supervisor.stopping and live.held()[0] == 0
    finally:
        live.stop()


def test_restarting_a_hung_replica_does_not_wait_for_it_either():
    sup = Supervisor(name="s", launch=_stubborn, startup_s=0.0, max_fails=1,
                     health_timeout_s=0.2)  # fmt: skip
    r = sup.start_one()
    old = r.proc
    time.sleep(0.2)
    t0 = time.monotonic()
    assert sup.check() == [f"restarted {r.port} (unhealthy)"]  # /health never answers
    assert time.monotonic() - t0 < 1.0 and old.poll() is None  # SIGTERM ignored: not waited
    assert r.restarting is not None and sup.starting() == [] and sup.endpoints() == []
    t0 = time.monotonic()
    while r.restarting is not None and time.monotonic() - t0 < 10:
        t1 = time.monotonic()
        sup.check()
        assert time.monotonic() - t1 < 1.0
        time.sleep(0.05)
    assert old.returncode == -9 and r.proc is not old and r.restarts == 1  # killed, started anew
    sup.stop()
