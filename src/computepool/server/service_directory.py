"""What the gateway needs to know about the pool's services: a small protocol, and its
adapter over the live serving controller (``cpool serve --services FILE``).

``ServiceDirectory.services()`` lists every service (name = the served model name, the
tenant that owns it, the model it runs, its TTFT objective and replica counts);
``endpoints(name)`` gives the base URLs (``http://127.0.0.1:PORT``) of its replicas that are
healthy now. A service owned by a tenant is that tenant's alone; one whose ``tenant`` is
left at ``default`` (or is ``*``) is shared by every tenant.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

#: Owners that mean "every tenant may use it".
SHARED = ("default", "*")


@dataclass(frozen=True)
class ServiceInfo:
    name: str
    tenant: str = "default"
    model: str = ""
    ttft_slo_s: float | None = None
    ready: int = 0
    desired: int = 0
    #: Requests a second the autoscaler measured last (None: not known).
    load_rps: float | None = None
    #: Scales to zero: a request finding no replica is held by the activator.
    scale_to_zero: bool = False
    cold_starts: int = 0
    #: The latest cold start (first held request to first ready replica), seconds.
    cold_start_s: float | None = None

    def usable_by(self, tenant: str | None, admin: bool = False) -> bool:
        return admin or self.tenant in SHARED or (tenant is not None and self.tenant == tenant)


class ServiceDirectory(Protocol):
    def services(self) -> Sequence[ServiceInfo]: ...

    def endpoints(self, name: str) -> list[str]: ...


class Activator(Protocol):
    """What a directory whose services scale to zero adds (``LiveDirectory``): the gateway's
    activator (``server/activator.py``) holds requests through it."""

    def bounds(self, name: str): ...  # serving.activity.ActivatorBounds | None

    def hold(self, name: str, tenant: int) -> str: ...

    def unhold(self, name: str, tenant: int) -> None: ...

    def ready(self, name: str) -> float | None: ...

    def starting(self, name: str) -> list[tuple[str, str]]: ...

    def begin(self, name: str) -> None: ...

    def end(self, name: str) -> None: ...

    def wake(self) -> None: ...


@dataclass
class StaticDirectory:
    """Fixed services and replica URLs (a server without ``--services``: none)."""

    infos: Sequence[ServiceInfo] = ()
    urls: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def services(self) -> Sequence[ServiceInfo]:
        return [
            ServiceInfo(**{**s.__dict__, "ready": len(self.urls.get(s.name, ()))})
            for s in self.infos
        ]

    def endpoints(self, name: str) -> list[str]:
        return list(self.urls.get(name, ()))


class LiveDirectory:
    """The services of a ``LiveServingController``, read on every call (replicas the
    supervisor adds, restarts or drains are seen at once)."""

    def __init__(
        self,
        controller,  # serving.live_pool.LiveServingController
        wake: Callable[[], None] | None = None,
        leading: Callable[[], bool] | None = None,
        retry_s: float = 5.0,
    ) -> None:
        self.controller = controller
        self.activity = controller.activity
        #: Runs the controller's round now (the live service's loop), for a held request.
        self._wake = wake
        #: Whether this server leads (None: it always does); a standby runs no replica.
        self._leading = leading
        self._retry_s = retry_s

    def standby_retry_s(self) -> float | None:
        """None on the leader; on a standby (``--standby``, another server holds the lease
        and runs the replicas) the seconds a client should wait before retrying: the lease's
        time to live, after which this server may lead."""
        if self._leading is None or self._leading():
            return None
        return self._retry_s

    def services(self) -> Sequence[ServiceInfo]:
        out = []
        for s in self.controller.states:
            rate = s.autoscaler.rate
            cold, last = self.activity.cold(s.spec.name)
            out.append(
                ServiceInfo(
                    name=s.spec.name,
                    tenant=s.spec.tenant,
                    model=s.spec.model.name,
                    ttft_slo_s=s.spec.ttft_slo_s,
                    ready=len(s.supervisor.endpoints()),
                    desired=s.want,
                    load_rps=float(rate[-1]) if rate else None,
                    scale_to_zero=s.bounds is not None,
                    cold_starts=cold,
                    cold_start_s=last,
                )
            )
        return out

    def endpoints(self, name: str) -> list[str]:
        for s in self.controller.states:
            if s.spec.name == name:
                return s.supervisor.endpoints()
        return []

    # ---- the activator (server/activator.py) ---------------------------------------
    def bounds(self, name: str):
        s = next((s for s in self.controller.states if s.spec.name == name), None)
        return None if s is None else s.bounds

    def hold(self, name: str, tenant: int) -> str:
        b = self.bounds(name)
        return "none" if b is None else self.activity.hold(name, tenant, b)

    def unhold(self, name: str, tenant: int) -> None:
        self.activity.unhold(name, tenant)

    def ready(self, name: str) -> float | None:
        return self.activity.ready(name)

    def starting(self, name: str) -> list[tuple[str, str]]:
        return self.controller.starting(name)

    def begin(self, name: str) -> None:
        self.activity.begin(name)

    def end(self, name: str) -> None:
        self.activity.end(name)

    def wake(self) -> None:
        if self._wake is not None:
            self._wake()
