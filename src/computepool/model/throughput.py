"""Throughputs: how fast each job type runs on each accelerator type.

Rates are whole-job steps per second for a job of ``scale_factor`` accelerators. Measured rows
(Gavel's table for V100/P100/K80, or an operator's own profiles) are used as they are; an
accelerator type without a measurement for a job type gets a *derived* rate:

    rate(a) = rate(ref) * (bf16_tflops(a) * stack_efficiency(a)) / (bf16_tflops(ref) * stack_efficiency(ref))

where ``ref`` is the measured accelerator closest in the preference order ``REFERENCE_ORDER``.
Scale factors beyond the largest measured one are extrapolated linearly with
``SCALING_EFFICIENCY`` per doubling. The ``generic`` job type (traces that give only a duration)
runs at ``h100_equiv * stack_efficiency`` steps/s per accelerator, so one step is one
H100-second of work. See docs/throughputs.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from computepool.model.accelerator import AcceleratorType

GENERIC = "generic"
REFERENCE_ORDER = ("V100", "A100", "H100", "P100", "K80")
SCALING_EFFICIENCY = 0.95
#: Slow-down of a gang spread over several nodes when no measurement exists (Gavel's
#: V100 median unconsolidated/consolidated ratio is 0.42; on NVLink/HCCS superpods less).
DEFAULT_UNCONSOLIDATED_FACTOR = 0.7

ClassKey = tuple[str, int]


@dataclass(frozen=True)
class Throughputs:
    accelerators: Mapping[str, AcceleratorType]
    #: (job_type, scale_factor) -> {accelerator: steps/s}, measured, consolidated placement.
    measured: Mapping[ClassKey, Mapping[str, float]] = field(default_factory=dict)
    #: Same for gangs spread over several nodes.
    unconsolidated: Mapping[ClassKey, Mapping[str, float]] = field(default_factory=dict)
    #: (key_a, key_b) -> {accelerator: (rate_a, rate_b)} when two jobs share one accelerator.
    pairs: Mapping[tuple[ClassKey, ClassKey], Mapping[str, tuple[float, float]]] = field(
        default_factory=dict
    )
    source: str = ""

    @property
    def job_types(self) -> list[str]:
        return sorted({k[0] for k in self.measured})

    def _measured_sfs(self, job_type: str) -> list[int]:
        return sorted(sf for jt, sf in self.measured if jt == job_type)

    def _derive(self, row: Mapping[str, float], accel: str) -> float:
        if accel in row:
            return float(row[accel])
        target = self.accelerators.get(accel)
        if target is None:
            return 0.0
        for ref in (*REFERENCE_ORDER, *sorted(row)):
            if ref in row and ref in self.accelerators and row[ref] > 0:
                src = self.accelerators[ref]
                denom = src.bf16_tflops * src.stack_efficiency
                if denom <= 0:
                    continue
                return float(row[ref]) * target.bf16_tflops * target.stack_efficiency / denom
        return 0.0

    def rate(
        self, job_type: str, scale_factor: int, accel: str, consolidated: bool = True
    ) -> float:
        """Whole-job steps/s for ``job_type`` on ``scale_factor`` accelerators of type ``accel``."""
        sf = max(1, int(scale_factor))
        if job_type == GENERIC or not any(jt == job_type for jt, _ in self.measured):
            a = self.accelerators.get(accel)
            if a is None:
                return 0.0
            base = a.h100_equiv * a.stack_efficiency * sf
            return base if consolidated or sf == 1 else base * DEFAULT_UNCONSOLIDATED_FACTOR
        table = self.measured if consolidated else self.unconsolidated
        key = (job_type, sf)
        if key in table:
            return self._derive(table[key], accel)
        if not consolidated and (job_type, sf) in self.measured:
            return self._derive(self.measured[key], accel) * DEFAULT_UNCONSOLIDATED_FACTOR
        sfs = self._measured_sfs(job_type)
        lower = [s for s in sfs if s <= sf]
        base_sf = lower[-1] if lower else sfs[0]
        base = self._derive(self.measured[(job_type, base_sf)], accel)
        doublings = math.log2(sf / base_sf)
        rate = base * (sf / base_sf) * SCALING_EFFICIENCY ** max(doublings, 0.0)
        return rate if consolidated else rate * DEFAULT_UNCONSOLIDATED_FACTOR

    def class_matrix(
        self, classes: Sequence[ClassKey], accelerators: Sequence[str], consolidated: bool = True
    ) -> np.ndarray:
        """Rates for each (job_type, scale_factor) class (rows) on each accelerator (columns)."""
        out = np.zeros((len(classes), len(accelerators)))
        for i, (jt, sf) in enumerate(classes):
            for k, a in enumerate(accelerators):
                out[i, k] = self.rate(jt, sf, a, consolidated)
        return out

    def pair_rate(self, a: ClassKey, b: ClassKey, accel: str) -> tuple[float, float] | None:
        """Rates of ``a`` and ``b`` sharing one ``accel`` device, if measured."""
        hit = self.pairs.get((a, b))
        if hit is not None and accel in hit:
            return hit[accel]
        hit = self.pairs.get((b, a))
        if hit is not None and accel in hit:
            rb, ra = hit[accel]
            return ra, rb
        return None

    def with_accelerators(self, accelerators: Iterable[AcceleratorType]) -> Throughputs:
        merged = dict(self.accelerators)
        merged.update({a.name: a for a in accelerators})
        return Throughputs(merged, self.measured, self.unconsolidated, self.pairs, self.source)
