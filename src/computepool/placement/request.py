"""What one worker (pod) asks of a node: CPU, memory, devices (whole or a fractional share)."""

from __future__ import annotations

from dataclasses import dataclass

from computepool.placement.state import MILLI


@dataclass(frozen=True, slots=True)
class PodRequest:
    """One worker's request.

    ``num_gpu`` devices of ``gpu_milli`` milli-units each: ``gpu_milli < 1000`` (a share of one
    device) needs ``num_gpu == 1``; several devices are always whole (``gpu_milli == 1000``).
    ``gpu_spec`` lists accepted accelerator types (empty: any).
    """

    cpu_milli: int = 0
    memory_mib: int = 0
    num_gpu: int = 0
    gpu_milli: int = 0
    gpu_spec: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        problem = request_problem(self.cpu_milli, self.memory_mib, self.num_gpu, self.gpu_milli)
        if problem:
            raise ValueError(problem)

    @classmethod
    def whole(cls, num_gpu: int, cpu_milli: int = 0, memory_mib: int = 0, **kw) -> PodRequest:
        return cls(cpu_milli, memory_mib, num_gpu, MILLI if num_gpu else 0, **kw)

    @property
    def total_gpu_milli(self) -> int:
        return self.num_gpu * self.gpu_milli

    @property
    def is_share(self) -> bool:
        return self.num_gpu == 1 and 0 < self.gpu_milli < MILLI

    @property
    def gpu_tag(self) -> int:
        """Kind of device use (GPU clustering): -1 none, 0 a share, k = k whole devices."""
        if self.num_gpu == 0:
            return -1
        return 0 if self.is_share else self.num_gpu


def request_problem(cpu_milli: int, memory_mib: int, num_gpu: int, gpu_milli: int) -> str:
    """Why these numbers are not a valid request ("" when they are)."""
    if cpu_milli < 0 or memory_mib < 0:
        return "cpu_milli and memory_mib must be >= 0"
    if num_gpu < 0:
        return "num_gpu must be >= 0"
    if not 0 <= gpu_milli <= MILLI:
        return f"gpu_milli must be within 0..{MILLI}"
    if num_gpu == 0 and gpu_milli != 0:
        return "gpu_milli must be 0 when num_gpu is 0"
    if num_gpu > 0 and gpu_milli == 0:
        return "gpu_milli must be > 0 when num_gpu > 0"
    if num_gpu > 1 and gpu_milli != MILLI:
        return f"a request for {num_gpu} devices must take whole devices (gpu_milli {MILLI})"
    return ""
