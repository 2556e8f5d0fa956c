"""A plan's schedule as purchase lines: what is bought, its minimum order and its fabric."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from computepool.plan.buyable import largest_jobs

if TYPE_CHECKING:
    from computepool.plan.result import Plan


def fabric_of(p: Plan, c: int, s: int, t: int) -> dict[str, Any]:
    """The fabric a line's cards sit in: one chip at one site, all its cards in service."""
    sc = p.scenario
    chip, site = sc.chips[c], sc.sites[s]
    cards = int(round(p.cards[c, s, t]))
    holds = []
    for (tt, k), job in sorted(largest_jobs(sc).items()):
        if tt != t:
            continue
        need = chip.job_cards(job)
        holds.append(
            {
                "kind": sc.kinds[k].value,
                "largest_job_h100e": job,
                "job_cards": need,
                "holds": cards >= need and need <= chip.scale_out_cards,
            }
        )
    counts = [kind.value for k, kind in enumerate(sc.kinds) if p.alloc[c, s, t, k] > 0.5]
    return {
        "name": f"{chip.name}@{site.name}",
        "interconnect": chip.interconnect,
        "scale_up_cards": chip.scale_up_cards,
        "scale_out_cards": chip.scale_out_cards,
        "cards": cards,
        "largest_jobs": holds,
        "counts_toward": counts,
    }


def schedule_lines(p: Plan) -> list[dict[str, Any]]:
    """Every (year, site, chip) with cards in service; ``nodes`` > 0 marks a purchase line."""
    sc = p.scenario
    return [
        {
            "year": sc.years[t],
            "site": site.name,
            "chip": chip.name,
            "nodes": int(p.nodes[c, s, t]),
            "cards": int(p.nodes[c, s, t]) * chip.per_node,
            "cards_in_service": int(round(p.cards[c, s, t])),
            "min_order": chip.min_order_cards,
            "fabric": fabric_of(p, c, s, t),
        }
        for t in range(len(sc.years))
        for s, site in enumerate(sc.sites)
        for c, chip in enumerate(sc.chips)
        if p.cards[c, s, t] > 0.5
    ]


def chip_mix(p: Plan) -> dict[str, int]:
    """Cards in service in the last year, per chip (chips with none left out)."""
    sc = p.scenario
    last = p.cards[:, :, -1].sum(axis=1)
    return {chip.name: int(round(last[c])) for c, chip in enumerate(sc.chips) if last[c] > 0.5}
