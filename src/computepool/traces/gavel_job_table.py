"""Gavel's job templates (model names and whether they can run distributed), in both orders.

Gavel's synthetic generator picks a job type with ``rng.choice(JobTable)``, so the *order* of the
table decides which model a given random draw maps to. Two orders exist in Gavel's history
(stanford-futuredata/gavel, MIT):

- ``2020``: the table behind the published OSDI'20 numbers (commit ``2b47eb0``, 2020-05-20):
  ResNet-18 x5, ResNet-50 x4, Transformer x5, **A3C (index 14)**, LM x5, Recommendation x5,
  CycleGAN.
- ``head``: the table at HEAD (``c4fa400``, 2022-01-15): ResNet-18 x5, ResNet-50 x4,
  Transformer x5, LM x5, Recommendation x5, **A3C (index 24)**, CycleGAN.

Only ResNet-18, ResNet-50, Transformer and LM are marked distributed (may get a scale factor
above 1); Recommendation, A3C and CycleGAN always run on one GPU.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GavelTemplate:
    model: str
    distributed: bool


def _family(name: str, batch_sizes: tuple[int, ...], distributed: bool) -> list[GavelTemplate]:
    return [GavelTemplate(f"{name} (batch size {bs})", distributed) for bs in batch_sizes]


def _resnet18() -> list[GavelTemplate]:
    return _family("ResNet-18", (16, 32, 64, 128, 256), True)


def _resnet50() -> list[GavelTemplate]:
    return _family("ResNet-50", (16, 32, 64, 128), True)


def _transformer() -> list[GavelTemplate]:
    return _family("Transformer", (16, 32, 64, 128, 256), True)


def _lm() -> list[GavelTemplate]:
    return _family("LM", (5, 10, 20, 40, 80), True)


def _recommendation() -> list[GavelTemplate]:
    return _family("Recommendation", (512, 1024, 2048, 4096, 8192), False)


A3C = GavelTemplate("A3C", False)
CYCLEGAN = GavelTemplate("CycleGAN", False)


def job_table(order: str = "2020") -> tuple[GavelTemplate, ...]:
    """Gavel's ``JobTable`` in the given historical order (``2020`` or ``head``)."""
    if order == "2020":
        rows = [
            *_resnet18(),
            *_resnet50(),
            *_transformer(),
            A3C,
            *_lm(),
            *_recommendation(),
            CYCLEGAN,
        ]
    elif order == "head":
        rows = [
            *_resnet18(),
            *_resnet50(),
            *_transformer(),
            *_lm(),
            *_recommendation(),
            A3C,
            CYCLEGAN,
        ]
    else:
        raise ValueError(f"unknown Gavel job-table order {order!r} (use '2020' or 'head')")
    return tuple(rows)


def gavel_job_types() -> frozenset[str]:
    """The 26 model names of Gavel's table."""
    return frozenset(t.model for t in job_table("2020"))
